"""The corrections part of "SASVi segment video": paint a frame of the SASVi layer, pin or skip a
re-prompt, press Re-propagate; Undo edit takes the last edit back.

A thin shell over the edits of :mod:`napari_sasvi.core.engine`: the SASVi layer's data is a
:class:`~napari_sasvi._napari._paint.PaintOverlay` (painting stays in memory until Re-propagate), the
edits run in a ``thread_worker`` with a progress bar, and the segment widget's Cancel stops them
between frames (the frames written stay; Undo restores them too).

It talks to the segment widget only through its public surface (``store``, ``labels_layer``,
``frames_layer``, ``models``, ``running``, ``busy``, ``current_frame``, ``selected_event``, ``run_config``,
``show_events``, ``start_work``, ``limit_torch_threads``, ``work_finished``; for instance stores
``new_tracks`` and ``tracks_edited``).
"""

from __future__ import annotations

import time

from magicgui.widgets import Container, Label, PushButton

from ..core.errors import SasviError
from ..core.progress import Returning
from ._layout import wrap_label

SKIPPABLE = ("restart", "add_objects")


class CorrectionsPanel(Container):
    """Pin / Skip / Re-propagate / Undo edit below the segment widget ``seg``."""

    def __init__(self, seg):
        super().__init__(labels=False, layout="vertical")
        self._seg = seg
        self._queue: list = []  # pins and skips waiting for Re-propagate (EditRequest)
        self._worker = None
        self._progress = None
        self.last_summaries: list = []
        self._info = Label(value="Corrections: paint on the SASVi layer, or pin / skip re-prompts; then Re-propagate.")
        wrap_label(self._info)  # one line of text would set the dock's width
        self._pin = PushButton(text="Pin re-prompt", tooltip="Pin a re-prompt at the frame shown.")
        self._skip = PushButton(text="Skip re-prompt", tooltip="Skip the re-prompt selected in the events table.")
        self._repropagate = PushButton(text="Re-propagate")
        self._undo = PushButton(text="Undo edit")
        row1 = Container(widgets=[self._pin, self._skip], layout="horizontal", labels=False)
        row2 = Container(widgets=[self._repropagate, self._undo], layout="horizontal", labels=False)
        for c in (row1, row2):
            c.margins = (0, 0, 0, 0)
        self.extend([self._info, row1, row2])
        self._pin.changed.connect(self.pin_here)
        self._skip.changed.connect(self.skip_selected)
        self._repropagate.changed.connect(self.repropagate)
        self._undo.changed.connect(self.undo)

    # -- what is edited ----------------------------------------------------------------------------------
    def _target(self):
        """The store shown by the segment widget and its SASVi layer's overlay, or an error."""
        seg = self._seg
        store, layer = seg.store, seg.labels_layer
        if store is None or layer is None:
            raise SasviError("No SASVi result to edit yet: Run first (or Run again on a finished store to open it).")
        if seg.running:
            raise SasviError("A run is going: wait for it, or Cancel it, before editing.")
        if self._worker is not None or seg.busy:
            raise SasviError("An edit (Re-propagate, or a prompt's commit) is going: wait for it, or Cancel it.")
        from ..core.store.sasvi_store import SasviStore

        return SasviStore.read(store.path), layer.data  # read again: the run may have gone on since

    def _say(self, text: str, error: bool = False) -> None:
        self._info.value = text
        if error:
            from napari.utils.notifications import show_error

            show_error(f"SASVi: {text}")

    def pending(self) -> list:
        """What Re-propagate would do, in the order it does it: painted frames and queued pins and
        skips, from the last frame back (a later edit is then a boundary for an earlier one)."""
        from ..core.engine import EditRequest

        reqs = list(self._queue)
        overlay = getattr(self._seg.labels_layer, "data", None)
        if hasattr(overlay, "changed"):
            for t in overlay.changed():  # an instance store's: track ids, new ones with their class
                mask = overlay.frame(t).copy()
                reqs.append(EditRequest("correction", t, mask, new_tracks=self._seg.new_tracks(t, mask)))
        return sorted(reqs, key=lambda r: -r.frame)

    def timeline(self) -> list[dict]:
        """Rows for the events table and strip: edits made, pins/skips queued, painted frames."""
        from ..core.store.edit_log import reprompts
        from ..core.store.sasvi_store import SasviStore

        shown = self._seg.store
        rows = []
        if shown is not None:
            for r in reprompts(SasviStore.read(shown.path)):  # read again: events and edits as on disk
                if r["source"] == "edit":
                    rows.append({"frame": r["frame"], "kind": r["kind"], "reason": r["reason"]})
                elif r["skipped"]:
                    rows.append({"frame": r["frame"], "kind": "skipped", "reason": f"{r['kind']} skipped"})
        for q in self.pending():
            what = {"correction": "corrected", "pin": "pinned", "skip": "skipped"}[q.kind]
            rows.append({"frame": q.frame, "kind": f"{what} (pending)", "reason": "press Re-propagate"})
        return rows

    def _refresh_table(self):
        self._seg.show_events()

    # -- the timeline ------------------------------------------------------------------------------------
    def pin_here(self, *_):
        """Pin a re-prompt at the current frame (queued for Re-propagate)."""
        return self.pin_at(self._seg.current_frame)

    def pin_at(self, t: int):
        self._queue_edit("pin", t, f"re-prompt pinned at frame {t}: Re-propagate recomputes frames from it.")

    def skip_selected(self, *_):
        """Skip the re-prompt selected in the events table (queued for Re-propagate)."""
        selected = self._seg.selected_event()
        if selected is None:
            return self._say("Select a restart or an object added in the events table first.", error=True)
        t, kind = selected
        if kind not in SKIPPABLE:
            msg = f"Frame {t} is a {kind!r} row: only a restart or an object added can be skipped."
            return self._say(msg, error=True)
        self.skip_at(t)

    def skip_at(self, t: int):
        self._queue_edit("skip", t, f"re-prompt at frame {t} skipped: Re-propagate continues the segment before it.")

    def _queue_edit(self, kind: str, t: int, said: str):
        from ..core.engine import EditRequest, plan_edit

        try:
            store, _ = self._target()
            plan_edit(store, EditRequest(kind, t))  # refused now rather than at Re-propagate
        except SasviError as e:
            return self._say(str(e), error=True)
        self._queue = [q for q in self._queue if q.frame != t] + [EditRequest(kind, t)]
        self._say(said)
        self._refresh_table()

    # -- running -----------------------------------------------------------------------------------------
    def repropagate(self, *_):
        """Run the pending edits in a worker; returns it (tests wait on it), or None."""
        from napari.qt.threading import thread_worker

        from ..core.engine import EditStarted, iter_edit

        seg = self._seg
        try:
            store, overlay = self._target()
            reqs = self.pending()
            if not reqs:
                raise SasviError(
                    "Nothing to re-propagate: paint a frame of the SASVi layer, or pin / skip a re-prompt."
                )
            config = seg.run_config()
        except (SasviError, ValueError, OSError) as e:
            self._say(str(e), error=True)
            return None
        frames = store.frames_path if store.frames_path is not None and store.frames_path.exists() else None
        if frames is None:
            layer = seg.frames_layer
            if layer is None:
                return self._say("No frames layer: open the store's video first.", error=True)
            frames = layer.data
        models = seg.models
        cancelled = seg.start_work()  # Run off, Cancel on: Cancel stops the edits between frames

        def work():
            import sys

            from ..core.background import frozen_heap, wait_warm
            from ..core.engine import EditSummary

            heap = frozen_heap()  # as for a run: napari's objects out of the collector's walks
            heap.freeze()
            try:
                wait_warm()
                tracker = _edit_tracker(store, models, config)
                if "torch" in sys.modules:
                    seg.limit_torch_threads()  # leave a core to napari (restored when it ends)
                for req in reqs:
                    run = Returning(iter_edit(store.path, frames, tracker, req, cancel=cancelled))
                    yield from run  # EditStarted, then FrameDone per frame
                    summary: EditSummary = run.value
                    yield (req, summary)
                    if summary.cancelled:
                        return "cancelled"
            except (SasviError, ValueError, OSError) as e:
                return _Message(str(e))
            finally:
                heap.release()
            return "done"

        def on_item(item):
            from ..core.engine import FrameDone

            if isinstance(item, EditStarted):
                self._start_bar(item)
            elif isinstance(item, FrameDone):
                if self._progress is not None:
                    self._progress.update(item.done - self._progress.n)
                if seg.current_frame == item.frame:
                    seg.labels_layer.refresh()
            elif isinstance(item, tuple):
                req, summary = item
                self.last_summaries.append(summary)
                if req.kind == "correction" and summary.written:
                    overlay.pending.pop(req.frame, None)  # the store holds it now
                elif req in self._queue:
                    self._queue.remove(req)
                self._close_bar()
                seg.labels_layer.refresh()
                self._refresh_table()

        def on_done(result):
            if isinstance(result, _Message):
                return self._say(result, error=True)
            spans = ", ".join(f"{s.start}-{s.start + s.written - 1}" for s in self.last_summaries[-len(reqs) :])
            secs = time.perf_counter() - self._t0
            self._say(f"re-propagation {result}: frames {spans} recomputed in {secs:.1f} s; Undo edit takes one back.")

        def on_finished():
            self._close_bar()
            self._worker = None
            seg.work_finished()
            self._set_enabled(True)
            seg.labels_layer.refresh()
            seg.tracks_edited()
            self._refresh_table()

        worker = thread_worker(work, start_thread=False)()
        worker.yielded.connect(on_item)
        worker.returned.connect(on_done)
        worker.errored.connect(lambda e: self._say(str(e), error=True))
        worker.finished.connect(on_finished)
        self._worker = worker
        self._t0 = time.perf_counter()
        self._set_enabled(False)
        self._say(f"re-propagating {len(reqs)} edit(s)...")
        worker.start()
        return worker

    def _set_enabled(self, on: bool) -> None:
        for b in (self._pin, self._skip, self._repropagate, self._undo):
            b.enabled = on

    def _start_bar(self, item):
        from napari.utils import progress

        self._close_bar()
        plan = item.plan
        self._progress = progress(total=plan.n_frames, desc=f"SASVi {plan.kind} at frame {plan.frame}")
        self._say(f"edit {item.edit_id}: {plan.kind} at frame {plan.frame}, frames {plan.start}-{plan.stop}...")

    def _close_bar(self):
        if self._progress is not None:
            self._progress.close()
            self._progress = None

    def undo(self, *_):
        """Take the last edit back (its frames get their labels from before it)."""
        from ..core.engine import undo_edit

        try:
            store, _ = self._target()
            rec = undo_edit(store.path)
        except SasviError as e:
            return self._say(str(e), error=True)
        if rec is None:
            return self._say("Nothing to undo: the store has no edit in effect.")
        a = rec["span"][0]
        self._say(
            f"undone: edit {rec['id']} ({rec['kind']} at frame {rec['frame']}), frames {a}-{a + rec['written'] - 1}"
        )
        self._seg.labels_layer.refresh()
        self._seg.tracks_edited()
        self._refresh_table()
        return rec


class _Message(str):
    """A worker's message for bad input (a returned exception would be re-raised)."""


__all__ = ["CorrectionsPanel"]


def _edit_tracker(store, models, config):
    """The tracker Re-propagate uses: the store's own (rebuilt from the run config it records),
    whatever the form says now; the form's device only."""
    from ..core.engine.rebuild import edit_tracker

    return edit_tracker(store, models, device=config.device)
