"""Dense optical flow between two frames (OpenCV DIS or Farneback, on frames scaled down to a
maximum side and returned at full size), and what every tracked object's disagreement test reads
of one frame pair's flow. :class:`~napari_sasvi.core.trackers.flow.FlowTracker` computes it once
per frame pair."""

from __future__ import annotations

import numpy as np

from ..errors import InputError

#: the flow methods: DIS (OpenCV's, medium preset computed down to full resolution), DIS made about
#: twice as fast (no variational refinement, frames at most 320 px: the same Dice on the real
#: CholecSeg8k clip, 0.017 less on the synthetic clip at 854 x 480; see benchmarks/README.md), and
#: Farneback. Each with the longer side the frames are scaled to by default.
METHODS = {"dis": 480, "dis-fast": 320, "farneback": 480}


class FlowField:
    """Backward flow (frame t -> frame t-1) at a reduced size, returned at full size."""

    def __init__(self, method: str, max_side: int):
        import cv2

        if method not in METHODS:
            raise InputError(f"Unknown flow method {method!r}: use one of {', '.join(METHODS)}.")
        self.method = method
        self.max_side = max_side
        self._dis = None
        if method.startswith("dis"):
            self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
            self._dis.setFinestScale(0)  # the preset stops at half resolution; sub-pixel accuracy matters here
            if method == "dis-fast":
                self._dis.setVariationalRefinementIterations(0)  # about half of DIS's time

    def gray(self, rgb: np.ndarray) -> np.ndarray:
        import cv2

        g = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
        h, w = g.shape
        scale = min(1.0, self.max_side / max(h, w))
        if scale < 1.0:
            g = cv2.resize(g, (max(8, round(w * scale)), max(8, round(h * scale))), interpolation=cv2.INTER_AREA)
        return g

    def calc(self, a: np.ndarray, b: np.ndarray, full: tuple[int, int]) -> np.ndarray:
        """(H, W, 2) float32: for each pixel of image ``a``, its displacement to image ``b``."""
        import cv2

        if self._dis is not None:
            flow = self._dis.calc(a, b, None)
        else:
            flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 4, 21, 3, 5, 1.1, 0)
        h, w = full
        sh, sw = a.shape
        if (sh, sw) != (h, w):
            flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR)
            flow[..., 0] *= w / sw
            flow[..., 1] *= h / sh
        return flow


class Motion:
    """One frame pair's flow, and what every object's disagreement test reads of it, made once
    per frame pair (in the worker thread when reading ahead) instead of once per object: the
    flow at the frame's even pixels, x and y apart, and the squared tolerance there; and the two
    grey frames it was computed from (``prev``, ``gray``: for the objects' photometric error)."""

    __slots__ = ("flow", "fx", "fy", "gray", "prev", "tol2")

    def __init__(self, flow: np.ndarray, prev: np.ndarray | None = None, gray: np.ndarray | None = None):
        self.flow = flow
        self.prev, self.gray = prev, gray
        half = flow[::2, ::2]
        self.fx = np.ascontiguousarray(half[..., 0])
        self.fy = np.ascontiguousarray(half[..., 1])
        tol = 1.5 + 0.1 * np.hypot(self.fx, self.fy)  # 1.5 px, +10 % of the motion
        self.tol2 = tol * tol
