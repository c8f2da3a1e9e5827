"""SASVi with no overseer: the annotated frames (anchors) propagated alone.

Each frame takes the segment of the nearer anchor, propagated forward from the anchor before it
or backward from the anchor after it (a tie goes forward; :meth:`~napari_sasvi.core.inputs.anchors.Anchors.segments`).
Each anchor is up to two spans of the engine (:func:`~.span.propagate_span`): the backward part
(the anchor down to the first frame of its segment, over a reversed :class:`~.span.FrameRange`),
written as it comes and recorded as done when it is whole, then the forward part, written in order.

**Lost objects.** A tracker that reports its confidence per object (``tracker.confidence()``, in
[0, 1] for the frame just yielded; the flow tracker's: :mod:`~..trackers.confidence`) is watched:
when an object's confidence falls below :data:`LOST_BELOW`, it is re-seeded from its anchor's
mask as annotated, the copy baseline (that frame is written with the anchor's mask; the tracker
carries the mask on from there, live, without a reset) and a ``lost`` event says which object,
at which frame and why. One event per loss episode: the re-seeded object starts afresh, and
only a new collapse is a new episode. Trackers without ``confidence()`` are taken as confident.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator

import numpy as np

from ..datasets import ClassTable
from ..fsutil import check_output_path
from ..inputs.anchors import Anchors, prompt_classes
from ..inputs.frames import open_frames
from ..policy import Event, Prompt, SegmentStart
from ..records import FrameDone, RunSummary, StoreOpened
from .run import input_signature, open_store
from .span import Amend, FrameRange, Write, amended_labels, propagate_span

#: an object whose tracker confidence falls below this is lost (re-seeded from its anchor). Chosen
#: once on the synthetic clip and the DAVIS 2016 / CholecSeg8k development clips with one anchor
#: on frame 0 (benchmarks/bench_lost.py), then fixed: 0.15-0.2 re-seeds bmx-trees' rider where the
#: mask has left it (Dice 0.256 -> 0.32) and changes nothing elsewhere; 0.25-0.3 also re-seeds
#: objects still tracked well on the synthetic clip (its Dice 0.495 -> 0.45)
LOST_BELOW = 0.2
_SIGNAL_WORDS = {"area": "area collapse", "fit": "flow fit", "residual": "warp residual"}


def mask_prompts(frame: int, mask: np.ndarray, ids: list[int]) -> SegmentStart:
    """A reset and one mask prompt per class of ``ids`` at view frame ``frame``."""
    return SegmentStart(frame=frame, reset=True, prompts=tuple(Prompt(c, "mask", mask=mask == c) for c in ids))


class _AnchorPart:
    """One part of an anchor's segment, as the engine's planner: prompted with the annotation at
    the anchor (view frame 0), every later frame written (``forward``: the anchor's own frame as
    annotated, frames already done skipped)."""

    def __init__(
        self, anchors: Anchors, a: int, classes: ClassTable, *, forward: bool, done: int, tracker=None, events=None
    ):
        self.anchors, self.a, self.classes, self.forward, self.done = anchors, a, classes, forward, done
        self.overseer = anchors.masks[a]  # the store's overseer array: the annotation where there is one
        self.last: int | None = None  # the last frame written
        self.confidence = getattr(tracker, "confidence", None)
        self.reasons = getattr(tracker, "confidence_reasons", None)
        self.events = events  # the run's event log: lost events go there as they happen

    def prompt(self, i: int, reason: str) -> Generator:
        mask = self.anchors.masks[self.a]
        return mask_prompts(0, mask, prompt_classes(mask, self.classes))
        yield  # a generator that decides nothing

    def step(self, i: int, t: int, labels: np.ndarray, logits) -> Generator:
        reseed = None
        if i > 0 and (not self.forward or t >= self.done):
            reseed, labels = yield from self._watch(i, t, labels, logits)
        if not self.forward:
            write = Write(labels) if i > 0 else None
        elif t < self.done:
            return None
        else:
            self.last = t
            if i == 0:
                return Write(self.anchors.exact(self.a, self.classes.no_label), self.overseer)
            write = Write(labels, np.full(labels.shape, self.classes.no_label, np.uint8))
        return write if reseed is None else Amend(reseed, write)

    def _watch(self, i: int, t: int, labels: np.ndarray, logits) -> Generator:
        """Lost objects at view frame ``i`` (video frame ``t``): a ``lost`` event each, their
        anchor masks in this frame's labels, and the prompt that re-seeds them (None: none lost)."""
        if self.confidence is None:
            return None, labels
        conf = self.confidence()
        lost = sorted(o for o, v in conf.items() if v < LOST_BELOW and o in logits)
        if not lost:
            return None, labels
        reasons = self.reasons() if self.reasons is not None else {}
        mask = self.anchors.masks[self.a]
        for o in lost:
            why = _SIGNAL_WORDS.get(reasons.get(o, ""), "tracker")
            reason = f"confidence {conf[o]:.2f} < {LOST_BELOW:.2f} ({why}); re-seeded from anchor {self.a}"
            event = Event(t, "lost", reason, labels=(o,))
            if self.events is not None:
                self.events.append(event.to_dict())
            yield event
        labels = amended_labels(labels, logits, self.classes, {o: mask == o for o in lost})
        prompts = tuple(Prompt(o, "mask", mask=mask == o) for o in lost)
        return SegmentStart(frame=i, reset=False, prompts=prompts), labels


