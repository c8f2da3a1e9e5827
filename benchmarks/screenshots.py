"""The pictures in README.md and docs/, taken from real runs that need no weights.

    xvfb-run -a python benchmarks/screenshots.py [--out docs] [--data /work/shared/data]
        [--only screenshot events temporal corrections davis prompts] [--window 1400x900] [--width 1200]

Everything goes through napari and the plugin's widgets as a user would drive them (the form is
filled in, Run is pressed, the worker fills the layers), with the optical-flow tracker (DIS, no
weights, CPU), so every picture shows what the plugin does, not a model with random weights:

* ``screenshot.png`` (the README picture): ``File > Open Sample > SASVi > Synthetic surgical video
  with overseer noise``, ``Plugins > SASVi segment video`` docked, the noisy overseer replayed,
  Run; the SASVi labels over the frames at a frame where the overseer is wrong (it misses the
  grasper on frame 30 of 120).
* ``events_strip.png``: the same run's events table, strip and legend (a grab of that part of the
  dock).
* ``temporal.png``: ``Plugins > SASVi temporal consistency`` on the same run (SASVi, the noisy
  overseer, the ground truth, with the frames for F), Compute; a grab of the dock.
* ``corrections.png``: on the same run, the frame where SASVi is furthest from the ground truth is
  painted with the ground truth (napari's own ``data_setitem``, what the brush calls), Re-propagate;
  the viewer at that frame with the dock's events and corrections panel.
* ``davis_blackswan.png``: the DAVIS 2016 ``blackswan`` clip (``--data``; 50 frames, 854 x 480,
  DAVIS 2016 is CC BY-NC 4.0) opened with the plugin's reader; its ground truth on frame 0 only,
  as a labels layer with that frame painted, is the annotated frame; no overseer ("none: propagate
  the annotated frames"); the last frame with the ground truth's outline over the SASVi labels.
  The region similarity J (IoU) of the run and of copying the frame-0 mask to every frame (the
  trivial baseline) is printed.

Each picture is saved as PNG at most ``--width`` pixels wide (downscaled from the window) and
reduced to a 256-colour palette when it would be over 300 KB. The command and the numbers for
each caption are printed. The script reads ``--data`` (it is a benchmark, not a test).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _widget_driver import WidgetDriver, click

PICTURES = ("screenshot", "events", "temporal", "corrections", "davis", "prompts")
MAX_BYTES = 300_000
SAMPLE = "synthetic_noisy"  # File > Open Sample > SASVi > ... with overseer noise
DIS = "optical flow (DIS, no weights)"
#: the overseer misses the grasper on frame 30 (a one-frame dropout, SyntheticVideo.noise_events)
SHOWN_FRAME = 30
BLACKSWAN = "davis2016_eor-vos_blackswan"


_DRIVER = WidgetDriver("screenshots")
fail, field, choose = _DRIVER.fail, _DRIVER.field, _DRIVER.choose


def named(name: str):
    return lambda c: getattr(c, "name", c) == name


class Session:
    """One napari window and the helpers that wait for its workers and take its pictures."""

    def __init__(self, a):
        import napari
        from qtpy.QtWidgets import QApplication

        self.a = a
        self.viewer = napari.Viewer(show=True)
        self.size = tuple(int(v) for v in a.window.split("x"))
        self.app = QApplication.instance()
        self.restore()

    def restore(self) -> None:
        """The window at its size (a tall dock can grow it) and the view fitted to the canvas."""
        self.viewer.window._qt_window.resize(*self.size)
        self.settle(0.5)
        self.viewer.reset_view()
        self.settle(0.2)

    def settle(self, seconds: float = 0.4) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            self.app.processEvents()
            time.sleep(0.02)

    def wait(self, done, what: str, timeout: float = 900) -> None:
        t0 = time.perf_counter()
        while not done():
            self.app.processEvents()
            time.sleep(0.05)
            if time.perf_counter() - t0 > timeout:
                fail(f"{what}: no end after {timeout:.0f} s")
        self.settle()

    def dock(self, widget_name: str):
        _, w = self.viewer.window.add_plugin_dock_widget("napari-sasvi", widget_name)
        self.settle()
        return w

    def window_png(self, path: Path) -> None:
        self.restore()
        save_png(self.viewer.screenshot(canvas_only=False, flash=False), path, self.a.width)

    def grab_png(self, parent, children, path: Path, pad: int = 6) -> None:
        """The part of ``parent`` that holds ``children`` (Qt widgets), as one picture."""
        from qtpy.QtCore import QRect

        self.settle(0.6)
        rect = QRect()
        for c in children:
            top_left = c.mapTo(parent, c.rect().topLeft())
            rect = rect.united(QRect(top_left, c.size()))
        rect = rect.adjusted(-pad, -pad, pad, pad).intersected(parent.rect())
        save_png(qimage_to_array(parent.grab(rect).toImage()), path, self.a.width)

    def close(self) -> None:
        self.viewer.close()


def qimage_to_array(img) -> np.ndarray:
    from qtpy.QtGui import QImage

    img = img.convertToFormat(QImage.Format.Format_RGBA8888)
    h, w = img.height(), img.width()
    buf = img.constBits()
    buf.setsize(h * img.bytesPerLine()) if hasattr(buf, "setsize") else None
    arr = np.frombuffer(buf, np.uint8).reshape(h, img.bytesPerLine() // 4, 4)
    return arr[:, :w].copy()


def save_png(rgba: np.ndarray, path: Path, max_width: int) -> None:
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(rgba)).convert("RGB")
    if im.width > max_width:
        im = im.resize((max_width, round(im.height * max_width / im.width)), Image.Resampling.LANCZOS)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, optimize=True)
    if path.stat().st_size > MAX_BYTES:  # textured frames: a 256-colour palette keeps it small
        im.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)
    print(f"picture: {path} ({im.width} x {im.height}, {path.stat().st_size / 1000:.0f} KB)")


def run_segment(s: Session, w) -> None:
    """Press Run and wait for the worker to end; fail with the widget's status on an error."""
    if w.run() is None:
        fail(f"Run started nothing: {field(w, '_status').value}")
    s.wait(lambda: field(w, "_worker") is None, "the run")
    status = str(field(w, "_status").value)
    if status.lower().startswith("error"):
        fail(f"the run failed: {status}")
    print(f"# segment widget: {status}")


