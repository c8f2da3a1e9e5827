"""Edits of a finished SASVi store: corrections, pinned and skipped re-prompts, each recomputing
only the span it affects, each undoable.

A *segment boundary* is a frame where SASVi reset the tracker and prompted again: frame 0, every
``restart`` and ``anchor`` event of the run, every correction and pinned re-prompt, minus the
skipped ones. An edit recomputes the frames from its frame up to the next boundary (exclusive),
and never a frame past the last finished one:

* **correction** at t: the user's label map of frame t. It is written as given, becomes an anchor
  (a boundary, and an annotated frame that :func:`~.anchors.read_anchors` reads from the store),
  and the tracker propagates it forward to the next boundary.
* **pin** at f: a re-prompt the run did not make. The tracker is reset at f and prompted with the
  overseer's labels there (the store's overseer array, as masks); f..next boundary is recomputed.
* **skip** at f: a re-prompt the run made (a restart, or objects added) that should not be. The
  segment before it is continued through f: the tracker is prompted at the previous boundary with
  the store's labels there, propagated (frames before f are recomputed but not written) and f..next
  boundary is written.

Objects the run added inside the span (``add_objects`` events) are added again at their frames
from the store's overseer labels, so a correction does not lose a class that enters later; a
tracker that cannot add objects to a running segment stops the span there instead.

Every edit first saves the span's labels (``sasvi_undo/NNNN.npy``) and is recorded in
``sasvi_edits.json`` (atomic, rewritten after every frame: what was planned, how far it got, its
state). The store's attributes say ``"edited": true``. Nothing outside the span is written:
neither other frames, nor the overseer array, nor the run's progress and events, so resuming an
unfinished run stays exact (edits only touch finished frames, a resume only writes later ones).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .errors import InputError
from .fsutil import atomic_path, atomic_write_text
from .labels import UNLABELLED

EDITS = "sasvi_edits.json"
UNDO_DIR = "sasvi_undo"
KINDS = ("correction", "pin", "skip")
#: run events that start a segment (a reset and a new prompt)
BOUNDARY_EVENTS = ("restart", "anchor")


@dataclass(frozen=True)
class EditRequest:
    """What the user asks: ``kind`` (correction, pin, skip) at ``frame``; a correction's label map
    (H, W) in class ids in ``mask``."""

    kind: str
    frame: int
    mask: np.ndarray | None = None


@dataclass(frozen=True)
class EditPlan:
    """Where an edit prompts (``prompt_frame``) and which frames it writes (``start``..``stop``,
    inclusive); ``adds``: (frame, class ids) of objects added again inside the span."""

    kind: str
    frame: int
    prompt_frame: int
    start: int
    stop: int
    adds: tuple[tuple[int, tuple[int, ...]], ...] = ()

    @property
    def n_frames(self) -> int:
        return self.stop - self.start + 1


@dataclass(frozen=True)
class EditStarted:
    plan: EditPlan
    edit_id: int


@dataclass(frozen=True)
class EditSummary:
    edit_id: int
    kind: str
    frame: int
    start: int
    stop: int
    written: int  # frames written (start..start+written-1)
    cancelled: bool
    seconds: float


# -- the edit log ---------------------------------------------------------------------------------------
def read_edits(store_path: str | Path) -> list[dict]:
    """Every edit of the store, undone ones included (oldest first)."""
    p = Path(store_path) / EDITS
    if not p.exists():
        return []
    return json.loads(p.read_text(encoding="utf-8"))["edits"]


def active_edits(edits: list[dict]) -> list[dict]:
    return [e for e in edits if e["state"] != "undone"]


def _save_edits(store, edits: list[dict]) -> None:
    atomic_write_text(store.path / EDITS, json.dumps({"version": 1, "edits": edits}, indent=1))
    edited = bool(active_edits(edits))
    attrs = dict(store.group.attrs["sasvi"])
    if attrs.get("edited") != edited:
        attrs["edited"] = edited
        attrs["edits_log"] = EDITS
        store.group.attrs["sasvi"] = attrs


def store_anchor_frames(store, edits: list[dict] | None = None) -> list[int]:
    """Annotated frames of a store: the run's anchors and the active corrections."""
    sig_anchors = (store.signature.get("overseer") or {}).get("anchors") or {}
    frames = set(int(t) for t in sig_anchors.get("frames", []))
    edits = read_edits(store.path) if edits is None else edits
    frames |= {e["frame"] for e in active_edits(edits) if e["kind"] == "correction"}
    return sorted(frames)


