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
from collections.abc import Callable, Generator

from ..datasets import ClassTable
from ..fsutil import check_output_path
from ..inputs.anchors import AnchoredOverseer, Anchors
from ..inputs.frames import FrameStack, open_frames
from ..instances.identity import IdentityCache, IdentityParams
from ..overseers.base import OverseerCache
from ..policy import Event, Policy, PolicyParams, event_from_dict
from ..progress import drain
from ..records import FrameDone, RunSummary, StoreOpened
from ..store.fingerprint import structural_fingerprint
from ..store.sasvi_store import SasviStore
from .instances import InstancePlanner, TrackSpace, prepare_instances
from .run_planner import RunPlanner
from .span import propagate_span

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


def open_store(
    stack: FrameStack, out: str, classes: ClassTable, signature: dict, instances: bool = False
) -> SasviStore:
    """Create the store at ``out``, or reopen it for a resume (refused under another signature).
    The run records its config once it holds the store's lock (a run refused as busy changes
    nothing)."""
    return SasviStore.open(
        out, n_frames=len(stack), frame_size=stack.frame_size, classes=classes, signature=signature,
        frames_path=stack.path, instances=instances,
    )  # fmt: skip


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
    instances: IdentityParams | None = None,
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
        instances: instance mode (:mod:`.instances`): each object the overseer (an
            :class:`~napari_sasvi.core.instances.types.InstanceOverseer`) gives becomes a track with
            a stable id, made by these parameters; the store gets a ``tracks`` array and table.
    """
    t_start = time.perf_counter()
    stack = open_frames(frames)
    params = params or PolicyParams()
    if params.mode == "default" and not tracker.incremental:
        raise ValueError("default mode needs a tracker that adds objects without a reset (sam2's current predictor)")
    n = len(stack)
    check_output_path(out, "output store")
    stack.validate()  # every check that can run before the store exists runs now
    sparse = None
    if instances is not None:
        params, instances, sparse = prepare_instances(overseer, n, params, instances, anchors)
    if anchors is not None:
        overseer = AnchoredOverseer(overseer, anchors, classes)
    signature = run_signature(stack, overseer, tracker, classes, params)
    if instances is not None:
        signature["instances"] = instances.to_dict()
    store = open_store(stack, out, classes, signature, instances=instances is not None)
    resumed_from = store.frames_done
    with store.session(stack, check="resume") as session:
        if config is not None:
            store.record_config(config)
        yield StoreOpened(str(out), resumed_from, n)
        if store.complete:
            return RunSummary(str(out), n, 0, resumed_from, False, 0.0, store.events, {})
        if instances is not None:
            cache = IdentityCache(overseer, n, stack.frame, batch_size, instances)
            space = TrackSpace(cache)
        else:
            cache, space = OverseerCache(overseer, n, stack.frame, batch_size), classes
        policy = Policy(
            params, cache.masks, no_label=space.no_label,
            anchors=sparse if sparse is not None else getattr(overseer, "anchor_frames", ()),
            scores=cache.scores, known=sparse.__contains__ if sparse is not None else None,
        )  # fmt: skip
        s, previous = 0, None
        snap = store.snapshot if resumed_from > 0 else None
        if snap is not None:
            policy.restore_state(snap["state"], [event_from_dict(e) for e in store.events])
            s, previous = int(snap["frame"]), store.load_previous_output()
            if instances is not None:
                cache.restore_state(snap["state"]["identity"])
            log.info("resuming %s: %d frames done, replaying from segment start %d", out, resumed_from, s)
        annotated = getattr(overseer, "anchors", None)
        if instances is not None:
            planner = InstancePlanner(session, policy, cache, classes, params, previous, background_writes)
        else:
            planner = RunPlanner(session, policy, cache, classes, params, annotated, previous, background_writes)
        sink = planner.sink
        first_reason = snap["reason"] if snap is not None else "start"

        def stop() -> bool:
            return (cancel is not None and cancel()) or (stop_after is not None and planner.done >= stop_after)

        # a resumed run starts again at its last segment start, with that start's reason
        stopped = yield from propagate_span(
            stack, tracker, planner, sink, space, first=s, reason=first_reason, stop=stop
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