def synthetic(s: Session, tmp: Path, out: Path, want: set[str]) -> None:
    """The README picture, the events strip, the temporal plots and a correction, from one run."""
    from napari_sasvi.core.store.sasvi_store import SasviStore

    v = s.viewer
    v.open_sample("napari-sasvi", SAMPLE)
    frames, truth, noisy = v.layers[0], v.layers[1], v.layers[2]
    truth.visible = noisy.visible = False
    w = s.dock("SASVi segment video")
    choose(w, "_frames", named(frames.name))
    choose(w, "_overseer", lambda c: str(c).startswith("replay: labels"))
    choose(w, "_overseer_layer", named(noisy.name))
    choose(w, "_dataset", "synthetic")
    choose(w, "_sam2", DIS)
    field(w, "_out").value = tmp / "synthetic_surgery.zarr"
    run_segment(s, w)
    store = SasviStore.read(tmp / "synthetic_surgery.zarr")
    sasvi = v.layers["synthetic_surgery SASVi"]
    v.layers.selection.active = sasvi  # as a user who goes on to paint would have it
    kinds: dict[str, int] = {}
    for e in store.events:
        kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
    print(f"# events: {kinds}")
    labels = np.asarray(store.labels)
    gt, over = np.asarray(truth.data), np.asarray(noisy.data)
    noise_table(store.classes, gt, over, labels)
    t = SHOWN_FRAME
    v.dims.set_current_step(0, t)
    if "screenshot" in want:
        s.window_png(out / "screenshot.png")
    if "events" in want:
        events_picture(s, w, t, out / "events_strip.png")
    if "corrections" in want:
        corrections_picture(s, w, sasvi, gt, labels, out / "corrections.png")
    if "temporal" in want:
        temporal_picture(s, sasvi, noisy, truth, frames, t, out / "temporal.png")


