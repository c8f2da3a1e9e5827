"""Engine figures: SAM2 propagation alone vs whole SASVi runs with the time split by stage, how
often SAM2 encodes each frame, frames/s against the number of objects, and peak RSS vs length.

    python benchmarks/bench_engine.py throughput [--frames 60] [--image-size 256] [--clip synthetic|real]
                                      [--overseer noisy|clean] [--one-object-at-a-time]
                                      [--tracker sam2|flow] [--flow-method dis|dis-fast|farneback]
                                      [--flow-max-side N] [--flow-no-ahead]
    python benchmarks/bench_engine.py objects [--objects 1 4 8 16] [--frames 20] [--image-size 256]
                                      [--tracker flow [--flow-method ...] --height 480 --width 854]
    python benchmarks/bench_engine.py rss [--frames 300 3000] [--image-size 64]

Inputs: ``--clip synthetic``, the synthetic clip (256 x 320, 8 classes) rendered on demand with the
replay overseer on its noisy labels; ``--clip real``, the 72 annotated CholecSeg8k frames
(854 x 480, PNG) of ``../shared/data`` with the noisy overseer of ``bench_anchors.py`` made from
their ground truth (``--overseer noisy``) or the ground truth itself (``clean``). SAM2.1 tiny with
random weights (no weights can be downloaded here) on the CPU: random weights change what SAM2
predicts, not how much work a frame costs.

Stages (exclusive wall time, each call timed where it happens): *decode* (reading a frame from
the stack: PNG decoding, or rendering the synthetic frame), *overseer* (its ``predict``),
*tracker* (SAM2: prompting, resets, propagation, less the decoding it asks for), *store* (zarr
writes and the progress file; with the writes on the store's own thread, the default, what the
main thread waits for them; ``--store-on-main-thread`` writes them in the main thread), *policy* (the rest: SASVi's decisions, label composition).
``--one-object-at-a-time`` runs the sam2 package's own per-object propagation (before issue 16).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

ONE_RUN = r"""
import json, resource, sys, threading, time, tempfile
from pathlib import Path
import numpy as np
from napari_sasvi.core.datasets import CHOLECSEG8K, SYNTHETIC
from napari_sasvi.core.inputs.frames import open_frames
from napari_sasvi.core.overseers.replay import ReplayOverseer
from napari_sasvi.core.engine import run_sasvi
from napari_sasvi.core.policy import PolicyParams
from napari_sasvi.core.store.sasvi_store import SasviStore
from napari_sasvi.core.store.writer import FrameWriter
from napari_sasvi.core.synthetic import SyntheticVideo
from napari_sasvi.core.trackers.base import compose_labels
from napari_sasvi.core.trackers.sam2 import SAM2Tracker

a = json.loads(sys.argv[1])
what, n, size = a["what"], a["frames"], a["image_size"]
# -- exclusive stage timers --------------------------------------------------------------------
stack_, acc = [], {}
def enter(name):
    now = time.perf_counter()
    if stack_:
        top, t0 = stack_[-1]
        acc[top] = acc.get(top, 0.0) + now - t0
    stack_.append((name, now))
def leave():
    now = time.perf_counter()
    name, t0 = stack_.pop()
    acc[name] = acc.get(name, 0.0) + now - t0
    if stack_:
        stack_[-1] = (stack_[-1][0], now)
worker = {}  # time spent in other threads (flow read ahead, store writes), overlapping the stages
in_worker = threading.local()  # a worker thread's outermost timed call counts, not the calls inside it
def timed(name, fn):
    def wrapper(*args, **kw):
        if threading.current_thread() is not threading.main_thread():
            if getattr(in_worker, "busy", False):
                return fn(*args, **kw)
            in_worker.busy = True
            t0 = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                in_worker.busy = False
                worker[name] = worker.get(name, 0.0) + time.perf_counter() - t0
        enter(name)
        try:
            return fn(*args, **kw)
        finally:
            leave()
    return wrapper