def iter_from_anchors(
    frames,
    anchors: Anchors,
    tracker,
    out: str,
    classes: ClassTable,
    *,
    cancel: Callable[[], bool] | None = None,
    stop_after: int | None = None,
    config: dict | None = None,
) -> Generator:
    """SASVi with no overseer: propagate the anchors into the store at ``out``.

    Yields :class:`~napari_sasvi.core.records.StoreOpened`, an ``anchor`` :class:`~napari_sasvi.core.policy.Event`
    per anchor, and :class:`~napari_sasvi.core.records.FrameDone` as frames finish; returns a
    :class:`~napari_sasvi.core.records.RunSummary`. The anchor frames themselves are written as annotated. Frames
    finish anchor by anchor (the backward part of an anchor's span, then the forward part), so a
    resumed run redoes at most one anchor's backward part; the store records the anchors and
    refuses a resume under others.
    """
    t_start = time.perf_counter()
    stack = open_frames(frames)
    n = len(stack)
    check_output_path(out, "output store")
    stack.validate()
    signature = {
        "input": input_signature(stack),
        "overseer": {"type": "none", "anchors": anchors.describe()},
        "tracker": tracker.describe(),
        "classes": classes.to_dict(),
        "params": {"mode": "anchors"},
    }
    store = open_store(stack, out, classes, signature)
    resumed_from = store.frames_done
    with store.session(stack, check="resume") as session:
        if config is not None:
            store.record_config(config)
        yield StoreOpened(str(out), resumed_from, n)
        events = [
            Event(a, "anchor", f"annotated frame; frames {lo}-{hi} follow it", labels=tuple(prompt_classes(m, classes)))
            for (a, lo, hi), m in ((seg, anchors.masks[seg[0]]) for seg in anchors.segments(n))
        ]
        events_out = [e.to_dict() for e in events]
        if store.complete:
            return RunSummary(str(out), n, 0, resumed_from, False, 0.0, events_out, {})
        yield from events
        forward = session.run_sink(lambda: events_out)
        backward = session.unfinished_sink()
        t_run = time.perf_counter()

        def summary(cancelled: bool) -> RunSummary:
            written = forward.written + backward.written
            return RunSummary(str(out), n, written, resumed_from, cancelled, time.perf_counter() - t_start, events_out)

        def cancelled() -> bool:
            return cancel is not None and cancel()

        for a, lo, hi in anchors.segments(n):
            if hi < store.frames_done:
                continue
            if lo < a and store.frames_done <= a - 1:  # backward part: a-1 down to lo, then done up to a
                yield from forward.flush()  # the frames before it are on disk before it is recorded
                part = _AnchorPart(
                    anchors, a, classes, forward=False, done=store.frames_done, tracker=tracker, events=events_out
                )
                if (
                    yield from propagate_span(
                        FrameRange(stack, a, lo), tracker, part, backward, classes, stop=cancelled
                    )
                ):
                    return summary(True)  # this backward part is redone on resume
                backward.finish(a, events_out)
                elapsed = time.perf_counter() - t_run
                yield FrameDone(a - 1, a, n, (forward.written + backward.written) / elapsed if elapsed > 0 else 0.0)
            part = _AnchorPart(
                anchors, a, classes, forward=True, done=store.frames_done, tracker=tracker, events=events_out
            )

            def stop(part=part) -> bool:
                return cancelled() or (stop_after is not None and part.last is not None and part.last + 1 >= stop_after)

            if (yield from propagate_span(FrameRange(stack, a, hi), tracker, part, forward, classes, stop=stop)):
                yield from forward.flush()
                return summary(True)
        yield from forward.flush()
        store.save_events(events_out)
        return summary(False)


__all__ = ["LOST_BELOW", "iter_from_anchors", "mask_prompts"]
