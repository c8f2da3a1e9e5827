"""Plugins > SASVi segment video: pick inputs, run SASVi in a worker, watch the labels fill in.

The widget is a thin shell over :func:`napari_sasvi.core.engine.iter_sasvi`: the generator runs
in a napari ``thread_worker``; every yielded item reaches the main thread as a signal, where the
layers, the progress bar and the event table are updated. Cancel stops between frames and keeps
what is written; Run again resumes the same store.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import napari
from magicgui.widgets import Container, Label, PushButton, Table

from ..core.engine.batch import Models
from ..core.errors import SasviError
from ..core.progress import Returning
from ._corrections import CorrectionsPanel
from ._event_strip import EventStrip, class_names
from ._form import SegmentForm
from ._guard import keep_triton_out
from ._layout import fit_table, section, wrap_label
from ._lifecycle import on_detach
from ._prompts import PromptPanel
from ._track_layers import ShownTracks, TracksSeen

log = logging.getLogger(__name__)


class SegmentWidget(SegmentForm):
    """The "SASVi segment video" dock widget (see the module docstring): the form, Run and Cancel,
    the run's status and events, and the corrections panel below them."""

    def __init__(self, viewer: napari.viewer.Viewer):
        keep_triton_out()
        super().__init__(viewer)
        self._models = Models()  # built models, memoised by what decides them; built in the worker
        self._worker = None
        self._cancel = threading.Event()
        self._progress = None
        self._events: list[dict] = []
        self._t_start = 0.0
        self._torch_threads = None
        self._store = None  # the store shown, and its SASVi layer: set when a run opens the store
        self._labels_layer = None
        self._shown_tracks = ShownTracks(viewer)  # an instance store's tracks layer, centroids and rows
        self.last_summary = None

        self._run = PushButton(text="Run")
        self._cancel_btn = PushButton(text="Cancel", enabled=False)
        self._status = Label(value="")
        self._table = Table(value={"frame": [], "kind": [], "reason": [], "labels": []})
        fit_table(self._table)
        buttons = Container(widgets=[self._run, self._cancel_btn], layout="horizontal", labels=False)
        buttons.margins = (0, 0, 0, 0)
        wrap_label(self._status)  # a long error wraps instead of widening the dock
        self._corrections = CorrectionsPanel(self)
        self._strip = EventStrip(
            on_click=self._jump_to, on_pin=self._corrections.pin_at, on_skip=self._corrections.skip_at
        )
        self._prompts = PromptPanel(self, viewer)  # clicks and boxes, collapsed until opened
        self._prompts_box = section("Clicks and boxes", self._prompts)
        # below the form's sections; the table as wide as the dock, as the strip and its legend (kinds, counts)
        for w in (buttons.native, self._status.native, self._table.native, self._strip, self._strip.legend,
                  self._corrections.native, self._prompts_box):  # fmt: skip
            self.native.layout().addWidget(w)
        self._run.changed.connect(self.run)
        self._cancel_btn.changed.connect(self.cancel)
        self._table.native.cellClicked.connect(self._row_clicked)
        self._detach_filter = on_detach(self.native, self._disconnect)

    # -- running ---------------------------------------------------------------------------------------
    def run(self, *_):
        """Start (or resume) a run; returns its worker at once (tests wait on it), or None when the
        form itself is incomplete. Everything heavy (model builds and downloads, reading and
        checking the masks, opening the store, the first overseer batch) happens in the worker;
        its errors come back as notifications."""
        from napari.qt.threading import thread_worker
        from napari.utils.notifications import show_error, show_info

        from ..core.background import frozen_heap, preload_torch, wait_warm
        from ..core.engine import FrameDone, StoreOpened
        from ..core.engine.batch import segment_videos

        if self._worker is not None:
            return self._worker
        try:
            config = self.run_config()
            job = self._job()
        except (SasviError, ValueError, OSError) as e:
            show_error(f"SASVi: {e}")
            self._status.value = f"error: {e}"
            return None
        if config.tracker.kind == "flow" and config.device not in ("auto", "cpu"):
            show_info(f"SASVi: the flow tracker runs on the CPU; device {config.device} is for the overseer.")
        self._job_name = job.name
        models, cancel = self._models, self.start_work()
        shown = self._shown = threading.Event()
        tracks = self._shown_tracks.new_run()  # the tracks' centroids, computed in the worker frame by frame

        def work():
            # keep napari's thread running meanwhile (core/background.py: what stalls it, measured)
            heap = frozen_heap()
            heap.freeze()  # napari's objects: out of the collector's walks while the run goes
            heap.pause()  # and no collection while torch is imported and the models are built
            gen = None
            try:
                wait_warm()  # the imports the form started (never two threads importing torch)
                preload_torch()  # torch's libraries load without holding the GIL
                self.limit_torch_threads()  # imports torch here, not on napari's thread
                gen = segment_videos([job], config, models=models, cancel=cancel)
                run = Returning(gen)
                refreeze = 2  # once the models exist (store opened) and after the first batch
                for item in run:
                    if refreeze and isinstance(item, (StoreOpened, FrameDone)):
                        heap.freeze()  # also resumes collection
                        refreeze -= 1
                    if isinstance(item, StoreOpened):
                        shown.clear()
                    yield item
                    if isinstance(item, StoreOpened):
                        # napari adds the two labels layers now (0.2-0.5 s of its thread): leave it
                        # the CPU for that rather than start the first overseer batch beside it
                        shown.wait(5.0)
                        if config.instances:
                            tracks.opened(item.store)
                    elif isinstance(item, FrameDone) and (seen := tracks.frame_done(item.frame)) is not None:
                        yield seen
                return run.value
            except (SasviError, ValueError, OSError) as e:  # bad input: a notification, nothing lost
                return _Failed(str(e))
            finally:
                if gen is not None:
                    gen.close()
                heap.release()

        worker = thread_worker(work, start_thread=False)()
        worker.yielded.connect(self._on_item)
        worker.returned.connect(self._on_done)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self._status.value = "starting: loading the models and checking the inputs..."
        self._t_start = time.perf_counter()
        worker.start()
        return worker

    def _show_store(self, item, then=None):
        """The store exists: its labels layers (zarr-backed, filling as the run writes) and events.

        Adding a napari layer costs its thread 0.1-0.2 s (more while a worker computes), so the
        two layers and the rest are added in separate turns of the event loop, with paints in
        between, and ``then`` is called after the last (the worker waits for it)."""
        from qtpy.QtCore import QTimer

        from ..core.store.sasvi_store import SasviStore
        from .sample import labels_layer_kwargs

        store = SasviStore.read(item.store)
        classes = store.classes
        self._store = store
        name = Path(item.store).stem

        def sasvi_layer():  # paintable: painted frames stay in memory until Re-propagate
            from ._paint import PaintOverlay

            self._labels_layer = self._layer_for(
                f"{name} SASVi", PaintOverlay(store.labels), labels_layer_kwargs(classes, f"{name} SASVi")
            )

        def overseer_layer():  # hidden from the start: napari does not slice or draw it
            self._overseer_layer_out = self._layer_for(
                f"{name} overseer",
                store.overseer,
                {**labels_layer_kwargs(classes, f"{name} overseer"), "visible": False},
            )
            self._overseer_layer_out.visible = False

        def tracks_layer():  # instance stores: the track ids, each in its class's colour, painted there
            if self._shown_tracks.show_store(store, name, self._layer_for) is not None:
                self._labels_layer.visible = self._labels_layer.editable = False  # the tracks layer shows classes

        def the_rest():
            from napari.utils import progress

            # the layer a user paints corrections on is the selected one (not the hidden overseer's)
            self._viewer.layers.selection.active = self.labels_layer
            self._events = list(store.events)
            self.show_events()
            if item.done >= item.total:
                self._status.value = f"{item.store} is complete ({item.done} frames)"
                return
            if self._progress is None:
                self._progress = progress(total=item.total, desc="SASVi")
            self._progress.n = item.done
            self._status.value = f"running: {item.done}/{item.total} frames on disk"

        steps = [sasvi_layer, overseer_layer, tracks_layer, the_rest]

        def step(i):
            try:
                steps[i]()
            except Exception:
                if then is not None:
                    then()
                raise
            if i + 1 < len(steps):
                QTimer.singleShot(0, lambda: step(i + 1))
            elif then is not None:
                QTimer.singleShot(0, then)

        step(0)

    def limit_torch_threads(self):
        """Leave one core to the GUI while a run goes: torch's OpenMP workers wait at every op's
        barrier, and when the GUI thread takes a core a descheduled worker stalls each of SAM2's
        many small ops. Measured on 2 cores (benchmarks/bench_gui.py, 128 px): 1.16 frames/s with
        1 thread vs 0.78 with 2 while the viewer idles, 0.35 vs 0.22 while the slider is scrubbed.
        Restored when the run ends."""
        import os

        import torch

        self._torch_threads = torch.get_num_threads()
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        torch.set_num_threads(max(1, min(self._torch_threads, cores - 1)))

    def _layer_for(self, name, data, kwargs):
        if name in self._viewer.layers:
            layer = self._viewer.layers[name]
            layer.data = data
            return layer
        return self._viewer.add_labels(data, **kwargs)

    def cancel(self, *_):
        """Stop between frames; everything written stays."""
        self._cancel.set()
        self._status.value = "cancelling after this frame..."

    def _on_item(self, item):
        from ..core.engine import FrameDone, StoreOpened
        from ..core.engine.batch import VideoDone, VideoStarted

        if isinstance(item, StoreOpened):
            self._show_store(item, then=self._shown.set)  # the worker waits for it before computing
        elif isinstance(item, VideoStarted):
            self._status.value = f"{item.note}; opening the store..."
            log.info("%s", item.note)
        elif isinstance(item, VideoDone):
            pass  # the worker's return value says how the run ended
        elif isinstance(item, FrameDone):
            bar = self._progress  # signals of a finished worker can still arrive after it closed
            if bar is not None:
                bar.update(item.done - bar.n)
                bar.set_description(f"SASVi {item.fps:.2f} frames/s")
            if self._worker is not None:
                self._status.value = f"frame {item.done}/{item.total}, {item.fps:.2f} frames/s"
            current = self._viewer.dims.current_step[0] if self._viewer.dims.ndim else 0
            if current == item.frame or item.done == item.total:
                self._labels_layer.refresh()
                if self._shown_tracks.layer is not None:
                    self._shown_tracks.layer.refresh()
        elif isinstance(item, TracksSeen):
            self._shown_tracks.show_table(item.table)
            self.show_events()
        else:
            self._events.append(item.to_dict())
            self.show_events()

    def _on_done(self, result):
        from napari.utils.notifications import show_error

        if isinstance(result, _Failed):
            show_error(f"SASVi: {result}")
            self._status.value = f"error: {result}"
            return
        summary = result.videos.get(self._job_name)
        if summary is None:
            return
        self.last_summary = summary
        self._labels_layer.refresh()
        self._overseer_layer_out.refresh()
        from ..core.store.sasvi_store import SasviStore

        state = "cancelled" if summary.cancelled else "done"
        now = SasviStore.read(self._store.path)  # re-read: the run's progress, not the start's
        done = now.frames_done
        if self._shown_tracks.layer is not None:
            self._shown_tracks.run_ended(now)
            self._viewer.layers.selection.active = self.labels_layer  # not the centroids added last
        if summary.frames_written == 0 and not summary.cancelled and done >= summary.n_frames:
            self._status.value = f"{self._store.path} is complete ({done} frames)"
        else:
            self._status.value = f"{state}: {done}/{summary.n_frames} frames in {summary.seconds:.0f} s"
        self._events = summary.events
        self.show_events()

    def _on_error(self, exc):
        from napari.utils.notifications import show_error

        msg = str(exc)
        if "out of memory" in msg.lower():
            msg += " Try a smaller SAM2 model, a smaller image size, or the CPU. Frames written so far are kept; Run resumes."
        show_error(f"SASVi: {msg}")
        self._status.value = f"error: {msg}"

    def _on_finished(self):
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        self._worker = None
        self.work_finished()

    # -- events ----------------------------------------------------------------------------------------
    def show_events(self):
        """Fill the events table and strip: the run's re-prompts and the corrections' rows."""
        rows = [
            e
            for e in self._events
            if e["kind"]
            in (
                "restart",
                "anchor",
                "add_objects",
                "trigger_deferred",
                "duplicate",
                "dropout_ignored",
                "carried_over",
                "no_prompt",
                "dummy",
                "lost",
                "reprompt_class",
                "fade",
                "backfill",
            )
        ]
        rows = sorted(rows + self._shown_tracks.rows + self._corrections.timeline(), key=lambda e: e["frame"])
        names = {c.id: c.name for c in self._store.classes} if self._store is not None else {}
        names = self._shown_tracks.names or names  # an instance store's events are about track ids
        self._table.value = {
            "frame": [e["frame"] for e in rows],
            "kind": [e["kind"] for e in rows],
            "reason": [e.get("reason", "") for e in rows],
            "labels": [", ".join(class_names(e, names)) for e in rows],  # class names; ids where unnamed
        }
        fit_table(self._table)
        if self._store is not None:
            self._strip.set_events(rows, self._store.n_frames, names)

    def _row_clicked(self, row, _col):
        frame = int(self._table.data[row][0])
        self._jump_to(frame)

    def _jump_to(self, frame: int):
        self._viewer.dims.set_current_step(0, frame)

    # -- the surface the corrections panel uses -------------------------------------------------------
    @property
    def store(self):
        """The :class:`~napari_sasvi.core.store.sasvi_store.SasviStore` shown (as opened by the last Run), or None."""
        return self._store

    @property
    def labels_layer(self):
        """The layer corrections are painted on (its data a :class:`~._paint.PaintOverlay`), or None:
        the store's SASVi labels layer; an instance store's tracks layer (paint a track's id)."""
        return self._shown_tracks.layer if self._shown_tracks.layer is not None else self._labels_layer

    def new_tracks(self, t: int, mask):
        """An instance store: the class of each new track id painted on frame t (see
        :meth:`~._track_layers.ShownTracks.new_tracks`); None for a class-only store."""
        return self._shown_tracks.new_tracks(t, mask)

    def tracks_edited(self):
        """An edit or an undo changed the store: an instance store's tracks, table, centroids and prompt list again."""
        from ..core.store.sasvi_store import SasviStore

        self._labels_layer.refresh()
        self._prompts.store_changed()  # its tracks list
        if self._shown_tracks.layer is not None:
            self._shown_tracks.edited(SasviStore.read(self._store.path))

    @property
    def frames_layer(self):
        """The frames layer chosen in the form, or None."""
        return self._frames.value

    @property
    def models(self):
        """The models built so far (:class:`~napari_sasvi.core.engine.batch.Models`), shared with edits."""
        return self._models

    @property
    def running(self) -> bool:
        """Whether a run is going."""
        return self._worker is not None

    @property
    def busy(self) -> bool:
        """Whether a run or an edit (Re-propagate, a prompt's commit) is going: Cancel would stop it."""
        return self._worker is not None or self._cancel_btn.enabled

    @property
    def current_frame(self) -> int:
        """The frame the viewer shows."""
        return int(self._viewer.dims.current_step[0])

    def selected_event(self) -> tuple[int, str] | None:
        """The (frame, kind) of the row selected in the events table, or None."""
        row = self._table.native.currentRow()
        if row < 0:
            return None
        return int(self._table.data[row][0]), str(self._table.data[row][1])

    def start_work(self):
        """A worker starts (a run, or Re-propagate): Run is disabled, Cancel enabled and cleared.
        Returns the check the worker calls between frames (true once Cancel is pressed)."""
        self._cancel.clear()
        self._run.enabled = False
        self._cancel_btn.enabled = True
        return self._cancel.is_set

    def work_finished(self):
        """The worker :meth:`start_work` announced ended: torch's threads restored (see
        :meth:`limit_torch_threads`), Run enabled, Cancel disabled."""
        if self._torch_threads:
            import torch

            torch.set_num_threads(self._torch_threads)
            self._torch_threads = None
        self._run.enabled = True
        self._cancel_btn.enabled = False

    def _disconnect(self):
        """Stop listening to the viewer (the dock was closed or removed) and stop a run between frames."""
        self._cancel.set()
        self._prompts.stop()  # its layers, keys and frame listener go with the dock
        super()._disconnect()

    def close(self):
        self._disconnect()
        super().close()


class _Failed(str):
    """A run's message for bad input (a returned exception object would be re-raised by the worker)."""