def timed_gen(name, gen_fn):
    def wrapper(*args, **kw):
        it = gen_fn(*args, **kw)
        while True:
            enter(name)
            try:
                item = next(it)
            except StopIteration:
                return
            finally:
                leave()
            yield item
    return wrapper
# -- inputs -------------------------------------------------------------------------------------
if a["clip"] == "real":
    sys.path.insert(0, a["bench_dir"])
    from bench_anchors import prepare
    frames_dir, gt_dir, noisy_dir, gt, names, table = prepare("cholecseg8k", Path(a["data"]), Path(a["work"]))
    stack = open_frames(frames_dir)
    masks_dir = noisy_dir if a["overseer"] == "noisy" else gt_dir
    from napari_sasvi.core.inputs.labels import open_labels
    masks = open_labels(masks_dir, table, encoding="class-ids")
    n = len(stack)
    h, w = stack.frame_size
else:
    table = SYNTHETIC
    h, w = a["height"], a["width"]
    video = SyntheticVideo(n_frames=n, height=h, width=w, seed=0)
    frames_ = video.frames_dask()
    if a.get("squares") is not None:  # rendered beforehand: the flow tracker's own cost, not the renderer's
        frames_ = np.asarray(frames_)
    stack = open_frames(frames_, name="synthetic")
    masks = video.noisy_labels_dask() if a["overseer"] == "noisy" else video.labels_dask()
stack.source.read = timed("decode", stack.source.read)
legacy = what == "reference"
if a["tracker"] == "flow":
    from napari_sasvi.core.trackers import flow as flow_mod
    tracker = flow_mod.FlowTracker(method=a["flow_method"], max_side=a["flow_max_side"], ahead=a["flow_ahead"])
    tracker._flow.calc = timed("flow", tracker._flow.calc)  # the optical flow itself, inside "tracker"
else:
    tracker = SAM2Tracker(config="sam2.1_hiera_t", device="cpu", image_size=size, legacy=legacy,
                          batch_objects=not a["one_at_a_time"], ahead=a["sam2_ahead"])
    from napari_sasvi.core.trackers.sam2_frames import LazyImages
    LazyImages._load = timed("decode", LazyImages._load)  # decoding + SAM2's normalisation
