"""Evaluating label stacks: frame-wise accuracy against ground truth, and temporal consistency.

Both read every label source through the one label reader (:func:`.labels.open_labels`) with one
class table, and are generators: they yield :class:`Reading` (how a source was read, and any
resize) and :class:`Progress` per frame, and return their report. The CLI's ``evaluate`` commands
drive them.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..datasets import ClassTable
from ..errors import InputError
from ..inputs.coco_labels import coco_class_table, is_coco_json
from ..inputs.label_sources import LABEL_EXTENSIONS
from ..inputs.labels import LabelStack, open_labels
from ..progress import Returning
from .matching import match_frames


@dataclass(frozen=True)
class Reading:
    """A note for the user: how ``name``'s label source was read (or resized)."""

    name: str
    message: str


@dataclass(frozen=True)
class Progress:
    name: str
    done: int
    total: int


def _is_label_folder(path: Path) -> bool:
    return path.is_dir() and any(p.suffix.lower() in LABEL_EXTENSIONS for p in path.iterdir())


def label_sources(
    path: str | os.PathLike, classes: ClassTable | None, encoding: str = "auto", array: str = "labels"
) -> list[tuple[str, LabelStack]]:
    """[(name, label stack)] for a store, a label folder, a ``.npy``, a COCO ``.json`` or a root of those."""
    path = Path(path)

    def one(p: Path):
        name = p.stem if p.suffix.lower() in (".zarr", ".npy") else p.name
        return (name, open_labels(p, classes, encoding, array=array))

    if not path.exists():
        raise InputError(f"{path} does not exist.")
    if path.is_file() or (path / "zarr.json").exists() or _is_label_folder(path):
        return [one(path)]
    subs = sorted(p for p in path.iterdir() if (p / "zarr.json").exists() or _is_label_folder(p) or p.suffix == ".npy")
    if not subs:
        raise InputError(
            f"{path} holds no label stack: give a SASVi store, a folder of label PNGs, or a root of those."
        )
    return [one(p) for p in subs]


def _read_note(name: str, what: str, lab: LabelStack) -> Reading:
    return Reading(name, f"{name}: {what}{lab.desc} read as {lab.encoding} ({lab.reason})")


