"""Corrections: the time to re-propagate a 20-frame span against a whole run, what a correction
with the ground truth does to that span, and napari's event-loop lateness while it re-propagates.

    python benchmarks/bench_edits.py [--clips cholecseg8k synthetic] [--trackers flow sam2] [--span 20]
    xvfb-run -a python benchmarks/bench_edits.py --gui [--clips synthetic] [--trackers flow sam2]

Clips and the noisy overseer as in ``bench_anchors.py`` (the real CholecSeg8k clip, 72 frames
854 x 480, and the embedded synthetic sample, 120 frames 256 x 320). Per clip and tracker:

1. a whole SASVi run with the noisy overseer (replay), default mode: its time;
2. a correction at frame t with that frame's ground truth, t chosen so that the span to the next
   boundary is ``--span`` frames (the longest span if none is that long): the time of the
   re-propagation, of its Undo, and the span's Dice against the ground truth before and after
   (pooled over the span's frames per class, macro over the classes in the ground truth there);
3. the store outside the span compared byte for byte (every chunk file but the span's).

Trackers: ``flow`` (DIS optical flow, CPU) and ``sam2`` (SAM2.1 tiny from its real config with
random weights at ``--image-size``, CPU: real timings, meaningless Dice).

``--gui``: the same in napari: a whole run in the "SASVi segment video" widget (replaying the noisy
overseer from its folder), then frame t of the SASVi layer painted with napari's own painting call
(``data_setitem``, what the brush calls) and Re-propagate pressed. A 20 ms QTimer measures how late
napari's event loop runs while the time slider is moved every 100 ms: during the run, with the
viewer idle (3 s), and during the re-propagation.
Outputs go to ``benchmarks/_work/edits`` (ignored by git).
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_anchors import prepare  # noqa: E402

from napari_sasvi.core.engine import (  # noqa: E402
    EditRequest,
    run_edit,
    run_sasvi,  # noqa: E402
    undo_edit,
)
from napari_sasvi.core.overseers.replay import ReplayOverseer  # noqa: E402
from napari_sasvi.core.policy import PolicyParams  # noqa: E402
from napari_sasvi.core.store.edit_log import boundaries  # noqa: E402
from napari_sasvi.core.store.sasvi_store import SasviStore  # noqa: E402


def make_tracker(kind: str, image_size: int):
    if kind == "flow":
        from napari_sasvi.core.trackers.flow import FlowTracker

        return FlowTracker()
    from napari_sasvi.core.config import TrackerConfig
    from napari_sasvi.core.engine.batch import build_tracker

    cfg = TrackerConfig(kind="sam2", config="sam2.1_hiera_t", random_weights=True, image_size=image_size)
    return build_tracker(cfg, "cpu")


def span_dice(pred: np.ndarray, gt: np.ndarray, ignore: int = 255) -> float:
    valid = gt != ignore
    scores = []
    for c in np.unique(gt[valid]):
        p, g = (pred == c) & valid, (gt == c) & valid
        denom = p.sum() + g.sum()
        scores.append(2 * (p & g).sum() / denom if denom else 1.0)
    return float(np.mean(scores)) if scores else float("nan")


def chunk_files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "sasvi_undo" not in p.parts and p.name not in ("sasvi_edits.json", "zarr.json")
    }


def pick_frame(store, span: int) -> tuple[int, int]:
    """A frame whose span to the next boundary is ``span`` frames (else the longest span)."""
    b = [*boundaries(store), store.n_frames]
    gaps = [(e - s, s, e) for s, e in zip(b, b[1:], strict=False)]
    fit = [(s, e) for g, s, e in gaps if g > span]
    if fit:
        s, e = fit[0]
        return e - span, e
    _, s, e = max(gaps)
    return s + 1, e


def full_run(frames_dir: Path, noisy: np.ndarray, table, tracker, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    run_sasvi(str(frames_dir), ReplayOverseer(noisy, table), tracker, str(out), table, PolicyParams())
    return time.perf_counter() - t0


def bench_headless(clip: str, kind: str, a) -> dict:
    frames_dir, _, _, gt, _, table = prepare(clip, a.data, a.work.parent / "anchors")
    from bench_anchors import corrupt

    if clip == "cholecseg8k":
        noisy = corrupt(gt, table.no_label)
    else:
        from napari_sasvi.core.synthetic import SyntheticVideo

        noisy = SyntheticVideo().arrays(noisy=True)[1]
    tracker = make_tracker(kind, a.image_size)
    out = a.work / f"{clip}_{kind}.zarr"
    secs_full = full_run(frames_dir, noisy, table, tracker, out)
    store = SasviStore.read(out)
    n = store.n_frames
    t, nxt = pick_frame(store, a.span)
    before_files = chunk_files(out)
    before = np.asarray(store.labels[t:nxt])
    t0 = time.perf_counter()
    s = run_edit(out, str(frames_dir), tracker, EditRequest("correction", t, gt[t]))
    secs_edit = time.perf_counter() - t0
    after = np.asarray(SasviStore.read(out).labels[t:nxt])
    after_files = chunk_files(out)
    span_keys = tuple(f"labels/c/{f}/" for f in range(s.start, s.stop + 1))
    untouched = all(after_files[k] == v for k, v in before_files.items() if not k.startswith(span_keys))
    t1 = time.perf_counter()
    undo_edit(out)
    secs_undo = time.perf_counter() - t1
    restored = chunk_files(out) == before_files
    return {
        "clip": clip,
        "tracker": kind if kind == "flow" else f"sam2.1 tiny @{a.image_size} (random)",
        "n": n,
        "full": secs_full,
        "frame": t,
        "span": s.written,
        "edit": secs_edit,
        "undo": secs_undo,
        "dice_before": span_dice(before, gt[t:nxt]),
        "dice_after": span_dice(after, gt[t:nxt]),
        "untouched": untouched,
        "restored": restored,
    }


def bench_gui(clip: str, kind: str, a) -> dict:
    import napari
    from qtpy.QtCore import QEventLoop, QTimer
    from qtpy.QtWidgets import QApplication

    frames_dir, _, noisy_dir, gt, _, _ = prepare(clip, a.data, a.work.parent / "anchors")
    out = a.work / f"{clip}_{kind}_gui.zarr"
    shutil.rmtree(out, ignore_errors=True)
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    viewer.open(str(frames_dir), plugin="napari-sasvi")
    _, w = viewer.window.add_plugin_dock_widget("napari-sasvi", "SASVi segment video")
    w._dataset.value = "cholecseg8k" if clip == "cholecseg8k" else "synthetic"
    if kind == "flow":
        w._sam2.value = next(c for c in w._sam2.choices if str(c).startswith("optical flow (DIS"))
    else:
        w._sam2.value = "config + checkpoint"
        w._sam2_config.value = "sam2.1_hiera_t"
        w._random.value = True
        w._image_size.value = a.image_size
        w._device.value = "cpu"
    w._overseer.value = next(c for c in w._overseer.choices if str(c).startswith("replay: folder"))
    w._overseer_path.value = str(noisy_dir)
    w._encoding.value = "class-ids"
    w._out.value = str(out)
    app = QApplication.instance()
    ticks: list[float] = []
    last = [time.perf_counter()]

    late: list[tuple[float, float]] = []  # (seconds into the phase, ms) of ticks over 100 ms
    phase0 = [time.perf_counter()]

    def tick():
        now = time.perf_counter()
        ms = max(0.0, now - last[0] - 0.020) * 1000
        ticks.append(ms)
        if ms > 100:
            late.append((now - phase0[0], ms))
        last[0] = now

    n = len(gt)
    step = [0]

    def scrub():
        step[0] = (step[0] + 1) % n
        viewer.dims.set_current_step(0, step[0])

    timer, scrubber = QTimer(), QTimer()
    timer.timeout.connect(tick)
    scrubber.timeout.connect(scrub)

    def wait(pred, timeout=1800):
        loop = QEventLoop()
        poll = QTimer()
        poll.timeout.connect(lambda: pred() and loop.quit())
        poll.start(50)
        QTimer.singleShot(int(timeout * 1000), loop.quit)
        loop.exec()
        poll.stop()

    def measure(seconds=None, until=None):
        ticks.clear()
        late.clear()
        last[0] = phase0[0] = time.perf_counter()
        timer.start(20)
        scrubber.start(100)
        t0 = time.perf_counter()
        if seconds is not None:
            loop = QEventLoop()
            QTimer.singleShot(int(seconds * 1000), loop.quit)
            loop.exec()
        else:
            until()
        timer.stop()
        scrubber.stop()
        return list(ticks), time.perf_counter() - t0

    def whole_run():
        w.run()
        wait(lambda: w._worker is None)

    run_ticks, run_secs = measure(until=whole_run)
    store = SasviStore.read(out)
    if not store.complete:
        raise SystemExit(f"the run did not finish: {w._status.value}")
    for _ in range(10):
        app.processEvents()
    layer = w._labels_layer
    t, _ = pick_frame(store, a.span)
    viewer.dims.set_current_step(0, t)
    yy, xx = np.nonzero(np.asarray(layer.data[t]) != gt[t])
    layer.data_setitem((np.full(yy.shape, t), yy, xx), gt[t][yy, xx])  # what napari's brush calls
    idle, _ = measure(seconds=3)
    panel = w._corrections

    def go():
        panel.repropagate()
        wait(lambda: panel._worker is None)

    busy, secs = measure(until=go)
    late_busy = list(late)
    if "recomputed" not in panel._info.value:
        raise SystemExit(f"re-propagation failed: {panel._info.value}")
    [summary] = panel.last_summaries
    viewer.close()
    pct = lambda v, q: float(np.percentile(v, q)) if v else float("nan")  # noqa: E731
    stats = lambda v: (float(np.median(v)), pct(v, 95), max(v), len(v))  # noqa: E731
    return {
        "clip": clip,
        "tracker": kind if kind == "flow" else f"sam2.1 tiny @{a.image_size} (random)",
        "n": n,
        "frame": t,
        "span": summary.written,
        "run_secs": run_secs,
        "gui_secs": secs,
        "run": stats(run_ticks),
        "idle": stats(idle),
        "busy": stats(busy),
        "late_busy": late_busy,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data", type=Path, default=HERE.parent.parent / "shared/data/cholecseg8k_surgicalsam2_frames561-633"
    )
    ap.add_argument("--clips", nargs="+", default=["cholecseg8k", "synthetic"])
    ap.add_argument("--trackers", nargs="+", default=["flow", "sam2"], choices=["flow", "sam2"])
    ap.add_argument("--span", type=int, default=20)
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--gui", action="store_true")
    ap.add_argument("--work", type=Path, default=HERE / "_work" / "edits")
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    command = ("xvfb-run -a " if a.gui else "") + "python benchmarks/bench_edits.py " + shlex.join(sys.argv[1:])
    rows = [(bench_gui if a.gui else bench_headless)(clip, kind, a) for clip in a.clips for kind in a.trackers]
    print(f"# command: {command}")
    print("# default mode, noisy replay overseer; correction = the ground truth of frame t; CPU, 2 cores")
    if a.gui:
        print("# napari's event loop, 20 ms timer, slider moved every 100 ms: lateness median / p95 / max ms (ticks)")
        print(
            "| clip | tracker | frames | whole run in the GUI (s) | its lateness | frame t | span | viewer idle (3 s) "
            "| during Re-propagate | Re-propagate in the GUI (s) |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        f = lambda s: f"{s[0]:.1f} / {s[1]:.1f} / {s[2]:.1f} ({s[3]})"  # noqa: E731
        for r in rows:
            print(
                f"| {r['clip']} | {r['tracker']} | {r['n']} | {r['run_secs']:.1f} | {f(r['run'])} | {r['frame']} | "
                f"{r['span']} | {f(r['idle'])} | {f(r['busy'])} | {r['gui_secs']:.1f} |"
            )
        for r in rows:
            where = ", ".join(f"{ms:.0f} ms at {t:.1f} s" for t, ms in r["late_busy"]) or "none"
            print(f"# {r['clip']} / {r['tracker']}: ticks over 100 ms during Re-propagate: {where}")
        return
    print(
        "| clip | tracker | frames | whole run (s) | frame t | span (frames) | re-propagate (s) | per frame vs run "
        "| undo (s) | span Dice before -> after | outside span byte-identical | undo byte-identical |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = (r["edit"] / r["span"]) / (r["full"] / r["n"])
        print(
            f"| {r['clip']} | {r['tracker']} | {r['n']} | {r['full']:.1f} | {r['frame']} | {r['span']} | "
            f"{r['edit']:.1f} | {ratio:.2f} | {r['undo']:.2f} | {r['dice_before']:.3f} -> {r['dice_after']:.3f} | "
            f"{'yes' if r['untouched'] else 'NO'} | {'yes' if r['restored'] else 'NO'} |"
        )


if __name__ == "__main__":
    main()
