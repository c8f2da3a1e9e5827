"""Annotated frames to train an overseer on: the three datasets' layouts and splits, any labelled
folder, or arrays (a napari labels layer with a few painted frames).

Every source ends as a :class:`TrainingSet`: a class table and lists of :class:`Sample`, each one
frame with its label map of class ids (255 where nothing is annotated). Labels are read by the
label reader of :mod:`..labels` (class ids, a dataset's source values, refused when they fit
neither), so a folder of CholecSeg8k watershed masks trains on classes, never on grey values.

Layouts (``ROOT`` is what ``--data`` names):

* ``cadis``: ``ROOT/VideoNN/Images/*.png`` with ``ROOT/VideoNN/Labels/*.png`` (class ids, 255 =
  ignore); the official video split of the reference (train 19 videos, val 05 07 16, test 02 12 22).
* ``cholecseg8k``: the Kaggle release, ``ROOT/videoNN/videoNN_XXXXX/frame_K_endo.png`` with
  ``frame_K_endo_watershed_mask.png`` beside it (watershed grey values).
* ``cataract1k``, or any dataset: a labelled folder (below) per video.
* a labelled folder: ``ROOT/frames`` + ``ROOT/masks`` (or ``labels``), or one such pair per video
  folder ``ROOT/<video>/``; masks are matched to frames by file name and may cover a subset.

CholecSeg8k and Cataract-1K publish no official split and the reference gives none; videos are then
split by a fixed rule on their sorted names (every fifth video from the second on is validation,
the rest train) so the split is the same on every machine.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..datasets import ClassTable
from ..errors import EmptyInputError, InputError
from ..inputs.labels import UNLABELLED

log = logging.getLogger(__name__)

#: the reference's CaDIS split (section 4 of the SASVi reference), by video number
CADIS_SPLIT = {
    "train": (1, 3, 4, 6, 8, 9, 10, 11, 13, 14, 15, 17, 18, 19, 20, 21, 23, 24, 25),
    "val": (5, 7, 16),
    "test": (2, 12, 22),
}
LAYOUTS = ("cadis", "cholecseg8k", "cataract1k", "folder")


@dataclass(frozen=True)
class Sample:
    """One annotated frame: ``frame()`` is its (H, W, 3) uint8 RGB image, ``labels()`` its (H, W)
    uint8 class ids with 255 where nothing is annotated."""

    video: str
    index: int
    name: str
    frame: Callable[[], np.ndarray]
    labels: Callable[[], np.ndarray]


@dataclass
class TrainingSet:
    """What an overseer trains and validates on."""

    classes: ClassTable
    train: list[Sample]
    val: list[Sample]
    source: str
    #: how each label folder was read ("masks/ read as source: ..."), for the user to check
    readings: list[str] = field(default_factory=list)

    def describe(self) -> dict:
        return {
            "source": self.source,
            "classes": self.classes.name,
            "train_frames": len(self.train),
            "val_frames": len(self.val),
            "train": [f"{s.video}/{s.name}" for s in self.train[:200]],
        }


# -- checks -------------------------------------------------------------------------------------------
def check_labels(labels: np.ndarray, classes: ClassTable, where: str) -> np.ndarray:
    """``labels`` as uint8 class ids; an id outside the table is an error that names it."""
    a = np.asarray(labels)
    if a.ndim != 2:
        raise InputError(f"{where}: labels must be one (H, W) map per frame, got shape {a.shape}.")
    values = np.unique(a)
    bad = sorted(int(v) for v in values if int(v) != UNLABELLED and int(v) not in set(classes.ids))
    if bad:
        raise InputError(
            f"{where}: label value(s) {bad[:12]} are not ids of the {classes.name!r} class table "
            f"(ids {classes.ids[0]}..{classes.ids[-1]}; 255 = not annotated).\n"
            "  Give the class table these labels were painted with, or repaint those pixels."
        )
    return a.astype(np.uint8, copy=False)


def check_trainable(ts: TrainingSet) -> TrainingSet:
    """Refuse a set that cannot train a classifier: no annotated frame, or a single class."""
    if not ts.train:
        raise EmptyInputError(
            f"{ts.source}: no annotated frames to train on. Paint some pixels of at least two classes on "
            "one frame or more (unpainted pixels are ignored)."
        )
    seen: set[int] = set()
    for s in ts.train:
        seen.update(int(v) for v in np.unique(s.labels()) if v != UNLABELLED)
        if len(seen) > 1:
            return ts
    if not seen:
        raise EmptyInputError(f"{ts.source}: the annotated frames have no labelled pixel. Paint some classes first.")
    name = ts.classes.by_id(next(iter(seen))).name if next(iter(seen)) in ts.classes.ids else seen
    raise InputError(
        f"{ts.source}: every annotated pixel is one class ({name}); an overseer needs at least two. "
        "Paint the background or another class too."
    )


def subset(samples: Sequence[Sample], fraction: float | None, seed: int) -> list[Sample]:
    """A seeded subset of ``fraction`` of ``samples`` (at least one), in their order."""
    samples = list(samples)
    if fraction is None or fraction >= 1.0 or not samples:
        return samples
    if not 0.0 < fraction:
        raise InputError(f"--fraction must lie in (0, 1], got {fraction}.")
    k = max(1, round(len(samples) * fraction))
    keep = np.sort(np.random.default_rng(seed).choice(len(samples), size=k, replace=False))
    return [samples[i] for i in keep]


# -- arrays (napari) ----------------------------------------------------------------------------------
def from_arrays(
    frames: Any,
    labels: Any,
    classes: ClassTable,
    unpainted: int = UNLABELLED,
    name: str = "layers",
    val_frames: Sequence[int] = (),
    offset: int = 0,
) -> TrainingSet:
    """Frames (T, H, W, 3) and labels (T, H, W), numpy or dask, with some frames painted.

    A frame counts as annotated when any of its pixels differs from ``unpainted`` (napari's new
    labels layer is 0 everywhere: pass 0 when 0 is not one of the classes). ``offset``: painted
    values are class id + offset (the widget's annotation layers paint id + 1, so 0 stays "not
    painted" even where 0 is a class). Only painted frames are kept in memory; ``val_frames`` are
    held out for validation."""
    from ..inputs.frames import to_rgb_uint8

    if tuple(labels.shape[:3]) != tuple(frames.shape[:3]):
        raise InputError(
            f"The labels ({'x'.join(map(str, labels.shape))}) and the frames "
            f"({'x'.join(map(str, frames.shape))}) differ in frames or size: pick the labels painted on these frames."
        )
    painted = []
    for t in range(labels.shape[0]):
        lab = np.asarray(labels[t])
        if (lab != unpainted).any():
            if unpainted != UNLABELLED or offset:
                lab = np.where(lab == unpainted, UNLABELLED, lab.astype(np.int64) - offset)
            lab = check_labels(lab, classes, f"{name}, frame {t}")
            painted.append((t, lab))
    samples = [
        Sample(name, t, f"frame {t}", (lambda t=t: to_rgb_uint8(np.asarray(frames[t]))), (lambda lab=lab: lab))
        for t, lab in painted
    ]
    val = set(int(v) for v in val_frames)
    return TrainingSet(
        classes, [s for s in samples if s.index not in val], [s for s in samples if s.index in val], name
    )


# -- folders ------------------------------------------------------------------------------------------
def _pairs_folder(
    frames_dir: Path, masks_dir: Path, classes: ClassTable, encoding: str, video: str, readings: list[str] | None = None
) -> list[Sample]:
    from ..inputs.frames import FolderSource, list_frame_files
    from ..inputs.labels import open_labels

    files = list_frame_files(frames_dir)
    source = FolderSource(frames_dir)
    by_stem = {f.stem: i for i, f in enumerate(files)}
    stack = open_labels(masks_dir, classes, encoding)
    if readings is not None:
        readings.append(f"{masks_dir} read as {stack.encoding} ({getattr(stack, 'reason', '')})")
    out = []
    unmatched = []
    for j, mf in enumerate(stack.files or []):
        t = by_stem.get(mf.stem)
        if t is None:
            t = by_stem.get(re.sub(r"_(watershed_mask|mask|label|labels|gt)$", "", mf.stem))
        if t is None:
            unmatched.append(mf.name)
            continue
        out.append(
            Sample(
                video,
                t,
                files[t].name,
                (lambda t=t: source.read(t)),
                (lambda j=j, w=f"{mf}": check_labels(stack[j], classes, w)),
            )
        )
    if unmatched:
        raise InputError(
            f"{masks_dir}: {len(unmatched)} mask file(s) match no frame of {frames_dir} by name "
            f"({', '.join(unmatched[:5])}). Name each mask like its frame."
        )
    return out


def _frames_masks(d: Path) -> tuple[Path, Path] | None:
    for f in ("frames", "images", "Images", "img"):
        for m in ("masks", "labels", "Labels", "gt"):
            if (d / f).is_dir() and (d / m).is_dir():
                return d / f, d / m
    return None


def labelled_folder(
    root: Path, classes: ClassTable, encoding: str = "auto", readings: list[str] | None = None
) -> dict[str, list[Sample]]:
    """video name -> its annotated frames, for ``ROOT/{frames,masks}`` or ``ROOT/<video>/{frames,masks}``."""
    root = Path(root)
    if not root.is_dir():
        raise EmptyInputError(f"{root} is not a folder. Give a folder with frames/ and masks/ (or one per video).")
    pair = _frames_masks(root)
    if pair is not None:
        return {root.name: _pairs_folder(*pair, classes, encoding, root.name, readings)}
    videos = {}
    for d in sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name):
        pair = _frames_masks(d)
        if pair is not None:
            videos[d.name] = _pairs_folder(*pair, classes, encoding, d.name, readings)
    if not videos:
        raise EmptyInputError(
            f"No labelled frames under {root}: expected frames/ and masks/ (or labels/) folders, in ROOT or in "
            "one sub-folder per video."
        )
    return videos


def _cholecseg8k(root: Path, classes: ClassTable, encoding: str) -> dict[str, list[Sample]]:
    from ..inputs.frames import frame_sort_key

    # one mask at a time: a single file's values may fit both encodings, and these are watershed values
    encoding = "source" if encoding == "auto" else encoding
    videos: dict[str, list[Sample]] = {}
    for vdir in sorted(p for p in root.iterdir() if p.is_dir()):
        samples: list[Sample] = []
        for clip in sorted((p for p in vdir.iterdir() if p.is_dir()), key=lambda p: frame_sort_key(p.name)):
            masks = sorted(clip.glob("*_endo_watershed_mask.png"), key=lambda p: frame_sort_key(p.name))
            for mf in masks:
                img = clip / mf.name.replace("_watershed_mask", "")
                if not img.is_file():
                    raise InputError(f"{mf}: no frame {img.name} beside it (the Kaggle CholecSeg8k layout).")
                samples.append(_one_file_sample(vdir.name, len(samples), img, mf, classes, encoding))
        if samples:
            videos[vdir.name] = samples
    if not videos:
        raise EmptyInputError(
            f"No CholecSeg8k frames under {root}: expected videoNN/videoNN_XXXXX/frame_K_endo.png with "
            "frame_K_endo_watershed_mask.png (the Kaggle release)."
        )
    return videos


def _one_file_sample(video: str, index: int, img: Path, mask: Path, classes: ClassTable, encoding: str) -> Sample:
    from ..inputs.frames import _decode_image_file, to_rgb_uint8
    from ..inputs.labels import open_labels

    def labels():
        return check_labels(open_labels(mask, classes, encoding)[0], classes, str(mask))

    return Sample(video, index, img.name, lambda: to_rgb_uint8(_decode_image_file(img), str(img)), labels)


def _video_number(name: str) -> int | None:
    m = re.search(r"(\d+)$", name)
    return int(m.group(1)) if m else None


def rule_split(videos: Sequence[str]) -> dict[str, list[str]]:
    """The fixed split for datasets without an official one: sorted videos, every fifth from the
    second on is validation (one at least when there are two videos or more)."""
    names = sorted(videos)
    val = [v for i, v in enumerate(names) if i % 5 == 1]
    return {"train": [v for v in names if v not in val], "val": val}


def dataset_split(layout: str, videos: Sequence[str]) -> dict[str, list[str]]:
    if layout == "cadis":
        by_num = {_video_number(v): v for v in videos}
        out = {k: [by_num[n] for n in nums if n in by_num] for k, nums in CADIS_SPLIT.items()}
        missing = sorted(set(videos) - set(out["train"]) - set(out["val"]) - set(out["test"]))
        if missing:
            log.warning("CaDIS: videos %s are in no official split; they are left out", missing)
        return out
    return rule_split(videos)


def open_training_data(
    root: str | os.PathLike,
    classes: ClassTable,
    layout: str = "folder",
    encoding: str = "auto",
    fraction: float | None = None,
    seed: int = 0,
    frames: Sequence[int] | None = None,
) -> TrainingSet:
    """The training and validation frames of ``root``.

    Args:
        layout: ``cadis``, ``cholecseg8k``, ``cataract1k`` or ``folder`` (see the module docstring).
        fraction: train on a seeded subset of this fraction of the training frames.
        frames: train on these frame indices only (one video); every other annotated frame validates.
    """
    readings: list[str] = []
    ts = _open(root, classes, layout, encoding, fraction, seed, frames, readings)
    ts.readings = readings
    return ts


def _open(root, classes, layout, encoding, fraction, seed, frames, readings) -> TrainingSet:
    root = Path(root)
    if layout not in LAYOUTS:
        raise InputError(f"Unknown data layout {layout!r}; choose one of {', '.join(LAYOUTS)}.")
    if not root.is_dir():
        raise EmptyInputError(f"{root} is not a folder of training data.")
    if layout == "cadis":
        videos = {}
        for d in sorted(p for p in root.iterdir() if p.is_dir() and (p / "Images").is_dir()):
            videos[d.name] = _pairs_folder(d / "Images", d / "Labels", classes, encoding, d.name, readings)
        if not videos:
            raise EmptyInputError(f"No CaDIS videos under {root}: expected VideoNN/Images and VideoNN/Labels.")
    elif layout == "cholecseg8k":
        videos = _cholecseg8k(root, classes, encoding)
        readings.append(f"{root}: watershed masks read as {encoding if encoding != 'auto' else 'source'}")
    else:
        videos = labelled_folder(root, classes, encoding, readings)
    if frames is not None:
        if len(videos) != 1:
            raise InputError("--frames picks frames of one video; this data has several. Use --fraction instead.")
        only = next(iter(videos.values()))
        wanted = set(int(f) for f in frames)
        have = {s.index for s in only}
        missing = sorted(wanted - have)
        if missing:
            raise InputError(f"--frames {missing}: those frames have no mask in {root}.")
        train = [s for s in only if s.index in wanted]
        val = [s for s in only if s.index not in wanted]
        return TrainingSet(classes, train, val, str(root))
    if len(videos) == 1:  # one video: hold out every fifth annotated frame
        only = next(iter(videos.values()))
        val = [s for i, s in enumerate(only) if i % 5 == 4]
        train = [s for s in only if s not in val]
    else:
        split = dataset_split(layout, list(videos))
        train = [s for v in split["train"] for s in videos[v]]
        val = [s for v in split["val"] for s in videos[v]]
    return TrainingSet(classes, subset(train, fraction, seed), val, str(root))


__all__ = [
    "CADIS_SPLIT",
    "LAYOUTS",
    "Sample",
    "TrainingSet",
    "check_labels",
    "check_trainable",
    "dataset_split",
    "detect_layout",
    "from_arrays",
    "labelled_folder",
    "open_training_data",
    "rule_split",
    "subset",
]


def detect_layout(root: str | os.PathLike, dataset: str) -> str:
    """The layout of ``root``: the dataset's own when its files are there, else a labelled folder."""
    root = Path(root)
    if dataset == "cadis" and any((d / "Images").is_dir() and (d / "Labels").is_dir() for d in _subdirs(root)):
        return "cadis"
    if dataset == "cholecseg8k" and any(
        next(clip.glob("*_endo_watershed_mask.png"), None) is not None for v in _subdirs(root) for clip in _subdirs(v)
    ):
        return "cholecseg8k"
    return "folder"


def _subdirs(p: Path) -> list[Path]:
    try:
        return [d for d in p.iterdir() if d.is_dir()]
    except OSError:
        return []
