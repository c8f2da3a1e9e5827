"""Plugins > SASVi temporal consistency: T and F of labels layers, plotted against the time slider.

Pick up to three labels layers (SASVi, overseer, ground truth) and optionally the frames for F;
Compute runs :func:`napari_sasvi.core.metrics.temporal.iter_temporal` in a worker with a progress bar.
The per-frame T-IoU (and F-IoU) curves share the time axis with the viewer: a line marks the
current frame and clicking the plot moves the slider there. Per-class bars and a summary table
follow; the figure can be saved as PNG and the numbers as CSV.

The flow here is OpenCV's (no weights). RAFT is offered by the CLI only: importing torchvision's
models after napari's OpenGL canvas exists crashes the process (see docs/design.md).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import napari
import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, Label, PushButton, Table

from ..core.datasets import PRESETS, ClassTable, get_class_table
from ..core.errors import SasviError
from ..core.progress import Returning
from ._layout import fit_dock, fit_table, narrow_combos, section, wrap_label

NONE = "(none)"
FROM_LAYER = "from the layers"
ROLES = ("SASVi", "overseer", "ground truth")


def _choices(viewer, kind: str):
    import napari.layers

    cls = {"image": napari.layers.Image, "labels": napari.layers.Labels}[kind]
    return [NONE, *(layer.name for layer in viewer.layers if isinstance(layer, cls))]


class TemporalWidget(Container):
    """The "SASVi temporal consistency" dock widget (see the module docstring)."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=True)
        from ._guard import keep_triton_out

        keep_triton_out()
        self._viewer = viewer
        self._layers = {
            role: ComboBox(label=role, choices=lambda _: _choices(self._viewer, "labels")) for role in ROLES
        }
        self._frames = ComboBox(
            label="frames",
            choices=lambda _: _choices(self._viewer, "image"),
            tooltip="The frames, for the flow-warped F scores (none: T only).",
        )
        self._convention = ComboBox(label="convention", choices=["default", "reference"], value="default")
        # layers made by napari-sasvi carry their class table; for others the user says which
        self._table_choice = ComboBox(
            label="classes",
            choices=[FROM_LAYER, *PRESETS],
            value=FROM_LAYER,
            tooltip="The class table of layers that do not carry one (layers napari-sasvi made do).",
        )
        self._compute = PushButton(text="Compute")
        self._status = Label(value="")
        self._table = Table(value={"layer": [], "T-IoU": [], "T-ASSD": [], "F-IoU": [], "F-Dice": [], "Dice vs GT": []})
        self._png = FileEdit(label="figure", mode="w", filter="*.png", value=Path.home() / "sasvi_temporal.png")
        self._save_png = PushButton(text="Save figure (PNG)")
        self._csv = FileEdit(label="numbers", mode="w", filter="*.csv", value=Path.home() / "sasvi_temporal.csv")
        self._save_csv = PushButton(text="Save numbers (CSV)")
        wrap_label(self._status)
        self.extend(
            [*self._layers.values(), self._frames, self._convention, self._table_choice, self._compute, self._status]
        )
        narrow_combos(self)
        fit_table(self._table, stretch=None)
        # six columns of numbers in a 300 px dock: a smaller font, and room for the three layers' rows
        font = self._table.native.font()
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.8))
        self._table.native.setFont(font)
        self._table.native.setMinimumHeight(110)
        self._build_plot()
        self.native.layout().addWidget(self._table.native)
        export = Container(labels=True, widgets=[self._png, self._save_png, self._csv, self._save_csv])
        self.native.layout().addWidget(section("Save figure / numbers", export))
        fit_dock(self.native)
        self._compute.changed.connect(self.compute)
        self._save_png.changed.connect(lambda *_: self.save_png(self._png.value))
        self._save_csv.changed.connect(lambda *_: self.save_csv(self._csv.value))
        viewer.dims.events.current_step.connect(self._move_cursor)
        viewer.layers.events.inserted.connect(self._refresh)
        viewer.layers.events.removed.connect(self._refresh)
        from ._lifecycle import on_detach

        self._connected = True
        self._detach_filter = on_detach(self.native, self._disconnect)
        self._guess_roles()
        self.results: dict[str, object] = {}
        self.accuracy: dict[str, float] = {}
        self.classes: dict[str, ClassTable] = {}  # each scored layer's class table, by role
        self._worker = None

    # -- form ------------------------------------------------------------------------------------------
    def _refresh(self, *_):
        for w in (*self._layers.values(), self._frames):
            w.reset_choices()

    def _guess_roles(self):
        names = _choices(self._viewer, "labels")[1:]
        for role, hint in zip(ROLES, ("sasvi", "overseer", "ground"), strict=True):
            match = next((n for n in names if hint in n.lower()), None)
            if match:
                self._layers[role].value = match
        images = _choices(self._viewer, "image")[1:]
        if images:
            self._frames.value = images[0]

    def _build_plot(self):
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(3, 4), tight_layout=True)
        self._ax_series = self.figure.add_subplot(2, 1, 1)
        self._ax_bars = self.figure.add_subplot(2, 1, 2)
        self._canvas = FigureCanvasQTAgg(self.figure)
        self._canvas.setMinimumHeight(460)  # two plots, a legend above and class names below
        self._canvas.mpl_connect("button_press_event", self._clicked)
        self._cursor = None
        self._apply_theme()
        self._viewer.events.theme.connect(self._apply_theme)
        self.native.layout().addWidget(self._canvas)

    # -- computing -------------------------------------------------------------------------------------
    def compute(self, *_):
        """Compute T (and F) for every chosen layer in a worker; returns the worker."""
        from napari.qt.threading import thread_worker
        from napari.utils import progress
        from napari.utils.notifications import show_error

        from ..core.metrics.accuracy import overlap_counts
        from ..core.metrics.temporal import iter_temporal

        chosen = {role: self._viewer.layers[w.value] for role, w in self._layers.items() if w.value not in (None, NONE)}
        if not chosen:
            show_error("SASVi: pick at least one labels layer.")
            return None
        frames = None if self._frames.value in (None, NONE) else self._viewer.layers[self._frames.value].data
        convention = self._convention.value
        fallback = None if self._table_choice.value == FROM_LAYER else get_class_table(self._table_choice.value)
        total = sum(int(layer.data.shape[0]) - 1 for layer in chosen.values())
        bar = progress(total=max(total, 1), desc="temporal consistency")

        def job():
            try:
                return (yield from compute_all())
            except (SasviError, ValueError) as e:  # bad input: a notification, not a traceback
                return _Failed(str(e))  # (a returned exception object would be re-raised by the worker)

        def compute_all():
            from ..core.inputs.labels import open_labels
            from ..core.inputs.lazy import read_frame
            from ..core.metrics.accuracy import macro

            results, accuracy, stacks, tables = {}, {}, {}, {}
            for role, layer in chosen.items():
                classes = _classes_of(layer) or fallback
                if classes is None:
                    raise ValueError(
                        f"Layer {layer.name!r} does not say which classes it holds: pick a class table under 'classes'."
                    )
                tables[role] = classes
                # the one label reader: values outside the table are an error, never dropped
                stacks[role] = labels = open_labels(layer.data, classes)
                ignore = set(classes.ignore_ids) | {classes.no_label, 255}
                run = Returning(
                    iter_temporal(labels, frames, convention=convention, ignore=ignore, no_label=classes.no_label)
                )
                for _ in run:
                    yield 1  # one frame pair scored
                results[role] = run.value
            gt = stacks.get("ground truth")
            if gt is not None:
                ids = gt.classes.scored_ids()
                for role, labels in stacks.items():
                    if role == "ground truth" or labels.shape != gt.shape:
                        continue
                    n = int(labels.shape[0])
                    counts = overlap_counts(
                        (read_frame(labels, t) for t in range(n)), (read_frame(gt, t) for t in range(n)), gt.classes.ids
                    )
                    accuracy[role] = macro(counts.dice(), ids)
            return results, accuracy, tables

        worker = thread_worker(job, start_thread=False)()
        worker.yielded.connect(lambda _: bar.update(1))
        worker.returned.connect(self._show)
        worker.errored.connect(lambda e: (show_error(f"SASVi: {e}"), setattr(self._status, "value", f"error: {e}")))
        worker.finished.connect(bar.close)
        worker.finished.connect(lambda: setattr(self, "_worker", None))
        self._worker = worker
        self._status.value = "computing..."
        worker.start()
        return worker

    # -- showing -----------------------------------------------------------------------------------------
    def _show(self, payload):
        if isinstance(payload, _Failed):
            from napari.utils.notifications import show_error

            show_error(f"SASVi: {payload}")
            self._status.value = f"error: {payload}"
            return
        self.results, self.accuracy, self.classes = payload
        names = self.class_names()
        ax, bx = self._ax_series, self._ax_bars
        ax.clear()
        bx.clear()
        for role, r in self.results.items():
            x = np.arange(1, len(r.series["t_iou"]) + 1)
            (line,) = ax.plot(x, r.series["t_iou"], label=f"{role} T-IoU")
            if r.series["f_iou"]:
                ax.plot(x, r.series["f_iou"], "--", color=line.get_color(), label=f"{role} F-IoU")
        ax.set_xlabel("frame (pair t-1, t)", fontsize="small")
        ax.set_ylabel("IoU", fontsize="small")
        ax.set_ylim(0, 1.02)
        ax.tick_params(labelsize="x-small")
        # above the curves, one column per layer: inside the axes it hid the curves in a narrow dock
        ax.legend(fontsize="xx-small", loc="lower center", bbox_to_anchor=(0.5, 1.01), ncol=2, frameon=False)
        self._cursor = ax.axvline(self._viewer.dims.current_step[0], color="0.4", lw=1)
        labels = sorted({c for r in self.results.values() for c in r.labels_scored})
        width = 0.8 / max(1, len(self.results))
        for k, (role, r) in enumerate(self.results.items()):
            x = np.arange(len(labels)) + k * width
            # a class absent from a layer has no score: no bar and "n/a", never a 0 bar
            bx.bar(x, [r.t_iou.get(c, np.nan) for c in labels], width, label=role)
            for xi, c in zip(x, labels, strict=True):
                if c not in r.t_iou:
                    bx.text(xi, 0.02, "n/a", ha="center", va="bottom", rotation=90, fontsize="x-small")
        ticks = [_short(names.get(c, str(c))) for c in labels]
        bx.set_xticks(np.arange(len(labels)) + 0.4 - width / 2, ticks)
        bx.tick_params(axis="x", labelrotation=90 if len(labels) > 3 else 0, labelsize="x-small")
        bx.tick_params(axis="y", labelsize="x-small")
        if not labels:  # an empty layer: no class to score
            bx.text(0.5, 0.5, "n/a: no class scored", ha="center", va="center", transform=bx.transAxes)
        bx.set_ylabel("T-IoU per class", fontsize="small")
        bx.set_ylim(0, 1.02)
        self._apply_theme()
        self._table.value = {
            "layer": list(self.results),
            **{
                col: [_fmt(r.macro[key]) for r in self.results.values()]
                for col, key in (("T-IoU", "t_iou"), ("T-ASSD", "t_assd"), ("F-IoU", "f_iou"), ("F-Dice", "f_dice"))
            },
            "Dice vs GT": [_fmt(self.accuracy.get(role)) for role in self.results],
        }
        fit_table(self._table, stretch=None)  # new columns after a new value
        self._status.value = f"done ({self._convention.value} convention)"

    def _disconnect(self):
        """The dock was closed or removed: stop listening to the viewer."""
        if not self._connected:
            return
        self._connected = False
        v = self._viewer
        for ev, cb in (
            (v.dims.events.current_step, self._move_cursor),
            (v.layers.events.inserted, self._refresh),
            (v.layers.events.removed, self._refresh),
            (v.events.theme, self._apply_theme),
        ):
            ev.disconnect(cb)

    def close(self):
        self._disconnect()
        super().close()

    def _apply_theme(self, *_):
        """The figure in napari's theme (background, text, grid), redrawn when the theme changes."""
        from napari.utils.theme import get_theme

        try:
            theme = get_theme(self._viewer.theme)
        except (KeyError, ValueError):  # a theme name napari no longer knows
            return
        bg, fg, text = theme.background.as_hex(), theme.foreground.as_hex(), theme.text.as_hex()
        self.figure.set_facecolor(bg)
        for ax in (self._ax_series, self._ax_bars):
            ax.set_facecolor(bg)
            ax.tick_params(colors=text, which="both")
            ax.xaxis.label.set_color(text)
            ax.yaxis.label.set_color(text)
            ax.title.set_color(text)
            for spine in ax.spines.values():
                spine.set_color(fg)
            legend = ax.get_legend()
            if legend is not None:
                legend.get_frame().set_facecolor(bg)
                legend.get_frame().set_edgecolor(fg)
                for t in legend.get_texts():
                    t.set_color(text)
        self._canvas.draw_idle()

    def _move_cursor(self, event=None):
        if self._cursor is not None:
            t = self._viewer.dims.current_step[0]
            self._cursor.set_xdata([t, t])
            self._canvas.draw_idle()

    def _clicked(self, event):
        if event.inaxes is self._ax_series and event.xdata is not None:
            self._viewer.dims.set_current_step(0, int(round(event.xdata)))

    def class_names(self) -> dict[int, str]:
        """Class id -> name over the class tables of the layers scored (the first that names an id)."""
        names: dict[int, str] = {}
        for table in self.classes.values():
            for c in table:
                names.setdefault(c.id, c.name)
        return names

    # -- exporting ---------------------------------------------------------------------------------------
    def save_png(self, path):
        self.figure.savefig(str(path), dpi=150)
        self._status.value = f"saved {path}"

    def save_csv(self, path):
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["layer", "label", "class", "t_iou", "t_assd", "f_iou", "f_dice"])
            names = self.class_names()
            for role, r in self.results.items():
                for c in r.labels_scored:
                    scores = [r.t_iou.get(c), r.t_assd.get(c), r.f_iou.get(c), r.f_dice.get(c)]
                    w.writerow([role, c, names.get(c, ""), *scores])
                w.writerow([role, "macro", "", *(r.macro[k] for k in ("t_iou", "t_assd", "f_iou", "f_dice"))])
            for role, d in self.accuracy.items():
                w.writerow([role, "dice_vs_ground_truth", "", d, "", "", ""])
        self._status.value = f"saved {path}"


class _Failed(str):
    """A worker's message for bad input."""


def _classes_of(layer) -> ClassTable | None:
    table = (layer.metadata or {}).get("classes")
    return ClassTable.from_dict(table) if table else None


def _fmt(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def _short(name: str, n: int = 14) -> str:
    """A class name short enough for a tick label in a narrow dock (the full one is in the CSV)."""
    return name if len(name) <= n else name[: n - 1] + "…"
