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
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    PushButton,
    SpinBox,
    Table,
)

from ..core.datasets import PRESETS
from ..core.errors import SasviError
from ..core.weights import SAM2_CHECKPOINTS

log = logging.getLogger(__name__)

CONFIG_CHOICE = "config + checkpoint"
#: tracker choices beside the SAM2 models -> flow method
FLOW_CHOICES = {
    "optical flow (DIS, no weights)": "dis",
    "optical flow (DIS fast: 320 px, no refinement)": "dis-fast",
    "optical flow (Farneback, no weights)": "farneback",
}
HF_CHOICE = "transformers: SAM2.1 / EdgeTAM / SAM3 tracker"
REPLAY_LAYER, REPLAY_FOLDER = "replay: labels layer", "replay: folder / .npy / zarr"
NO_OVERSEER = "none: propagate the annotated frames"
#: where the annotated frames (anchors) come from
NO_ANCHORS, ANCHOR_LAYER, ANCHOR_FOLDER = "none", "labels layer (painted frames)", "folder (files named after frames)"
#: overseer choice -> architecture of a trained overseer
TRAINED = {"Mask R-CNN": "maskrcnn", "DETR": "detr", "Mask2Former": "mask2former", "Pixel classifier": "pixel"}
#: what a run with each model imports first (warmed in the background once the form names it)
WARM_OVERSEER = {
    "maskrcnn": ["torchvision.models.detection"],
    "detr": ["transformers.models.detr.modeling_detr"],
    "mask2former": ["transformers.models.mask2former.modeling_mask2former"],
    "pixel": ["sklearn.ensemble", "skimage.feature"],
}
WARM_SAM2 = ["hydra.utils", "sam2.build_sam", "sam2.sam2_video_predictor"]
WARM_HF = ["transformers.models.sam2_video.modeling_sam2_video"]


def _layers_of(viewer, kind: str):
    import napari.layers

    cls = {"image": napari.layers.Image, "labels": napari.layers.Labels}[kind]
    return [layer for layer in viewer.layers if isinstance(layer, cls)] if viewer is not None else []


