"""Validation of an overseer during training: frame-wise Dice and IoU on held-out annotated frames."""

from __future__ import annotations

from collections.abc import Generator, Sequence

from ..datasets import ClassTable
from ..metrics.accuracy import macro, overlap_counts
from ..overseers.base import result_to_label_map
from .data import Sample
from .events import Stage, Validated


def validate(
    overseer, samples: Sequence[Sample], classes: ClassTable, step: int
) -> Generator[Stage | Validated, None, Validated]:
    """Run ``overseer`` (the Overseer protocol) on each sample and pool per-class counts against its
    labels (unannotated pixels are not scored). Yields a :class:`Stage` per frame, then the
    :class:`Validated` it returns; macro averages are over the scored classes present in the
    predictions or the labels (as ``napari-sasvi evaluate frames`` does)."""
    ids = classes.scored_ids()
    counts = None
    for i, s in enumerate(samples):
        gt = s.labels()
        result = overseer.predict([s.frame()], [s.index])[0]
        pred = result_to_label_map(result, gt.shape, classes.no_label)
        c = overlap_counts([pred], [gt], ids)
        counts = c if counts is None else counts.add(c)
        yield Stage("validate", i + 1, len(samples))
    dice, iou = (counts.dice(), counts.iou()) if counts is not None else ({}, {})
    v = Validated(
        step, macro(dice, ids), macro(iou, ids), {int(k): round(float(x), 4) for k, x in dice.items()}, len(samples)
    )
    yield v
    return v
