"""How sure the flow tracker is that an object is still where it carries it: a value in [0, 1]
per object and frame, from signals its step computes anyway or cheaply.

* **Area** (``area``): the share of the carried mask still in view: its area in view, divided by
  the transform's area scale, against the same at the anchor (``min(r, 1/r)``). A mask carried
  out of view collapses; a steady zoom does not (a car driving away keeps 0.21 of its anchor's
  area and is tracked at Dice 0.77; the fitted zoom is limited to 2 % a frame).
* **Fit** (``fit``): the share of the flow samples inside the object that the RANSAC similarity
  fit explains (its inliers, 1 px), smoothed over a few frames (an exponential average, weight
  ``FIT_SMOOTHING``). An object torn apart by an occluder, or flow that does not move as one,
  fits badly frame after frame; one bad frame (motion blur) does not count much.
* **Residual** (``residual``): the photometric error of the fitted step, the mean absolute grey
  difference between frame t-1 at the samples and frame t where the step puts them, against the
  same error on the first steps after the anchor (their median, robust to one bad step; at least ``RESIDUAL_FLOOR`` grey
  levels). A mask that slid onto other texture, or an object whose appearance changed under it,
  stops matching: the score is ``reference / residual`` (1 while the error stays as it was),
  smoothed as the fit is (one frame's error spikes on the synthetic clip's noise and lighting).

Forward-backward consistency is not computed: a second, backward DIS flow per frame pair would
double the tracker's flow cost (its largest), and the three signals above, computed from what
the step has anyway, already flag the losses on the development clips (benchmarks/bench_lost.py).

The confidence is the smallest of the three scores, and its reason is the name of that signal.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: weight of the current frame in the exponential average of the RANSAC inlier share
FIT_SMOOTHING = 0.3
#: the first steps after an anchor whose photometric error becomes the object's reference
RESIDUAL_REFERENCE_STEPS = 3
#: grey levels (of 255): a reference error below this is taken as this (a flat, noiseless object
#: would otherwise call any sensor noise a collapse)
RESIDUAL_FLOOR = 4.0

SIGNALS = ("area", "fit", "residual")


@dataclass
class ObjectConfidence:
    """The signals of one tracked object, updated by each step of the tracker."""

    area0: float
    area: float = 1.0
    fit: float = 1.0
    residual: float = 1.0
    _ref: list[float] = field(default_factory=list)

    @property
    def value(self) -> float:
        """The confidence in [0, 1]: the weakest signal's score."""
        return float(min(self.area, self.fit, self.residual))

    @property
    def reason(self) -> str:
        """The signal that sets :attr:`value` (``area``, ``fit`` or ``residual``)."""
        scores = {"area": self.area, "fit": self.fit, "residual": self.residual}
        return min(scores, key=scores.__getitem__)

    def update_area(self, area: float) -> None:
        if self.area0 <= 0:
            self.area = 1.0 if area <= 0 else 0.0
            return
        r = area / self.area0
        self.area = float(min(r, 1.0 / r)) if r > 0 else 0.0

    def update_fit(self, inlier_share: float) -> None:
        self.fit = float((1 - FIT_SMOOTHING) * self.fit + FIT_SMOOTHING * inlier_share)

    def update_residual(self, error: float) -> None:
        if len(self._ref) < RESIDUAL_REFERENCE_STEPS:
            self._ref.append(error)
        ref = max(RESIDUAL_FLOOR, float(np.median(self._ref)))
        score = float(min(1.0, ref / error)) if error > 0 else 1.0
        self.residual = float((1 - FIT_SMOOTHING) * self.residual + FIT_SMOOTHING * score)


def sample_error(
    prev: np.ndarray, gray: np.ndarray, src: np.ndarray, step: np.ndarray, frame_size: tuple[int, int]
) -> float | None:
    """Mean absolute grey difference between ``prev`` (frame t-1 in grey, possibly scaled down)
    at the sample points ``src`` (N, 2) in full-frame (x, y) pixels and ``gray`` (frame t, the
    same scale) where the fitted step (2, 3) puts them; None when no moved sample lands in view.
    Nearest pixels: the error compares a frame with itself over time, sub-pixel precision would
    change it little and cost a remap."""
    if not len(src):
        return None
    w, h = frame_size
    gh, gw = gray.shape
    sx, sy = gw / w, gh / h
    dst = src @ step[:, :2].T + step[:, 2]
    xa, ya = (src[:, 0] * sx).astype(np.int32), (src[:, 1] * sy).astype(np.int32)
    xb, yb = np.rint(dst[:, 0] * sx).astype(np.int32), np.rint(dst[:, 1] * sy).astype(np.int32)
    ok = (xb >= 0) & (xb < gw) & (yb >= 0) & (yb < gh) & (xa < gw) & (ya < gh)
    if not ok.any():
        return None
    a = prev[ya[ok], xa[ok]].astype(np.float32)
    b = gray[yb[ok], xb[ok]].astype(np.float32)
    return float(np.abs(a - b).mean())


__all__ = ["FIT_SMOOTHING", "RESIDUAL_FLOOR", "RESIDUAL_REFERENCE_STEPS", "SIGNALS", "ObjectConfidence", "sample_error"]
