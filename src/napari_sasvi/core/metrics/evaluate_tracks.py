"""``evaluate tracks``: identity metrics and per-track T-IoU of a prediction's tracks against
instance ground truth, read from files (:mod:`.identity` does the scoring on plain arrays).

The prediction: a SASVi store made with ``--instances`` (its ``tracks`` array and track table),
or a folder of track-id images (8- or 16-bit grey, 0 = none; classes from an ``instances.json``
beside them, as ``export --ids track`` writes, else unknown and matching ignores classes).
The ground truth: anything :func:`..inputs.instance_labels.open_instance_labels` reads, matched
to the prediction's frames by position, name or frame number.

Both are read one frame at a time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..datasets import ClassTable
from ..errors import EmptyInputError, InputError
from ..inputs.frames import IMAGE_EXTENSIONS, list_frame_files
from ..inputs.instance_formats import INSTANCES_JSON, read_ids
from ..inputs.instance_labels import open_instance_labels
from ..inputs.label_sources import LABEL_EXTENSIONS
from ..inputs.lazy import read_frame
from ..progress import Returning
from ..store.sasvi_store import SasviStore
from .evaluate import Progress, Reading
from .identity import TrackEvaluation, iter_track_metrics


@dataclass(frozen=True)
class TrackPrediction:
    """A prediction's tracks, read frame by frame.

    Attributes:
        n_frames: frames to score (a store's finished ones); ``video_frames``: the video's count.
        pred_classes: track id -> class id (names still unresolved: str), or None (unknown).
        classes: the store's class table, or None.
        names: the frames' file stems (for matching ground truth by name), or None.
    """

    desc: str
    n_frames: int
    video_frames: int
    frame_size: tuple[int, int]
    read: Callable[[int], np.ndarray]
    pred_classes: dict[int, int | str] | None
    classes: ClassTable | None
    names: list[str] | None
    note: str


def _stems(folder, extensions) -> list[str] | None:
    if folder is None or not Path(folder).is_dir():
        return None
    try:
        return [p.stem for p in list_frame_files(folder, extensions)]
    except EmptyInputError:
        return None


def _open_store(path: Path) -> TrackPrediction:
    store = SasviStore.read(path)
    if store.tracks is None:
        raise InputError(
            f"{path} is a class-only store (no track ids): segment again with --instances to evaluate tracks, "
            "or use 'evaluate frames' for its class masks."
        )
    n = store.frames_done
    if n == 0:
        raise InputError(f"{path} has no finished frame: nothing to evaluate.")
    h, w = (int(s) for s in store.tracks.shape[1:])
    table = store.track_table
    note = f"{path}: {len(table)} tracks on {n} finished frames"
    if n < store.n_frames:
        note += f" of {store.n_frames} (the rest is not scored)"
    return TrackPrediction(
        str(path),
        n,
        store.n_frames,
        (h, w),
        lambda t: read_frame(store.tracks, t),
        {k: v.class_id for k, v in table.items()},
        store.classes,
        _stems(store.frames_path, IMAGE_EXTENSIONS),
        note,
    )


def _open_folder(path: Path) -> TrackPrediction:
    try:
        files = list_frame_files(path, LABEL_EXTENSIONS)
    except EmptyInputError as e:
        raise EmptyInputError(f"No track-id images in {path}: expected one .png per frame (0 = no track).") from e
    first, _, _ = read_ids(files[0])
    pred_classes = None
    note = f"{path}: {len(files)} track-id images"
    mapping = path / INSTANCES_JSON
    if mapping.is_file():
        try:
            raw = json.loads(mapping.read_text())["classes"]
            pred_classes = {int(k): (v if isinstance(v, str) else int(v)) for k, v in raw.items()}
        except (ValueError, KeyError, TypeError) as e:
            raise InputError(f'{mapping}: expected {{"classes": {{"<track id>": <class id or name>}}}} ({e}).') from e
        note += f", classes of {len(pred_classes)} tracks from {INSTANCES_JSON}"
    else:
        note += f" without {INSTANCES_JSON}: classes unknown, so tracks match objects of any class"

    def read(t: int) -> np.ndarray:
        arr = read_ids(files[t])[0]
        if arr.shape != first.shape:
            raise InputError(
                f"{files[t]} is {arr.shape[1]}x{arr.shape[0]} pixels, {files[0].name} {first.shape[1]}x{first.shape[0]}."
            )
        return arr

    return TrackPrediction(
        str(path), len(files), len(files), first.shape, read, pred_classes, None, [p.stem for p in files], note
    )


def open_track_prediction(path: str | os.PathLike) -> TrackPrediction:
    """A store made with ``--instances`` or a folder of track-id images (see the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist.")
    if (path / "zarr.json").exists():
        return _open_store(path)
    if path.is_dir():
        return _open_folder(path)
    raise InputError(
        f"Cannot read tracks from {path}: give a SASVi store made with --instances or a folder of track-id PNGs."
    )


def _resolve(pred_classes: dict[int, int | str], table: ClassTable, where: str) -> dict[int, int]:
    """Class names of ``instances.json`` as ids of the ground truth's table."""
    by_name = {c.name.lower(): c.id for c in table}
    out = {}
    for k, v in pred_classes.items():
        if isinstance(v, str):
            if v.lower() not in by_name:
                raise InputError(f"{where}: track {k}'s class {v!r} is not a class of the ground truth ({table.name}).")
            v = by_name[v.lower()]
        out[k] = int(v)
    return out


def iter_evaluate_tracks(
    pred: str | os.PathLike,
    gt: str | os.PathLike,
    classes: ClassTable | None = None,
    *,
    every: int = 1,
    ignore_class: bool = False,
    hota: bool = False,
) -> Generator[Reading | Progress, None, tuple[TrackEvaluation, ClassTable]]:
    """Identity metrics (:mod:`.identity`) of ``pred``'s tracks against the instance ground truth ``gt``.

    Args:
        classes: the class table the ground truth's class ids (or names) refer to; None: a
            store's own, else the one the ground truth's files make (names, COCO categories).
        every: score the ground truth of every N-th frame only (frames t with t % N == 0); the
            tracks' T-IoU still uses every frame.
        ignore_class: tracks match objects of any class.
        hota: also HOTA (needs TrackEval).

    Returns:
        (the evaluation, the class table the class ids refer to).
    """
    if every < 1:
        raise InputError(f"--every must be 1 or more, not {every}.")
    p = open_track_prediction(pred)
    name = Path(pred).stem if Path(pred).suffix == ".zarr" else Path(pred).name
    yield Reading(name, p.note)
    if classes is not None and p.classes is not None and classes.to_dict() != p.classes.to_dict():
        raise InputError(
            f"{pred} has its own class table ({p.classes.name}); leave out --dataset/--classes for a store."
        )
    source = open_instance_labels(
        gt, p.classes or classes, frame_count=p.video_frames, frame_size=p.frame_size, frame_names=p.names
    )
    table = source.class_table
    pred_classes = None if p.pred_classes is None else _resolve(p.pred_classes, table, p.desc)
    scored = [t for t in source.annotated if t < p.n_frames and t % every == 0]
    yield Reading(
        name,
        f"ground truth {source.desc} ({source.kind}): {len(source.annotated)} of {source.n_frames} frames annotated, "
        f"{len(scored)} scored" + (f" (every {every}-th frame)" if every > 1 else ""),
    )
    if not scored:
        raise InputError(
            f"No annotated frame of {gt} lies among the prediction's {p.n_frames} frames: nothing to score."
        )
    if pred_classes is None and not ignore_class:
        yield Reading(name, f"{name}: the prediction has no classes: class-agnostic metrics only")
    keep = set(scored)
    maps = (p.read(t) for t in range(p.n_frames))
    truth = (source.instances(t) if t in keep else None for t in range(p.n_frames))
    run = Returning(iter_track_metrics(maps, truth, pred_classes, ignore_class=ignore_class, hota=hota))
    for t in run:
        yield Progress(name, t + 1, p.n_frames)
    return run.value, table


__all__ = ["TrackPrediction", "iter_evaluate_tracks", "open_track_prediction"]
