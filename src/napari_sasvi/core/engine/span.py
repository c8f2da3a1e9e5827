"""The span engine: the one loop that propagates a span of frames with a tracker into a store.

A run, an anchors run and an edit all do the same thing: bind the tracker to some frames
(forward, or backward through :class:`FrameRange`), prompt it at the span's first frame, let it
propagate, turn each frame's logits into a label map, write the frames that are due, and prompt
again where a decision says so. :func:`propagate_span` is that loop; what differs is the
*planner* (what to prompt, when to prompt again, which frames to write and with what: the SASVi
policy, the anchors, an edit's plan) and the *sink* the frames go to (a
:class:`~napari_sasvi.core.store.session.StoreSession`'s run, backward or edit sink).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..datasets import ClassTable
from ..policy import Event, SegmentStart
from ..records import FrameDone
from ..trackers.base import compose_labels


@dataclass(frozen=True)
class Reprompt:
    """Stop at this frame and prompt again there (the frame is not written; it is recomputed)."""

    reason: str


@dataclass(frozen=True)
class Write:
    """Write this frame: its labels (H, W) uint8 and, for a run, the overseer's label map."""

    labels: np.ndarray
    overseer: np.ndarray | None = None


@dataclass(frozen=True)
class Amend:
    """Prompt the running tracker at this frame without a reset and without recomputing the frame
    (objects added, re-prompted or removed: in effect from the next frame), then write the frame
    as ``write`` gives it (None: write nothing). Trackers with ``live_prompts`` take the prompt
    between two frames of the same propagation; others are propagated again from this frame,
    whose second result is dropped."""

    prompt: SegmentStart
    write: Write | None = None


class Planner(Protocol):
    """What a span does, frame by frame (a run's SASVi policy, an anchors run, an edit)."""

    def prompt(self, i: int, reason: str) -> Generator[Event, None, SegmentStart]:
        """The prompts at view frame ``i`` (``reason`` is ``"start"`` for the span's first prompt,
        else what :meth:`step` returned); yields the decisions made."""

    def step(
        self, i: int, t: int, labels: np.ndarray, logits: dict[int, np.ndarray]
    ) -> Generator[Event, None, Reprompt | Amend | Write | None]:
        """After the tracker produced view frame ``i`` (video frame ``t``): prompt again (with a
        reset or recomputing the frame; or live), write it, or neither (a frame already on disk)."""


class Sink(Protocol):
    def put(self, t: int, labels: np.ndarray, overseer: np.ndarray | None) -> Iterator[FrameDone]: ...


class FrameRange:
    """Frames ``start`` to ``stop`` (inclusive, either direction) of ``stack`` as a video of their
    own (index 0 is frame ``start``): a tracker propagating forward over a range with
    ``stop < start`` goes backward in time, so every tracker works both ways."""

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


def apply_prompt(tracker, seg: SegmentStart) -> None:
    """Give the tracker a segment start: reset (or drop objects), then every prompt at its frame."""
    if seg.reset:
        tracker.reset()
    elif seg.remove:
        tracker.remove_objects(seg.remove)
    for p in seg.prompts:
        if p.kind == "mask":
            tracker.add_mask(seg.frame, p.obj_id, p.mask)
        else:
            tracker.add_points(seg.frame, p.obj_id, p.points, p.point_labels)


#: the logit of a live prompt's (or a taken overseer's) mask on the frame it is given, inside +,
#: outside -: above any tracker's logit, so the frame shows that mask (a tie with another object's
#: logit, as the flow tracker's +10, would go to the lower id)
LIVE_LOGIT = 1.0e4


def amended_labels(
    labels: np.ndarray,
    logits: dict[int, np.ndarray],
    classes: ClassTable,
    prompted: dict[int, np.ndarray],
    taken: dict[int, np.ndarray] | None = None,
    remove: set[int] | frozenset[int] = frozenset(),
) -> np.ndarray:
    r"""A frame's labels as the tracker gives them once prompted live there: ``remove``\ d objects
    gone, each ``prompted`` object exactly its mask (above all), each ``taken`` class (consensus:
    the overseer's mask where it matches the tracker) its mask, except where the tracker shows a
    class it carries on its own (not taken: the overseer may have given its pixels to another
    class, as a dropout leaves them to the background). ``labels`` is the frame as composed
    from ``logits``."""
    taken = {c: m for c, m in (taken or {}).items() if c not in prompted}
    if not taken and not prompted and not remove:
        return labels
    lg = {k: v for k, v in logits.items() if k not in remove}
    for c, m in (taken | prompted).items():
        lg[c] = np.where(m, LIVE_LOGIT, -LIVE_LOGIT).astype(np.float32)
    out = compose_labels(lg, labels.shape, classes.no_label, classes.ids, dtype=labels.dtype)
    for c in set(lg) - set(taken) - set(prompted) - {classes.no_label}:
        out[labels == c] = c  # carried by the tracker: its pixels stay
    for c, m in prompted.items():  # the prompt's word: above all
        out[m] = c
    return out


def propagate_span(
    view: Any,
    tracker,
    planner: Planner,
    sink: Sink,
    classes: ClassTable,
    *,
    first: int = 0,
    reason: str = "start",
    stop: Callable[[], bool] | None = None,
) -> Generator[Event | FrameDone, None, bool]:
    """Propagate ``view`` (a :class:`~napari_sasvi.core.inputs.frames.FrameStack` or a
    :class:`FrameRange`) from its frame ``first`` to its end.

    The tracker is bound to ``view`` and prompted at ``first`` with what ``planner.prompt`` says
    (for ``reason``: ``"start"``, or a resumed run's segment start);
    every frame it produces becomes a label map (the class table's ids; :func:`compose_labels`),
    which ``planner.step`` sees: a :class:`Reprompt` stops there and prompts again at that frame
    (a reset, or objects added, as the planner's prompt says), a :class:`Write` goes to ``sink``.
    ``stop`` is polled after every frame.

    Yields the planner's events and the sink's :class:`FrameDone`; returns True when ``stop``
    ended the span, False when it reached the end.
    """
    h, w = view.frame_size
    dtype = getattr(classes, "dtype", np.uint8)  # instance mode: a track space (uint16 track ids)
    time_of = getattr(view, "time", None)
    live = bool(getattr(tracker, "live_prompts", False))
    tracker.bind(view)
    i_from, pending = first, None  # pending: an amendment for a tracker without live prompts
    while True:
        skip = None
        if pending is None:
            apply_prompt(tracker, (yield from planner.prompt(i_from, reason)))
        else:
            apply_prompt(tracker, pending)
            pending, skip = None, i_from
        again = None
        for i, logits in tracker.propagate(i_from):
            if i == skip:  # the amended frame again: it is written already
                continue
            t = time_of(i) if time_of is not None else i
            labels = compose_labels(logits, (h, w), classes.no_label, classes.ids, dtype=dtype)
            step = yield from planner.step(i, t, labels, logits)
            if isinstance(step, Reprompt):
                again = (i, step.reason)
                break
            amend = None
            if isinstance(step, Amend):
                amend, step = step.prompt, step.write
                if live:
                    apply_prompt(tracker, amend)
                    amend = None
            if step is not None:
                yield from sink.put(t, step.labels, step.overseer)
            if stop is not None and stop():
                return True
            if amend is not None:
                pending, again = amend, (i, "")
                break
        if again is None:
            return False
        i_from, reason = again


__all__ = [
    "LIVE_LOGIT",
    "Amend",
    "FrameRange",
    "amended_labels",
    "Planner",
    "Reprompt",
    "Sink",
    "Write",
    "apply_prompt",
    "propagate_span",
]
