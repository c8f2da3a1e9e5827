"""The SASVi run: overseer + policy + tracker, streaming into a resumable store.

:func:`iter_sasvi` is a generator: it yields :class:`StoreOpened` once the store exists, then
:class:`FrameDone` after every finished frame (its
labels are on disk by then) and :class:`~.policy.Event` for every decision, and returns a
:class:`RunSummary`. The CLI and the tests drive it synchronously, the napari shell in a thread
worker; stopping between frames (``cancel``) keeps everything written.

Memory stays flat in the video's length: frames are decoded on demand, the overseer cache holds
the look-ahead window, the tracker releases what its memory no longer reads, and every finished
frame goes to disk.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import numpy as np

from .datasets import ClassTable
from .fingerprint import InputLedger, structural_fingerprint
from .frames import FrameStack, open_frames
from .fsutil import check_output_path
from .overseers.base import OverseerCache, result_to_label_map
from .policy import Event, Policy, PolicyParams, SegmentStart, event_from_dict
from .store import FrameWriter, SasviStore
from .trackers.base import compose_labels

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameDone:
    """Frame ``frame`` is finished and written; ``done`` frames of ``total`` are on disk."""

    frame: int
    done: int
    total: int
    fps: float


@dataclass(frozen=True)
class StoreOpened:
    """The output store exists (created or reopened): ``done`` of ``total`` frames are on disk.
    The first item a run yields, before any frame is computed."""

    store: str
    done: int
    total: int


@dataclass(frozen=True)
class RunSummary:
    store: str
    n_frames: int
    frames_written: int
    resumed_from: int
    cancelled: bool
    seconds: float
    events: list[dict] = field(default_factory=list)
    encodes: dict[int, int] = field(default_factory=dict)

    @property
    def restarts(self) -> list[dict]:
        return [e for e in self.events if e["kind"] == "restart"]


def run_signature(frames: FrameStack, overseer, tracker, classes: ClassTable, params: PolicyParams) -> dict:
    """Everything that decides a run's result; a store refuses to resume under another one.

    The frames enter by structure (kind, shape, file names); their content is checked frame by
    frame as the run reads them (:class:`~.fingerprint.InputLedger`), so a corrected frame that
    was never read (the one that failed) does not block a resume, and a changed one that was
    read does."""
    return {
        "input": {"name": frames.name, "shape": list(frames.shape), "fingerprint": structural_fingerprint(frames)},
        "overseer": overseer.describe(),
        "tracker": tracker.describe(),
        "classes": classes.to_dict(),
        "params": {k: getattr(params, k) for k in params.__dataclass_fields__},
    }


def open_checked_store(stack: FrameStack, out: str, classes: ClassTable, signature: dict):
    """Create the store at ``out``, or reopen it for a resume (refused under another signature),
    with its input ledger; a reopened store's finished frames are checked against the input."""
    store = SasviStore.open(
        out, n_frames=len(stack), frame_size=stack.frame_size, classes=classes, signature=signature,
        frames_path=stack.path,
    )  # fmt: skip
    store.lock()  # one writer: the same run started twice is refused, not interleaved
    ledger = InputLedger(store.group, stack, str(out))
    if store.frames_done:
        ledger.verify_files(store.frames_done)
        ledger.spot_check(store.frames_done)
    return store, ledger


def _apply(tracker, seg: SegmentStart) -> None:
    if seg.reset:
        tracker.reset()
    elif seg.remove:
        tracker.remove_objects(seg.remove)
    for p in seg.prompts:
        if p.kind == "mask":
            tracker.add_mask(seg.frame, p.obj_id, p.mask)
        else:
            tracker.add_points(seg.frame, p.obj_id, p.points, p.point_labels)


def iter_sasvi(
    frames,
    overseer,
    tracker,
    out: str,
    classes: ClassTable,
    params: PolicyParams | None = None,
    *,
    batch_size: int = 8,
    cancel: Callable[[], bool] | None = None,
    stop_after: int | None = None,
    anchors=None,
    background_writes: bool = True,
) -> Generator[StoreOpened | FrameDone | Event, None, RunSummary]:
    """Run SASVi over ``frames`` into the store at ``out`` (created, or resumed if it matches).

    Args:
        frames: a :class:`FrameStack`, a path or an array (see :func:`~.frames.open_frames`).
        overseer: an :class:`~.overseers.base.Overseer`.
        tracker: a :class:`~.trackers.base.Tracker`; ``reference`` mode needs a non-incremental
            one (the legacy SAM2 predictor), ``default`` mode an incremental one.
        cancel: polled between frames; True stops the run, keeping what is written.
        stop_after: stop once this many frames are on disk (tests of resuming).
        anchors: :class:`~.anchors.Anchors`, annotated frames: they replace the overseer there, and
            SASVi re-prompts at each of them with the annotation (recorded in the store).
        background_writes: write each finished frame on a thread of its own while the next one is
            computed (:class:`~.store.FrameWriter`); :class:`FrameDone` still comes only once the
            frame is on disk. False writes on the calling thread (the same files).
    """
    t_start = time.perf_counter()
    stack = open_frames(frames)
    params = params or PolicyParams()
    if params.mode == "default" and not tracker.incremental:
        raise ValueError("default mode needs a tracker that adds objects without a reset (sam2's current predictor)")
    n = len(stack)
    h, w = stack.frame_size
    check_output_path(out, "output store")
    stack.validate()  # every check that can run before the store exists runs now
    if anchors is not None:
        from .anchors import AnchoredOverseer

        overseer = AnchoredOverseer(overseer, anchors, classes)
    signature = run_signature(stack, overseer, tracker, classes, params)
    store, ledger = open_checked_store(stack, out, classes, signature)
    resumed_from = store.frames_done
    writer = FrameWriter(store, background=background_writes)
    try:
        yield StoreOpened(str(out), resumed_from, n)
        if store.complete:
            return RunSummary(str(out), n, 0, resumed_from, False, 0.0, store.events, {})
        with ledger.reading(stack):  # every frame read is hashed; the hashes land when the run ends
            return (
                yield from _run(
                    stack, overseer, tracker, store, writer, classes, params, batch_size, cancel, stop_after, t_start
                )
            )
    finally:
        try:
            writer.close()  # a run stopped by an error (or closed) keeps the frame it was writing
        finally:  # even when an interrupt lands while waiting for it: the store is never left locked
            store.unlock()