def iter_evaluate_frames(
    pred: str | os.PathLike,
    gt: str | os.PathLike,
    classes: ClassTable | None = None,
    *,
    pred_encoding: str = "auto",
    gt_encoding: str = "auto",
    array: str = "labels",
    resize: bool = False,
) -> Generator[Reading | Progress, None, dict]:
    """Per-class Dice and IoU of predictions against ground truth, pooled over the frames that
    have ground truth.

    Ground-truth frames are matched to prediction frames by position when their counts are equal,
    else by file name or frame number (:mod:`.matching`); frames without ground truth are left out,
    and a :class:`Reading` says how many were scored.

    Args:
        gt: a store, a label folder, a ``.npy``, a COCO ``.json`` (RLE or polygons, matched by the
            images' ``file_name``), or a root of those named like the predictions.
        classes: the class table; None when ``pred`` is a store (it brings its own, and the ground
            truth is read with it) or when ``gt`` is a COCO file (its categories, 0 = background).
        resize: predictions of another size are resized to the ground truth's (nearest
            neighbour, torch's index rule), stated in a :class:`Reading`; else refused.

    Returns:
        ``{"per_class": [{id, name, dice, iou}], "macro_dice", "macro_iou", "n_scored", "n_frames",
        "frames": {video: {n_scored, n_frames, matched_by, scored}}, "per_frame_macro_dice":
        {video: [Dice or None per prediction frame]}}`` (macro over the scored ids present;
        ground-truth pixels that are unlabelled are not scored; None for frames not scored).
    """
    from ..inputs.lazy import read_frame
    from .accuracy import OverlapCounts, macro, overlap_counts, resize_nearest

    coco = coco_class_table(gt) if is_coco_json(gt) else None
    try:
        preds = label_sources(pred, classes, pred_encoding, array)
    except InputError:
        if classes is not None or coco is None:
            raise
        preds = label_sources(pred, coco, pred_encoding, array)  # a label folder: the COCO file's categories
    table = classes or preds[0][1].classes
    if coco is not None:
        for c in coco:
            if c.id in table.ids and c.id != 0 and table.by_id(c.id).name.lower() != c.name.lower():
                yield Reading("gt", f"COCO category {c.id} {c.name!r} is scored as class {c.id} "
                                    f"{table.by_id(c.id).name!r} of {table.name!r}")  # fmt: skip
    gts = dict(label_sources(gt, table, gt_encoding, "labels"))
    total = OverlapCounts({}, {}, {})
    per_frame: dict[str, list[float | None]] = {}
    frames: dict[str, dict] = {}
    for name, p in preds:
        g = gts.get(name) if len(preds) > 1 else next(iter(gts.values()))
        if g is None:
            raise InputError(f"No ground truth for {name!r} in {gt}.")
        if p.classes.ids != table.ids:
            raise InputError(f"{name}: the prediction's classes ({p.classes.name}) are not {table.name}'s.")
        yield _read_note(name, "prediction ", p)
        yield _read_note(name, "ground truth ", g)
        match = match_frames(p.names, p.shape[0], g.names, [g.labelled(t) for t in range(g.shape[0])], name)
        yield Reading(name, f"{name}: {match.describe()}")
        size = None
        if tuple(p.shape[1:]) != tuple(g.shape[1:]):
            (ph, pw), (gh, gw) = p.shape[1:], g.shape[1:]
            if not resize:
                raise InputError(
                    f"{name}: the prediction is {pw}x{ph} pixels, the ground truth {gw}x{gh}.\n"
                    "  Export the prediction at the frame size (segment ... --export-png DIR --export-size 0 0), "
                    "or add --resize nearest to resize the prediction to the ground truth (nearest neighbour)."
                )
            size = (gh, gw)
            yield Reading(name, f"{name}: prediction resized from {pw}x{ph} to {gw}x{gh} (nearest neighbour)")
        series: list[float | None] = [None] * p.shape[0]
        for done, (t, gt_t) in enumerate(match.pairs, 1):
            a = read_frame(p, t)
            one = overlap_counts([a if size is None else resize_nearest(a, size)], [read_frame(g, gt_t)], table.ids)
            series[t] = macro(one.dice(), table.scored_ids())
            total.add(one)
            yield Progress(name, done, match.n_scored)
        per_frame[name] = series
        frames[name] = {
            "n_scored": match.n_scored,
            "n_frames": match.n_frames,
            "matched_by": match.rule,
            "scored": [t for t, _ in match.pairs],
        }
    dice, iou = total.dice(), total.iou()
    ids = table.scored_ids()
    if not any(c in dice for c in ids):
        raise InputError(
            f"No class of {table.name!r} that counts (ids {ids}) occurs in the prediction or the ground truth.\n"
            "  Check --dataset/--classes and the encodings printed above; nothing was scored."
        )
    rows = [{"id": c.id, "name": c.name, "dice": dice.get(c.id), "iou": iou.get(c.id)} for c in table if c.id in ids]
    return {
        "per_class": rows,
        "macro_dice": macro(dice, ids),
        "macro_iou": macro(iou, ids),
        "n_scored": sum(f["n_scored"] for f in frames.values()),
        "n_frames": sum(f["n_frames"] for f in frames.values()),
        "frames": frames,
        "per_frame_macro_dice": per_frame,
        "classes": table.name,
    }


def iter_evaluate_temporal(
    pred: str | os.PathLike,
    classes: ClassTable | None = None,
    *,
    frames: str | os.PathLike | None = None,
    convention: str = "default",
    flow: Any = None,
    encoding: str = "auto",
    array: str = "labels",
) -> Generator[Reading | Progress, None, tuple[Any, dict]]:
    """T (and with ``frames`` F) of a store, a label folder or a root of those.

    Returns:
        (pooled :class:`~.temporal.TemporalResult`, {video name: its result as a dict}).
    """
    from ..inputs.frames import open_frames
    from .temporal import iter_temporal, pool_results

    sources = label_sources(pred, classes, encoding, array)
    results, report = [], {}
    ignore: set[int] = set()
    for name, labels in sources:
        table = labels.classes
        yield _read_note(name, "", labels)
        ignore = set(table.ignore_ids) | {255}
        if table.no_label not in table.ids:
            ignore.add(table.no_label)
        video = None
        if frames is not None:
            root = Path(frames)
            fpath = (
                root
                if len(sources) == 1
                else next((p for p in (root / name, *root.glob(f"{name}.*")) if p.exists()), None)
            )
            if fpath is None:
                raise InputError(f"No frames for {name!r} under {frames}.")
            video = open_frames(fpath).data
        n = max(0, labels.shape[0] - 1)
        gen = iter_temporal(labels, video, convention=convention, ignore=ignore, no_label=table.no_label, flow=flow)
        run = Returning(gen)
        try:
            for done, _ in enumerate(run, 1):
                yield Progress(name, done, n)
        except ValueError as e:
            raise InputError(f"{name}: {e}") from e
        result = run.value
        results.append(result)
        report[name] = result.to_dict()
    pooled = pool_results(results, ignore=ignore) if len(results) > 1 else results[0]
    return pooled, report


__all__ = ["Progress", "Reading", "iter_evaluate_frames", "iter_evaluate_temporal", "label_sources"]
