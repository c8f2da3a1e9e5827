"""Temporal consistency of a label stack: SASVi's T and F metrics, in two conventions.

**T**: for every pair of consecutive frames and every label present in either, the IoU of the
label's masks and the average symmetric contour distance (ASSD: contours at level 0.5 of each
binary mask, mean nearest-point distance each way, averaged); a label is skipped on a pair where
the union is empty or a mask has no contour.

**F**: the mask at t is warped onto t+1 with optical flow and compared per label (IoU, Dice).

Scores are pooled per label over all pairs (and videos) and the per-label means macro-averaged.

``convention="default"`` leaves background and ignore labels out of the macro average, works at
the frames' own size and warps correctly: the flow from t+1 back to t tells, for every pixel of
t+1, where it was at t, so the warped mask is ``mask_t(p + flow_{t+1->t}(p))``.
``convention="reference"`` reproduces the reference scripts: both label maps resized (nearest) to
299 x 299, every label averaged (D6), frames squashed to 512 x 384 for the flow, the *forward*
flow used as a backward lookup and bilinearly resized to 299 x 299 without rescaling its vectors
(D1) - so a pure 5-pixel shift scores an F-IoU near 0.

Streaming: frames are read two at a time; a stack of any length never sits in memory whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Convention = Literal["default", "reference"]
REF_SIZE = (299, 299)  # (W, H) of the reference's label maps
REF_FLOW_SIZE = (512, 384)  # (W, H) the reference squashes frames to for RAFT


@dataclass
class _Pool:
    values: dict[int, list[float]] = field(default_factory=dict)

    def add(self, label: int, value: float) -> None:
        self.values.setdefault(label, []).append(value)

    def means(self) -> dict[int, float]:
        return {k: float(np.mean(v)) for k, v in sorted(self.values.items()) if v}


def _resize_nearest(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    return cv2.resize(labels.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)


def contour_points(mask: np.ndarray) -> np.ndarray:
    """(N, 2) sub-pixel points of the mask's contours at level 0.5."""
    from skimage.measure import find_contours

    padded = np.pad(mask.astype(np.float32), 1)  # contours close at the image border
    cs = find_contours(padded, 0.5)
    return (np.concatenate(cs) - 1.0) if cs else np.zeros((0, 2))


def assd(a: np.ndarray, b: np.ndarray) -> float | None:
    """Average symmetric contour distance between two bool masks, or None without contours."""
    from scipy.spatial import cKDTree

    pa, pb = contour_points(a), contour_points(b)
    if len(pa) == 0 or len(pb) == 0:
        return None
    da, _ = cKDTree(pb).query(pa)
    db, _ = cKDTree(pa).query(pb)
    return float((da.mean() + db.mean()) / 2)


def iou(a: np.ndarray, b: np.ndarray) -> float | None:
    union = np.count_nonzero(a | b)
    return None if union == 0 else np.count_nonzero(a & b) / union


def dice(a: np.ndarray, b: np.ndarray) -> float | None:
    total = np.count_nonzero(a) + np.count_nonzero(b)
    return None if total == 0 else 2 * np.count_nonzero(a & b) / total


FlowFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def opencv_flow(method: str = "dis") -> FlowFn:
    """Dense flow from frame a to frame b (RGB uint8) as (H, W, 2) float32 (dx, dy): OpenCV's DIS
    (``medium`` preset) or Farneback. No weights needed."""
    import cv2

    def flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ga = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
        gb = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
        if method == "farneback":
            return cv2.calcOpticalFlowFarneback(ga, gb, None, 0.5, 4, 21, 5, 7, 1.5, 0)
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        return dis.calc(ga, gb, None)

    return flow


def warp_labels(labels: np.ndarray, lookup: np.ndarray) -> np.ndarray:
    """``out(p) = labels(p + lookup(p))`` (nearest); pixels looking outside keep 255."""
    import cv2

    h, w = labels.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return cv2.remap(
        labels.astype(np.uint8),
        xs + lookup[..., 0],
        ys + lookup[..., 1],
        cv2.INTER_NEAREST,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=255,
    )