def boundaries(store, edits: list[dict] | None = None) -> list[int]:
    """Segment boundaries (see the module docstring), ascending."""
    edits = read_edits(store.path) if edits is None else edits
    act = active_edits(edits)
    b = {0} | {int(e["frame"]) for e in store.events if e["kind"] in BOUNDARY_EVENTS}
    b |= set(store_anchor_frames(store, edits))
    b |= {e["frame"] for e in act if e["kind"] == "pin"}
    b -= {e["frame"] for e in act if e["kind"] == "skip"}
    return sorted(b)


def reprompts(store, edits: list[dict] | None = None) -> list[dict]:
    """The re-prompt timeline: the run's re-prompts (restarts, anchors, objects added) and the
    edits, each ``{"frame", "kind", "reason", "labels", "source": "run"|"edit", "skipped"}``."""
    edits = read_edits(store.path) if edits is None else edits
    act = active_edits(edits)
    skipped = {e["frame"] for e in act if e["kind"] == "skip"}
    rows = []
    for e in store.events:
        if e["kind"] in (*BOUNDARY_EVENTS, "add_objects"):
            labels = e.get("mask_labels", []) + e.get("point_labels", []) + e.get("labels", [])
            rows.append(
                {
                    "frame": int(e["frame"]),
                    "kind": e["kind"],
                    "reason": e.get("reason", ""),
                    "labels": labels,
                    "source": "run",
                    "skipped": int(e["frame"]) in skipped,
                }
            )
    for e in act:
        if e["kind"] != "skip":
            rows.append(
                {
                    "frame": e["frame"],
                    "kind": "corrected" if e["kind"] == "correction" else "pinned",
                    "reason": f"edit {e['id']}: frames {e['span'][0]}-{e['span'][1]} recomputed ({e['state']})",
                    "labels": [],
                    "source": "edit",
                    "skipped": False,
                }
            )
    return sorted(rows, key=lambda r: (r["frame"], r["source"]))


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
    run_adds = {}
    for e in store.events:
        if e["kind"] == "add_objects":
            run_adds.setdefault(int(e["frame"]), []).extend(e.get("mask_labels", []) + e.get("point_labels", []))
    skipped = {e["frame"] for e in act if e["kind"] == "skip"}
    prompt_frame = start = t
    if request.kind == "skip":
        annotated = set(store_anchor_frames(store, edits))
        if t == 0:
            raise InputError("Frame 0 starts the video: its prompt cannot be skipped (correct the frame instead).")
        if t in annotated:
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


# -- running --------------------------------------------------------------------------------------------
def _check_mask(mask: np.ndarray, store) -> np.ndarray:
    classes = store.classes
    h, w = store.labels.shape[1:]
    mask = np.asarray(mask)
    if mask.shape != (h, w):
        raise InputError(f"The corrected frame is {mask.shape[1]}x{mask.shape[0]} pixels but the store's are {w}x{h}.")
    allowed = set(classes.ids) | {classes.no_label, UNLABELLED}
    bad = sorted(set(np.unique(mask).tolist()) - allowed)
    if bad:
        raise InputError(
            f"The corrected frame holds label(s) {', '.join(map(str, bad[:8]))} that are not classes of "
            f"{classes.name} (ids {min(classes.ids)}-{max(classes.ids)}, no label {classes.no_label}): "
            "paint with the table's ids."
        )
    return mask.astype(np.uint8)


def _check_frames(stack, store):
    """Refuse frames that are not the store's video; returns the input ledger, which checks every
    frame the edit reads against the run's."""
    from .fingerprint import InputLedger, same_video

    want = store.signature.get("input", {})
    if not same_video(stack, want):
        raise InputError(
            f"These frames ({stack.name}, {stack.shape[0]} frames) are not the video {store.path} was made from "
            f"({want.get('name')}); open the store's own frames to edit it."
        )
    ledger = InputLedger(store.group, stack, str(store.path))
    ledger.spot_check(store.frames_done)
    return ledger