def noise_table(classes, gt: np.ndarray, over: np.ndarray, labels: np.ndarray) -> None:
    """At each of the overseer's scheduled errors: IoU of the class with the ground truth, overseer vs SASVi."""
    from napari_sasvi.core.synthetic import SyntheticVideo

    def iou(a, b):
        return (a & b).sum() / max(1, (a | b).sum())

    print(
        "# the overseer's errors (SyntheticVideo.noise_events): frame, error, class, "
        "IoU with the ground truth overseer -> SASVi (blob: pixels outside the ground truth)"
    )
    for ev in SyntheticVideo(n_frames=len(gt)).noise_events:
        for t in range(ev.first, ev.last + 1):
            c, truth = ev.class_id, gt[t] == ev.class_id
            if ev.kind == "blob":
                what = f"{int(((over[t] == c) & ~truth).sum())} px -> {int(((labels[t] == c) & ~truth).sum())} px"
            else:
                what = f"{iou(over[t] == c, truth):.2f} -> {iou(labels[t] == c, truth):.2f}"
            print(f"#  {t:4d} {ev.kind:9s} {classes.by_id(c).name:22s} {what}")


def dock_of(widget):
    """The QDockWidget napari put ``widget`` in."""
    from qtpy.QtWidgets import QDockWidget

    p = widget.native
    while p is not None and not isinstance(p, QDockWidget):
        p = p.parentWidget()
    if p is None:
        fail(f"{type(widget).__name__} is not in a dock")
    return p


def floating(s: Session, widget, size: tuple[int, int]):
    """Float ``widget``'s dock at ``size`` (W, H)."""
    dock = dock_of(widget)
    dock.setFloating(True)
    dock.resize(*size)
    s.settle(0.8)
    return dock


def events_picture(s: Session, w, t: int, path: Path) -> None:
    """The events table (scrolled to the row of frame ``t``), the strip and its legend."""
    table, strip = field(w, "_table"), field(w, "_strip")
    rows = [int(r[0]) for r in table.data]
    row = min(range(len(rows)), key=lambda i: abs(rows[i] - t))
    table.native.selectRow(row)
    table.native.scrollTo(table.native.model().index(row, 0))
    s.grab_png(w.native, [table.native, strip, strip.legend], path)


def temporal_picture(s: Session, sasvi, noisy, truth, frames, t: int, path: Path) -> None:
    tw = s.dock("SASVi temporal consistency")
    combos = field(tw, "_layers")  # role -> ComboBox of layer names
    for role, layer in (("SASVi", sasvi), ("overseer", noisy), ("ground truth", truth)):
        if role not in combos:
            fail(f"the temporal widget has no role {role!r}: {list(combos)}")
        combos[role].value = layer.name
    field(tw, "_frames").value = frames.name
    if tw.compute() is None:
        fail("Compute started nothing")
    s.wait(lambda: field(tw, "_worker") is None, "Compute")
    print(f"# temporal widget: {field(tw, '_status').value}; table: {field(tw, '_table').value}")
    s.viewer.dims.set_current_step(0, t)  # the plots' cursor
    floating(s, tw, (dock_of(tw).width(), 900))  # its own height: the plots unsqueezed by the segment dock
    s.grab_png(tw.native, [tw.native], path, pad=0)


