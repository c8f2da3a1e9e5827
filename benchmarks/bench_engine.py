"""Engine figures: SAM2 propagation alone vs the whole SASVi run, peak RSS vs video length, and how
often SAM2 encodes each frame in each mode.

    python benchmarks/bench_engine.py throughput [--frames 60] [--image-size 256]
    python benchmarks/bench_engine.py rss [--frames 300 3000] [--image-size 64]

Input: the synthetic clip (256 x 320, 8 classes) rendered on demand, the replay overseer on its
noisy labels, SAM2.1 tiny with random weights (no weights can be downloaded here) on the CPU.
Random weights change what SAM2 predicts, not how much work a frame costs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

ONE_RUN = r"""
import json, resource, sys, time, tempfile
import numpy as np
from napari_sasvi.core.datasets import SYNTHETIC
from napari_sasvi.core.frames import open_frames
from napari_sasvi.core.overseers.replay import ReplayOverseer
from napari_sasvi.core.pipeline import run_sasvi
from napari_sasvi.core.policy import PolicyParams
from napari_sasvi.core.synthetic import SyntheticVideo
from napari_sasvi.core.trackers.base import compose_labels
from napari_sasvi.core.trackers.sam2 import SAM2Tracker

what, n, size, h, w = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
video = SyntheticVideo(n_frames=n, height=h, width=w, seed=0)
stack = open_frames(video.frames_dask(), name="synthetic")
legacy = what == "reference"
tracker = SAM2Tracker(config="sam2.1_hiera_t", device="cpu", image_size=size, legacy=legacy)
out = {}
if what == "propagate":
    tracker.bind(stack)
    lab = video.labels(0)
    for c in np.unique(lab):
        tracker.add_mask(0, int(c), lab == c)
    t0 = time.perf_counter()
    for t, logits in tracker.propagate(0):
        compose_labels(logits, (h, w), 255, SYNTHETIC.ids)
    secs = time.perf_counter() - t0
    out.update(frames=n, seconds=secs, encodes=sum(tracker.encodes.values()))
else:
    # time spent inside SAM2 (propagation and prompting), to separate it from the policy and I/O
    inside = [0.0]
    def timed(fn):
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                inside[0] += time.perf_counter() - t0
        return wrapper
    propagate = tracker.propagate
    def timed_propagate(start):
        it = propagate(start)
        while True:
            t0 = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                inside[0] += time.perf_counter() - t0
                return
            inside[0] += time.perf_counter() - t0
            yield item
    tracker.propagate = timed_propagate
    for name in ("add_mask", "add_points", "reset", "remove_objects"):
        setattr(tracker, name, timed(getattr(tracker, name)))
    overseer = ReplayOverseer(video.noisy_labels_dask(), SYNTHETIC, frame_count=n, frame_size=(h, w))
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        s = run_sasvi(stack, overseer, tracker, d + "/run.zarr", SYNTHETIC, PolicyParams(mode=what))
        secs = time.perf_counter() - t0
    enc = list(s.encodes.values())
    out.update(frames=n, seconds=secs, sam2_seconds=inside[0], encodes=sum(enc), max_encodes=max(enc),
               restarts=len(s.restarts), adds=sum(e["kind"] == "add_objects" for e in s.events))
out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def one(what: str, n: int, size: int, h: int, w: int) -> dict:
    res = subprocess.run(
        [sys.executable, "-c", ONE_RUN, what, str(n), str(size), str(h), str(w)], capture_output=True, text=True
    )
    if res.returncode:
        raise SystemExit(res.stderr)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["throughput", "rss"])
    ap.add_argument("--frames", type=int, nargs="+")
    ap.add_argument("--image-size", type=int)
    ap.add_argument("--height", type=int, default=256)
    ap.add_argument("--width", type=int, default=320)
    a = ap.parse_args()
    if a.what == "throughput":
        n, size = (a.frames or [60])[0], a.image_size or 256
        print(f"# command: python benchmarks/bench_engine.py throughput --frames {n} --image-size {size}")
        print(f"# {n} frames {a.height}x{a.width}, SAM2.1 tiny at {size}, CPU (2 cores)")
        print(
            "| run | frames/s | time inside SAM2 | policy + overseer + store | encodes per frame "
            "| max encodes of a frame | restarts (resets) | objects added | peak RSS (MiB) |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for what in ("propagate", "default", "reference"):
            r = one(what, n, size, a.height, a.width)
            label = {
                "propagate": "SAM2 propagation alone (frame 0's classes, prompted at frame 0)",
                "default": "SASVi default mode",
                "reference": "SASVi reference mode (legacy predictor)",
            }[what]
            sam = r.get("sam2_seconds", r["seconds"])
            print(
                f"| {label} | {r['frames'] / r['seconds']:.2f} | {100 * sam / r['seconds']:.0f} % | "
                f"{1000 * (r['seconds'] - sam) / r['frames']:.0f} ms/frame | {r['encodes'] / r['frames']:.2f} | "
                f"{r.get('max_encodes', 1)} | {r.get('restarts', '-')} | {r.get('adds', '-')} | {r['peak_rss_mib']:.0f} |"
            )
    else:
        sizes, size = a.frames or [300, 3000], a.image_size or 64
        print(
            f"# command: python benchmarks/bench_engine.py rss --frames {' '.join(map(str, sizes))} --image-size {size} "
            f"--height {a.height} --width {a.width}"
        )
        print("| frames | mode | seconds | peak RSS (MiB) |")
        print("|---|---|---|---|")
        for n in sizes:
            r = one("default", n, size, a.height, a.width)
            print(f"| {n} | default | {r['seconds']:.0f} | {r['peak_rss_mib']:.0f} |", flush=True)


if __name__ == "__main__":
    t0 = time.time()
    main()
    print(f"# total {time.time() - t0:.0f} s")
