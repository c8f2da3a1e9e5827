"""Identity metrics of instance tracks against instance ground truth, and each track's T-IoU.

Inputs are plain and streamed one frame at a time (a video of any length never sits in memory):
a predicted track-id map per frame, (H, W) unsigned ints, 0 = no track, with each track's class;
and the ground truth per frame as a list of :class:`~..instances.types.Instance` (one object
each, ``source_id`` = its id across frames) or None where the frame has no annotation (sparse
ground truth: such a frame is skipped, never counted as misses).

**Matching** (each annotated frame): Hungarian assignment (scipy) on mask IoU; a pair matches
with IoU >= 0.5 (for masks that do not overlap among themselves that makes it unique, the
assignment only settles the tie at exactly 0.5) and, unless classes are ignored, the same class.
A ground-truth object is its (class, id): formats that number objects per class stay apart.

**CLEAR-MOT** counts (as TrackEval's CLEAR, and MOTS's MOTSA): TP, FP, FN; an ID switch is a
ground-truth object matched to another track than at the frame it was last matched on (frames
between where it was missed do not reset it); MOTSA = (TP - FP - IDSW) / GT, sMOTSA the same with
the TPs' IoU summed instead of TP; mean IoU of the TPs.

**IDF1 / IDP / IDR** (Ristani et al. 2016, as TrackEval's Identity): one global one-to-one
assignment between ground-truth objects and tracks maximising the frames on which they match
(IoU >= 0.5, same class); IDTP = those frames, IDF1 = 2 IDTP / (GT dets + predicted dets).

**Per-track T-IoU**: for each track, the mean IoU of its masks on consecutive frames where it
has pixels on both (plain IoU, no warping: the class-level T of :mod:`.temporal`, per track),
its length (frames with pixels), and the macro mean over tracks that have such a pair.

HOTA is optional (:mod:`.hota`: TrackEval's implementation, when installed).
"""

from __future__ import annotations

import itertools
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..errors import InputError
from ..instances.types import NO_TRACK, Instance
from ..progress import drain
from .hota import HotaFrame, HotaScores, check_hota_available, hota_scores
from .track_temporal import TrackTemporal, TrackTemporalCounter, check_track_map

#: a match needs IoU >= this (the CLEAR-MOT, MOTS and IDF1 convention)
MATCH_IOU = 0.5
_EPS = 1e-12  # IoU exactly 0.5 computed in floating point still matches
UNKNOWN_CLASS = -1  # a track the track table does not know


@dataclass(frozen=True)
class FrameOverlap:
    """Pixel overlaps of one frame's ground-truth objects (rows) and tracks (columns)."""

    pred_ids: np.ndarray  # (P,) track ids with pixels on the frame
    pred_area: np.ndarray  # (P,) their pixel counts
    gt_area: np.ndarray  # (G,)
    inter: np.ndarray  # (G, P) intersection pixel counts

    def iou(self) -> np.ndarray:
        """(G, P) float64 mask IoU (0 where both are empty)."""
        union = self.gt_area[:, None] + self.pred_area[None, :] - self.inter
        return np.where(union > 0, self.inter / np.maximum(union, 1), 0.0)


def frame_overlap(track_map: np.ndarray, instances: Sequence[Instance]) -> FrameOverlap:
    """Overlaps of ``instances`` (bool (H, W) masks) with the tracks of ``track_map`` ((H, W)
    uint16, 0 = none). Costs one pass over the frame plus one over each object's pixels."""
    a = check_track_map(track_map)
    counts = np.bincount(a.ravel())
    counts[NO_TRACK] = 0
    ids = np.flatnonzero(counts)
    inter = np.zeros((len(instances), len(ids)), np.int64)
    gt_area = np.zeros(len(instances), np.int64)
    for i, inst in enumerate(instances):
        m = np.asarray(inst.mask, bool)
        if m.shape != a.shape:
            raise InputError(f"A ground-truth mask is {m.shape[::-1]} (W, H) pixels, the track map {a.shape[::-1]}.")
        gt_area[i] = np.count_nonzero(m)
        inter[i] = np.bincount(a[m], minlength=len(counts))[ids]
    return FrameOverlap(ids.astype(np.int64), counts[ids].astype(np.int64), gt_area, inter)


