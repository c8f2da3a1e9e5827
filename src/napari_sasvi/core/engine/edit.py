"""Edits of a finished SASVi store: corrections, pinned and skipped re-prompts, each recomputing
only the span it affects, each undoable.

An edit recomputes the frames from its frame up to the next segment boundary (exclusive; see
:mod:`~napari_sasvi.core.store.edit_log`), and never a frame past the last finished one:

* **correction** at t: the user's label map of frame t. It is written as given, becomes an anchor
  (a boundary, and an annotated frame that :func:`~napari_sasvi.core.inputs.anchors.read_anchors` reads
  from the store), and the tracker propagates it forward to the next boundary.
* **pin** at f: a re-prompt the run did not make. The tracker is reset at f and prompted with the
  overseer's labels there (the store's overseer array, as masks); f..next boundary is recomputed.
* **skip** at f: a re-prompt the run made (a restart, or objects added) that should not be. The
  segment before it is continued through f: the tracker is prompted at the previous boundary with
  the store's labels there, propagated (frames before f are recomputed but not written) and f..next
  boundary is written.

Objects the run added inside the span (``add_objects`` events) are added again at their frames
from the store's overseer labels, so a correction does not lose a class that enters later; a
tracker that cannot add objects to a running segment stops the span there instead.

**Re-adds** (corrections and pins, ``readd=True``): after the edit's frame, a class that the
store's overseer maps show at t..t+persistence (the run's own ``persistence``) and that the
tracker does not see at t (fewer than ``min_visible`` pixels in the edit's labels, and less than
half the overseer's mask of it) joins the running tracker at t with the overseer's mask, live
(:class:`~.span.Amend`: no reset, frame t is not recomputed), as the run's policy adds a new class.
Without it a class the corrected frame lacks came back only at the next re-seed, up to ``buffer``
frames later. The edit's own frame is the user's word: nothing is added there. The additions are
in the edit's record (``readds``: ``{"frame", "class"}``) and its :class:`EditSummary`. A skip
continues the run's segment as it was and re-adds nothing.

**Consensus** (corrections and pins of a run made with consensus, ``consensus=True``): the classes
the corrected frame leaves as the overseer had them stay on the overseer in the span, as in the
run; the classes the user changed follow the tracker (:mod:`.edit_consensus`). Re-prompts are in
the edit's record (``reprompts``).

An edit is a planner for the span engine (:func:`~.span.propagate_span`) over the span's frames,
written through a store session (:meth:`~napari_sasvi.core.store.sasvi_store.SasviStore.session`), which holds
the store's writer lock, saves the undo data first and keeps the edit log. It uses the tracker
the store was made with: another one is refused unless asked for (``other_tracker``), and then
recorded in the edit log. Nothing outside the span is written.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..inputs.anchors import prompt_classes
from ..inputs.frames import open_frames
from ..inputs.labels import UNLABELLED
from ..instances.types import NO_TRACK
from ..policy import PolicyParams, Prompt, SegmentStart
from ..progress import drain
from ..records import EditPlan, EditStarted, EditSummary
from ..store.edit_log import KINDS, active_edits, boundaries, read_edits, store_anchor_frames
from ..store.fingerprint import same_video
from ..store.sasvi_store import SasviStore
from .anchored import mask_prompts
from .edit_checks import check_mask, check_tracker, describe_tracker
from .edit_consensus import EditConsensus
from .edit_tracks import EditTrackSpace, check_track_mask, class_lut, rescan_track_table
from .span import Amend, FrameRange, Reprompt, Write, amended_labels, propagate_span


@dataclass(frozen=True)
class EditRequest:
    """What the user asks: ``kind`` (correction, pin, skip) at ``frame``; a correction's label map
    (H, W) in class ids in ``mask`` (an instance store's: its track ids, with ``new_tracks``, track
    id -> class id, for ids the store does not have; see :mod:`.edit_tracks`). ``prompt``: the
    clicks/box/mask the correction was made from (:mod:`~napari_sasvi.core.prompts`), kept in its record."""

    kind: str
    frame: int
    mask: np.ndarray | None = None
    new_tracks: dict[int, int] | None = None
    prompt: dict | None = None


# -- planning -------------------------------------------------------------------------------------------
def plan_edit(store, request: EditRequest, *, incremental: bool = True, edits: list[dict] | None = None) -> EditPlan:
    """The span an edit recomputes (module docstring). Raises :class:`InputError` for an edit that
    cannot be made (a frame not yet computed, a skip of a frame that is no re-prompt, ...)."""
    edits = read_edits(store.path) if edits is None else edits
    if request.kind not in KINDS:
        raise InputError(f"Unknown edit {request.kind!r}: choose one of {', '.join(KINDS)}.")
    t, done, n = int(request.frame), store.frames_done, store.n_frames
    if not 0 <= t < n:
        raise InputError(f"Frame {t} is not in the video (frames 0-{n - 1}).")
    if t >= done:
        raise InputError(
            f"Frame {t} is not computed yet ({done} of {n} frames are): run or resume SASVi first, then edit."
        )
    bounds = boundaries(store, edits)
    act = active_edits(edits)
    run_adds: dict[int, list[int]] = {}
    for e in store.events:
        if e["kind"] == "add_objects":
            run_adds.setdefault(int(e["frame"]), []).extend(e.get("mask_labels", []) + e.get("point_labels", []))
    skipped = {e["frame"] for e in act if e["kind"] == "skip"}
    prompt_frame = start = t
    if request.kind == "skip":
        _check_skip(t, store, edits, act, bounds, run_adds, skipped)
        prompt_frame = max(b for b in bounds if b < t)
    elif request.kind == "pin" and t in bounds:
        raise InputError(f"SASVi already re-prompts at frame {t}.")
    after = [b for b in bounds if b > t]
    stop = min(after[0] if after else n, done) - 1
    adds = []
    for f in sorted(run_adds):
        if prompt_frame < f <= stop and f not in skipped and not (request.kind == "skip" and f == t):
            if not incremental:
                stop = f - 1  # this tracker cannot add objects to a running segment: end there
                break
            adds.append((f, tuple(sorted(set(run_adds[f])))))
    return EditPlan(request.kind, t, prompt_frame, start, stop, tuple(adds))


def _check_skip(t, store, edits, act, bounds, run_adds, skipped) -> None:
    if t == 0:
        raise InputError("Frame 0 starts the video: its prompt cannot be skipped (correct the frame instead).")
    if t in set(store_anchor_frames(store, edits)):
        raise InputError(f"Frame {t} is an annotated frame (an anchor): undo or correct it instead of skipping.")
    if any(e["kind"] == "pin" and e["frame"] == t for e in act):
        raise InputError(f"Frame {t} is a pinned re-prompt: undo that edit instead of skipping it.")
    if t in skipped:
        raise InputError(f"The re-prompt at frame {t} is already skipped.")
    if t not in bounds and t not in run_adds:
        raise InputError(
            f"SASVi did not re-prompt at frame {t}: only a restart or an object added can be skipped "
            f"(re-prompts: {', '.join(str(b) for b in sorted(set(bounds) | set(run_adds)))})."
        )


# -- running --------------------------------------------------------------------------------------------
def _run_param(store, name: str) -> int:
    """A policy parameter of the store's run: its recorded config, else its signature, else the default."""
    for src in ((store.config or {}).get("policy") or {}, store.signature.get("params") or {}):
        if src.get(name) is not None:
            return int(src[name])
    return int(getattr(PolicyParams(), name))


