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

:func:`iter_from_anchors` is SASVi with no overseer: each frame takes the segment of the nearer
anchor, propagated forward from the anchor before it or backward from the anchor after it (a tie
goes forward). Backward propagation runs the tracker forward over the frames in reverse order
(:class:`FrameRange`), so every tracker works both ways.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .datasets import ClassTable
from .errors import InputError
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
    from .store import SasviStore

    if isinstance(source, (str, Path)) and (Path(source) / "zarr.json").is_file():
        try:
            return SasviStore.read(source)
        except InputError:
            return None  # another zarr store: the label reader's
    return None


def _store_anchors(store, n: int, size: tuple[int, int]) -> Anchors:
    """A SASVi store's annotated frames: the anchors of its run and its corrections (edits.py)."""
    from .edits import store_anchor_frames

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
        from .overseers.base import label_map_to_result

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


class FrameRange:
    """Frames ``start`` to ``stop`` (inclusive, either direction) of ``stack`` as a video of their
    own (index 0 is frame ``start``): a tracker propagating forward over a range with
    ``stop < start`` goes backward in time."""

    def __init__(self, stack, start: int, stop: int):
        self.stack, self.start, self.stop = stack, start, stop
        self.step = 1 if stop >= start else -1
        self.frame_size = stack.frame_size
        self.name = f"{getattr(stack, 'name', 'frames')} [{start}..{stop}]"
        self.shape = (len(self), *stack.shape[1:])

    def __len__(self) -> int:
        return abs(self.stop - self.start) + 1

    def frame(self, i: int) -> np.ndarray:
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.stack.frame(self.time(i))

    def time(self, i: int) -> int:
        return self.start + self.step * i


def _prompt(tracker, view, mask: np.ndarray, classes: ClassTable) -> list[int]:
    tracker.bind(view)
    tracker.reset()
    ids = _ids(mask, classes)
    for c in ids:
        tracker.add_mask(0, c, mask == c)
    return ids


def iter_from_anchors(
    frames,
    anchors: Anchors,
    tracker,
    out: str,
    classes: ClassTable,
    *,
    cancel: Callable[[], bool] | None = None,
    stop_after: int | None = None,
) -> Generator:
    """SASVi with no overseer: propagate the anchors into the store at ``out``.

    Yields :class:`~.pipeline.StoreOpened`, an ``anchor`` :class:`~.policy.Event` per anchor, and
    :class:`~.pipeline.FrameDone` as frames finish; returns a :class:`~.pipeline.RunSummary`.
    The anchor frames themselves are written as annotated. Frames finish anchor by anchor (the
    backward part of an anchor's span, then the forward part), so a resumed run redoes at most
    one anchor's backward part; the store records the anchors and refuses a resume under others.
    """
    from .frames import open_frames
    from .fsutil import check_output_path
    from .pipeline import FrameDone, RunSummary, StoreOpened, open_checked_store
    from .policy import Event
    from .trackers.base import compose_labels

    t_start = time.perf_counter()
    stack = open_frames(frames)
    n = len(stack)
    h, w = stack.frame_size
    check_output_path(out, "output store")
    stack.validate()
    from .fingerprint import structural_fingerprint

    signature = {
        "input": {"name": stack.name, "shape": list(stack.shape), "fingerprint": structural_fingerprint(stack)},
        "overseer": {"type": "none", "anchors": anchors.describe()},
        "tracker": tracker.describe(),
        "classes": classes.to_dict(),
        "params": {"mode": "anchors"},
    }
    store, ledger = open_checked_store(stack, out, classes, signature)
    resumed_from = store.frames_done
    yield StoreOpened(str(out), resumed_from, n)
    events = [
        Event(
            a, "anchor", f"annotated frame; frames {lo}-{hi} follow it", labels=tuple(_ids(anchors.masks[a], classes))
        )
        for a, lo, hi in anchors.segments(n)
    ]
    events_out = [e.to_dict() for e in events]
    if store.complete:
        return RunSummary(str(out), n, 0, resumed_from, False, 0.0, events_out, {})
    yield from events
    empty = np.full((h, w), classes.no_label, np.uint8)
    written = 0
    t_run = time.perf_counter()

    def summary(cancelled: bool) -> RunSummary:
        return RunSummary(str(out), n, written, resumed_from, cancelled, time.perf_counter() - t_start, events_out, {})

    with ledger.reading(stack):
        for a, lo, hi in anchors.segments(n):
            if hi < store.frames_done:
                continue
            mask = anchors.masks[a]
            overseer_at = {a: mask}  # the store's overseer array: the annotation where there is one
            if lo < a and store.frames_done <= a - 1:  # backward part: a-1 down to lo, then done up to a
                view = FrameRange(stack, a, lo)
                _prompt(tracker, view, mask, classes)
                for i, logits in tracker.propagate(0):
                    if i == 0:
                        continue
                    t = view.time(i)
                    store.write_unfinished(t, compose_labels(logits, (h, w), classes.no_label, classes.ids), empty)
                    if cancel is not None and cancel():
                        return summary(True)  # this backward part is redone on resume
                store.mark_done(a, events_out)
                written += a - max(lo, resumed_from)
                elapsed = time.perf_counter() - t_run
                yield FrameDone(a - 1, a, n, written / elapsed if elapsed > 0 else 0.0)
            view = FrameRange(stack, a, hi)
            _prompt(tracker, view, mask, classes)
            for i, logits in tracker.propagate(0):
                t = view.time(i)
                if t < store.frames_done:
                    continue
                labels = (
                    anchors.exact(a, classes.no_label)
                    if i == 0
                    else compose_labels(logits, (h, w), classes.no_label, classes.ids)
                )
                store.write_frame(t, labels, overseer_at.get(t, empty), events_out)
                written += 1
                elapsed = time.perf_counter() - t_run
                yield FrameDone(t, t + 1, n, written / elapsed if elapsed > 0 else 0.0)
                if (cancel is not None and cancel()) or (stop_after is not None and t + 1 >= stop_after):
                    return summary(True)
    store.save_events(events_out)
    return summary(False)


def _ids(mask: np.ndarray, classes: ClassTable) -> list[int]:
    """The classes an annotation prompts: those of the table present in it, as the replay overseer
    has them (the no-label value only when it is a class of the table, e.g. CholecSeg8k's 0)."""
    return [int(c) for c in np.unique(mask) if int(c) in set(classes.ids)]


def anchors_for(video: Path, root: Path | None, single: bool) -> Path | None:
    """The anchors of one video: the given path for a single video, else its sub-folder."""
    if root is None:
        return None
    if single:
        return root
    cand = root / video.stem if video.is_file() else root / video.name
    if cand.is_dir():
        return cand
    raise InputError(f"No anchors for video {video.name!r} in {root} (expected the folder {cand}).")


__all__ = [
    "AnchoredOverseer",
    "Anchors",
    "FrameRange",
    "anchors_for",
    "iter_from_anchors",
    "read_anchors",
]
