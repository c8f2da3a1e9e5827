"""Anchors: the frames a user annotated, and propagation from them alone.

An anchor is one frame's full label map, in class ids. Anchors come from

* a folder with label files for *some* frames, matched to the frames by file name (without the
  extension) when the frames are a folder, else by the frame number in the name (``0042.png`` is
  frame 42; a video's frames have no names);
* a SASVi store: its annotated frames (the anchors of its run, the frames corrected in it);
* a (T, H, W) array with some frames painted, a napari labels layer: a frame is an anchor when
  any pixel is non-zero (napari's unpainted value); the other frames are not annotated.

They are read with the one label reader (:func:`~.labels.open_labels`: encodings, checks, the
messages), so a folder of watershed masks or of class ids reads as it does for the overseer.

Propagating them (SASVi with no overseer, or anchors beside an overseer) is the engine's:
:func:`~.engine.anchored.iter_from_anchors`, :func:`~.engine.run.iter_sasvi`.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..datasets import ClassTable
from ..errors import InputError
from ..overseers.base import label_map_to_result
from ..store.edit_log import store_anchor_frames
from ..store.sasvi_store import SasviStore
from .labels import UNLABELLED, open_labels

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Anchors:
    """Annotated frames: ``masks[t]`` is frame t's label map (H, W) uint8 in class ids."""

    masks: dict[int, np.ndarray]
    desc: str
    encoding: str

    @property
    def frames(self) -> list[int]:
        return sorted(self.masks)

    def describe(self) -> dict:
        """What a store records (and a resume must match): where, which frames, their content."""
        h = hashlib.blake2b(digest_size=16)
        for t in self.frames:
            h.update(t.to_bytes(8, "little"))
            h.update(np.ascontiguousarray(self.masks[t]).tobytes())
        return {"source": self.desc, "encoding": self.encoding, "frames": self.frames, "sha": h.hexdigest()}

    def exact(self, t: int, no_label: int) -> np.ndarray:
        """Frame t's annotation as a store writes it (unlabelled pixels as the table's no-label)."""
        out = self.masks[t].copy()
        out[out == UNLABELLED] = no_label
        return out

    def segments(self, n: int) -> list[tuple[int, int, int]]:
        """(anchor, first, last) per anchor: the frames nearer to it than to any other (ties go to
        the earlier anchor, so they are propagated forward)."""
        fr = self.frames
        out = []
        for i, a in enumerate(fr):
            first = 0 if i == 0 else (fr[i - 1] + a) // 2 + 1
            last = n - 1 if i == len(fr) - 1 else (a + fr[i + 1]) // 2
            out.append((a, first, last))
        return out


_NUMBER = re.compile(r"(\d+)(?!.*\d)")


def read_anchors(
    source: Any,
    stack,
    classes: ClassTable,
    encoding: str = "auto",
) -> Anchors:
    """Read the anchors of the video ``stack`` (a :class:`~.frames.FrameStack`) from ``source``.

    Raises:
        InputError: no annotated frame; a file that matches no frame (named); a frame of another
            size; the label reader's errors (values that fit no encoding, unreadable files).
    """
    n, (h, w) = len(stack), stack.frame_size
    store = _sasvi_store(source)
    if store is not None:
        return _store_anchors(store, n, (h, w))

    def check_size(shape):
        if tuple(shape[1:]) != (h, w):
            raise InputError(
                f"The anchors are {shape[2]}x{shape[1]} pixels but the frames are {w}x{h}.\n"
                f"  Anchors: {source}. Annotate the frames at their own size."
            )

    labels = open_labels(source, classes, encoding, check_shape=check_size)
    files = labels.files
    masks: dict[int, np.ndarray] = {}
    if files is not None:  # a folder: match by name
        frame_files = getattr(getattr(stack, "source", None), "files", None)
        by_stem = {f.stem: t for t, f in enumerate(frame_files)} if frame_files else None
        unmatched = []
        for i, f in enumerate(files):
            if by_stem is not None:
                t = by_stem.get(f.stem)
            else:
                m = _NUMBER.search(f.stem)
                t = int(m.group(1)) if m else None
                t = t if t is not None and t < n else None
            if t is None:
                unmatched.append(f.name)
                continue
            masks[t] = labels[i]
        if unmatched:
            how = "no frame file of that name" if by_stem is not None else f"no frame number below {n} in the name"
            raise InputError(
                f"{len(unmatched)} anchor file(s) match no frame ({how}): {', '.join(unmatched[:5])}"
                f"{', ...' if len(unmatched) > 5 else ''}\n  Anchors: {source}. Name each after its frame."
            )
    else:  # an array (a napari labels layer): the painted frames
        if len(labels) != n:
            raise InputError(
                f"The anchor layer holds {len(labels)} frames but the video has {n}.\n"
                "  A labels layer of anchors has one plane per frame, painted where annotated."
            )
        raw = labels.raw_source
        for t in range(n):
            if np.any(np.asarray(raw.raw(t)) != 0):
                masks[t] = labels[t]
    if not masks:
        raise InputError(
            f"No annotated frame in {source}: paint at least one frame (any non-zero label), "
            "or give a folder with label files named after their frames."
        )
    return Anchors(masks, labels.desc, labels.encoding)


