"""The SASVi run: overseer + policy + tracker, streaming into a resumable store.

:func:`iter_sasvi` is a generator: it yields :class:`~napari_sasvi.core.records.StoreOpened` once the store exists,
then :class:`~napari_sasvi.core.records.FrameDone` after every finished frame (its labels are on disk by then) and
:class:`~napari_sasvi.core.policy.Event` for every decision, and returns a
:class:`~napari_sasvi.core.records.RunSummary`. The CLI and the tests drive it synchronously, the napari shell in a
thread worker; stopping between frames (``cancel``) keeps everything written.

The run is a planner for the span engine (:func:`~.span.propagate_span`): the policy decides the
prompts at each segment start and, after every frame, whether to prompt again there; the store
session's run sink writes the frames in order. Memory stays flat in the video's length: frames
are decoded on demand, the overseer cache holds the look-ahead window, the tracker releases what
its memory no longer reads, and every finished frame goes to disk.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Generator

import numpy as np

from ..datasets import ClassTable
from ..fsutil import check_output_path
from ..inputs.anchors import AnchoredOverseer, Anchors
from ..inputs.frames import FrameStack, open_frames
from ..overseers.base import OverseerCache, result_to_label_map
from ..policy import Event, Policy, PolicyParams, SegmentStart, event_from_dict
from ..progress import drain
from ..records import FrameDone, RunSummary, StoreOpened
from ..store.fingerprint import structural_fingerprint
from ..store.sasvi_store import SasviStore
from .span import Amend, Reprompt, amended_labels, propagate_span

log = logging.getLogger(__name__)


def run_signature(frames: FrameStack, overseer, tracker, classes: ClassTable, params: PolicyParams) -> dict:
    """Everything that decides a run's result; a store refuses to resume under another one.

    The frames enter by structure (kind, shape, file names); their content is checked frame by
    frame as the run reads them (:class:`~napari_sasvi.core.store.fingerprint.InputLedger`), so a
    corrected frame that was never read (the one that failed) does not block a resume, and a
    changed one that was read does."""
    return {
        "input": input_signature(frames),
        "overseer": overseer.describe(),
        "tracker": tracker.describe(),
        "classes": classes.to_dict(),
        "params": params_signature(params),
    }


#: the consensus step's parameters (``default`` mode): recorded only where they act, so stores
#: written before consensus existed (``reference`` mode) resume as they were
_CONSENSUS = (
    "consensus", "agree_iou", "disagree_frames", "fade_after", "backfill", "take_overseer", "match_iou", "min_score",
)  # fmt: skip


def params_signature(params: PolicyParams) -> dict:
    """The policy's parameters that decide the run's result."""
    out = {k: getattr(params, k) for k in params.__dataclass_fields__}
    if params.mode != "default" or not params.consensus:
        for k in _CONSENSUS:
            out.pop(k)
        if params.mode == "default":
            out["consensus"] = False
    return out


def input_signature(stack: FrameStack) -> dict:
    return {"name": stack.name, "shape": list(stack.shape), "fingerprint": structural_fingerprint(stack)}


def open_store(stack: FrameStack, out: str, classes: ClassTable, signature: dict) -> SasviStore:
    """Create the store at ``out``, or reopen it for a resume (refused under another signature).
    The run records its config once it holds the store's lock (a run refused as busy changes
    nothing)."""
    return SasviStore.open(
        out, n_frames=len(stack), frame_size=stack.frame_size, classes=classes, signature=signature,
        frames_path=stack.path,
    )  # fmt: skip


class _RunPlanner:
    """The SASVi policy as the span engine's planner (see the module docstring).

    With consensus (``default`` mode), decisions between restarts are applied live (:class:`Amend`)
    and every frame is written ``params.backfill`` frames late, so a class added at frame t can be
    filled into the frames just before it (the policy's backfill)."""

    def __init__(self, session, policy: Policy, cache: OverseerCache, classes, params, annotated, previous, background):
        self.store, self.policy, self.cache = session.store, policy, cache
        self.classes, self.params, self.annotated = classes, params, annotated
        # the frames go to the session's run sink, each recording the event log as it is then
        self.sink = session.run_sink(lambda: self.events_out, background=background)
        self.previous = previous
        self.on_disk = self.done = self.store.frames_done
        self.lag = max(params.backfill, params.disagree_frames - 1, params.fade_after - 1) if policy.live else 0
        self.pending: deque[list] = deque()  # [t, labels, overseer map] written `lag` frames late
        self.first = True
        self.last_prompt_frame = -1
        self.size = self.store.labels.shape[1:]
        # the event log as dicts, converted once each: the log only grows during a run (events are
        # frozen), and converting all of it for every frame would cost O(events) a frame
        self._dicts: list[dict] = []
        self.events_out = self.events_so_far()

    def events_so_far(self) -> list[dict]:
        if len(self._dicts) > len(self.policy.events):  # never expected; rebuild rather than trust it
            self._dicts.clear()
        self._dicts.extend(e.to_dict() for e in self.policy.events[len(self._dicts) :])
        return list(self._dicts)  # a copy: the store keeps what it is given

    def _new_events(self, n_before: int):
        yield from self.policy.events[n_before:]

    def prompt(self, s: int, reason: str) -> Generator:
        n_before = len(self.policy.events)
        if self.first or reason in ("buffer", "anchor") or self.params.mode != "default":
            # a segment start with a reset: resumable from here
            yield from self.write_pending(upto=None)  # the snapshot records the frames done so far
            yield from self.sink.flush()
            if s > 0 or self.done == 0:
                keep = self.previous if (self.params.merge_unlabelled or self.params.mode == "default") else None
                state = self.policy.export_state()
                self.store.save_snapshot({"frame": s, "reason": reason, "state": state}, keep)
            seg: SegmentStart = self.policy.start_segment(s, reason, self.previous)
        else:  # default mode: the new objects join the running tracker
            seg = self.policy.add_objects(s, reason)
        self.first = False
        yield from self._new_events(n_before)
        self.last_prompt_frame = seg.frame if not seg.reset or seg.frame > 0 else -1
        return seg

    def step(self, i: int, t: int, labels: np.ndarray, logits) -> Generator:
        default = self.params.mode == "default"
        live = self.policy.live
        visible = {obj: int(np.count_nonzero(labels == obj)) for obj in logits} if default else None
        n_before = len(self.policy.events)
        reason = self.policy.step(t, visible, labels if live else None)
        yield from self._new_events(n_before)
        restart = reason is not None and not (live and reason not in ("buffer", "anchor"))
        if restart and t == self.last_prompt_frame:
            # a decision to prompt again at the very frame just prompted cannot make progress
            # (the tracker's answer would be the same): go on instead of looping
            log.warning("frame %d: %s ignored, the frame was just prompted", t, reason)
            reason, restart = None, False
        if restart:
            self.previous = labels
            return Reprompt(reason)
        amend = None
        if reason is not None:  # consensus: applied live, frame t is not recomputed
            n_before = len(self.policy.events)
            amend = self.policy.amend(t, reason)
            yield from self._new_events(n_before)
        if amend is not None or (live and self.policy.take):
            labels = self._amended(t, labels, logits, amend)
        if t >= self.on_disk:
            no_label = self.classes.no_label
            if self.annotated is not None and t in self.annotated.masks:  # an annotated frame is the user's
                labels = self.annotated.exact(t, no_label)
            self.pending.append([t, labels, result_to_label_map(self.cache.masks(t) or {}, self.size, no_label)])
        for f, masks in (self.policy.fill if amend is not None else {}).items():
            self._fill(f, masks)
        yield from self.write_pending(upto=t - self.lag)
        self.cache.release_before(t - self.lag)
        return Amend(amend) if amend is not None else None

    def _amended(self, t: int, labels: np.ndarray, logits, seg: SegmentStart | None) -> np.ndarray:
        """Frame t's labels as the tracker gives them once prompted live at t (removed objects
        gone, a prompted object exactly its mask; points: the overseer's mask), with the classes
        the policy takes from the overseer at t (``policy.take``) as the overseer has them, except
        where the tracker shows a class it carries through the overseer's miss or glitch (a class
        not taken: the overseer's mask of another class may cover it, as a dropout leaves it to the
        background)."""
        res = self.cache.masks(t) or {}
        prompted = {}
        for p in seg.prompts if seg is not None else ():
            m = p.mask if p.kind == "mask" else res.get(p.obj_id)
            if m is not None:
                prompted[p.obj_id] = m
        taken = {c: res[c] for c in self.policy.take if c in res and c in logits}
        remove = set(seg.remove) if seg is not None else set()
        return amended_labels(labels, logits, self.classes, prompted, taken, remove)

    def _fill(self, f: int, masks: dict[int, np.ndarray | None]) -> None:
        """Frame f, if it is still waiting to be written (never an annotated frame), with each
        class of ``masks`` replaced by its mask (None: removed): pixels the class loses take the
        overseer's label there."""
        if self.annotated is not None and f in self.annotated.masks:
            return
        for entry in self.pending:
            if entry[0] == f:
                labels, overseer = entry[1].copy(), entry[2]
                for c, m in masks.items():
                    was = labels == c
                    labels[was] = overseer[was]
                    if m is not None:
                        labels[m] = c
                entry[1] = labels

    def write_pending(self, upto: int | None) -> Generator:
        """Write the waiting frames up to frame ``upto`` (None: all)."""
        while self.pending and (upto is None or self.pending[0][0] <= upto):
            t, labels, overseer = self.pending.popleft()
            self.events_out = self.events_so_far()
            yield from self.sink.put(t, labels, overseer)
            self.done = t + 1


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
    anchors: Anchors | None = None,
    background_writes: bool = True,
    config: dict | None = None,
) -> Generator[StoreOpened | FrameDone | Event, None, RunSummary]:
    """Run SASVi over ``frames`` into the store at ``out`` (created, or resumed if it matches).

    Args:
        frames: a :class:`FrameStack`, a path or an array (see :func:`~napari_sasvi.core.inputs.frames.open_frames`).
        overseer: an :class:`~napari_sasvi.core.overseers.base.Overseer`.
        tracker: a :class:`~napari_sasvi.core.trackers.base.Tracker`; ``reference`` mode needs a
            non-incremental one (the legacy SAM2 predictor), ``default`` mode an incremental one.
        cancel: polled between frames; True stops the run, keeping what is written.
        stop_after: stop once this many frames are on disk (tests of resuming).
        anchors: :class:`~napari_sasvi.core.inputs.anchors.Anchors`, annotated frames: they replace the
            overseer there, and SASVi re-prompts at each of them with the annotation (recorded in
            the store).
        background_writes: write each finished frame on a thread of its own while the next one is
            computed; :class:`FrameDone` still comes only once the frame is on disk. False writes
            on the calling thread (the same files).
        config: the run's :class:`~napari_sasvi.core.config.RunConfig` as a dict, recorded in the
            store (edits and exports rebuild from it).
    """
    t_start = time.perf_counter()
    stack = open_frames(frames)
    params = params or PolicyParams()
    if params.mode == "default" and not tracker.incremental:
        raise ValueError("default mode needs a tracker that adds objects without a reset (sam2's current predictor)")
    n = len(stack)
    check_output_path(out, "output store")
    stack.validate()  # every check that can run before the store exists runs now
    if anchors is not None:
        overseer = AnchoredOverseer(overseer, anchors, classes)
    store = open_store(stack, out, classes, run_signature(stack, overseer, tracker, classes, params))
    resumed_from = store.frames_done
    with store.session(stack, check="resume") as session:
        if config is not None:
            store.record_config(config)
        yield StoreOpened(str(out), resumed_from, n)
        if store.complete:
            return RunSummary(str(out), n, 0, resumed_from, False, 0.0, store.events, {})
        cache = OverseerCache(overseer, n, stack.frame, batch_size)
        policy = Policy(
            params, cache.masks, no_label=classes.no_label, anchors=getattr(overseer, "anchor_frames", ()),
            scores=cache.scores,
        )  # fmt: skip
        s, previous = 0, None
        snap = store.snapshot if resumed_from > 0 else None
        if snap is not None:
            policy.restore_state(snap["state"], [event_from_dict(e) for e in store.events])
            s, previous = int(snap["frame"]), store.load_previous_output()
            log.info("resuming %s: %d frames done, replaying from segment start %d", out, resumed_from, s)
        annotated = getattr(overseer, "anchors", None)
        planner = _RunPlanner(session, policy, cache, classes, params, annotated, previous, background_writes)
        sink = planner.sink
        first_reason = snap["reason"] if snap is not None else "start"

        def stop() -> bool:
            return (cancel is not None and cancel()) or (stop_after is not None and planner.done >= stop_after)

        # a resumed run starts again at its last segment start, with that start's reason
        stopped = yield from propagate_span(
            stack, tracker, planner, sink, classes, first=s, reason=first_reason, stop=stop
        )
        if not stopped:
            yield from planner.write_pending(upto=None)
        yield from sink.flush()
        events_out = planner.events_so_far() if not stopped else planner.events_out
        if not stopped:
            store.save_events(events_out)
        return RunSummary(
            str(out),
            n,
            sink.written,
            resumed_from,
            stopped,
            time.perf_counter() - t_start,
            events_out,
            dict(getattr(tracker, "encodes", {})),
        )


def run_sasvi(*args, progress=None, **kwargs) -> RunSummary:
    """Drive :func:`iter_sasvi` to the end; ``progress(done, total, fps)`` is called per frame."""

    def on_item(item):
        if progress is not None and isinstance(item, FrameDone):
            progress(item.done, item.total, item.fps)

    return drain(iter_sasvi(*args, **kwargs), on_item)


__all__ = ["input_signature", "iter_sasvi", "open_store", "run_sasvi", "run_signature"]