def corrections_picture(s: Session, w, sasvi, gt: np.ndarray, labels: np.ndarray, path: Path) -> None:
    """Paint the ground truth where SASVi is furthest from it (one frame), Re-propagate."""
    panel = field(w, "_corrections")
    wrong = (labels != gt).reshape(len(gt), -1).sum(1)
    t = int(np.argmax(wrong[1:])) + 1
    yy, xx = np.nonzero(gt[t] != labels[t])
    was = {int(c): int(n) for c, n in zip(*np.unique(gt[t][gt[t] != labels[t]], return_counts=True), strict=True)}
    print(f"# correction: frame {t}, {yy.size} pixels differ from the ground truth (truth class: pixels {was})")
    s.viewer.dims.set_current_step(0, t)
    sasvi.data_setitem((np.full(yy.shape, t), yy, xx), gt[t][yy, xx])
    if panel.repropagate() is None:
        fail(f"Re-propagate started nothing: {panel._info.value}")
    s.wait(lambda: panel._worker is None, "Re-propagate")
    print(f"# corrections panel: {panel._info.value}")
    s.viewer.dims.set_current_step(0, t)
    s.window_png(path)


def blackswan_run(s: Session, data: Path, tmp: Path):
    """The segment widget run on blackswan from frame 0's ground truth (anchors only, the flow
    tracker): the widget, the ground truth (T, H, W) bool, the store's labels == swan."""
    from PIL import Image

    from napari_sasvi.core.store.sasvi_store import SasviStore

    clip = data / BLACKSWAN
    tmp.mkdir(parents=True, exist_ok=True)
    if not (clip / "frames").is_dir():
        fail(f"{clip / 'frames'} is not a folder: pass --data, the folder that holds {BLACKSWAN}/")
    gt = np.stack([np.asarray(Image.open(p)) == 255 for p in sorted((clip / "masks").glob("*.png"))])
    table = tmp / "blackswan_classes.yaml"
    table.write_text(
        "name: blackswan\nno_label: 0\nignore_ids: [0]\nclasses:\n"
        "  - {id: 0, name: background, color: [0, 0, 0]}\n  - {id: 1, name: black swan, color: [255, 64, 64]}\n"
    )
    v = s.viewer
    [frames] = v.open(str(clip / "frames"), plugin="napari-sasvi")
    frames.name = "blackswan"
    anchors = np.zeros(gt.shape, np.uint8)
    anchors[0] = gt[0]  # the one annotated frame
    v.add_labels(anchors, name="annotated frame 0", opacity=0.5, visible=False)
    w = s.dock("SASVi segment video")
    choose(w, "_frames", named("blackswan"))
    choose(w, "_overseer", lambda c: str(c).startswith("none"))
    choose(w, "_anchor_src", lambda c: str(c).startswith("labels layer"))
    choose(w, "_anchor_layer", named("annotated frame 0"))
    choose(w, "_dataset", lambda c: "class table" in str(c))
    field(w, "_classes_file").value = table
    choose(w, "_sam2", DIS)
    field(w, "_out").value = tmp / "blackswan.zarr"
    run_segment(s, w)
    return w, gt, np.asarray(SasviStore.read(tmp / "blackswan.zarr").labels) == 1


def davis(s: Session, data: Path, tmp: Path, path: Path) -> None:
    """Anchors only: the ground truth of frame 0 propagated by the flow tracker over the clip."""
    from napari.utils.colormaps import DirectLabelColormap

    _, gt, labels = blackswan_run(s, data, tmp)
    v = s.viewer

    def jaccard(a, b):
        return float((a & b).sum() / max(1, (a | b).sum()))

    j = [jaccard(labels[t], gt[t]) for t in range(1, len(gt))]
    copy = [jaccard(gt[0], gt[t]) for t in range(1, len(gt))]
    last = len(gt) - 1
    print(
        f"# blackswan, frames 1-{last}: J (IoU) mean {np.mean(j):.3f}, min {np.min(j):.3f}, last frame {j[-1]:.3f}; "
        f"copying frame 0's mask: mean {np.mean(copy):.3f}, last frame {copy[-1]:.3f}"
    )
    outline = v.add_labels(
        gt.astype(np.uint8),
        name="ground truth (outline)",
        colormap=DirectLabelColormap(color_dict={0: (0, 0, 0, 0), 1: (1, 1, 1, 1), None: (0, 0, 0, 0)}),
        opacity=1.0,
    )
    outline.contour = 2
    sasvi = v.layers["blackswan SASVi"]
    sasvi.opacity = 0.55
    v.layers.selection.active = sasvi
    v.dims.set_current_step(0, last)
    s.window_png(path)