def _sasvi_store(source: Any):
    if isinstance(source, (str, Path)) and (Path(source) / "zarr.json").is_file():
        try:
            return SasviStore.read(source)
        except InputError:
            return None  # another zarr store: the label reader's
    return None


def _store_anchors(store, n: int, size: tuple[int, int]) -> Anchors:
    """A SASVi store's annotated frames: the anchors of its run and its corrections (store/edit_log.py)."""

    if store.n_frames != n or tuple(store.labels.shape[1:]) != size:
        raise InputError(
            f"The store {store.path} is {store.n_frames} frames of {store.labels.shape[2]}x{store.labels.shape[1]} "
            f"pixels but the video is {n} frames of {size[1]}x{size[0]}."
        )
    frames = [t for t in store_anchor_frames(store) if t < store.frames_done]
    if not frames:
        raise InputError(
            f"The store {store.path} holds no annotated frame (no anchors, no corrections): "
            "correct a frame and re-propagate, or give the annotations themselves."
        )
    return Anchors({t: np.asarray(store.labels[t]) for t in frames}, str(store.path), "class-ids")


class AnchoredOverseer:
    """An overseer whose answer at the annotated frames is the annotation (score 1); the model
    is not asked there. Its description (hence the store's signature) holds the anchors."""

    def __init__(self, base, anchors: Anchors, classes: ClassTable):
        self.base, self.anchors, self.classes = base, anchors, classes
        self.needs_frames = base.needs_frames
        self.name = f"{base.name} + {len(anchors.masks)} anchor(s)"
        self.anchor_frames = frozenset(anchors.masks)

    def predict(self, frames, indices):
        ask = [k for k, t in enumerate(indices) if t not in self.anchor_frames]
        answers = (
            self.base.predict(None if frames is None else [frames[k] for k in ask], [indices[k] for k in ask])
            if ask
            else []
        )
        out, it = [], iter(answers)
        for t in indices:
            if t in self.anchor_frames:
                ids, no_label = self.classes.ids, self.classes.no_label
                out.append(label_map_to_result(self.anchors.masks[t], ids, no_label if no_label not in ids else None))
            else:
                out.append(next(it))
        return out

    def describe(self) -> dict:
        return {**self.base.describe(), "anchors": self.anchors.describe()}


def prompt_classes(mask: np.ndarray, classes: ClassTable) -> list[int]:
    """The classes an annotation prompts: those of the table present in it, as the replay overseer
    has them (the no-label value only when it is a class of the table, e.g. CholecSeg8k's 0)."""
    return [int(c) for c in np.unique(mask) if int(c) in set(classes.ids)]


__all__ = [
    "AnchoredOverseer",
    "Anchors",
    "prompt_classes",
    "read_anchors",
]
