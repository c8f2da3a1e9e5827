"""Plugins > SASVi train overseer: paint a few frames (or scribbles), train an overseer in a worker
with a live loss / validation plot, then segment the video with it.

A thin shell over :func:`napari_sasvi.core.training.run.iter_train`. Painting: "New annotation
layer" adds a labels layer in which the painted value is the class id + 1, so napari's 0 (what the
eraser paints, and what a new layer holds) means "not painted" even where class 0 is a real class
(CholecSeg8k's black background, the synthetic clip's tissue). Any other labels layer holds class
ids, and the "unpainted value" (255 by default: our "no label") marks what is not annotated.
Cancel stops between steps and keeps the last checkpoint.
"""

from __future__ import annotations

import threading
from pathlib import Path

import napari
import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, Label, ProgressBar, PushButton, SpinBox

from ..core.datasets import PRESETS, ClassTable, get_class_table
from ..core.errors import SasviError

#: kind of overseer -> its name in the form
KINDS = {
    "Pixel classifier (seconds, CPU)": "pixel",
    "Mask R-CNN": "maskrcnn",
    "DETR": "detr",
    "Mask2Former": "mask2former",
}
FROM_LAYER = "from the labels layer"
#: metadata key of our annotation layers: painted value = class id + this
OFFSET_KEY = "sasvi_annotation_offset"
SEGMENT_WIDGET = ("napari-sasvi", "SASVi segment video")


def _layers(viewer, kind: str):
    import napari.layers

    cls = {"image": napari.layers.Image, "labels": napari.layers.Labels}[kind]
    return [layer for layer in viewer.layers if isinstance(layer, cls)] if viewer is not None else []


def annotation_layer_kwargs(classes: ClassTable, name: str) -> dict:
    """A labels layer for painting training frames: value = class id + 1, 0 = not painted; colours
    and names of the classes shifted to match."""
    from napari.utils.colormaps import DirectLabelColormap

    colors = {c.id + 1: tuple(v / 255 for v in c.color) + (1.0,) for c in classes}
    colors[0] = (0.0, 0.0, 0.0, 0.0)
    colors[None] = (0.0, 0.0, 0.0, 0.0)
    return {
        "name": name,
        "colormap": DirectLabelColormap(color_dict=colors),
        "features": {
            "index": [0] + [c.id + 1 for c in classes],
            "class": ["(not painted)"] + [c.name for c in classes],
        },
        "metadata": {"classes": classes.to_dict(), OFFSET_KEY: 1},
        "opacity": 0.6,
    }


