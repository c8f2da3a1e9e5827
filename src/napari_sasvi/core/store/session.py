"""A store session: everything that writes into a SASVi store, held for the length of one run,
anchors run or edit (:meth:`~.store.SasviStore.session`).

The session owns

* the store's **writer lock**, taken when it opens and always released when it ends (an error,
  a closed generator, an interrupt): one writer at a time, edits included;
* the **input ledger** (:class:`~.fingerprint.InputLedger`): every frame read while it is open is
  hashed and compared with the run's, and the hashes land in the store when it ends;
* the **sinks** the span engine writes finished frames into: a run's in-order frames on the
  store's own thread (:class:`RunSink`), a span written backwards and recorded at its end
  (:class:`UnfinishedSink`), an edit's recomputed frames (:class:`EditSink`);
* the **edit log** and the undo data (:meth:`StoreSession.begin_edit`, :meth:`StoreSession.undo`).

Sinks yield :class:`~.engine.items.FrameDone` once a frame is on disk.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np

from ..errors import InputError
from ..fsutil import atomic_path, atomic_write_text, disk_full_as_error
from ..records import FrameDone
from .edit_log import EDITS, UNDO_DIR, active_edits, read_edits
from .fingerprint import InputLedger
from .writer import FrameWriter


class _Rate:
    """Frames per second since the sink opened, counted from ``first``."""

    def __init__(self):
        self.t0 = time.perf_counter()

    def fps(self, frames: int) -> float:
        elapsed = time.perf_counter() - self.t0
        return frames / elapsed if elapsed > 0 else 0.0


class RunSink:
    """A run's finished frames, in order, each recorded as done once its labels landed. Frame t is
    written on the store's thread while t + 1 is computed (:class:`~.store_writer.FrameWriter`);
    :class:`FrameDone` comes once it is on disk. ``events()`` gives the event log each frame
    records."""

    def __init__(self, session: StoreSession, events, *, background: bool = True):
        self.store = session.store
        self.writer = FrameWriter(session.store, background=background)
        self.events = events
        self.n = session.store.n_frames
        self.resumed_from = session.store.frames_done
        self.written = 0
        self._rate = _Rate()

    def _frame_done(self, t: int) -> FrameDone:
        return FrameDone(t, t + 1, self.n, self._rate.fps(t + 1 - self.resumed_from))

    def put(self, t: int, labels: np.ndarray, overseer: np.ndarray, tracks=None) -> Iterator[FrameDone]:
        """Frame t (``tracks``: instance mode's track-id map and track table, see
        :meth:`~.sasvi_store.SasviStore.write_frame`)."""
        prev = self.writer.wait()  # frame t - 1 is on disk; t is written while t + 1 is computed
        self.writer.submit(t, labels, overseer, self.events(), tracks)
        self.written += 1
        if prev is not None:
            yield self._frame_done(prev)

    def flush(self) -> Iterator[FrameDone]:
        """The frame in flight, once it is on disk."""
        t = self.writer.wait()
        if t is not None:
            yield self._frame_done(t)

    def close(self) -> None:
        self.writer.close()


class UnfinishedSink:
    """Frames of a span computed backwards (from an anchor down to the frame after the last one
    done): written as they come, recorded as done together by :meth:`finish`, since frames finish
    in order. A run stopped before that redoes the span."""

    def __init__(self, session: StoreSession, empty_overseer: np.ndarray):
        self.store = session.store
        self.empty = empty_overseer
        self.written = 0  # frames recorded as done: those of a span stopped before its end are redone
        self._unrecorded = 0

    def put(self, t: int, labels: np.ndarray, overseer: np.ndarray | None = None) -> Iterator[FrameDone]:
        self.store.write_unfinished(t, labels, self.empty if overseer is None else overseer)
        self._unrecorded += 1
        return iter(())

    def finish(self, upto: int, events: list[dict]) -> None:
        self.store.mark_done(upto, events)
        self.written, self._unrecorded = self.written + self._unrecorded, 0


class EditSink:
    """An edit's recomputed frames: the labels of finished frames, the edit log updated after each
    (how far the edit got). ``done``/``total`` of :class:`FrameDone` count the edit's span."""

    def __init__(self, session: StoreSession, record: dict, n_frames: int, track_classes: np.ndarray | None = None):
        self.session, self.record, self.n = session, record, n_frames
        self.track_classes = track_classes  # an instance store's edit: frames are track ids, this their classes
        self._rate = _Rate()

    def put(self, t: int, labels: np.ndarray, overseer: np.ndarray | None = None) -> Iterator[FrameDone]:
        rec = self.record
        # the log first: a frame is covered by undo once the log counts it, so an interrupt between
        # the two writes leaves it counted (undo restores it) rather than edited and uncounted
        rec["written"] = t - rec["span"][0] + 1
        self.session.save_edits()
        with disk_full_as_error(self.session.store.path, "the frames this edit wrote are kept; Undo restores them"):
            if self.track_classes is not None:
                self.session.store.tracks[t] = labels
                labels = self.track_classes[labels]
            self.session.store.labels[t] = labels
        yield FrameDone(t, rec["written"], self.n, self._rate.fps(rec["written"]))


def _tracks_undo(undo: str) -> str:
    """The file holding an instance edit's replaced track ids, beside its labels' undo file."""
    return undo[: -len(".npy")] + ".tracks.npy"


