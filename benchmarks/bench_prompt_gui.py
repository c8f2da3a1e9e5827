"""Clicks in napari (issue 30): click-to-mask time in the viewer, and napari's responsiveness while a
frame's SAM2 features are computed.

    xvfb-run -a python benchmarks/bench_prompt_gui.py [--image-size 1024] [--config sam2.1_hiera_t]
        [--frames 4] [--clicks 8] [--height 480 --width 854] [--tracker sam2|flow]

A synthetic clip (``--height`` x ``--width``) is segmented by the "SASVi segment video" widget
(SAM2 ``--config`` with random weights at ``--image-size``, CPU; or the flow tracker, whose prompts
use the classical segmenter). Then, in the widget's "Clicks and boxes" section: prompting starts
on frame 1 (the frame's image features are computed in a worker: the prefetch), and ``--clicks``
clicks are made one after another through napari's own mouse-callback path, each waiting for its
mask. Reported:

* the prefetch's duration, and the event loop's lateness meanwhile (a QTimer asks to fire every
  10 ms on the GUI thread; how late it fires is how long napari was unresponsive; goal p95 < 50 ms);
* per click, the panel's own figure (``PromptPanel.latencies``: from the change of the clicks layer
  to the preview layer's data being set, on the GUI thread) and the time until the next paint of
  the canvas has been processed (the mask on screen).
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

D = WidgetDriver("bench_prompt_gui", "the segment widget's form and its _prompts panel")


def _wait(app, cond, timeout: float) -> None:
    end = time.perf_counter() + timeout
    while not cond():
        if time.perf_counter() > end:
            D.fail(f"timed out after {timeout:.0f} s")
        app.processEvents()
        time.sleep(0.001)


def _stats(ms: list[float]) -> str:
    if not ms:
        return "- (no ticks)"
    return f"{np.median(ms):.1f} / {np.percentile(ms, 95):.1f} / {max(ms):.1f} ({len(ms)})"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tracker", choices=["sam2", "flow"], default="sam2")
    ap.add_argument("--config", default="sam2.1_hiera_t")
    ap.add_argument("--image-size", type=int, default=1024)
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--clicks", type=int, default=8)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=854)
    a = ap.parse_args(argv)
    import napari
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from napari_sasvi.core.store.sasvi_store import SasviStore
    from napari_sasvi.core.synthetic import SyntheticVideo

    video = SyntheticVideo(n_frames=a.frames, height=a.height, width=a.width, seed=4)
    frames, noisy = video.arrays(noisy=True)
    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    viewer.add_image(frames, name="clip", rgb=True)
    viewer.add_labels(noisy, name="frame-wise")
    _, w = viewer.window.add_plugin_dock_widget("napari-sasvi", "SASVi segment video")
    D.field(w, "_dataset").value = "synthetic"
    if a.tracker == "flow":
        D.choose(w, "_sam2", lambda c: str(c).startswith("optical flow (DIS"))
    else:
        D.field(w, "_sam2").value = "config + checkpoint"
        D.field(w, "_sam2_config").value = a.config
        D.field(w, "_random").value = True
        D.field(w, "_image_size").value = a.image_size
        D.field(w, "_device").value = "cpu"
    out = Path(tempfile.mkdtemp(prefix="bench_prompt_gui_")) / "s.zarr"
    D.field(w, "_out").value = out
    t0 = time.perf_counter()
    w.run()
    _wait(app, lambda: w._worker is None, 1800)
    if not SasviStore.read(out).complete:
        D.fail(f"the run did not finish: {w._status.value}")
    run_s = time.perf_counter() - t0
    panel = D.field(w, "_prompts")

    ticks: list[tuple[float, float]] = []
    last = [time.perf_counter()]

    def tick():
        now = time.perf_counter()
        ticks.append((now, max(0.0, now - last[0] - 0.010)))
        last[0] = now

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    t = 1
    viewer.dims.set_current_step(0, t)
    _wait(app, lambda: True, 1)
    last[0] = time.perf_counter()
    timer.start()
    s0 = time.perf_counter()
    if not panel.start():  # on the GUI thread: adds the prompt layers, starts the prefetch worker
        D.fail(f"prompting did not start: {panel._info.value if hasattr(panel, '_info') else ''}")
    viewer.window._qt_viewer.canvas.native.update()
    app.processEvents()  # the first paint with the three new layers, on the GUI thread: part of Start
    p0 = last[0] = time.perf_counter()  # start()'s own blocking is reported apart
    _wait(app, lambda: panel._lane is None and panel._waiting is None, 600)
    p1 = time.perf_counter()
    prefetch = [1000 * lat for when, lat in ticks if p0 < when <= p1 + 0.02]
    clicks_layer = viewer.layers["SASVi clicks"]
    rng = np.random.default_rng(0)
    screen, c0 = [], time.perf_counter()
    for _ in range(a.clicks):
        n = len(panel.latencies)
        x, y = rng.uniform(0.3, 0.7) * a.width, rng.uniform(0.3, 0.7) * a.height
        s = time.perf_counter()
        click(clicks_layer, (t, float(y), float(x)))
        _wait(app, lambda n=n: len(panel.latencies) > n and panel._lane is None, 120)
        viewer.window._qt_viewer.canvas.native.update()
        app.processEvents()  # the paint the new preview asked for
        screen.append(time.perf_counter() - s)
    c1 = time.perf_counter()
    timer.stop()
    during_clicks = [1000 * lat for when, lat in ticks if c0 <= when <= c1]
    lat_ms = [1000 * v for v in panel.latencies[-a.clicks :]]
    scr_ms = [1000 * v for v in screen]
    seg = "SAM2 image path" if a.tracker == "sam2" else "classical (GrabCut)"
    print(
        f"\nclicks in napari, {seg}, "
        f"{f'{a.config} at {a.image_size} (random weights)' if a.tracker == 'sam2' else 'flow tracker (no model)'}, "
        f"CPU, frames {a.width} x {a.height}; the run before: {a.frames} frames in {run_s:.1f} s\n"
    )
    print("| what | median / p95 / max ms (n) |")
    print("|---|---|")
    print(
        f"| Start prompting on the GUI thread (3 layers added and painted, worker started) | {1000 * (p0 - s0):.0f} ms |"
    )
    print(f"| prefetch of frame {t}'s features (worker, after Start returned) | {1000 * (p1 - p0):.0f} ms in all |")
    print(f"| event-loop lateness during the prefetch | {_stats(prefetch)} |")
    print(f"| click to preview layer set (PromptPanel.latencies) | {_stats(lat_ms)} |")
    print(f"| click to mask painted (after the canvas' next paint) | {_stats(scr_ms)} |")
    print(f"| event-loop lateness during the clicks | {_stats(during_clicks)} |")
    print(f"\ncommand: xvfb-run -a python {shlex.join(['benchmarks/bench_prompt_gui.py', *sys.argv[1:]])}")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
