"""Temporal consistency of a label stack: SASVi's T and F metrics, in two conventions.

**T**: for every pair of consecutive frames and every label present in either, the IoU of the
label's masks and the average symmetric contour distance (ASSD: contours at level 0.5 of each
binary mask, mean nearest-point distance each way, averaged).

**F**: the mask at t is warped onto t+1 with optical flow and compared per label (IoU, Dice).

Scores are pooled per label over all pairs (and videos) and the per-label means macro-averaged.

``convention="default"`` leaves background and ignore labels out of the macro average, works at
the frames' own size, closes contours at the image border, skips a label on a pair where the union
is empty or a mask has no contour, and warps correctly: the flow from t+1 back to t tells, for
every pixel of t+1, where it was at t, so the warped mask is ``mask_t(p + flow_{t+1->t}(p))``.

``convention="reference"`` reproduces the published scripts (``eval_vid_T.py``,
``eval_vid_OF.py``): label ids cast to uint8, both label maps resized to 299 x 299 with
``torch.nn.functional.interpolate(mode="nearest")`` (source index ``floor(i * float32(in / out))``,
see :func:`nearest_indices`), every label averaged (D6). A label in one frame only scores IoU 0
(only an empty union is skipped); the contour distance is skipped where either mask has no contour
(contours of the unpadded mask: a label covering the whole frame has none, one touching the border
has open contours). F: frames as ``ToTensor`` + ``Resize((512, 384))`` (H x W: squashed to
portrait, bilinear, antialiased), the *forward* flow t -> t+1 bilinearly resized to 299 x 299
without rescaling its vectors and used as a backward lookup, ``floor`` of the looked-up position
clamped to the image (D1) - so a pure 5-pixel shift scores an F-IoU near 0.

Streaming: frames are read two at a time; a stack of any length never sits in memory whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ..progress import drain

Convention = Literal["default", "reference"]
REF_SIZE = (299, 299)  # (W, H) of the reference's label maps
REF_FLOW_SIZE = (384, 512)  # (W, H) the reference squashes frames to for RAFT: Resize((512, 384)) is (H, W)


@dataclass
class _Pool:
    values: dict[int, list[float]] = field(default_factory=dict)

    def add(self, label: int, value: float) -> None:
        self.values.setdefault(label, []).append(value)

    def means(self) -> dict[int, float]:
        return {k: float(np.mean(v)) for k, v in sorted(self.values.items()) if v}


def nearest_indices(n_in: int, n_out: int) -> np.ndarray:
    """Source indices of ``torch.nn.functional.interpolate(mode="nearest")`` along one axis.

    torch computes ``min(floor(i * scale), n_in - 1)`` with ``scale = float32(n_in) / n_out`` in
    float32 arithmetic (not OpenCV's or PIL's rounding, nor exact integer floor: for n_in = 65, 91,
    130, ... and n_out = 299 the float32 product falls just below an integer)."""
    if n_in == n_out:
        return np.arange(n_out, dtype=np.intp)
    scale = np.float32(n_in) / np.float32(n_out)
    src = np.floor(np.arange(n_out, dtype=np.float32) * scale)
    return np.minimum(src.astype(np.intp), n_in - 1)


def resize_nearest(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``labels`` (H, W) as uint8 ids (wrapped mod 256, like torch's ``.to(torch.uint8)``) resized
    to ``size`` (W, H) exactly like ``torch.nn.functional.interpolate(mode="nearest")``."""
    a = np.asarray(labels).astype(np.uint8)
    w, h = size
    return a[nearest_indices(a.shape[0], h)[:, None], nearest_indices(a.shape[1], w)[None, :]]