class StoreSession:
    """See the module docstring. Made by :meth:`~.store.SasviStore.session`; use it as a context
    manager (or call :meth:`close`)."""

    def __init__(self, store, stack=None, *, check: str = "spot"):
        """``stack``: the frames this session reads (None: it reads none, e.g. an undo).
        ``check``: on opening, ``"resume"`` decodes every finished frame whose file changed and
        spot-checks a few, ``"spot"`` only spot-checks, ``"none"`` checks nothing now."""
        self.store = store
        self.stack = stack
        self._sinks: list = []
        self._reading = None
        self.ledger: InputLedger | None = None
        self._edits: list[dict] | None = None
        store.lock()
        try:
            if stack is not None:
                self.ledger = InputLedger(store.group, stack, str(store.path))
                done = store.frames_done
                if done and check == "resume":
                    self.ledger.verify_files(done)
                if done and check in ("resume", "spot"):
                    self.ledger.spot_check(done)
                self._reading = self.ledger.reading(stack)
                self._reading.__enter__()
        except BaseException:
            store.unlock()
            raise

    # -- lifetime ---------------------------------------------------------------------------------------
    def __enter__(self) -> StoreSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Wait for the frame in flight, write the recorded frame hashes, release the lock (in
        that order, each even when the one before fails)."""
        try:
            for sink in self._sinks:
                sink.close()
        finally:
            try:
                if self._reading is not None:
                    reading, self._reading = self._reading, None
                    reading.__exit__(None, None, None)
            finally:
                self.store.unlock()

    # -- sinks ------------------------------------------------------------------------------------------
    def run_sink(self, events, *, background: bool = True) -> RunSink:
        sink = RunSink(self, events, background=background)
        self._sinks.append(sink)
        return sink

    def unfinished_sink(self) -> UnfinishedSink:
        h, w = self.store.labels.shape[1:]
        return UnfinishedSink(self, np.full((h, w), self.store.classes.no_label, np.uint8))

    # -- the edit log -----------------------------------------------------------------------------------
    @property
    def edits(self) -> list[dict]:
        if self._edits is None:
            self._edits = read_edits(self.store.path)
        return self._edits

    def save_edits(self) -> None:
        store = self.store
        with disk_full_as_error(store.path, "the store's frames are as they were"):
            atomic_write_text(store.path / EDITS, json.dumps({"version": 1, "edits": self.edits}, indent=1))
        edited = bool(active_edits(self.edits))
        attrs = dict(store.group.attrs["sasvi"])
        if attrs.get("edited") != edited:
            attrs["edited"] = edited
            attrs["edits_log"] = EDITS
            store.group.attrs["sasvi"] = attrs

    def begin_edit(self, record: dict, track_classes: np.ndarray | None = None) -> EditSink:
        """Save the labels of the edit's span (the undo data), append its record (state
        ``running``) to the log and return the sink its frames go to. ``record`` holds ``kind``,
        ``frame``, ``span`` and what else the planner records; ``id``, ``undo``, ``written``,
        ``state`` and ``time`` are added here. ``track_classes``: an instance store's edit (its
        frames are track ids; this is the lookup of their classes), whose track ids are saved too."""
        edit_id = 1 + max((e["id"] for e in self.edits), default=0)
        a, b = record["span"]
        (self.store.path / UNDO_DIR).mkdir(exist_ok=True)
        undo = f"{UNDO_DIR}/{edit_id:04d}.npy"
        with disk_full_as_error(self.store.path, "nothing was edited"), atomic_path(self.store.path / undo) as tmp:
            np.save(tmp, np.asarray(self.store.labels[a : b + 1]))
        if track_classes is not None:
            with (
                disk_full_as_error(self.store.path, "nothing was edited"),
                atomic_path(self.store.path / _tracks_undo(undo)) as tmp,
            ):
                np.save(tmp, np.asarray(self.store.tracks[a : b + 1]))
        record.update(
            id=edit_id,
            written=0,
            state="running",
            undo=undo,
            time=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        self.edits.append(record)
        self.save_edits()
        return EditSink(self, record, b - a + 1, track_classes)

    def end_edit(self, record: dict, state: str, seconds: float) -> None:
        record["state"] = state
        record["seconds"] = round(seconds, 3)
        self.save_edits()

    def undo(self) -> dict | None:
        """Undo the last edit still in effect: its frames get back the labels they had before it.
        Returns that edit's record (state ``undone``), or None when there is nothing to undo."""
        act = active_edits(self.edits)
        if not act:
            return None
        rec = act[-1]
        undo = self.store.path / rec["undo"]
        if rec["written"]:
            if not undo.exists():
                raise InputError(f"The undo data of edit {rec['id']} ({undo}) is missing; the edit cannot be undone.")
            before = np.load(undo, allow_pickle=False)
            a = rec["span"][0]
            self.store.labels[a : a + rec["written"]] = before[: rec["written"]]
            tracks = self.store.path / _tracks_undo(rec["undo"])
            if self.store.tracks is not None and tracks.exists():
                self.store.tracks[a : a + rec["written"]] = np.load(tracks, allow_pickle=False)[: rec["written"]]
        rec["state"] = "undone"
        self.save_edits()
        undo.unlink(missing_ok=True)
        (self.store.path / _tracks_undo(rec["undo"])).unlink(missing_ok=True)
        return rec


__all__ = ["EditSink", "RunSink", "StoreSession", "UnfinishedSink"]