def prompts_picture(s: Session, data: Path, tmp: Path, path: Path) -> None:
    """Clicks and boxes: on blackswan's last frame, one click on the swan and one on the wall behind
    it; the preview mask (the classical segmenter: the store's tracker is the flow tracker), the
    section open in the dock. Then Commit, and the frame's Dice before and after."""
    from scipy import ndimage

    from napari_sasvi.core.store.sasvi_store import SasviStore

    w, gt, labels = blackswan_run(s, data, tmp)
    v, t = s.viewer, len(gt) - 1
    panel, box = field(w, "_prompts"), field(w, "_prompts_box")
    box.expand(animate=False)
    v.dims.set_current_step(0, t)
    s.settle()
    if not panel.start():
        fail(f"prompting did not start: {field(panel, '_info').value}")
    s.wait(lambda: panel._lane is None and panel._waiting is None, "the frame's features")
    dist = ndimage.distance_transform_edt(gt[t])
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)  # the swan's innermost pixel
    bg = ndimage.distance_transform_edt(~gt[t])
    near = np.where((bg > 15) & (bg < 40))  # the wall, just off the swan's back
    clicks = [(x, y, ()), (int(near[1][0]), int(near[0][0]), ("Shift",))]

    layer = v.layers["SASVi clicks"]
    for cx, cy, mods in clicks:
        click(layer, (t, float(cy), float(cx)), mods)
        s.wait(lambda: panel._lane is None and panel._waiting is None, "the preview")

    def dice(a, b):
        return float(2 * (a & b).sum() / max(1, a.sum() + b.sum()))

    preview = panel.last_mask.mask
    v.layers["blackswan SASVi"].opacity = 0.35
    s.window_png(path)
    worker = panel.commit()
    if worker is None:
        fail(f"the commit was refused: {field(panel, '_info').value}")
    s.wait(lambda: panel._commit_worker is None, "the commit")
    after = np.asarray(SasviStore.read(tmp / "blackswan.zarr").labels[t]) == 1
    print(
        f"# blackswan frame {t}: Dice of the SASVi layer {dice(labels[t], gt[t]):.3f}; the two clicks' mask "
        f"{dice(preview, gt[t]):.3f} (latency {1000 * panel.latencies[-1]:.0f} ms); the frame after Commit "
        f"{dice(after, gt[t]):.3f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="docs", help="folder the pictures go to")
    ap.add_argument("--data", default="/work/shared/data", help=f"the folder that holds {BLACKSWAN}/")
    ap.add_argument("--only", nargs="+", choices=PICTURES, default=list(PICTURES))
    ap.add_argument("--window", default="1400x900", help="napari's window size, W x H")
    ap.add_argument("--width", type=int, default=1200, help="pictures wider than this are downscaled")
    a = ap.parse_args()
    print(f"# command: xvfb-run -a python benchmarks/screenshots.py {shlex.join(sys.argv[1:])}")
    out, want = Path(a.out), set(a.only)
    with tempfile.TemporaryDirectory(prefix="sasvi_screenshots_") as tmp:
        if want - {"davis", "prompts"}:
            s = Session(a)
            synthetic(s, Path(tmp), out, want)
            s.close()
        if "davis" in want:
            s = Session(a)
            davis(s, Path(a.data), Path(tmp), out / "davis_blackswan.png")
            s.close()
        if "prompts" in want:
            s = Session(a)
            prompts_picture(s, Path(a.data), Path(tmp) / "prompts", out / "prompts.png")
            s.close()


if __name__ == "__main__":
    main()