def match_frame(
    iou: np.ndarray, gt_classes: np.ndarray | None = None, pred_classes: np.ndarray | None = None, threshold=MATCH_IOU
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One frame's matches: (rows, cols, eligible). ``eligible`` (G, P) marks every pair with IoU
    >= ``threshold`` (and the same class where classes are given); rows/cols the one-to-one
    Hungarian assignment among them maximising the summed IoU."""
    ok = iou >= threshold - _EPS
    if gt_classes is not None and pred_classes is not None:
        ok &= gt_classes[:, None] == pred_classes[None, :]
    if not ok.any():
        empty = np.zeros(0, np.intp)
        return empty, empty, ok
    rows, cols = linear_sum_assignment(np.where(ok, iou, 0.0), maximize=True)
    keep = ok[rows, cols]
    return rows[keep], cols[keep], ok


@dataclass(frozen=True)
class TrackingScores:
    """CLEAR-MOT and identity scores of one class (``class_id``) or of all (None). Detections
    (``n_gt``, ``n_pred``) are objects and tracks on the scored frames; ratios are None where
    their denominator is 0."""

    class_id: int | None
    tp: int
    fp: int
    fn: int
    idsw: int
    n_gt: int
    n_pred: int
    iou_sum: float
    idtp: int
    gt_objects: int
    pred_tracks: int
    hota: HotaScores | None = None

    @staticmethod
    def _ratio(num: float, den: float) -> float | None:
        return None if den == 0 else float(num) / float(den)

    @property
    def motsa(self) -> float | None:
        return self._ratio(self.tp - self.fp - self.idsw, self.n_gt)

    @property
    def smotsa(self) -> float | None:
        return self._ratio(self.iou_sum - self.fp - self.idsw, self.n_gt)

    @property
    def mean_iou(self) -> float | None:
        return self._ratio(self.iou_sum, self.tp)

    @property
    def idf1(self) -> float | None:
        return self._ratio(2 * self.idtp, self.n_gt + self.n_pred)

    @property
    def idp(self) -> float | None:
        return self._ratio(self.idtp, self.n_pred)

    @property
    def idr(self) -> float | None:
        return self._ratio(self.idtp, self.n_gt)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("class_id", "tp", "fp", "fn", "idsw", "n_gt", "n_pred", "idtp")}
        d |= {"idfp": self.n_pred - self.idtp, "idfn": self.n_gt - self.idtp}
        d |= {"gt_objects": self.gt_objects, "pred_tracks": self.pred_tracks}
        d |= {k: getattr(self, k) for k in ("motsa", "smotsa", "mean_iou", "idf1", "idp", "idr")}
        d["hota"] = None if self.hota is None else self.hota.to_dict()
        return d


@dataclass(frozen=True)
class TrackEvaluation:
    """What :func:`iter_track_metrics` returns.

    Attributes:
        overall: all classes together.
        per_class: one row per class seen (empty when classes are ignored or unknown).
        tracks: per-track T-IoU, by id.
        t_iou_macro: mean of the tracks' T-IoU (tracks with a pair of frames), or None.
        n_frames: prediction frames read; n_scored: those with ground truth that were scored.
        class_aware: matches needed the same class.
    """

    overall: TrackingScores
    per_class: tuple[TrackingScores, ...]
    tracks: tuple[TrackTemporal, ...]
    t_iou_macro: float | None
    n_frames: int
    n_scored: int
    class_aware: bool
    threshold: float = MATCH_IOU

    def to_dict(self) -> dict:
        return {
            "overall": self.overall.to_dict(),
            "per_class": [r.to_dict() for r in self.per_class],
            "t_iou_macro": self.t_iou_macro,
            "tracks": [r.to_dict() for r in self.tracks],
            "n_frames": self.n_frames,
            "n_scored": self.n_scored,
            "class_aware": self.class_aware,
            "threshold": self.threshold,
        }


class _Counts:
    """Mutable CLEAR counters of one class (or all)."""

    __slots__ = ("tp", "fp", "fn", "idsw", "n_gt", "n_pred", "iou_sum")

    def __init__(self) -> None:
        self.tp = self.fp = self.fn = self.idsw = self.n_gt = self.n_pred = 0
        self.iou_sum = 0.0


class IdentityCounter:
    """Streams annotated frames (:meth:`add`) into CLEAR-MOT and IDF1 counts (:meth:`scores`).

    Args:
        pred_classes: track id -> class id; None: classes unknown (matching ignores them).
        ignore_class: match regardless of class.
        keep_similarities: keep each frame's IoU matrix (small: objects x tracks) for HOTA.
    """

    def __init__(
        self,
        pred_classes: Mapping[int, int] | None,
        *,
        ignore_class: bool = False,
        threshold: float = MATCH_IOU,
        keep_similarities: bool = False,
    ):
        self.pred_classes = dict(pred_classes or {})
        self.class_aware = not ignore_class and pred_classes is not None
        self.threshold = threshold
        self.n_scored = 0
        self._gt_index: dict[tuple[int, int], int] = {}
        self._gt_class: list[int] = []
        self._pred_index: dict[int, int] = {}
        self._pairs: dict[tuple[int, int], int] = {}  # (gt index, pred index) -> frames matched
        self._last: dict[int, int] = {}  # gt index -> track id it was last matched to
        self._all = _Counts()
        self._per: dict[int, _Counts] = {}
        self.frames: list[HotaFrame] | None = [] if keep_similarities else None

    def _cls(self, c: int) -> _Counts:
        return self._per.setdefault(int(c), _Counts())

    def _pred_class(self, track_id: int) -> int:
        return int(self.pred_classes.get(int(track_id), UNKNOWN_CLASS))

    def add(self, track_map: np.ndarray, instances: Sequence[Instance], t: int | None = None) -> None:
        """Score one annotated frame (``t`` only names it in errors)."""
        where = "" if t is None else f" on frame {t}"
        keys = []
        for inst in instances:
            if inst.source_id is None:
                raise InputError(
                    f"A ground-truth object{where} has no id: identity metrics need the same id on every frame "
                    "(instance PNGs, or COCO with track ids)."
                )
            keys.append((int(inst.class_id), int(inst.source_id)))
        if len(set(keys)) != len(keys):
            dup = next(k for k in keys if keys.count(k) > 1)
            raise InputError(f"Two ground-truth objects{where} have class {dup[0]} and id {dup[1]}: one id per object.")
        ov = frame_overlap(track_map, instances)
        g_cls = np.array([k[0] for k in keys], np.int64)
        p_cls = np.array([self._pred_class(i) for i in ov.pred_ids], np.int64)
        iou = ov.iou()
        cls_args = (g_cls, p_cls) if self.class_aware else (None, None)
        rows, cols, ok = match_frame(iou, *cls_args, threshold=self.threshold)
        for k in keys:
            if k not in self._gt_index:  # a new object
                self._gt_index[k] = len(self._gt_class)
                self._gt_class.append(k[0])
        g_idx = np.array([self._gt_index[k] for k in keys], np.int64)
        for tid in ov.pred_ids:
            if int(tid) not in self._pred_index:
                self._pred_index[int(tid)] = len(self._pred_index)
        p_idx = np.array([self._pred_index[int(i)] for i in ov.pred_ids], np.int64)
        for r, c in zip(*np.nonzero(ok), strict=True):
            key = (int(g_idx[r]), int(p_idx[c]))
            self._pairs[key] = self._pairs.get(key, 0) + 1
        matched_g = np.zeros(len(keys), bool)
        matched_p = np.zeros(len(ov.pred_ids), bool)
        matched_g[rows], matched_p[cols] = True, True
        for r, c in zip(rows, cols, strict=True):
            gi, tid = int(g_idx[r]), int(ov.pred_ids[c])
            switched = gi in self._last and self._last[gi] != tid
            self._last[gi] = tid
            for counts in (self._all, self._cls(g_cls[r])):
                counts.tp += 1
                counts.iou_sum += float(iou[r, c])
                counts.idsw += int(switched)
        for r in range(len(keys)):
            for counts in (self._all, self._cls(g_cls[r])):
                counts.n_gt += 1
                counts.fn += int(not matched_g[r])
        for c in range(len(ov.pred_ids)):
            group = (self._all,) if p_cls[c] == UNKNOWN_CLASS else (self._all, self._cls(p_cls[c]))
            for counts in group:
                counts.n_pred += 1
                counts.fp += int(not matched_p[c])
        if self.frames is not None:
            self.frames.append(HotaFrame(g_idx, p_idx, iou, g_cls, p_cls))
        self.n_scored += 1

    def _idtp(self) -> tuple[int, dict[int, int]]:
        """IDTP overall and per ground-truth class: the global assignment of objects to tracks."""
        if not self._pairs:
            return 0, {}
        gs = sorted({g for g, _ in self._pairs})
        ps = sorted({p for _, p in self._pairs})
        gpos, ppos = {g: i for i, g in enumerate(gs)}, {p: i for i, p in enumerate(ps)}
        m = np.zeros((len(gs), len(ps)), np.int64)
        for (g, p), n in self._pairs.items():
            m[gpos[g], ppos[p]] = n
        rows, cols = linear_sum_assignment(m, maximize=True)
        per: dict[int, int] = {}
        for r, c in zip(rows, cols, strict=True):
            per[self._gt_class[gs[r]]] = per.get(self._gt_class[gs[r]], 0) + int(m[r, c])
        return int(m[rows, cols].sum()), per

    def scores(self, hota: dict | None = None) -> tuple[TrackingScores, tuple[TrackingScores, ...]]:
        """(overall, per class); per class only where classes are matched. ``hota``: class (None
        = overall) -> :class:`~.hota.HotaScores`."""
        hota = hota or {}
        idtp, idtp_per = self._idtp()
        gt_objects = {c: self._gt_class.count(c) for c in set(self._gt_class)}
        tracks: dict[int, int] = {}
        for tid in self._pred_index:
            c = self._pred_class(tid)
            tracks[c] = tracks.get(c, 0) + 1

        def row(c: int | None, k: _Counts, idtp_c: int, n_obj: int, n_tracks: int) -> TrackingScores:
            return TrackingScores(
                c, k.tp, k.fp, k.fn, k.idsw, k.n_gt, k.n_pred, k.iou_sum, idtp_c, n_obj, n_tracks, hota.get(c)
            )

        overall = row(None, self._all, idtp, len(self._gt_class), len(self._pred_index))
        if not self.class_aware:
            return overall, ()
        per = tuple(
            row(c, self._per[c], idtp_per.get(c, 0), gt_objects.get(c, 0), tracks.get(c, 0)) for c in sorted(self._per)
        )
        return overall, per


_END = object()


def iter_track_metrics(
    track_maps: Iterable[np.ndarray],
    ground_truth: Iterable[Sequence[Instance] | None],
    pred_classes: Mapping[int, int] | None = None,
    *,
    ignore_class: bool = False,
    threshold: float = MATCH_IOU,
    hota: bool = False,
) -> Generator[int, None, TrackEvaluation]:
    """Identity metrics and per-track T-IoU, one frame at a time; yields each frame index and
    returns a :class:`TrackEvaluation`.

    Args:
        track_maps: per frame, the predicted track ids (H, W) uint16 (0 = no track).
        ground_truth: per frame (the same count), its objects, or None: not annotated (or not
            scored): the frame counts for T-IoU only.
        pred_classes: track id -> class id; None: unknown, so matching ignores classes.
        ignore_class: match objects and tracks of different classes too.
        hota: also compute HOTA (:mod:`.hota`; needs TrackEval: an :class:`InputError` saying so
            before any frame is read when it is missing).
    """
    if hota:
        check_hota_available()
    ident = IdentityCounter(pred_classes, ignore_class=ignore_class, threshold=threshold, keep_similarities=hota)
    temporal = TrackTemporalCounter()
    for t, (track_map, gt) in enumerate(itertools.zip_longest(track_maps, ground_truth, fillvalue=_END)):
        if track_map is _END or gt is _END:
            raise InputError(
                f"The prediction and the ground truth have different frame counts (one ends at frame {t})."
            )
        temporal.add(track_map)
        if gt is not None:
            ident.add(track_map, gt, t)
        yield t
    hota_by_class = hota_scores(ident.frames, ident.class_aware) if hota else None
    overall, per_class = ident.scores(hota_by_class)
    tracks, macro = temporal.tracks(pred_classes)
    return TrackEvaluation(
        overall, per_class, tracks, macro, temporal.n_frames, ident.n_scored, ident.class_aware, threshold
    )


def track_metrics(track_maps, ground_truth, pred_classes=None, **kw) -> TrackEvaluation:
    """Drive :func:`iter_track_metrics` to the end."""
    return drain(iter_track_metrics(track_maps, ground_truth, pred_classes, **kw))


__all__ = [
    "MATCH_IOU",
    "FrameOverlap",
    "IdentityCounter",
    "TrackEvaluation",
    "TrackingScores",
    "frame_overlap",
    "iter_track_metrics",
    "match_frame",
    "track_metrics",
]
