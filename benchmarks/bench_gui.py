"""Event-loop latency of napari while the SASVi widget runs, and the README screenshot.

    xvfb-run -a python benchmarks/bench_gui.py [--frames 40] [--image-size 128] [--screenshot docs/screenshot.png]

A QTimer asks to fire every 20 ms on the GUI thread during a run of the "SASVi segment video"
widget (synthetic clip 256 x 320, replay overseer, SAM2.1 tiny with random weights, CPU); how late
it fires is how long the viewer was unresponsive. The time slider is moved every 100 ms as a user
would scrub, so napari also reads frames and the zarr labels while the worker writes them.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--screenshot", default=None)
    ap.add_argument("--scrub-ms", type=int, default=100, help="move the time slider this often (0: never)")
    ap.add_argument("--out", default="/tmp/sasvi_bench_gui.zarr")
    a = ap.parse_args()

    import shutil

    import napari
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from napari_sasvi.core.synthetic import SyntheticVideo

    shutil.rmtree(a.out, ignore_errors=True)
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    video = SyntheticVideo(n_frames=a.frames)
    viewer.add_image(video.frames_dask(), name="synthetic surgery", rgb=True, contrast_limits=(0, 255))
    from napari_sasvi._napari.sample import labels_layer_kwargs

    viewer.add_labels(video.noisy_labels_dask(), **labels_layer_kwargs(video.classes, "frame-wise overseer"))
    viewer.layers["frame-wise overseer"].visible = False
    _, w = viewer.window.add_plugin_dock_widget("napari-sasvi", "SASVi segment video")
    w._overseer_layer.value = viewer.layers["frame-wise overseer"]
    w._sam2.value = "config + checkpoint"
    w._random.value = True
    w._image_size.value = a.image_size
    w._device.value = "cpu"
    w._out.value = a.out
    app = QApplication.instance()
    w._tracker(legacy=False)  # build the model before timing (memoised by the widget)

    lateness: list[float] = []
    last = [time.perf_counter()]

    def tick():
        now = time.perf_counter()
        lateness.append(max(0.0, now - last[0] - 0.020))
        last[0] = now

    timer = QTimer()
    timer.timeout.connect(tick)
    step = [0]

    def scrub():
        step[0] = (step[0] + 1) % a.frames
        viewer.dims.set_current_step(0, step[0])

    scrubber = QTimer()
    scrubber.timeout.connect(scrub)
    t0 = time.perf_counter()
    worker = w.run()
    last[0] = time.perf_counter()
    timer.start(20)
    if a.scrub_ms:
        scrubber.start(a.scrub_ms)
    from qtpy.QtCore import QEventLoop

    loop = QEventLoop()
    worker.finished.connect(loop.quit)
    loop.exec()  # a real event loop: no busy polling that would compete for the GIL
    app.processEvents()
    timer.stop()
    scrubber.stop()
    secs = time.perf_counter() - t0
    lat = np.array(lateness) * 1000
    print(
        f"# command: xvfb-run -a python benchmarks/bench_gui.py --frames {a.frames} --image-size {a.image_size} "
        f"--scrub-ms {a.scrub_ms}"
    )
    scrub = f"while scrubbing every {a.scrub_ms} ms" if a.scrub_ms else "without touching the viewer"
    print(f"run: {a.frames} frames in {secs:.1f} s ({a.frames / secs:.2f} frames/s) {scrub}")
    print(
        f"event-loop lateness over {len(lat)} ticks of 20 ms: median {np.median(lat):.1f} ms, "
        f"95th percentile {np.percentile(lat, 95):.1f} ms, max {lat.max():.1f} ms"
    )
    if a.screenshot:
        viewer.layers["frame-wise overseer"].visible = False
        viewer.dims.set_current_step(0, min(60, a.frames - 1))
        for _ in range(20):
            app.processEvents()
            time.sleep(0.02)
        from PIL import Image

        Image.fromarray(viewer.screenshot(canvas_only=False, flash=False)).save(a.screenshot)
        print(f"screenshot: {a.screenshot}")
    del worker
    viewer.close()


if __name__ == "__main__":
    main()