@dataclass
class TemporalResult:
    """Pooled per-label and macro figures, and the per-pair series (pair t compares t and t+1)."""

    t_iou: dict[int, float]
    t_assd: dict[int, float]
    f_iou: dict[int, float]
    f_dice: dict[int, float]
    macro: dict[str, float]
    series: dict[str, list[float]]
    labels_scored: list[int]
    convention: str
    raw: dict[str, dict[int, list[float]]] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        return {
            "convention": self.convention,
            "macro": self.macro,
            "per_label": {
                k: {str(c): v for c, v in getattr(self, k).items()} for k in ("t_iou", "t_assd", "f_iou", "f_dice")
            },
            "labels_scored": self.labels_scored,
            "series": self.series,
        }


def iter_temporal(
    labels,
    frames=None,
    convention: Convention = "default",
    ignore: set[int] | frozenset[int] = frozenset(),
    no_label: int | None = 255,
    flow: FlowFn | None = None,
) -> Iterator[int]:
    """Generator over pairs (yields the pair index) that returns a :class:`TemporalResult`.

    Args:
        labels: (T, H, W) label stack (numpy, dask, zarr: read two frames at a time).
        frames: (T, H, W, 3) uint8 frames of the same video for F (None: T only).
        ignore: labels left out of the default macro average (background, ignore labels).
        no_label: the unlabelled value, never scored in ``default``.
    """
    if len(labels.shape) != 3:
        raise ValueError(f"expected a (T, H, W) label stack, got shape {tuple(labels.shape)}")
    n = int(labels.shape[0])
    if frames is not None:
        if int(frames.shape[0]) != n:
            raise ValueError(f"{n} label frames but {int(frames.shape[0])} video frames: they must match one to one")
        if tuple(frames.shape[1:3]) != tuple(labels.shape[1:3]):
            raise ValueError(
                f"label maps are {tuple(labels.shape[1:3])} but frames are {tuple(frames.shape[1:3])}: same size needed"
            )
    ref = convention == "reference"
    flow = flow or opencv_flow()
    pools = {k: _Pool() for k in ("t_iou", "t_assd", "f_iou", "f_dice")}
    series: dict[str, list[float]] = {"t_iou": [], "f_iou": []}

    from .lazy import read_frame as read

    prev = read(labels, 0) if n else None
    prev_frame = read(frames, 0) if frames is not None and n else None
    for t in range(n - 1):
        cur = read(labels, t + 1)
        a, b = (_resize_nearest(prev, REF_SIZE), _resize_nearest(cur, REF_SIZE)) if ref else (prev, cur)
        present = sorted(set(np.unique(a).tolist()) | set(np.unique(b).tolist()))
        if not ref:
            present = [c for c in present if c != no_label]
        pair_iou = []
        for c in present:
            ma, mb = a == c, b == c
            v = iou(ma, mb)
            if v is None:
                continue
            d = assd(ma, mb)
            if d is None:
                continue
            pools["t_iou"].add(c, v)
            pools["t_assd"].add(c, d)
            if ref or c not in ignore:
                pair_iou.append(v)
        series["t_iou"].append(float(np.mean(pair_iou)) if pair_iou else float("nan"))
        if frames is not None:
            cur_frame = read(frames, t + 1)
            warped, target = _warp_pair(prev, cur, prev_frame, cur_frame, flow, ref)
            f_pair = []
            for c in present:
                wa, wb = warped == c, target == c
                vi, vd = iou(wa, wb), dice(wa, wb)
                if vi is None:
                    continue
                pools["f_iou"].add(c, vi)
                pools["f_dice"].add(c, vd)
                if ref or c not in ignore:
                    f_pair.append(vi)
            series["f_iou"].append(float(np.mean(f_pair)) if f_pair else float("nan"))
            prev_frame = cur_frame
        prev = cur
        yield t
    return _result({k: p.values for k, p in pools.items()}, series, convention, ignore, ref)