class TrainWidget(Container):
    """The "SASVi train overseer" dock widget (see the module docstring)."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=True)
        self._viewer = viewer
        self._worker = None
        self._cancel = threading.Event()
        self.losses: list[tuple[int, float]] = []
        self.validations: list[tuple[int, float]] = []
        self.last_result = None
        self.checkpoint: Path | None = None
        self._frames = ComboBox(label="frames", choices=lambda _: _layers(self._viewer, "image"))
        self._labels = ComboBox(label="painted labels", choices=lambda _: _layers(self._viewer, "labels"))
        self._new_layer = PushButton(text="New annotation layer")
        self._dataset = ComboBox(label="classes", choices=[FROM_LAYER, *PRESETS], value=FROM_LAYER)
        self._unpainted = SpinBox(label="unpainted value", value=255, min=0, max=255)
        self._kind = ComboBox(label="overseer", choices=list(KINDS), value=next(iter(KINDS)))
        self._steps = SpinBox(label="steps", value=200, min=1, max=1_000_000)
        self._trees = SpinBox(label="trees", value=60, min=1, max=1000)
        self._device = ComboBox(label="device", choices=["auto", "cpu", "cuda", "mps"], value="auto")
        self._out = FileEdit(label="model folder", mode="d", value=Path.home() / "sasvi_overseer")
        self._train = PushButton(text="Train")
        self._cancel_btn = PushButton(text="Cancel", enabled=False)
        self._use = PushButton(text="Segment with this overseer", enabled=False)
        self._bar = ProgressBar(label="progress", value=0, min=0, max=1)
        self._status = Label(value="")
        self.extend(
            [
                self._frames,
                self._labels,
                self._new_layer,
                self._dataset,
                self._unpainted,
                self._kind,
                self._steps,
                self._trees,
                self._device,
                self._out,
                self._train,
                self._cancel_btn,
                self._bar,
                self._status,
                self._use,
            ]
        )
        self._build_plot()
        self._kind.changed.connect(self._update_visibility)
        self._labels.changed.connect(self._update_visibility)
        self._new_layer.changed.connect(self.new_annotation_layer)
        self._train.changed.connect(self.train)
        self._cancel_btn.changed.connect(self.cancel)
        self._use.changed.connect(self.use_in_segment_widget)
        self._connected = False
        if viewer is not None:
            viewer.layers.events.inserted.connect(self._refresh)
            viewer.layers.events.removed.connect(self._refresh)
            self._connected = True
        from ._lifecycle import on_detach

        self._detach_filter = on_detach(self.native, self._disconnect)
        self._update_visibility()

    # -- form ------------------------------------------------------------------------------------------
    def _refresh(self, *_):
        self._frames.reset_choices()
        self._labels.reset_choices()
        self._update_visibility()

    def _disconnect(self):
        if self._connected and self._viewer is not None:
            self._viewer.layers.events.inserted.disconnect(self._refresh)
            self._viewer.layers.events.removed.disconnect(self._refresh)
            self._connected = False
        if self._worker is not None:
            self._cancel.set()

    def _update_visibility(self, *_):
        pixel = KINDS[self._kind.value] == "pixel"
        self._trees.visible = pixel
        self._steps.visible = not pixel
        layer = self._labels.value
        self._unpainted.visible = layer is None or OFFSET_KEY not in (layer.metadata or {})

    def classes(self) -> ClassTable:
        if self._dataset.value != FROM_LAYER:
            return get_class_table(self._dataset.value)
        for layer in (self._labels.value, self._frames.value):
            table = (getattr(layer, "metadata", None) or {}).get("classes")
            if table:
                return ClassTable.from_dict(table)
        raise SasviError("The labels layer does not say which classes it holds: pick them under 'classes'.")

    def new_annotation_layer(self, *_):
        """A labels layer the size of the frames, nothing painted (0), class id + 1 when painted."""
        frames = self._frames.value
        if frames is None:
            raise SasviError("Open the frames first: the annotation layer takes their size.")
        try:
            classes = self.classes()
        except SasviError:
            classes = get_class_table("synthetic" if self._dataset.value == FROM_LAYER else self._dataset.value)
        shape = tuple(frames.data.shape[:3])
        layer = self._viewer.add_labels(
            np.zeros(shape, np.uint8), **annotation_layer_kwargs(classes, f"{frames.name} annotations")
        )
        self._labels.reset_choices()
        self._labels.value = layer
        self._update_visibility()
        self._status.value = "paint some frames (value = class id + 1), then Train"
        return layer

    # -- plot ------------------------------------------------------------------------------------------
    def _build_plot(self):
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(4, 3), tight_layout=True)
        self._ax = self.figure.add_subplot(1, 1, 1)
        self._ax_val = self._ax.twinx()
        self._canvas = FigureCanvasQTAgg(self.figure)
        self._canvas.setMinimumHeight(220)
        self.native.layout().addWidget(self._canvas)
        self._redraw()

    def _redraw(self):
        ax, av = self._ax, self._ax_val
        ax.clear()
        av.clear()
        if self.losses:
            s, v = zip(*self.losses, strict=True)
            ax.plot(s, v, color="tab:blue", marker="." if len(s) < 30 else None, label="training loss")
        if self.validations:
            s, v = zip(*self.validations, strict=True)
            av.plot(s, v, color="tab:orange", marker="o", label="validation Dice")
            av.set_ylim(0, 1)
        ax.set_xlabel("step")
        ax.set_ylabel("loss", color="tab:blue")
        av.set_ylabel("Dice", color="tab:orange")
        av.yaxis.set_label_position("right")
        self._canvas.draw_idle()

    # -- running ---------------------------------------------------------------------------------------
    def _training_set(self):
        from ..core.training.data import check_trainable, from_arrays

        frames, labels = self._frames.value, self._labels.value
        if frames is None or labels is None:
            raise SasviError("Pick the frames layer and the labels layer in which some frames are painted.")
        offset = int((labels.metadata or {}).get(OFFSET_KEY, 0))
        unpainted = 0 if offset else int(self._unpainted.value)
        data = from_arrays(
            frames.data, labels.data, self.classes(), unpainted=unpainted, name=labels.name, offset=offset
        )
        if len(data.train) >= 3:  # hold one painted frame out to validate on, when there are enough
            data.val, data.train = data.train[-1:], data.train[:-1]
        return check_trainable(data)

    def train(self, *_):
        """Train in a worker; returns it (tests wait on it), or None when the form is incomplete."""
        from napari.qt.threading import thread_worker
        from napari.utils.notifications import show_error

        from ..core.training.deep import DeepParams
        from ..core.training.forest import PixelParams
        from ..core.training.run import iter_train

        if self._worker is not None:
            return self._worker
        kind = KINDS[self._kind.value]
        out = Path(str(self._out.value))
        steps, trees, device = int(self._steps.value), int(self._trees.value), self._device.value
        self._cancel.clear()
        cancel = self._cancel.is_set
        try:
            classes = self.classes()
        except SasviError as e:
            show_error(f"SASVi: {e}")
            self._status.value = f"error: {e}"
            return None

        def work():
            try:
                data = self._training_set()  # reads the labels layer: in the worker, not on napari's thread
                yield ("data", len(data.train), len(data.val))
                gen = iter_train(
                    kind,
                    data,
                    out,
                    deep=DeepParams(steps=steps, val_every=max(1, steps // 10), pretrained="auto"),
                    pixel=PixelParams(n_estimators=trees),
                    device=device,
                    cancel=cancel,
                )
                return (yield from gen)
            except (SasviError, ValueError, OSError) as e:
                return _Failed(str(e))

        self.losses, self.validations = [], []
        self._redraw()
        self._classes = classes
        self._kind_running = kind
        worker = thread_worker(work, start_thread=False)()
        worker.yielded.connect(self._on_event)
        worker.returned.connect(self._on_done)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        worker.aborted.connect(self._on_aborted)
        self._worker = worker
        self._train.enabled = False
        self._cancel_btn.enabled = True
        self._use.enabled = False
        self._status.value = "reading the painted frames..."
        worker.start()
        return worker

    def cancel(self, *_):
        """Stop after the current step; the last checkpoint is kept (deep overseers save it)."""
        self._cancel.set()
        if self._worker is not None and self._kind_running == "pixel":
            self._worker.quit()
        self._status.value = "cancelling: saving the last step..."

    def _on_event(self, ev):
        from ..core.training.events import Saved, Stage, TrainStep, Validated

        if isinstance(ev, tuple) and ev[0] == "data":
            self._status.value = f"training on {ev[1]} painted frame(s), validating on {ev[2]}"
        elif isinstance(ev, Stage):
            self._bar.max, self._bar.value = max(ev.total, 1), ev.done
            self._status.value = f"{ev.what}: {ev.done}/{ev.total}"
        elif isinstance(ev, TrainStep):
            self.losses.append((ev.step, ev.loss))
            self._bar.max, self._bar.value = max(ev.total, 1), ev.step
            self._status.value = f"step {ev.step}/{ev.total}: loss {ev.loss:.4f}"
            if ev.step % 5 == 0 or ev.step == ev.total or len(self.losses) < 5:
                self._redraw()
        elif isinstance(ev, Validated):
            self.validations.append((ev.step, ev.dice))
            self._redraw()
        elif isinstance(ev, Saved):
            self.checkpoint = Path(ev.path)

    def _on_done(self, result):
        from napari.utils.notifications import show_error, show_info

        if isinstance(result, _Failed):
            show_error(f"SASVi: {result}")
            self._status.value = f"error: {result}"
            return
        if result is None:  # a pixel run quit before it saved
            self._status.value = "cancelled before a model was saved"
            return
        self.last_result = result
        self.checkpoint = Path(result.checkpoint)
        v = result.validation
        score = f", validation Dice {v.dice:.3f}" if v is not None else ""
        what = "cancelled at" if result.cancelled else "done:"
        self._status.value = f"{what} {result.steps} step(s){score}; saved {self.checkpoint}"
        self._use.enabled = True
        self._redraw()
        self._offer_to_segment_widget()
        show_info(f"SASVi: overseer saved to {self.checkpoint}")

    def _on_aborted(self):
        """A pixel run stopped by Cancel before it saved (its fit takes seconds: nothing to keep)."""
        self._status.value = "cancelled before a model was saved"

    def _on_error(self, exc):
        from napari.utils.notifications import show_error

        show_error(f"SASVi: training failed: {exc}")
        self._status.value = f"error: {exc}"

    def _on_finished(self):
        self._worker = None
        self._train.enabled = True
        self._cancel_btn.enabled = False

    # -- the segment widget ----------------------------------------------------------------------------
    def _segment_widget(self, create: bool):
        window = getattr(self._viewer, "window", None)
        if window is None:
            return None
        name = f"{SEGMENT_WIDGET[1]} ({SEGMENT_WIDGET[0]})"
        if not create and name not in getattr(window, "dock_widgets", {}):
            return None
        _, widget = window.add_plugin_dock_widget(*SEGMENT_WIDGET)
        return widget

    def _offer_to_segment_widget(self):
        """A docked segment widget gets the new overseer selected at once."""
        seg = self._segment_widget(create=False)
        if seg is not None and self.checkpoint is not None:
            seg.use_overseer(self._kind_running, self.checkpoint, self._classes)

    def use_in_segment_widget(self, *_):
        """Open (or find) the segment widget with this overseer chosen; returns it."""
        seg = self._segment_widget(create=True)
        if seg is not None and self.checkpoint is not None:
            seg.use_overseer(self._kind_running, self.checkpoint, self._classes)
        return seg


class _Failed(str):
    """A worker's message for bad input (a str: a returned exception would be raised again)."""