def contour_points(mask: np.ndarray, close_at_border: bool = True) -> np.ndarray:
    """(N, 2) sub-pixel (row, col) points of the mask's contours at level 0.5.

    ``close_at_border``: pad the mask with background first, so that contours close along the
    image border (default convention); False: the unpadded mask, as the reference (a mask filling
    the frame has no contour, one touching the border has open contours)."""
    from skimage.measure import find_contours

    m = np.asarray(mask).astype(np.uint8)
    if close_at_border:
        cs = find_contours(np.pad(m, 1), 0.5)
        return (np.concatenate(cs) - 1.0) if cs else np.zeros((0, 2))
    if min(m.shape) < 2:  # find_contours needs 2 x 2
        return np.zeros((0, 2))
    cs = find_contours(m, 0.5)
    return np.concatenate(cs) if cs else np.zeros((0, 2))


def assd(a: np.ndarray, b: np.ndarray, close_at_border: bool = True) -> float | None:
    """Average symmetric contour distance between two bool masks (pixels): the mean distance of
    a's contour points to the nearest of b's, and of b's to a's, averaged; None where either mask
    has no contour (see :func:`contour_points`)."""
    from scipy.spatial import cKDTree

    pa, pb = contour_points(a, close_at_border), contour_points(b, close_at_border)
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
"""``flow(a, b)``: dense flow from frame a to frame b as (H, W, 2) float32 (dx, dy). Frames are
(H, W, 3) RGB, uint8 or (in the reference convention) float32 in [0, 1]."""


def _as_uint8(x: np.ndarray) -> np.ndarray:
    if np.issubdtype(x.dtype, np.floating):
        return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
    return x.astype(np.uint8, copy=False)


def opencv_flow(method: str = "dis") -> FlowFn:
    """Dense flow from frame a to frame b (RGB, uint8 or float in [0, 1]) as (H, W, 2) float32
    (dx, dy): OpenCV's DIS (``medium`` preset) or Farneback. No weights needed."""
    import cv2

    def flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ga = cv2.cvtColor(_as_uint8(a), cv2.COLOR_RGB2GRAY)
        gb = cv2.cvtColor(_as_uint8(b), cv2.COLOR_RGB2GRAY)
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


def warp_labels_reference(labels: np.ndarray, lookup: np.ndarray) -> np.ndarray:
    """The reference's warp: ``out(y, x) = labels(floor(clamp(y + dy)), floor(clamp(x + dx)))``,
    the looked-up position clamped to the image (no fill value), then truncated (not rounded)."""
    h, w = labels.shape
    pos_x = np.arange(w, dtype=np.float64)[None, :] + lookup[..., 0].astype(np.float64)
    pos_y = np.arange(h, dtype=np.float64)[:, None] + lookup[..., 1].astype(np.float64)
    col = np.floor(np.minimum(np.maximum(pos_x, 0.0), w - 1)).astype(np.intp)
    row = np.floor(np.minimum(np.maximum(pos_y, 0.0), h - 1)).astype(np.intp)
    return labels[row, col]


def reference_flow_frame(frame: np.ndarray) -> np.ndarray:
    """A video frame as the reference feeds RAFT, before ``Normalize(0.5, 0.5)``: torchvision's
    ``ToTensor()`` then ``Resize((512, 384))`` (bilinear, antialiased), as (512, 384, 3) float32
    in [0, 1]."""
    import torch
    import torch.nn.functional as F

    x = np.asarray(frame)
    if x.ndim == 2:
        x = np.repeat(x[..., None], 3, axis=-1)
    x = torch.from_numpy(np.ascontiguousarray(x[..., :3].astype(np.uint8, copy=False)))
    x = x.permute(2, 0, 1).contiguous().to(torch.float32).div(255)
    w, h = REF_FLOW_SIZE
    y = F.interpolate(x[None], size=(h, w), mode="bilinear", align_corners=False, antialias=True)[0]
    return y.permute(1, 2, 0).contiguous().numpy()


