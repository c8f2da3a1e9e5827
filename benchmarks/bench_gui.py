"""Event-loop latency of napari while the SASVi widget starts and runs, and the README screenshot.

    xvfb-run -a python benchmarks/bench_gui.py [--frames 40] [--image-size 128] [--screenshot docs/screenshot.png]
        [--overseer replay|maskrcnn] [--maskrcnn-backbone resnet50_fpn_v2|resnet18_fpn]
        [--tracker sam2|flow] [--sam2-config sam2.1_hiera_t] [--models cold|warm] [--scrub-ms 100]

A QTimer asks to fire every 20 ms on the GUI thread during a run of the "SASVi segment video"
widget (synthetic clip 256 x 320, CPU); how late it fires is how long the viewer was unresponsive.
The time slider is moved every 100 ms as a user would scrub, so napari also reads frames and the
zarr labels while the worker writes them.

Overseer: ``replay`` (the clip's noisy labels layer, as before) or ``maskrcnn``: a checkpoint in
the published Mask R-CNN layout (default: the CholecSeg8k architecture, ResNet50-FPN v2) with
random weights for the synthetic class table (8 classes), written once to ``--ckpt-dir`` by a
subprocess (so this process has not imported torchvision before the widget loads it), and chosen
in the form as a user would. Tracker: SAM2 (``--sam2-config``, random weights, ``--image-size``)
or the DIS optical-flow tracker.

The run is cut in two phases (issue 12 item 2: goal p95 < 50 ms, max < 200 ms at the start):

* startup: from just before ``run()`` is called (a click on Run) until the first frame is done (the
  first ``FrameDone`` the worker yields reaches the GUI, or the status reads "frame 1/..."). The
  QTimer cannot fire while ``run()`` itself blocks the GUI thread (today it builds the models
  there), so that blocked time is counted as ONE lateness sample equal to its duration: what a user
  experiences as a frozen window.
* rest: every tick after the first frame.
* form (``--form-seconds``, before the click): the time a user takes to fill in the form, during
  which the widget imports the chosen models' libraries in the background; reported so that the
  stall moved there is seen, not hidden.

``--blame-ms MS`` prints, for every tick later than MS, where the worker thread was when napari's
thread got the GIL back, what napari's own thread was doing meanwhile (sampled every 10 ms), and
the garbage collections over 20 ms: how the causes in ``core/background.py`` were found.

``--models cold`` (default) measures the first Run of a session: the models are built by that
Run. ``--models warm`` first does a throw-away run into ``<out>_warmup`` cancelled after its first
frame, so the measured Run finds the widget's memoised models (a second Run; close to what this
script measured before it had phases, when it pre-built the tracker).
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _widget_driver import WidgetDriver

FIELDS = (
    "_frames",
    "_overseer",
    "_overseer_layer",
    "_overseer_ckpt",
    "_published",
    "_dataset",
    "_sam2",
    "_sam2_config",
    "_random",
    "_image_size",
    "_device",
    "_out",
    "_status",
)
TERMINAL = re.compile(r"\s*(done|cancelled|error|.* is complete)\b", re.I)
FRAME_STATUS = re.compile(r"\s*frame (\d+)/(\d+)")

MAKE_CKPT = r"""
import sys
from dataclasses import replace
from pathlib import Path
import torch
from napari_sasvi.core.datasets import SYNTHETIC
from napari_sasvi.core.overseers.models import REFERENCE_SPECS, build_model
path, backbone = Path(sys.argv[1]), sys.argv[2]
ref = next(s for (d, a), s in REFERENCE_SPECS.items() if a == "maskrcnn" and s.backbone == backbone)
spec = replace(ref, num_labels=len(SYNTHETIC), label_offset=0)  # 8 labels, label 0 = background
torch.manual_seed(0)
tmp = path.with_suffix(".tmp")
torch.save(build_model(spec).state_dict(), tmp)
tmp.replace(path)
print(spec)
"""


_DRIVER = WidgetDriver("bench_gui", f"fields this script uses: {', '.join(FIELDS)}")
fail, field, choose = _DRIVER.fail, _DRIVER.field, _DRIVER.choose


def maskrcnn_checkpoint(ckpt_dir: Path, backbone: str) -> Path:
    path = ckpt_dir / f"bench_gui_maskrcnn_{backbone}_synthetic.pth"
    if not path.is_file():
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, "-c", MAKE_CKPT, str(path), backbone], capture_output=True, text=True)
        if res.returncode:
            fail(f"could not write the Mask R-CNN checkpoint:\n{res.stderr}")
        print(f"# wrote {path} ({path.stat().st_size / 2**20:.0f} MiB, {time.perf_counter() - t0:.1f} s)")
    return path


def stats(ms: list[float]) -> tuple[str, dict]:
    if not ms:
        return "- / - / - (0)", {}
    a = np.asarray(ms)
    d = {"median": float(np.median(a)), "p95": float(np.percentile(a, 95)), "max": float(a.max()), "n": len(a)}
    return f"{d['median']:.1f} / {d['p95']:.1f} / {d['max']:.0f} ({d['n']})", d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--image-size", type=int, default=128, help="SAM2 input size (a multiple of 32)")
    ap.add_argument("--screenshot", default=None)
    ap.add_argument("--scrub-ms", type=int, default=100, help="move the time slider this often (0: never)")
    ap.add_argument("--out", default="/tmp/sasvi_bench_gui.zarr")
    ap.add_argument("--overseer", choices=["replay", "maskrcnn"], default="replay")
    ap.add_argument("--maskrcnn-backbone", choices=["resnet50_fpn_v2", "resnet18_fpn"], default="resnet50_fpn_v2")
    ap.add_argument("--ckpt-dir", default="/tmp/sasvi_bench_gui_ckpt", help="where the Mask R-CNN checkpoint goes")
    ap.add_argument("--tracker", choices=["sam2", "flow"], default="sam2")
    ap.add_argument("--sam2-config", default="sam2.1_hiera_t")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--models", choices=["cold", "warm"], default="cold", help="first Run (cold) or a second (warm)")
    ap.add_argument("--timeout", type=float, default=3600, help="give up after this many seconds")
    ap.add_argument("--profile-run", type=int, default=0, metavar="N", help="print the N slowest calls inside run()")
    ap.add_argument(
        "--form-seconds",
        type=float,
        default=5.0,
        help="the event loop runs this long between filling in the form and clicking Run, as for a user "
        "(the widget imports the chosen models' libraries meanwhile); its lateness is reported as the form phase",
    )
    ap.add_argument(
        "--blame-ms",
        type=float,
        default=0,
        metavar="MS",
        help="for every tick later than MS, print where the worker thread was when the GUI got the GIL back",
    )
    a = ap.parse_args()
    command = "xvfb-run -a python benchmarks/bench_gui.py " + shlex.join(sys.argv[1:])

    import shutil

    ckpt = maskrcnn_checkpoint(Path(a.ckpt_dir), a.maskrcnn_backbone) if a.overseer == "maskrcnn" else None

    import napari
    from qtpy.QtCore import QEventLoop, QTimer
    from qtpy.QtWidgets import QApplication

    import napari_sasvi
    from napari_sasvi.core.synthetic import SyntheticVideo

    for p in (a.out, a.out + "_warmup"):
        shutil.rmtree(p, ignore_errors=True)
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    video = SyntheticVideo(n_frames=a.frames)
    viewer.add_image(video.frames_dask(), name="synthetic surgery", rgb=True, contrast_limits=(0, 255))
    from napari_sasvi._napari.sample import labels_layer_kwargs

    viewer.add_labels(video.noisy_labels_dask(), **labels_layer_kwargs(video.classes, "frame-wise overseer"))
    viewer.layers["frame-wise overseer"].visible = False
    _, w = viewer.window.add_plugin_dock_widget("napari-sasvi", "SASVi segment video")
    for name in FIELDS:
        field(w, name)
    if not callable(getattr(w, "run", None)):
        fail("the widget has no run() method")
    choose(w, "_frames", lambda c: getattr(c, "name", None) == "synthetic surgery")
    choose(w, "_overseer_layer", lambda c: getattr(c, "name", None) == "frame-wise overseer")
    if a.overseer == "replay":
        choose(w, "_overseer", lambda c: str(c).startswith("replay: labels"))
    else:
        choose(w, "_overseer", "Mask R-CNN")
        w._published.value = False
        w._overseer_ckpt.value = str(ckpt)
        choose(w, "_dataset", "synthetic")
    if a.tracker == "sam2":
        choose(w, "_sam2", lambda c: str(c).startswith("config"))
        w._sam2_config.value = a.sam2_config
        w._random.value = True
        w._image_size.value = a.image_size
    else:
        choose(w, "_sam2", lambda c: str(c).startswith("optical flow (DIS"))
    choose(w, "_device", a.device)
    app = QApplication.instance()

    # -- the probes ------------------------------------------------------------------------------------
    ticks: list[tuple[float, float]] = []  # (when, lateness in s)
    last = [time.perf_counter()]
    st: dict = {}

    def status() -> str:
        return str(w._status.value or "")

    def check_progress(now: float) -> None:
        s = status()
        if st.get("t_first") is None and FRAME_STATUS.match(s):
            st["t_first"] = now
        if st.get("loop") is not None and s != st["status0"] and TERMINAL.match(s):
            st["loop"].quit()

    blame: list[tuple[float, float, str]] = []
    gc_runs: list[tuple[float, int, float]] = []  # (start, generation, ms): a full collection holds the GIL
    if a.blame_ms:
        import gc
        import threading

        gc_start: dict = {}

        def gc_probe(phase, info):
            if phase == "start":
                gc_start[threading.get_ident()] = time.perf_counter()
            else:
                t0 = gc_start.pop(threading.get_ident(), None)
                if t0 is not None and st.get("t_call") is not None:
                    gc_runs.append((t0 - st["t_call"], info["generation"], 1000 * (time.perf_counter() - t0)))

        gc.callbacks.append(gc_probe)

        main_ident = threading.get_ident()
        main_samples: list[tuple[float, str]] = []  # what napari's thread was doing, every 10 ms

        def sample_main():
            import traceback

            while not st.get("sampling_done"):
                time.sleep(0.01)
                frame = sys._current_frames().get(main_ident)
                if frame is not None and st.get("t_call") is not None:
                    stack = traceback.extract_stack(frame)[-4:]
                    where = " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(stack))
                    main_samples.append((time.perf_counter() - st["t_call"], where))

        threading.Thread(target=sample_main, daemon=True).start()

    def where_workers_are() -> str:
        """The innermost frames of every other thread running this package's code (or torch's)."""
        import threading
        import traceback

        me = threading.get_ident()
        out = []
        for ident, frame in sys._current_frames().items():
            if ident == me:
                continue
            stack = traceback.extract_stack(frame)
            if not any("napari_sasvi" in f.filename for f in stack):
                continue
            out.append(" <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(stack[-6:])))
        return " | ".join(out) or "(no worker)"

    def tick():
        now = time.perf_counter()
        late = max(0.0, now - last[0] - 0.020)
        if a.blame_ms and late * 1000 > a.blame_ms:
            blame.append((now - st["t_call"], late * 1000, where_workers_are()))
        ticks.append((now, late))
        last[0] = now
        check_progress(now)
        if now - st["t_call"] > a.timeout:
            st["timed_out"] = True
            st["loop"].quit()

    def on_yielded(item):
        if type(item).__name__ == "FrameDone":
            st["frames_done"] = st.get("frames_done", 0) + 1
            if st.get("t_first") is None:
                st["t_first"] = time.perf_counter()

    timer = QTimer()
    timer.timeout.connect(tick)
    step = [0]

    def scrub():
        step[0] = (step[0] + 1) % a.frames
        viewer.dims.set_current_step(0, step[0])

    scrubber = QTimer()
    scrubber.timeout.connect(scrub)

    def one_run(out: str, stop_after_first: bool = False) -> dict:
        """Click Run once; returns the phase times. With ``stop_after_first``, Cancel at frame 1."""
        w._out.value = out
        st.clear()
        st.update(status0=status(), loop=None, t_first=None)
        ticks.clear()
        for _ in range(5):
            app.processEvents()
        st["t_call"] = last[0] = time.perf_counter()
        timer.start(20)
        if a.scrub_ms:
            scrubber.start(a.scrub_ms)
        if a.profile_run and not stop_after_first:
            import cProfile
            import pstats

            prof = cProfile.Profile()
            worker = prof.runcall(w.run)
            t_ret = time.perf_counter()
            print(f"# the {a.profile_run} slowest calls inside run() (cumulative; profiling slows it down):")
            pstats.Stats(prof, stream=sys.stdout).sort_stats("cumulative").print_stats(a.profile_run)
        else:
            worker = w.run()  # the GUI thread is in here: no tick, no repaint
            t_ret = time.perf_counter()
        blocked = t_ret - st["t_call"]
        ticks.append((t_ret, blocked))  # the frozen time as one sample
        last[0] = t_ret
        worker = worker if worker is not None else getattr(w, "_worker", None)
        if worker is None and not TERMINAL.match(status()):
            fail(f"run() started nothing; status: {status()!r}")
        if worker is not None:
            worker.yielded.connect(on_yielded)

            def finished():
                check_progress(time.perf_counter())
                if getattr(w, "_worker", None) is not worker and st["loop"] is not None:
                    st["loop"].quit()  # the widget let go of its worker: the run is over

            worker.finished.connect(lambda: QTimer.singleShot(0, finished))
        st["status0"] = status()  # "running..." (or whatever run() leaves)
        watcher = QTimer()
        if stop_after_first:
            cancel = getattr(w, "cancel", None) or field(w, "_cancel_btn").clicked.emit

            def cancel_at_first():
                if st.get("t_first") is not None and not st.get("cancelled"):
                    st["cancelled"] = True
                    cancel()

            watcher.timeout.connect(cancel_at_first)
            watcher.start(20)
        loop = QEventLoop()
        st["loop"] = loop
        if not TERMINAL.match(status()):
            loop.exec()  # a real event loop: no busy polling that would compete for the GIL
        app.processEvents()
        timer.stop()
        scrubber.stop()
        t_end = time.perf_counter()
        watcher.stop()
        if st.get("timed_out"):
            fail(f"no end after {a.timeout:.0f} s; status: {status()!r}")
        if status().lower().startswith("error"):
            fail(f"the run failed: {status()}")
        t_first = st["t_first"] if st.get("t_first") is not None else t_end
        return {
            "blocked": blocked,
            "t_call": st["t_call"],
            "t_first": t_first,
            "t_end": t_end,
            "frames": st.get("frames_done") or a.frames,
            "ticks": list(ticks),
            "status": status(),
        }

    form_ms: list[float] = []
    if a.form_seconds > 0:
        st.clear()
        st["t_call"] = last[0] = time.perf_counter()
        ticks.clear()
        timer.start(20)
        if a.scrub_ms:
            scrubber.start(a.scrub_ms)
        loop = QEventLoop()
        QTimer.singleShot(int(a.form_seconds * 1000), loop.quit)
        loop.exec()
        timer.stop()
        scrubber.stop()
        form_ms = [lat * 1000 for _, lat in ticks]
        if a.blame_ms:
            print(f"# form phase ({a.form_seconds:.0f} s): ticks later than {a.blame_ms:.0f} ms")
            for t, ms, where in blame:
                print(f"#  {t:7.2f} s {ms:7.0f} ms  {where}")
            blame.clear()
    if a.models == "warm":
        one_run(a.out + "_warmup", stop_after_first=True)
    r = one_run(a.out)

    # -- the figures -----------------------------------------------------------------------------------
    start_ms = [lat * 1000 for t, lat in r["ticks"] if t <= r["t_first"]]
    rest_ms = [lat * 1000 for t, lat in r["ticks"] if t > r["t_first"]]
    all_ms = start_ms + rest_ms
    secs = r["t_end"] - r["t_call"]
    to_first = r["t_first"] - r["t_call"]
    n_rest = r["frames"] - 1
    fps_rest = n_rest / (r["t_end"] - r["t_first"]) if n_rest > 0 and r["t_end"] > r["t_first"] else float("nan")
    s_start, d_start = stats(start_ms)
    s_rest, _ = stats(rest_ms)
    goal = "yes" if d_start and d_start["p95"] < 50 and d_start["max"] < 200 else "no"
    tracker = f"SAM2 {a.sam2_config} at {a.image_size} (random)" if a.tracker == "sam2" else "optical flow (DIS)"
    overseer = "replay" if a.overseer == "replay" else f"Mask R-CNN {a.maskrcnn_backbone} (random)"

    print(f"# command: {command}")
    print(f"# code: {Path(napari_sasvi.__file__).parent}; models {a.models}; device {a.device}")
    print(f"# final status: {r['status']}")
    scrubbing = f"while scrubbing every {a.scrub_ms} ms" if a.scrub_ms else "without touching the viewer"
    print(f"run: {r['frames']} frames in {secs:.1f} s ({r['frames'] / secs:.2f} frames/s) {scrubbing}")
    print(
        f"event-loop lateness over {len(all_ms)} ticks of 20 ms: median {np.median(all_ms):.1f} ms, "
        f"95th percentile {np.percentile(all_ms, 95):.1f} ms, max {max(all_ms):.1f} ms"
    )
    print(
        f"run() returned after {1000 * r['blocked']:.0f} ms (the GUI thread was blocked that long: counted as one "
        f"lateness sample of the startup phase); first frame done {to_first:.1f} s after the click"
    )
    s_form, _ = stats(form_ms)
    print(
        "| overseer | tracker | frames | form lateness median / p95 / max ms (ticks) | run() blocked (ms) "
        "| click to first frame (s) | startup lateness median / p95 / max ms (ticks) "
        "| rest lateness median / p95 / max ms (ticks) | frames/s after the first | frames/s whole run "
        "| startup goal p95 < 50, max < 200 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {overseer} | {tracker} | {r['frames']} | {s_form} | {1000 * r['blocked']:.0f} | {to_first:.1f} | {s_start} "
        f"| {s_rest} | {fps_rest:.2f} | {r['frames'] / secs:.2f} | {goal} |"
    )
    if a.blame_ms:
        print(f"# ticks later than {a.blame_ms:.0f} ms: seconds after the click, lateness, where the worker was")
        for t, ms, where in blame:
            print(f"#  {t:7.2f} s {ms:7.0f} ms  {where}")
            seen: dict[str, int] = {}
            for ts, mw in main_samples:
                if t - ms / 1000 <= ts <= t:
                    seen[mw] = seen.get(mw, 0) + 1
            for mw, k in sorted(seen.items(), key=lambda kv: -kv[1])[:3]:
                print(f"#        napari's thread x{k}: {mw}")
        long_gc = [g for g in gc_runs if g[2] > 20]
        print(f"# garbage collections over 20 ms (of {len(gc_runs)}): seconds after the click, generation, ms")
        for t, gen, ms in long_gc:
            print(f"#  {t:7.2f} s  gen {gen}  {ms:6.0f} ms")
    if a.screenshot:
        viewer.layers["frame-wise overseer"].visible = False
        viewer.dims.set_current_step(0, min(60, a.frames - 1))
        for _ in range(20):
            app.processEvents()
            time.sleep(0.02)
        from PIL import Image

        Image.fromarray(viewer.screenshot(canvas_only=False, flash=False)).save(a.screenshot)
        print(f"screenshot: {a.screenshot}")
    viewer.close()


if __name__ == "__main__":
    main()
