"""Trackers side by side, and what SASVi's re-prompting buys.

    python benchmarks/bench_trackers.py speed [--frames 60] [--height 480] [--width 854] [--only flow sam2 hf]
    python benchmarks/bench_trackers.py table [--frames 120] [--seeds 0 1 2]

``speed``: each tracker runs SASVi (default mode, replay overseer on the noisy synthetic clip) on
the CPU over the same frames, in its own process: frames/s of the whole run and peak RSS. SAM2.1
tiny has random weights (none can be downloaded here; speed does not depend on them).

``table``: the optical-flow tracker (DIS) with the replay overseer on the noisy synthetic clip
(ground truth plus overseer-like errors: jittered edges on every frame, one-frame dropouts, a
class confusion, spurious blobs): Dice against the ground truth and the temporal metrics (default
convention, OpenCV flow for F) for the overseer alone, SASVi in ``reference`` mode and in
``default`` mode. Macro over the 7 scored classes, mean over the seeds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

SPEED_RUN = r"""
import json, resource, sys, time, tempfile
from napari_sasvi.core.datasets import SYNTHETIC
from napari_sasvi.core.inputs.frames import open_frames
from napari_sasvi.core.overseers.replay import ReplayOverseer
from napari_sasvi.core.engine import run_sasvi
from napari_sasvi.core.policy import PolicyParams
from napari_sasvi.core.config import TrackerConfig
from napari_sasvi.core.engine.batch import build_tracker
from napari_sasvi.core.synthetic import SyntheticVideo

kind, model, n, h, w, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
video = SyntheticVideo(n_frames=n, height=h, width=w, seed=0)
frames, noisy = video.arrays(noisy=True)
stack = open_frames(frames, name="synthetic")
if kind == "flow":
    spec = TrackerConfig(kind="flow", model=model)
elif kind == "hf":
    from napari_sasvi.core.trackers.hf import HFVideoTracker
    spec = None
    tracker = HFVideoTracker.random(model, device="cpu")
else:
    spec = TrackerConfig(kind="sam2", config=model, random_weights=True, image_size=size)
if spec is not None:
    tracker = build_tracker(spec, device="cpu")
overseer = ReplayOverseer(noisy, SYNTHETIC)
with tempfile.TemporaryDirectory() as d:
    t0 = time.perf_counter()
    run_sasvi(stack, overseer, tracker, d + "/r.zarr", SYNTHETIC, PolicyParams(mode="default"))
    secs = time.perf_counter() - t0