out = {}
if what == "propagate":
    tracker.bind(stack)
    lab = np.asarray(masks[0])
    ids = [int(c) for c in np.unique(lab) if c in table.ids]
    if a.get("objects") and a.get("squares"):  # n small objects: 50 px squares on a 4-column grid
        k = a["objects"]
        objs = {}
        for j in range(k):
            m = np.zeros((h, w), bool)
            y0, x0 = (j // 4) * h // ((k + 3) // 4) + 10, (j % 4) * w // 4 + 10
            m[y0 : y0 + 50, x0 : x0 + 50] = True
            objs[j + 1] = m
    elif a.get("objects"):  # n objects: the frame's classes cut into vertical strips
        k = a["objects"]
        cells = []
        for j in range(k):
            x0, x1 = j * w // k, (j + 1) * w // k
            m = np.zeros((h, w), bool)
            m[:, x0:x1] = True
            cells.append(m)
        objs = {j + 1: cells[j] for j in range(k)}
    else:
        objs = {c: lab == c for c in ids}
    for o, m in objs.items():
        tracker.add_mask(0, o, m)
    t0 = time.perf_counter()
    for t, logits in tracker.propagate(0):
        compose_labels(logits, (h, w), 255, list(objs))
        if t + 1 >= n:
            break
    secs = time.perf_counter() - t0
    out.update(frames=n, seconds=secs, encodes=sum(tracker.encodes.values()), objects=len(objs))
else:
    tracker.propagate = timed_gen("tracker", tracker.propagate)
    for name in ("add_mask", "add_points", "reset", "remove_objects"):
        setattr(tracker, name, timed("tracker", getattr(tracker, name)))
    overseer = ReplayOverseer(masks, table, frame_count=n, frame_size=(h, w))
    overseer.predict = timed("overseer", overseer.predict)
    if a["store_latency_ms"]:  # a slow (network) disk, emulated: each frame's write waits first
        def slow(fn, s=a["store_latency_ms"] / 1000):
            def wrapper(*args, **kw):
                time.sleep(s)  # as waiting on I/O does, it releases the GIL
                return fn(*args, **kw)
            return wrapper
        SasviStore.write_frame = slow(SasviStore.write_frame)
    for name in ("write_frame", "save_events", "save_snapshot", "mark_done", "write_unfinished"):
        setattr(SasviStore, name, timed("store", getattr(SasviStore, name)))
    FrameWriter.wait = timed("store", FrameWriter.wait)  # the main thread waiting for the store's thread
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        s = run_sasvi(stack, overseer, tracker, d + "/run.zarr", table, PolicyParams(mode=what),
                      background_writes=a["background_writes"])
        secs = time.perf_counter() - t0
        if a["tracker"] == "flow":  # accuracy beside speed: Dice against the ground truth
            from napari_sasvi.core.metrics.accuracy import macro, overlap_counts
            truth = gt if a["clip"] == "real" else np.stack([video.labels(t) for t in range(n)])
            lab = np.asarray(SasviStore.read(d + "/run.zarr").labels[:])
            out["dice"] = macro(overlap_counts(iter(lab), iter(truth), table.ids).dice(), table.scored_ids())
    enc = list(s.encodes.values())
    stages = {k: acc.get(k, 0.0) for k in ("decode", "overseer", "tracker", "store", "flow")}
    stages["policy"] = secs - sum(stages.values())
    stages["tracker"] += stages.pop("flow")  # reported apart too
    stages["flow"] = acc.get("flow", 0.0)
    out.update(frames=n, seconds=secs, stages=stages, encodes=sum(enc), max_encodes=max(enc),
               restarts=len(s.restarts), adds=sum(e["kind"] == "add_objects" for e in s.events),
               batches=dict(tracker.batches) if hasattr(tracker, "batches") else {},
               events=[(e["kind"], e["frame"]) for e in s.events])
out["worker"] = worker
out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def one(what: str, args, **extra) -> dict:
    cfg = {
        "what": what,
        "frames": (args.frames or [60])[0],
        "image_size": args.image_size or 256,
        "height": args.height,
        "width": args.width,
        "clip": getattr(args, "clip", "synthetic"),
        "overseer": getattr(args, "overseer", "noisy"),
        "one_at_a_time": getattr(args, "one_object_at_a_time", False),
        "data": str(getattr(args, "data", "")),
        "work": str(HERE / "_work" / "engine"),
        "bench_dir": str(HERE),
        "tracker": getattr(args, "tracker", "sam2"),
        "flow_method": getattr(args, "flow_method", "dis"),
        "flow_max_side": getattr(args, "flow_max_side", None),
        "flow_ahead": not getattr(args, "flow_no_ahead", False),
        "background_writes": not getattr(args, "store_on_main_thread", False),
        "sam2_ahead": not getattr(args, "sam2_no_ahead", False),
        "store_latency_ms": getattr(args, "store_latency_ms", 0),
        **extra,
    }
    res = subprocess.run([sys.executable, "-c", ONE_RUN, json.dumps(cfg)], capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(res.stderr)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["throughput", "objects", "rss"])
    ap.add_argument("--frames", type=int, nargs="+")
    ap.add_argument("--image-size", type=int)
    ap.add_argument("--height", type=int, default=256)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--clip", choices=["synthetic", "real"], default="synthetic")
    ap.add_argument("--overseer", choices=["noisy", "clean"], default="noisy")
    ap.add_argument(
        "--data", type=Path, default=HERE.parent.parent / "shared/data/cholecseg8k_surgicalsam2_frames561-633"
    )
    ap.add_argument("--one-object-at-a-time", action="store_true", help="the sam2 package's per-object propagation")
    ap.add_argument("--objects", type=int, nargs="+", default=[1, 4, 8, 16])
    ap.add_argument("--tracker", choices=["sam2", "flow"], default="sam2", help="throughput: the tracker")
    ap.add_argument("--flow-method", choices=["dis", "dis-fast", "farneback"], default="dis")
    ap.add_argument("--flow-max-side", type=int, help="the flow tracker's max_side (default: the method's)")
    ap.add_argument("--flow-no-ahead", action="store_true", help="the flow tracker reads no frame ahead")
    ap.add_argument("--sam2-no-ahead", action="store_true", help="SAM2 decodes no frame ahead")
    ap.add_argument(
        "--repeat", type=int, default=1, help="throughput: runs of each; the median's figures and the range of frames/s"
    )
    ap.add_argument(
        "--store-latency-ms",
        type=float,
        default=0,
        help="throughput: emulate a slow disk, each frame's write waiting this long first (sleeping)",
    )
    ap.add_argument(
        "--store-on-main-thread",
        action="store_true",
        help="finished frames written by the main thread, not the store's",
    )
    a = ap.parse_args()
    print("# command: python " + " ".join([str(Path(sys.argv[0])), *sys.argv[1:]]))
    if a.what == "throughput":
        size = a.image_size or 256
        src = (
            f"the real CholecSeg8k clip (72 frames 854x480), {a.overseer} overseer"
            if a.clip == "real"
            else f"{(a.frames or [60])[0]} synthetic frames {a.height}x{a.width}, {a.overseer} overseer"
        )
        flow = a.tracker == "flow"
        if flow:
            ahead = "no read ahead" if a.flow_no_ahead else "next frame and flow read ahead in a worker thread"
            from napari_sasvi.core.trackers.flow import METHODS

            side = a.flow_max_side or METHODS[a.flow_method]
            model = f"flow tracker ({a.flow_method}, max_side {side}, {ahead})"
        else:
            how = "one object at a time (sam2's own loop)" if a.one_object_at_a_time else "objects batched"
            model = f"SAM2.1 tiny at {size}, random weights; default mode: {how}; " + (
                "no frame read ahead" if a.sam2_no_ahead else "next frame decoded ahead in a worker thread"
            )
        writes = "store writes on the main thread" if a.store_on_main_thread else "store writes on their own thread"
        if a.store_latency_ms:
            writes += f", each frame's write delayed {a.store_latency_ms:g} ms (a slow disk, emulated)"
        print(f"# {src}; {model}; {writes}; CPU")
        extra = " Dice (macro) | of which flow | worker thread: decode, flow |" if flow else " decode ahead (worker) |"
        print(
            "| run | s | frames/s (range) | decode | overseer | tracker | store | policy |"
            + extra
            + " store thread | encodes per frame "
            "| max encodes | restarts | objects added | batches (size: passes) | peak RSS (MiB) |"
        )
        print("|---" * (18 if flow else 16) + "|")
        events = {}
        for what in ("propagate", "default", "reference"):
            runs = sorted((one(what, a) for _ in range(a.repeat)), key=lambda r: r["frames"] / r["seconds"])
            r = runs[len(runs) // 2]  # the median run's figures (frames/s, stages)
            fps = f"{r['frames'] / r['seconds']:.2f}"
            if len(runs) > 1:
                lo, hi = (x["frames"] / x["seconds"] for x in (runs[0], runs[-1]))
                fps += f" ({lo:.2f}-{hi:.2f})"
            label = {
                "propagate": ("flow" if flow else "SAM2") + " propagation alone (frame 0's classes)",
                "default": "SASVi default mode",
                "reference": "SASVi reference mode" + ("" if flow else " (legacy predictor)"),
            }[what]
            st = r.get("stages")
            cells = (
                " | ".join(
                    f"{1000 * st[k] / r['frames']:.0f} ms" for k in ("decode", "overseer", "tracker", "store", "policy")
                )
                if st
                else "- | - | - | - | -"
            )
            if flow:
                dice = f"{r['dice']:.4f}" if "dice" in r else "-"
                cells += f" | {dice} | " + (f"{1000 * st['flow'] / r['frames']:.0f} ms" if st else "-")
                wk = r.get("worker", {})
                cells += " | " + (
                    f"{1000 * wk.get('decode', 0) / r['frames']:.0f} ms, {1000 * wk.get('flow', 0) / r['frames']:.0f} ms"
                    if wk
                    else "-"
                )
            else:
                ahead = r.get("worker", {}).get("decode")
                cells += " | " + (f"{1000 * ahead / r['frames']:.0f} ms" if ahead else "-")
            store_thread = r.get("worker", {}).get("store")
            cells += " | " + (f"{1000 * store_thread / r['frames']:.0f} ms" if store_thread else "-")
            batches = ", ".join(f"{k}: {v}" for k, v in sorted(r.get("batches", {}).items(), key=lambda kv: int(kv[0])))
            print(
                f"| {label} | {r['seconds']:.1f} | {fps} | {cells} | "
                f"{r['encodes'] / r['frames']:.2f} | {r.get('max_encodes', 1)} | {r.get('restarts', '-')} | "
                f"{r.get('adds', '-')} | {batches or '-'} | {r['peak_rss_mib']:.0f} |",
                flush=True,
            )
            if "events" in r:
                events[what] = r["events"]
        print(
            "# per-frame stage times are wall ms per frame in the main thread; the worker thread's time overlaps"
            " them (the main thread's wait for it is in tracker); events:",
            json.dumps(events),
        )
    elif a.what == "objects" and a.tracker == "flow":
        from napari_sasvi.core.trackers.flow import METHODS

        a.frames = a.frames or [30]
        side = a.flow_max_side or METHODS[a.flow_method]
        print(
            f"# flow propagation alone ({a.flow_method}, max_side {side}), {a.frames[0]} synthetic frames "
            f"{a.height}x{a.width} (rendered beforehand), CPU; objects as full-height strips (together the whole "
            "frame) or 50 px squares"
        )
        print("| objects | strips: frames/s | squares: frames/s |")
        print("|---|---|---|")
        for k in a.objects:
            r1 = one("propagate", a, objects=k, squares=False)
            r2 = one("propagate", a, objects=k, squares=True)
            f1, f2 = r1["frames"] / r1["seconds"], r2["frames"] / r2["seconds"]
            print(f"| {k} | {f1:.2f} | {f2:.2f} |", flush=True)
    elif a.what == "objects":
        size = a.image_size or 256
        print(
            f"# SAM2 propagation alone, {(a.frames or [20])[0]} synthetic frames {a.height}x{a.width}, SAM2.1 tiny at {size}, CPU"
        )
        print("| objects | one at a time: frames/s | batched: frames/s | speed-up |")
        print("|---|---|---|---|")
        for k in a.objects:
            a.frames = a.frames or [20]
            a.one_object_at_a_time = True
            r1 = one("propagate", a, objects=k)
            a.one_object_at_a_time = False
            r2 = one("propagate", a, objects=k)
            f1, f2 = r1["frames"] / r1["seconds"], r2["frames"] / r2["seconds"]
            print(f"| {k} | {f1:.2f} | {f2:.2f} | {f2 / f1:.2f}x |", flush=True)
    else:
        sizes, size = a.frames or [300, 3000], a.image_size or 64
        print("| frames | mode | seconds | peak RSS (MiB) |")
        print("|---|---|---|---|")
        for n in sizes:
            a.frames, a.image_size = [n], size
            r = one("default", a)
            print(f"| {n} | default | {r['seconds']:.0f} | {r['peak_rss_mib']:.0f} |", flush=True)


if __name__ == "__main__":
    t0 = time.time()
    main()
    print(f"# total {time.time() - t0:.0f} s")