def resize_flow_reference(flow: np.ndarray) -> np.ndarray:
    """(h, w, 2) flow bilinearly resized to 299 x 299 (``align_corners=False``) with its vectors
    left in the input's pixels, as the reference does (D1)."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(flow, dtype=np.float32)).permute(2, 0, 1)[None]
    w, h = REF_SIZE
    out = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)[0]
    return out.permute(1, 2, 0).contiguous().numpy()


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
        flow: the optical flow for F (:data:`FlowFn`; None: :func:`opencv_flow`). In
            ``reference`` it gets the frames as :func:`reference_flow_frame` makes them (t, t+1).
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

    from ..inputs.lazy import read_frame as read

    def prepare(t):
        """Labels (and frame) t as scored: resized (reference) or as they are (default)."""
        lab = read(labels, t)
        frame = read(frames, t) if frames is not None else None
        if ref:
            lab = resize_nearest(lab, REF_SIZE)
            frame = reference_flow_frame(frame) if frame is not None else None
        return lab, frame

    a, fa = prepare(0) if n else (None, None)
    for t in range(n - 1):
        b, fb = prepare(t + 1)
        present = sorted(set(np.unique(a).tolist()) | set(np.unique(b).tolist()))
        if not ref:
            present = [c for c in present if c != no_label]
        pair_iou = []
        for c in present:
            ma, mb = a == c, b == c
            v = iou(ma, mb)
            if v is None:  # empty union
                continue
            d = assd(ma, mb, close_at_border=not ref)
            # both conventions: the IoU whenever the union is not empty (a label that appears or
            # vanishes scores 0: that is flicker), the distance where both masks have a contour
            pools["t_iou"].add(c, v)
            if d is not None:
                pools["t_assd"].add(c, d)
            if ref or c not in ignore:
                pair_iou.append(v)
        series["t_iou"].append(float(np.mean(pair_iou)) if pair_iou else float("nan"))
        if frames is not None:
            warped = _warp(a, fa, fb, flow, ref)
            f_pair = []
            for c in present:
                wa, wb = warped == c, b == c
                vi, vd = iou(wa, wb), dice(wa, wb)
                if vi is None:
                    continue
                pools["f_iou"].add(c, vi)
                pools["f_dice"].add(c, vd)
                if ref or c not in ignore:
                    f_pair.append(vi)
            series["f_iou"].append(float(np.mean(f_pair)) if f_pair else float("nan"))
        a, fa = b, fb
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


def _warp(prev, prev_frame, cur_frame, flow: FlowFn, ref: bool) -> np.ndarray:
    """The labels at t warped onto t+1 (``prev``, the frames: as :func:`iter_temporal` prepared)."""
    if ref:
        # D1, as the reference: forward flow t -> t+1 of the 384 x 512 frames, bilinearly resized
        # to 299 x 299 with its vectors left in 384 x 512 pixels, used as a backward lookup
        return warp_labels_reference(prev, resize_flow_reference(flow(prev_frame, cur_frame)))
    # correct: the flow from t+1 back to t, at the frames' own size and aspect
    return warp_labels(prev, flow(cur_frame, prev_frame))


def temporal_consistency(labels, frames=None, **kw) -> TemporalResult:
    """Drive :func:`iter_temporal` to the end."""
    return drain(iter_temporal(labels, frames, **kw))


def raft_flow(weights: str | None = None, device: str = "cpu", iterations: int = 12) -> FlowFn:
    """torchvision's RAFT-small (what the reference used: ``C_T_V2`` weights, 12 iterations).

    Frames: uint8, or float in [0, 1] (normalised like the reference's ``Normalize(0.5, 0.5)``).
    ``weights``: a local state-dict file (loaded with ``weights_only=True``); None downloads
    torchvision's weights when online (an offline failure says what to do)."""
    import torch
    from torchvision.models.optical_flow import Raft_Small_Weights, raft_small

    from ..errors import CheckpointError

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
            if np.issubdtype(x.dtype, np.floating):  # [0, 1], as ToTensor: Normalize(0.5, 0.5)
                return ((t - 0.5) / 0.5)[None].to(device)
            return (t / 127.5 - 1.0)[None].to(device)

        with torch.inference_mode():
            out = model(prep(a), prep(b), num_flow_updates=iterations)[-1][0]
        return out.permute(1, 2, 0).cpu().numpy()[:h, :w].astype(np.float32)

    return flow