print(json.dumps({"seconds": secs, "frames": n, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def speed(a) -> None:
    print(
        f"# command: python benchmarks/bench_trackers.py speed --frames {a.frames} --height {a.height} --width {a.width}"
    )
    print(
        f"# SASVi default mode, replay overseer, {a.frames} synthetic frames of {a.width} x {a.height}, CPU (2 cores)"
    )
    print("| tracker | frames/s | s/frame | peak RSS (MiB) |")
    print("|---|---|---|---|")
    for kind, model, size, label in (
        ("flow", "dis", 0, "optical flow, DIS"),
        ("flow", "farneback", 0, "optical flow, Farneback"),
        ("sam2", "sam2.1_hiera_t", 256, "SAM2.1 tiny at 256 (random weights)"),
        ("sam2", "sam2.1_hiera_t", 1024, "SAM2.1 tiny at 1024, its native size (random weights)"),
        ("hf", "sam2", 0, "transformers Sam2VideoModel, default config at 1024 (random weights)"),
        ("hf", "edgetam", 0, "transformers EdgeTamVideoModel, default config at 1024 (random weights)"),
        ("hf", "sam3", 0, "transformers Sam3TrackerVideoModel, default config at 1008 (random weights)"),
    ):
        if a.only and kind not in a.only:
            continue
        n = a.frames
        if kind == "hf":
            n = min(n, 2 if model == "sam3" else 3)  # up to minutes per frame on 2 cores
        elif size == 1024:
            n = min(n, 8)
        args = [kind, model, str(n), str(a.height), str(a.width), str(size)]
        res = subprocess.run([sys.executable, "-c", SPEED_RUN, *args], capture_output=True, text=True)
        if res.returncode:
            raise SystemExit(res.stderr)
        r = json.loads(res.stdout.strip().splitlines()[-1])
        note = f" ({n} frames)" if n != a.frames else ""
        fps = r["frames"] / r["seconds"]
        print(f"| {label}{note} | {fps:.2f} | {1 / fps:.1f} | {r['peak_rss_mib']:.0f} |", flush=True)


def table(a) -> None:
    import numpy as np

    from napari_sasvi.core.datasets import SYNTHETIC
    from napari_sasvi.core.engine import run_sasvi
    from napari_sasvi.core.metrics.accuracy import macro, overlap_counts
    from napari_sasvi.core.metrics.temporal import temporal_consistency
    from napari_sasvi.core.overseers.replay import ReplayOverseer
    from napari_sasvi.core.policy import PolicyParams
    from napari_sasvi.core.store.sasvi_store import SasviStore
    from napari_sasvi.core.synthetic import SyntheticVideo
    from napari_sasvi.core.trackers.flow import FlowTracker

    print(
        f"# command: python benchmarks/bench_trackers.py table --frames {a.frames} --seeds {' '.join(map(str, a.seeds))}"
    )
    rows: dict[str, list[dict]] = {}
    ids = SYNTHETIC.scored_ids()
    ignore = set(SYNTHETIC.ignore_ids) | {SYNTHETIC.no_label}
    for seed in a.seeds:
        video = SyntheticVideo(n_frames=a.frames, seed=seed)
        frames, noisy = video.arrays(noisy=True)
        gt = np.stack([video.labels(t) for t in range(a.frames)])
        runs = {"ground truth": gt, "overseer alone (noisy frame-wise)": noisy}
        secs = {}
        with tempfile.TemporaryDirectory() as d:
            for mode in ("reference", "default"):
                t0 = time.perf_counter()
                run_sasvi(
                    frames,
                    ReplayOverseer(noisy, SYNTHETIC),
                    FlowTracker(),
                    f"{d}/{mode}.zarr",
                    SYNTHETIC,
                    PolicyParams(mode=mode),
                )
                secs[mode] = time.perf_counter() - t0
                runs[f"SASVi {mode} mode (flow tracker)"] = np.asarray(SasviStore.read(f"{d}/{mode}.zarr").labels[:])
            for name, lab in runs.items():
                dice = overlap_counts(iter(lab), iter(gt), SYNTHETIC.ids).dice()
                m = temporal_consistency(lab, frames, ignore=ignore, no_label=SYNTHETIC.no_label).macro
                tool = macro(dice, [5, 6, 7])
                tissue = macro(dice, [1, 2, 3, 4])
                rows.setdefault(name, []).append(
                    {
                        "dice": macro(dice, ids),
                        "tissue": tissue,
                        "tools": tool,
                        **m,
                        "fps": a.frames / secs[name.split()[1]] if name.startswith("SASVi") else None,
                    }
                )
    print(f"# synthetic clip, {a.frames} frames of 256 x 320, seeds {a.seeds}; mean over seeds")
    print(
        "| labels | Dice (macro, 7 classes) | Dice tissue (4) | Dice instruments (3) | T-IoU | T-ASSD (px) | F-IoU | frames/s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, rs in rows.items():
        mean = {k: float(np.mean([r[k] for r in rs])) for k in ("dice", "tissue", "tools", "t_iou", "t_assd", "f_iou")}
        fps = rs[0]["fps"]
        fps_s = f"{np.mean([r['fps'] for r in rs]):.1f}" if fps is not None else "-"
        print(
            f"| {name} | {mean['dice']:.3f} | {mean['tissue']:.3f} | {mean['tools']:.3f} | {mean['t_iou']:.3f} | "
            f"{mean['t_assd']:.2f} | {mean['f_iou']:.3f} | {fps_s} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["speed", "table"])
    ap.add_argument("--frames", type=int)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=854)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--only", nargs="+", choices=["flow", "sam2", "hf"], help="speed: these trackers only")
    a = ap.parse_args()
    if a.what == "speed":
        a.frames = a.frames or 60
        speed(a)
    else:
        a.frames = a.frames or 120
        table(a)


if __name__ == "__main__":
    main()