def _run(stack, overseer, tracker, store, writer, classes, params, batch_size, cancel, stop_after, t_start):
    out = store.path
    n = len(stack)
    h, w = stack.frame_size
    resumed_from = store.frames_done
    cache = OverseerCache(overseer, n, stack.frame, batch_size)
    policy = Policy(params, cache.masks, no_label=classes.no_label, anchors=getattr(overseer, "anchor_frames", ()))
    tracker.bind(stack)
    annotated = getattr(overseer, "anchors", None)
    done = store.frames_done
    snap = store.snapshot if done > 0 else None
    if snap is not None:
        policy.restore_state(snap["state"], [event_from_dict(e) for e in store.events])
        s, reason, previous = int(snap["frame"]), snap["reason"], store.load_previous_output()
        log.info("resuming %s: %d frames done, replaying from segment start %d", out, done, s)
    else:
        s, reason, previous = 0, "start", None
    # the event log as dicts, converted once each: the log only grows during a run (events are
    # frozen), and converting all of it for every frame would cost O(events) a frame
    log_dicts: list[dict] = []

    def events_so_far() -> list[dict]:
        if len(log_dicts) > len(policy.events):  # never expected; rebuild rather than trust it
            log_dicts.clear()
        log_dicts.extend(e.to_dict() for e in policy.events[len(log_dicts) :])
        return list(log_dicts)  # a copy: the store keeps what it is given

    events_out = events_so_far()
    written = 0

    def summary(cancelled: bool, events: list[dict]) -> RunSummary:
        elapsed = time.perf_counter() - t_start
        return RunSummary(
            str(out), n, written, resumed_from, cancelled, elapsed, events, dict(getattr(tracker, "encodes", {}))
        )

    t_run = time.perf_counter()

    def frame_done(t: int) -> FrameDone:
        elapsed = time.perf_counter() - t_run
        return FrameDone(t, t + 1, n, (t + 1 - resumed_from) / elapsed if elapsed > 0 else 0.0)

    def landed():  # the frame in flight, once it is on disk
        t = writer.wait()
        if t is not None:
            yield frame_done(t)

    seg: SegmentStart | None = None
    while True:
        if seg is None:  # a segment start with a reset: resumable from here
            yield from landed()  # the snapshot records the frames done so far
            if s > 0 or done == 0:
                keep_prev = previous if (params.merge_unlabelled or params.mode == "default") else None
                store.save_snapshot({"frame": s, "reason": reason, "state": policy.export_state()}, keep_prev)
            n_before = len(policy.events)
            seg = policy.start_segment(s, reason, previous)
            for ev in policy.events[n_before:]:
                yield ev
        _apply(tracker, seg)
        last_prompt_frame = seg.frame if not seg.reset or seg.frame > 0 else -1
        seg = None
        restart_at: int | None = None
        for t, logits in tracker.propagate(s):
            labels = compose_labels(logits, (h, w), classes.no_label, classes.ids)
            visible = (
                {obj: int(np.count_nonzero(labels == obj)) for obj in logits} if params.mode == "default" else None
            )
            n_before = len(policy.events)
            reason = policy.step(t, visible)
            for ev in policy.events[n_before:]:
                yield ev
            if reason is not None and t == last_prompt_frame:
                # a decision to prompt again at the very frame just prompted cannot make progress
                # (the tracker's answer would be the same): go on instead of looping
                log.warning("frame %d: %s ignored, the frame was just prompted", t, reason)
                reason = None
            if reason is not None:
                restart_at = t
                previous = labels
                break
            if t >= done:
                if annotated is not None and t in annotated.masks:  # an annotated frame is the user's
                    labels = annotated.exact(t, classes.no_label)
                ov = result_to_label_map(cache.masks(t) or {}, (h, w), classes.no_label)
                events_out = events_so_far()
                prev = writer.wait()  # frame t - 1 is on disk; t is written while t + 1 is computed
                writer.submit(t, labels, ov, events_out)
                done = t + 1
                written += 1
                if prev is not None:
                    yield frame_done(prev)
            cache.release_before(t)
            if (cancel is not None and cancel()) or (stop_after is not None and done >= stop_after):
                yield from landed()
                return summary(True, events_out)
        if restart_at is None:
            break
        s = restart_at
        if reason not in ("buffer", "anchor") and params.mode == "default":
            n_before = len(policy.events)
            seg = policy.add_objects(s, reason)
            for ev in policy.events[n_before:]:
                yield ev
    yield from landed()
    events_out = events_so_far()
    store.save_events(events_out)
    return summary(False, events_out)


def run_sasvi(*args, progress=None, **kwargs) -> RunSummary:
    """Drive :func:`iter_sasvi` to the end; ``progress(done, total, fps)`` is called per frame."""
    gen = iter_sasvi(*args, **kwargs)
    while True:
        try:
            item = next(gen)
        except StopIteration as stop:
            return stop.value
        if progress is not None and isinstance(item, FrameDone):
            progress(item.done, item.total, item.fps)


__all__ = ["FrameDone", "RunSummary", "StoreOpened", "iter_sasvi", "run_sasvi", "run_signature"]