class _Readds:
    """Which classes the overseer sees that the tracker lost (module docstring, re-adds): the
    store's overseer maps over t..t+persistence, read once each."""

    def __init__(self, store, first: int):
        self.store, self.classes = store, store.classes
        self.first = first  # re-adds start after the edit's own frame
        self.persistence = _run_param(store, "persistence")
        self.min_visible = _run_param(store, "min_visible")
        self.last = store.frames_done - 1  # the overseer's maps exist up to the last finished frame
        self.maps: dict[int, tuple[np.ndarray, set[int]]] = {}
        self.added: dict[int, int] = {}  # class -> frame it was last prompted at
        self.done: list[dict] = []

    def _map(self, t: int) -> tuple[np.ndarray, set[int]]:
        if t not in self.maps:
            ov = np.asarray(self.store.overseer[t])
            self.maps[t] = ov, set(prompt_classes(ov, self.classes))
        return self.maps[t]

    def due(self, t: int, labels: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """(class, overseer mask) of the classes to add at frame t."""
        if t < self.first:
            return []
        for old in [f for f in self.maps if f < t]:
            del self.maps[old]
        ov, present = self._map(t)
        out = []
        for c in sorted(present):
            if t - self.added.get(c, -(10**9)) <= self.persistence:
                continue  # just prompted: the tracker gets time before it is prompted again, as in the run
            n = int(np.count_nonzero(labels == c))
            m = ov == c
            if n >= self.min_visible or (n > 0 and 2 * n >= np.count_nonzero(m)):
                continue  # the tracker sees it (a class smaller than min_visible: half its mask)
            if all(c in self._map(f)[1] for f in range(t + 1, min(t + self.persistence, self.last) + 1)):
                out.append((c, m))
        return out

    def note(self, t: int, classes, *, readd: bool) -> None:
        for c in classes:
            self.added[int(c)] = t
            if readd:
                self.done.append({"frame": int(t), "class": int(c)})


class _EditPlanner:
    """An edit as the span engine's planner: prompted at the span's first frame, objects the run
    added re-added at their frames, classes the tracker lost re-added live (``readds``), the
    frames from ``plan.start`` on written."""

    def __init__(
        self, store, request: EditRequest, plan: EditPlan, prompt: np.ndarray, ids: list[int], readds: _Readds | None
    ):
        self.store, self.request, self.plan, self.prompt_mask, self.ids = store, request, plan, prompt, ids
        self.adds = {f - plan.prompt_frame: c for f, c in plan.adds}
        self.readds = readds
        self.instance = store.tracks is not None  # an instance store: prompts and frames are track ids
        self.consensus: EditConsensus | None = None  # the run's consensus for the classes the user confirmed
        self.waiting: list[tuple[int, np.ndarray]] = []  # re-adds that join a run's add at its frame
        self.prompted = 0
        self.t = plan.prompt_frame

    def prompt(self, i: int, reason: str) -> Generator:
        self.prompted = i
        if reason == "start":
            return mask_prompts(0, self.prompt_mask, self.ids)
        t = self.plan.prompt_frame + i
        # the run's additions at t again: from the overseer's labels there (an instance store keeps
        # the overseer's classes only: each added track with its mask as the run wrote it)
        ov = np.asarray(self.store.tracks[t] if self.instance else self.store.overseer[t])
        masks = [(c, ov == c) for c in self.adds[i]]
        masks = [(c, m) for c, m in masks if m.any()]
        if self.readds is not None:
            self.readds.note(t, [c for c, _ in masks], readd=False)
            extra = [(c, m) for c, m in self.waiting if c not in self.adds[i]]
            self.readds.note(t, [c for c, _ in extra], readd=True)
            masks += extra
        self.waiting = []
        return SegmentStart(frame=i, reset=False, prompts=tuple(Prompt(c, "mask", mask=m) for c, m in masks))
        yield  # a generator that decides nothing

    def step(self, i: int, t: int, labels: np.ndarray, logits) -> Generator:
        self.t = t
        fresh = i == self.prompted  # the frame just prompted: its labels already answer the prompt
        if i in self.adds and not fresh:
            if self.readds is not None:
                self.waiting = self.readds.due(t, labels)
            return Reprompt("add_objects")
        due = self.readds.due(t, labels) if self.readds is not None and not fresh else []
        take, again = {}, []
        if self.consensus is not None and t > self.plan.frame:
            take, again = self.consensus.step(t, labels, np.asarray(self.store.overseer[t]))
        if not due and not take:
            return self._labels(t, labels)
        if due:
            self.readds.note(t, [c for c, _ in due], readd=True)
        due += [(c, take[c]) for c in again if c not in dict(due)]
        # the frame as the tracker gives it once prompted live at t, with the classes consensus
        # takes from the overseer as the overseer has them
        amended = amended_labels(labels, logits, self.store.classes, dict(due), take)
        if not due:
            return self._labels(t, amended)
        prompt = SegmentStart(frame=i, reset=False, prompts=tuple(Prompt(c, "mask", mask=m) for c, m in due))
        return Amend(prompt, self._labels(t, amended))
        yield

    def _labels(self, t: int, labels: np.ndarray) -> Write | None:
        if t < self.plan.start:
            return None
        if self.request.kind == "correction" and t == self.plan.frame and self.instance:
            return Write(self.prompt_mask)
        if self.request.kind == "correction" and t == self.plan.frame:
            # unlabelled pixels (255, e.g. a ground truth's ignore value) prompt nothing and are
            # written as the table's no-label, as for anchors
            no_label = np.uint8(self.store.classes.no_label)
            return Write(np.where(self.prompt_mask == UNLABELLED, no_label, self.prompt_mask))
        return Write(labels)


def iter_edit(
    store_path: str | Path,
    frames,
    tracker,
    request: EditRequest,
    *,
    cancel: Callable[[], bool] | None = None,
    other_tracker: bool = False,
    readd: bool = True,
    consensus: bool = True,
) -> Generator:
    """Make one edit of the store at ``store_path`` (module docstring) with ``tracker`` over
    ``frames`` (the store's video). Yields :class:`~napari_sasvi.core.records.EditStarted`, then
    :class:`~napari_sasvi.core.records.FrameDone` per written frame (``done``/``total`` count the span); returns an
    :class:`~napari_sasvi.core.records.EditSummary`. Cancel stops between frames: the frames written stay (Undo
    restores them too). ``readd``: re-add the classes the overseer sees and the tracker lost after
    a correction or a pin (module docstring); False propagates the edit's prompt alone (the run's
    own additions are still made again).

    Raises:
        InputError: frames of another video; a tracker other than the store's (unless
            ``other_tracker``); an edit that cannot be made (see :func:`plan_edit`).
        StoreBusyError: a run or another edit is writing the store.
    """
    t0 = time.perf_counter()
    store = SasviStore.read(store_path, writable=True)
    stack = open_frames(frames)
    want = store.signature.get("input", {})
    if not same_video(stack, want):
        raise InputError(
            f"These frames ({stack.name}, {stack.shape[0]} frames) are not the video {store.path} was made from "
            f"({want.get('name')}); open the store's own frames to edit it."
        )
    same_tracker = check_tracker(store, tracker, other_tracker)
    instance = store.tracks is not None
    new_tracks = dict(request.new_tracks or {})
    if instance and request.kind == "pin":
        raise InputError(
            "An instance store keeps the overseer's classes, not its instances: a pin cannot prompt tracks. "
            "Correct the frame instead (paint the tracks)."
        )
    with store.session(stack, check="spot") as session:
        plan = plan_edit(store, request, incremental=getattr(tracker, "incremental", False), edits=session.edits)
        if request.kind == "correction":
            if request.mask is None:
                raise InputError("A correction needs the corrected frame's labels.")
            prompt = check_track_mask(request.mask, store, new_tracks) if instance else check_mask(request.mask, store)
        elif request.kind == "pin":
            prompt = np.asarray(store.overseer[plan.prompt_frame])
        else:
            prompt = np.asarray((store.tracks if instance else store.labels)[plan.prompt_frame])
        if instance:  # the tracks the frame holds
            ids = [int(k) for k in np.unique(prompt) if k != NO_TRACK]
            readd = consensus = False  # per-track re-adds and consensus: not in edits of instance stores yet
        else:
            ids = prompt_classes(prompt, store.classes)  # the classes an annotation prompts, as for anchors
        if not ids:
            where = "the overseer's labels" if request.kind == "pin" else "the labels"
            raise InputError(f"Nothing to prompt with: {where} at frame {plan.prompt_frame} hold no class.")
        record = {
            "kind": plan.kind,
            "frame": plan.frame,
            "prompt_frame": plan.prompt_frame,
            "span": [plan.start, plan.stop],
            "adds": [[f, list(c)] for f, c in plan.adds],
            "tracker": tracker.describe(),
        }
        if request.prompt is not None:
            record["prompt"] = request.prompt  # exported and replayed by napari_sasvi.core.prompts.files
        if new_tracks:
            record["new_tracks"] = {str(k): int(c) for k, c in sorted(new_tracks.items())}
        if not same_tracker:
            record["other_tracker"] = True  # the user asked for a tracker other than the store's
        readds = None
        if readd and request.kind in ("correction", "pin") and getattr(tracker, "incremental", False):
            readds = _Readds(store, plan.frame + 1)
            record["readds"] = readds.done  # filled in as the edit goes; saved with every frame
        lut = class_lut(store.track_table, new_tracks, store.classes.no_label) if instance else None
        sink = session.begin_edit(record, track_classes=lut)
        planner = _EditPlanner(store, request, plan, prompt, ids, readds)
        if consensus and request.kind in ("correction", "pin") and getattr(tracker, "incremental", False):
            planner.consensus = EditConsensus(store, plan.prompt_frame, prompt)
            record["reprompts"] = planner.consensus.reprompted  # filled in as the edit goes

        def stop() -> bool:  # after a written frame (an edit in effect wrote its first one), not the last
            return cancel is not None and plan.start <= planner.t < plan.stop and cancel()

        view = FrameRange(stack, plan.prompt_frame, plan.stop)
        space = EditTrackSpace(set(store.track_table) | set(new_tracks)) if instance else store.classes
        state = "done"
        try:
            yield EditStarted(plan, record["id"])  # from here on the record ends in a state of its own
            if (yield from propagate_span(view, tracker, planner, sink, space, stop=stop)):
                state = "cancelled"
        except GeneratorExit:  # the caller stopped the edit between frames: what is written stays
            state = "cancelled"
            raise
        except BaseException:
            state = "failed"
            raise
        finally:
            if instance:
                rescan_track_table(store, new_tracks)
            session.end_edit(record, state, time.perf_counter() - t0)
        return EditSummary(
            record["id"], plan.kind, plan.frame, plan.start, plan.stop, record["written"], state == "cancelled",
            time.perf_counter() - t0, tuple((r["frame"], r["class"]) for r in record.get("readds", ())),
        )  # fmt: skip


def run_edit(store_path, frames, tracker, request: EditRequest, **kwargs) -> EditSummary:
    """Drive :func:`iter_edit` to the end."""
    return drain(iter_edit(store_path, frames, tracker, request, **kwargs))


def undo_edit(store_path: str | Path) -> dict | None:
    """Undo the last edit still in effect: its frames get back the labels they had before it.
    Returns that edit's record (state ``undone``), or None when there is nothing to undo.
    Takes the store's writer lock (:class:`~napari_sasvi.core.errors.StoreBusyError` while a run
    or an edit writes it)."""
    store = SasviStore.read(store_path, writable=True)
    with store.session() as session:
        rec = session.undo()
        if rec is not None and store.tracks is not None:
            rescan_track_table(store, {int(k): int(c) for k, c in rec.get("new_tracks", {}).items()})
        return rec


__all__ = [
    "EditPlan",
    "EditRequest",
    "EditStarted",
    "EditSummary",
    "check_tracker",
    "describe_tracker",
    "iter_edit",
    "plan_edit",
    "run_edit",
    "undo_edit",
]