def _result(raw, series, convention, ignore, ref) -> TemporalResult:
    per = {k: {c: float(np.mean(v)) for c, v in sorted(d.items()) if v} for k, d in raw.items()}
    scored = sorted({c for d in per.values() for c in d if ref or c not in ignore})
    macro = {
        k: float(np.mean([v[c] for c in scored if c in v])) if any(c in v for c in scored) else float("nan")
        for k, v in per.items()
    }
    return TemporalResult(
        per["t_iou"], per["t_assd"], per["f_iou"], per["f_dice"], macro, series, scored, convention, raw
    )


def pool_results(results: list[TemporalResult], ignore=frozenset()) -> TemporalResult:
    """Pool several videos' scores per label (as the reference does), then macro-average."""
    raw: dict[str, dict[int, list[float]]] = {k: {} for k in ("t_iou", "t_assd", "f_iou", "f_dice")}
    for r in results:
        for k, d in r.raw.items():
            for c, v in d.items():
                raw[k].setdefault(c, []).extend(v)
    conv = results[0].convention if results else "default"
    return _result(raw, {}, conv, ignore, conv == "reference")


def _warp_pair(prev, cur, prev_frame, cur_frame, flow: FlowFn, ref: bool):
    """The mask at t warped onto t+1, and the mask at t+1 it is compared with."""
    import cv2

    if ref:
        # D1, as the reference: frames squashed to 512 x 384, forward flow t -> t+1, bilinearly
        # resized to 299 x 299 with its vectors left in 512 x 384 pixels, used as a backward lookup
        fa = cv2.resize(prev_frame, REF_FLOW_SIZE, interpolation=cv2.INTER_LINEAR)
        fb = cv2.resize(cur_frame, REF_FLOW_SIZE, interpolation=cv2.INTER_LINEAR)
        fwd = cv2.resize(flow(fa, fb), REF_SIZE, interpolation=cv2.INTER_LINEAR)
        return warp_labels(_resize_nearest(prev, REF_SIZE), fwd), _resize_nearest(cur, REF_SIZE)
    # correct: the flow from t+1 back to t, at the frames' own size and aspect
    back = flow(cur_frame, prev_frame)
    return warp_labels(prev, back), cur


def temporal_consistency(labels, frames=None, **kw) -> TemporalResult:
    """Drive :func:`iter_temporal` to the end."""
    gen = iter_temporal(labels, frames, **kw)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def raft_flow(weights: str | None = None, device: str = "cpu", iterations: int = 12) -> FlowFn:
    """torchvision's RAFT-small (what the reference used: 12 iterations). ``weights``: a local
    state-dict file (loaded with ``weights_only=True``); None downloads torchvision's weights
    when online (an offline failure says what to do)."""
    import torch
    from torchvision.models.optical_flow import Raft_Small_Weights, raft_small

    from .errors import CheckpointError

    model = raft_small(weights=None)
    if weights is not None:
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            model.load_state_dict(state, strict=True)
        except Exception as e:  # unreadable, truncated, pickled code, or keys that do not fit
            raise CheckpointError(f"Cannot load RAFT-small weights from {weights}: {e}") from e
    else:
        try:
            model.load_state_dict(Raft_Small_Weights.DEFAULT.get_state_dict(progress=False))
        except Exception as e:  # URLError and friends when offline
            raise CheckpointError(
                f"Cannot download RAFT-small weights ({e}). Offline? Fetch {Raft_Small_Weights.DEFAULT.url} "
                "and pass it with --raft-weights FILE, or use --flow opencv."
            ) from e
    model = model.eval().to(device)

    def flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        h, w = a.shape[:2]
        ph, pw = (-h) % 8, (-w) % 8  # RAFT needs sizes divisible by 8

        def prep(x):
            t = torch.from_numpy(np.pad(x, ((0, ph), (0, pw), (0, 0)), mode="edge")).permute(2, 0, 1).float()
            return (t / 127.5 - 1.0)[None].to(device)

        with torch.inference_mode():
            out = model(prep(a), prep(b), num_flow_updates=iterations)[-1][0]
        return out.permute(1, 2, 0).cpu().numpy()[:h, :w].astype(np.float32)

    return flow
