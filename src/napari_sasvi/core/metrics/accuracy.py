"""Frame-wise accuracy against ground truth: per-class Dice and IoU, streamed frame by frame."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass
class OverlapCounts:
    """Per-class pixel counts pooled over frames: intersection, prediction, ground truth."""

    inter: dict[int, int]
    pred: dict[int, int]
    gt: dict[int, int]

    def add(self, other: OverlapCounts) -> OverlapCounts:
        """Pool another set of counts into this one (in place); returns self."""
        for c in other.inter:
            self.inter[c] = self.inter.get(c, 0) + other.inter[c]
            self.pred[c] = self.pred.get(c, 0) + other.pred[c]
            self.gt[c] = self.gt.get(c, 0) + other.gt[c]
        return self

    def dice(self) -> dict[int, float]:
        return {c: 2 * self.inter[c] / (self.pred[c] + self.gt[c]) for c in self.inter if self.pred[c] + self.gt[c]}

    def iou(self) -> dict[int, float]:
        out = {}
        for c in self.inter:
            union = self.pred[c] + self.gt[c] - self.inter[c]
            if union:
                out[c] = self.inter[c] / union
        return out


def resize_nearest(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a label map to (H, W), with the index rule of
    ``torch.nn.functional.interpolate(mode="nearest")`` (see :func:`.temporal.nearest_indices`)."""
    from .temporal import nearest_indices

    h, w = labels.shape[:2]
    return labels[nearest_indices(h, size[0])[:, None], nearest_indices(w, size[1])[None, :]]


def overlap_counts(
    pred_frames: Iterable[np.ndarray],
    gt_frames: Iterable[np.ndarray],
    class_ids: Iterable[int],
    unlabelled: int | None = 255,
) -> OverlapCounts:
    """Pool per-class counts over pairs of (H, W) label maps; one frame in memory at a time.

    Ground-truth pixels of value ``unlabelled`` (255: not annotated, never a class id) are not
    scored: whatever the prediction says there counts neither for nor against it."""
    ids = list(class_ids)
    inter = dict.fromkeys(ids, 0)
    pred = dict.fromkeys(ids, 0)
    gt = dict.fromkeys(ids, 0)
    for p, g in zip(pred_frames, gt_frames, strict=True):
        p, g = np.asarray(p), np.asarray(g)
        if p.shape != g.shape:
            raise ValueError(f"prediction {p.shape} and ground truth {g.shape} differ in size")
        valid = None if unlabelled is None else g != unlabelled
        if valid is not None and valid.all():
            valid = None
        for c in ids:
            pm, gm = p == c, g == c
            if valid is not None:
                pm &= valid
            inter[c] += int(np.count_nonzero(pm & gm))
            pred[c] += int(np.count_nonzero(pm))
            gt[c] += int(np.count_nonzero(gm))
    return OverlapCounts(inter, pred, gt)


def macro(values: dict[int, float], ids: Iterable[int]) -> float:
    """Mean over the ids that have a value (classes absent from both are left out)."""
    vals = [values[c] for c in ids if c in values]
    return float(np.mean(vals)) if vals else float("nan")