class SegmentWidget(Container):
    """The "SASVi segment video" dock widget (see the module docstring)."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=True)
        from ._guard import keep_triton_out

        keep_triton_out()
        self._viewer = viewer
        from ..core.segment import Models

        self._models = Models()  # built models, memoised by what decides them; built in the worker
        self._worker = None
        self._cancel = threading.Event()
        self._progress = None
        self._events: list[dict] = []
        self._t_start = 0.0
        self.last_summary = None

        self._frames = ComboBox(label="frames", choices=lambda _: _layers_of(self._viewer, "image"))
        self._overseer = ComboBox(
            label="overseer", choices=[*TRAINED, REPLAY_LAYER, REPLAY_FOLDER, NO_OVERSEER], value=REPLAY_LAYER
        )
        self._overseer_layer = ComboBox(label="overseer labels", choices=lambda _: _layers_of(self._viewer, "labels"))
        self._overseer_path = FileEdit(label="overseer masks", mode="d")
        self._encoding = ComboBox(label="masks encoding", choices=["auto", "class-ids", "source"], value="auto")
        self._anchor_src = ComboBox(
            label="annotated frames", choices=[NO_ANCHORS, ANCHOR_LAYER, ANCHOR_FOLDER], value=NO_ANCHORS
        )
        self._anchor_layer = ComboBox(label="annotations", choices=lambda _: _layers_of(self._viewer, "labels"))
        self._anchor_path = FileEdit(label="annotation files", mode="d")
        self._overseer_ckpt = FileEdit(label="overseer checkpoint", mode="r", filter="*.pth *.pt *.skops")
        self._published = CheckBox(label="published checkpoint (downloads once)", value=False)
        self._dataset = ComboBox(label="dataset", choices=[*PRESETS, "class table file"], value="synthetic")
        self._classes_file = FileEdit(label="class table", mode="r", filter="*.yaml *.yml *.json")
        self._sam2 = ComboBox(
            label="tracker",
            choices=[*SAM2_CHECKPOINTS, CONFIG_CHOICE, HF_CHOICE, *FLOW_CHOICES],
            value=next(iter(FLOW_CHOICES)),  # runs offline, no weights to download
        )
        self._hf_model = LineEdit(label="model folder or repo id", value="facebook/sam2.1-hiera-tiny")
        self._sam2_config = LineEdit(label="SAM2 config", value="sam2.1_hiera_t")
        self._sam2_ckpt = FileEdit(label="SAM2 checkpoint", mode="r", filter="*.pt *.pth")
        self._random = CheckBox(label="random weights (testing)", value=False)
        self._image_size = SpinBox(label="image size (0: model's)", value=0, min=0, max=2048, step=32)
        self._device = ComboBox(label="device", choices=["auto", "cuda", "cpu", "mps"], value="auto")
        self._out = FileEdit(label="output store", mode="w", filter="*.zarr", value=Path.home() / "sasvi.zarr")
        self._out_suggested = True  # follows the frames layer until the user picks a path
        self._show_adv = CheckBox(label="advanced", value=False)
        self._mode = ComboBox(label="mode", choices=["default", "reference"], value="default")
        self._lookahead = SpinBox(label="look-ahead", value=10, min=1, max=100)
        self._persistence = SpinBox(label="persistence", value=3, min=0, max=50)
        self._overlap = FloatSpinBox(label="overlap threshold", value=0.70, min=0.05, max=1.0, step=0.05)
        self._buffer = SpinBox(label="re-seed every", value=25, min=2, max=10000)
        self._min_visible = SpinBox(label="min visible px", value=20, min=1, max=100000)
        self._score_thr = FloatSpinBox(label="overseer score threshold", value=0.05, min=-1.0, max=1.0, step=0.05)
        self._mask_thr = FloatSpinBox(label="overseer mask threshold", value=0.5, min=-50.0, max=50.0, step=0.1)
        self._batch = SpinBox(label="overseer batch", value=8, min=1, max=64)
        self._advanced = [
            self._mode,
            self._lookahead,
            self._persistence,
            self._overlap,
            self._buffer,
            self._min_visible,
            self._score_thr,
            self._mask_thr,
            self._batch,
        ]
        self._run = PushButton(text="Run")
        self._cancel_btn = PushButton(text="Cancel", enabled=False)
        self._status = Label(value="")
        self._table = Table(value={"frame": [], "kind": [], "reason": [], "labels": []})
        self.extend(
            [
                self._frames,
                self._overseer,
                self._overseer_layer,
                self._overseer_path,
                self._encoding,
                self._anchor_src,
                self._anchor_layer,
                self._anchor_path,
                self._overseer_ckpt,
                self._published,
                self._dataset,
                self._classes_file,
                self._sam2,
                self._sam2_config,
                self._sam2_ckpt,
                self._hf_model,
                self._random,
                self._image_size,
                self._device,
                self._out,
                self._show_adv,
                *self._advanced,
                self._run,
                self._cancel_btn,
                self._status,
                self._table,
            ]
        )
        from ._corrections import CorrectionsPanel
        from ._event_strip import EventStrip

        self._corrections = CorrectionsPanel(self)
        self._strip = EventStrip(
            on_click=self._jump_to, on_pin=self._corrections.pin_at, on_skip=self._corrections.skip_at
        )
        self.native.layout().addWidget(self._strip)
        self.native.layout().addWidget(self._corrections.native)
        self._overseer.changed.connect(self._update_visibility)
        self._overseer.changed.connect(self._reference_thresholds)
        self._published.changed.connect(self._update_visibility)
        self._dataset.changed.connect(self._update_visibility)
        self._sam2.changed.connect(self._update_visibility)
        self._sam2.changed.connect(self._warm_up)
        self._overseer.changed.connect(self._warm_up)
        self._show_adv.changed.connect(self._update_visibility)
        self._anchor_src.changed.connect(self._update_visibility)
        self._run.changed.connect(self.run)
        self._cancel_btn.changed.connect(self.cancel)
        self._table.native.cellClicked.connect(self._row_clicked)
        self._frames.changed.connect(self._suggest_out)
        self._out.changed.connect(self._out_edited)
        self._connected = False
        if viewer is not None:
            viewer.layers.events.inserted.connect(self._refresh_choices)
            viewer.layers.events.removed.connect(self._refresh_choices)
            self._connected = True
        from ._lifecycle import on_detach

        self._detach_filter = on_detach(self.native, self._disconnect)
        self._update_visibility()
        self._suggest_out()

    # -- form ------------------------------------------------------------------------------------------
    def _refresh_choices(self, event=None):
        self._frames.reset_choices()
        self._overseer_layer.reset_choices()
        self._anchor_layer.reset_choices()

    def _update_visibility(self, *_):
        self._overseer_layer.visible = self._overseer.value == REPLAY_LAYER
        self._overseer_path.visible = self._overseer.value == REPLAY_FOLDER
        self._encoding.visible = self._overseer.value in (REPLAY_LAYER, REPLAY_FOLDER)
        self._anchor_layer.visible = self._anchor_src.value == ANCHOR_LAYER
        self._anchor_path.visible = self._anchor_src.value == ANCHOR_FOLDER
        trained = self._overseer.value in TRAINED
        pixel = TRAINED.get(self._overseer.value) == "pixel"
        self._published.visible = trained and not pixel
        self._overseer_ckpt.visible = trained and (pixel or not self._published.value)
        self._classes_file.visible = self._dataset.value == "class table file"
        custom = self._sam2.value == CONFIG_CHOICE
        self._image_size.visible = self._sam2.value not in FLOW_CHOICES and self._sam2.value != HF_CHOICE
        self._hf_model.visible = self._sam2.value == HF_CHOICE
        self._sam2_config.visible = self._sam2_ckpt.visible = self._random.visible = custom
        for w in self._advanced:
            w.visible = self._show_adv.value and ((trained and not pixel) or w not in (self._score_thr, self._mask_thr))

    def _warm_up(self, *_):
        """As soon as the form names a model, its libraries import in the background (torch's
        import holds the GIL for a while wherever it runs; better now than at Run)."""
        from ..core.background import warm_imports

        modules = []
        if self._overseer.value in TRAINED:
            modules += WARM_OVERSEER[TRAINED[self._overseer.value]]
        if self._sam2.value == HF_CHOICE:
            modules += WARM_HF
        elif self._sam2.value not in FLOW_CHOICES:
            modules += WARM_SAM2
        if modules:
            warm_imports(["torch", *modules])

    def _reference_thresholds(self, *_):
        """A new overseer type starts from the reference's thresholds for it."""
        from ..core.overseers.trained import DEFAULT_THRESHOLDS

        if TRAINED.get(self._overseer.value) in DEFAULT_THRESHOLDS:
            score, mask = DEFAULT_THRESHOLDS[TRAINED[self._overseer.value]]
            self._score_thr.value, self._mask_thr.value = score, mask

    def _suggest_out(self, *_):
        """The output store next to the input (``<video>_sasvi.zarr``), until the user picks one."""
        layer = self._frames.value
        if not self._out_suggested or layer is None:
            return
        src = (layer.metadata or {}).get("source")
        path = Path(src) if src else None
        target = (
            path.parent / f"{path.stem}_sasvi.zarr" if path is not None else Path.home() / f"{layer.name}_sasvi.zarr"
        )
        self._setting_out = True
        try:
            self._out.value = target
        finally:
            self._setting_out = False

    def use_overseer(self, kind: str, checkpoint, classes) -> None:
        """Choose a trained overseer (the train widget calls this when it has saved one): its type,
        its checkpoint and its classes (a preset by name, else a class table file beside it)."""
        import json

        self._overseer.value = next(name for name, k in TRAINED.items() if k == kind)
        self._published.value = False
        self._overseer_ckpt.value = Path(checkpoint)
        if classes.name in PRESETS and PRESETS[classes.name].ids == classes.ids:
            self._dataset.value = classes.name
        else:
            table = Path(checkpoint).with_name("classes.json")
            table.write_text(json.dumps(classes.to_dict(), indent=2))
            self._dataset.value = "class table file"
            self._classes_file.value = table
        self._update_visibility()

    def _out_edited(self, *_):
        if not getattr(self, "_setting_out", False):
            self._out_suggested = False

    def _config(self):
        from ._form import config_from_form

        return config_from_form(self)

    def _job(self):
        from ._form import job_from_form

        return job_from_form(self)

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
        from ..core.segment import segment_videos

        if self._worker is not None:
            return self._worker
        try:
            config = self._config()
            job = self._job()
        except (SasviError, ValueError, OSError) as e:
            show_error(f"SASVi: {e}")
            self._status.value = f"error: {e}"
            return None
        if config.tracker.kind == "flow" and config.device not in ("auto", "cpu"):
            show_info(f"SASVi: the flow tracker runs on the CPU; device {config.device} is for the overseer.")
        self._cancel.clear()
        self._job_name = job.name
        models, cancel = self._models, self._cancel.is_set
        shown = self._shown = threading.Event()

        def work():
            # keep napari's thread running meanwhile (core/background.py: what stalls it, measured)
            heap = frozen_heap()
            heap.freeze()  # napari's objects: out of the collector's walks while the run goes
            heap.pause()  # and no collection while torch is imported and the models are built
            gen = None
            try:
                wait_warm()  # the imports the form started (never two threads importing torch)
                preload_torch()  # torch's libraries load without holding the GIL
                self._limit_torch_threads()  # imports torch here, not on napari's thread
                gen = segment_videos([job], config, models=models, cancel=cancel)
                refreeze = 2  # once the models exist (store opened) and after the first batch
                while True:
                    try:
                        item = next(gen)
                    except StopIteration as stop:
                        return stop.value
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
        self._run.enabled = False
        self._cancel_btn.enabled = True
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

        from ..core.store import SasviStore
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

        def the_rest():
            from napari.utils import progress

            self._events = list(store.events)
            self._show_events()
            if item.done >= item.total:
                self._status.value = f"{item.store} is complete ({item.done} frames)"
                return
            if self._progress is None:
                self._progress = progress(total=item.total, desc="SASVi")
            self._progress.n = item.done
            self._status.value = f"running: {item.done}/{item.total} frames on disk"

        steps = [sasvi_layer, overseer_layer, the_rest]

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

    def _limit_torch_threads(self):
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
        from ..core.segment import VideoDone, VideoStarted

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
        else:
            self._events.append(item.to_dict())
            self._show_events()

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
        from ..core.store import SasviStore

        state = "cancelled" if summary.cancelled else "done"
        done = SasviStore.read(self._store.path).frames_done  # re-read: the run's progress, not the start's
        if summary.frames_written == 0 and not summary.cancelled and done >= summary.n_frames:
            self._status.value = f"{self._store.path} is complete ({done} frames)"
        else:
            self._status.value = f"{state}: {done}/{summary.n_frames} frames in {summary.seconds:.0f} s"
        self._events = summary.events
        self._show_events()

    def _on_error(self, exc):
        from napari.utils.notifications import show_error

        msg = str(exc)
        if "out of memory" in msg.lower():
            msg += " Try a smaller SAM2 model, a smaller image size, or the CPU. Frames written so far are kept; Run resumes."
        show_error(f"SASVi: {msg}")
        self._status.value = f"error: {msg}"

    def _on_finished(self):
        if getattr(self, "_torch_threads", None):
            import torch

            torch.set_num_threads(self._torch_threads)
            self._torch_threads = None
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        self._worker = None
        self._run.enabled = True
        self._cancel_btn.enabled = False

    # -- events ----------------------------------------------------------------------------------------
    def _show_events(self):
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
            )
        ]
        rows = sorted(rows + self._corrections.timeline(), key=lambda e: e["frame"])
        self._table.value = {
            "frame": [e["frame"] for e in rows],
            "kind": [e["kind"] for e in rows],
            "reason": [e.get("reason", "") for e in rows],
            "labels": [
                ", ".join(str(x) for x in (e.get("mask_labels", []) + e.get("point_labels", []) + e.get("labels", [])))
                for e in rows
            ],
        }

        store = getattr(self, "_store", None)
        if store is not None:
            self._strip.set_events(rows, store.n_frames)

    def _row_clicked(self, row, _col):
        frame = int(self._table.data[row][0])
        self._jump_to(frame)

    def _jump_to(self, frame: int):
        self._viewer.dims.set_current_step(0, frame)

    def _disconnect(self):
        """Stop listening to the viewer (the dock was closed or removed) and stop a run between frames."""
        self._cancel.set()
        if self._connected:
            self._connected = False
            for ev, cb in (
                (self._viewer.layers.events.inserted, self._refresh_choices),
                (self._viewer.layers.events.removed, self._refresh_choices),
            ):
                ev.disconnect(cb)

    def close(self):
        self._disconnect()
        super().close()


class _Failed(str):
    """A run's message for bad input (a returned exception object would be re-raised by the worker)."""