def iter_edit(
    store_path: str | Path,
    frames,
    tracker,
    request: EditRequest,
    *,
    cancel: Callable[[], bool] | None = None,
) -> Generator:
    """Make one edit of the store at ``store_path`` (module docstring) with ``tracker`` over
    ``frames`` (the store's video). Yields :class:`EditStarted`, then
    :class:`~.pipeline.FrameDone` per written frame (``done``/``total`` count the span); returns
    an :class:`EditSummary`. Cancel stops between frames: the frames written stay (Undo restores
    them too)."""
    from .frames import open_frames
    from .store import SasviStore

    t0 = time.perf_counter()
    store = SasviStore.read(store_path, writable=True)
    stack = open_frames(frames)
    ledger = _check_frames(stack, store)
    classes = store.classes
    edits = read_edits(store.path)
    plan = plan_edit(store, request, incremental=getattr(tracker, "incremental", False), edits=edits)
    h, w = stack.frame_size
    if request.kind == "correction":
        if request.mask is None:
            raise InputError("A correction needs the corrected frame's labels.")
        prompt = _check_mask(request.mask, store)
    elif request.kind == "pin":
        prompt = np.asarray(store.overseer[plan.prompt_frame])
    else:
        prompt = np.asarray(store.labels[plan.prompt_frame])
    from .anchors import _ids

    ids = _ids(prompt, classes)  # the classes an annotation prompts, as for anchors
    if not ids:
        where = "the overseer's labels" if request.kind == "pin" else "the labels"
        raise InputError(f"Nothing to prompt with: {where} at frame {plan.prompt_frame} hold no class.")

    edit_id = 1 + max((e["id"] for e in edits), default=0)
    (store.path / UNDO_DIR).mkdir(exist_ok=True)
    undo = f"{UNDO_DIR}/{edit_id:04d}.npy"
    with atomic_path(store.path / undo) as tmp:
        np.save(tmp, np.asarray(store.labels[plan.start : plan.stop + 1]))
    record = {
        "id": edit_id,
        "kind": plan.kind,
        "frame": plan.frame,
        "prompt_frame": plan.prompt_frame,
        "span": [plan.start, plan.stop],
        "adds": [[f, list(c)] for f, c in plan.adds],
        "written": 0,
        "state": "running",
        "undo": undo,
        "tracker": tracker.describe(),
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    edits = [*edits, record]
    _save_edits(store, edits)
    yield EditStarted(plan, edit_id)

    def finish(state: str) -> EditSummary:
        record["state"] = state
        record["seconds"] = round(time.perf_counter() - t0, 3)
        _save_edits(store, edits)
        return EditSummary(
            edit_id,
            plan.kind,
            plan.frame,
            plan.start,
            plan.stop,
            record["written"],
            state == "cancelled",
            time.perf_counter() - t0,
        )

    with ledger.reading(stack):
        return (yield from _propagate(store, stack, tracker, request, plan, prompt, ids, record, edits, finish, cancel))


def _propagate(store, stack, tracker, request, plan, prompt, ids, record, edits, finish, cancel):
    from .anchors import FrameRange
    from .pipeline import FrameDone
    from .trackers.base import compose_labels

    classes = store.classes
    h, w = stack.frame_size
    view = FrameRange(stack, plan.prompt_frame, plan.stop)
    tracker.bind(view)
    tracker.reset()
    for c in ids:
        tracker.add_mask(0, c, prompt == c)
    adds = {f - plan.prompt_frame: c for f, c in plan.adds}
    t_run, i_from = time.perf_counter(), 0
    while True:
        added_at = None
        for i, logits in tracker.propagate(i_from):
            t = view.time(i)
            if i in adds and i != i_from:
                added_at = i
                break
            if t < plan.start:
                continue
            if request.kind == "correction" and t == plan.frame:
                # unlabelled pixels (255, e.g. a ground truth's ignore value) prompt nothing and
                # are written as the table's no-label, as for anchors
                labels = np.where(prompt == UNLABELLED, np.uint8(classes.no_label), prompt)
            else:
                labels = compose_labels(logits, (h, w), classes.no_label, classes.ids)
            store.labels[t] = labels
            record["written"] = t - plan.start + 1
            _save_edits(store, edits)
            elapsed = time.perf_counter() - t_run
            yield FrameDone(t, record["written"], plan.n_frames, record["written"] / elapsed if elapsed > 0 else 0.0)
            if cancel is not None and cancel() and t < plan.stop:
                return finish("cancelled")
        if added_at is None:
            break
        ov = np.asarray(store.overseer[view.time(added_at)])
        for c in adds[added_at]:
            m = ov == c
            if m.any():
                tracker.add_mask(added_at, c, m)
        i_from = added_at
    return finish("done")


def run_edit(store_path, frames, tracker, request: EditRequest, **kwargs) -> EditSummary:
    """Drive :func:`iter_edit` to the end."""
    gen = iter_edit(store_path, frames, tracker, request, **kwargs)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def undo_edit(store_path: str | Path) -> dict | None:
    """Undo the last edit still in effect: its frames get back the labels they had before it.
    Returns that edit's record (state ``undone``), or None when there is nothing to undo."""
    from .store import SasviStore

    store = SasviStore.read(store_path, writable=True)
    edits = read_edits(store.path)
    act = active_edits(edits)
    if not act:
        return None
    rec = act[-1]
    undo = store.path / rec["undo"]
    if rec["written"]:
        if not undo.exists():
            raise InputError(f"The undo data of edit {rec['id']} ({undo}) is missing; the edit cannot be undone.")
        before = np.load(undo, allow_pickle=False)
        a = rec["span"][0]
        store.labels[a : a + rec["written"]] = before[: rec["written"]]
    rec["state"] = "undone"
    _save_edits(store, edits)
    undo.unlink(missing_ok=True)
    return rec


class PaintOverlay:
    """A store's labels as an array that can be painted on (a napari labels layer's data): reads
    go to the store, except the frames painted since, which stay in memory (``pending``) until an
    edit writes them or they are discarded. The store itself is never written here."""

    def __init__(self, labels):
        self.base = labels
        self.shape = tuple(labels.shape)
        self.dtype = np.dtype(labels.dtype)
        self.ndim = len(self.shape)
        self.pending: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.shape[0]

    def frame(self, t: int) -> np.ndarray:
        t = int(t)
        return self.pending[t] if t in self.pending else np.asarray(self.base[t])

    @staticmethod
    def _key(key) -> tuple:
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis for k in key):
            i = key.index(Ellipsis)
            key = key[:i] + (slice(None),) * (3 - len(key) + 1) + key[i + 1 :]
        return key + (slice(None),) * (3 - len(key))

    def __getitem__(self, key):
        key = self._key(key)
        if any(isinstance(k, (np.ndarray, list)) for k in key):  # fancy: napari's painting
            idx = np.broadcast_arrays(*[np.asarray(k) for k in key])
            out = np.empty(idx[0].shape, self.dtype)
            for t in np.unique(idx[0]):
                sel = idx[0] == t
                out[sel] = self.frame(t)[idx[1][sel], idx[2][sel]]
            return out
        if not self.pending:
            return np.asarray(self.base[key])
        t, rest = key[0], key[1:]
        if isinstance(t, (int, np.integer)):
            return self.frame(t)[rest]
        ts = range(*t.indices(self.shape[0]))
        return np.stack([self.frame(f)[rest] for f in ts]) if len(ts) else np.asarray(self.base[key])

    def __setitem__(self, key, value) -> None:
        key = self._key(key)
        if any(isinstance(k, (np.ndarray, list)) for k in key):
            idx = np.broadcast_arrays(*[np.asarray(k) for k in key])
            value = np.broadcast_to(np.asarray(value, self.dtype), idx[0].shape)
            for t in np.unique(idx[0]):
                sel = idx[0] == t
                self._own(t)[idx[1][sel], idx[2][sel]] = value[sel]
            return
        t, rest = key[0], key[1:]
        ts = [int(t)] if isinstance(t, (int, np.integer)) else list(range(*t.indices(self.shape[0])))
        value = np.asarray(value, self.dtype)
        for k, f in enumerate(ts):
            self._own(f)[rest] = value if value.ndim < 3 or isinstance(t, (int, np.integer)) else value[k]

    def _own(self, t) -> np.ndarray:
        t = int(t)
        if t not in self.pending:
            self.pending[t] = np.array(self.base[t], copy=True)
        return self.pending[t]

    def __array__(self, dtype=None, copy=None):
        out = np.asarray(self.base[:])
        if self.pending:
            out = out.copy()
            for t, m in self.pending.items():
                out[t] = m
        return out if dtype is None else out.astype(dtype)

    def changed(self) -> list[int]:
        """Painted frames that differ from the store (painting back to the stored labels is no edit)."""
        return sorted(t for t, m in self.pending.items() if not np.array_equal(m, np.asarray(self.base[t])))


__all__ = [
    "EditPlan",
    "EditRequest",
    "EditStarted",
    "EditSummary",
    "PaintOverlay",
    "active_edits",
    "boundaries",
    "iter_edit",
    "plan_edit",
    "read_edits",
    "reprompts",
    "run_edit",
    "store_anchor_frames",
    "undo_edit",
]
