"""Open and random-access figures for the lazy frame stacks.

    python benchmarks/bench_frames.py [--work DIR] [--frames 5000] [--minutes 5]

Generates (once, cached in --work) a 5,000-frame JPEG folder and a 5-minute 25 fps H.264 mp4 at
480 x 854 (CholecSeg8k's frame size) from the synthetic clip, then, each in a fresh subprocess:
time and peak RSS to open, and the mean latency of reading random frames.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

MEASURE = r"""
import json, resource, sys, time, numpy as np, dask.array  # dask imported up front (napari has it loaded already)
from napari_sasvi.core.inputs.frames import open_frames
def rss_kib():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1])
rss0 = rss_kib()
t0 = time.perf_counter(); stack = open_frames(sys.argv[1]); data = stack.data; t_open = time.perf_counter() - t0
rss_open = rss_kib()
rng = np.random.default_rng(0); idx = rng.integers(0, len(stack), int(sys.argv[2]))
t0 = time.perf_counter()
for t in idx: np.asarray(data[int(t)])
t_read = (time.perf_counter() - t0) / len(idx)
t0 = time.perf_counter()
for t in range(100): np.asarray(data[t])
t_seq = (time.perf_counter() - t0) / 100
print(json.dumps(dict(frames=len(stack), shape=list(stack.shape), open_s=t_open, open_rss_mib=(rss_open - rss0) / 1024,
      peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
      random_read_ms=1000 * t_read, sequential_read_ms=1000 * t_seq, decoded=getattr(stack.source, "decoded", None))))
"""


def make_inputs(work: Path, n_frames: int, minutes: float) -> tuple[Path, Path]:
    from PIL import Image

    from napari_sasvi.core.inputs.video import write_video
    from napari_sasvi.core.synthetic import SyntheticVideo

    video = SyntheticVideo(n_frames=250, height=480, width=854, seed=1)
    folder = work / f"folder_{n_frames}"
    if not folder.is_dir() or len(list(folder.iterdir())) != n_frames:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        distinct = 50
        for t in range(distinct):
            Image.fromarray(video.frame(t)).save(folder / f"{t:010d}.jpg", quality=95)
        for t in range(distinct, n_frames):  # reuse bytes: opening and decoding cost the same
            shutil.copyfile(folder / f"{t % distinct:010d}.jpg", folder / f"{t:010d}.jpg")
    n_video = int(minutes * 60 * 25)
    mp4 = work / f"video_{minutes:g}min_25fps.mp4"
    if not mp4.is_file():
        write_video(mp4, (video.frame(t % video.n_frames) for t in range(n_video)), fps=25, gop=250)
    return folder, mp4


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path(__file__).parent / "_work")
    ap.add_argument("--frames", type=int, default=5000)
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--reads", type=int, default=50)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    folder, mp4 = make_inputs(args.work, args.frames, args.minutes)
    print(f"# inputs ready in {time.perf_counter() - t0:.0f} s: {folder}, {mp4} ({mp4.stat().st_size / 2**20:.0f} MiB)")
    print(
        f"# command: python benchmarks/bench_frames.py --frames {args.frames} --minutes {args.minutes:g} --reads {args.reads}"
    )
    print(
        "| input | frames | open (s) | RSS added by open (MiB) | peak RSS (MiB) | random read (ms) | sequential read (ms) |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, path in (
        (f"{args.frames}-frame JPEG folder 480x854", folder),
        (f"{args.minutes:g}-min 25 fps mp4 480x854 (GOP 250)", mp4),
    ):
        out = subprocess.run(
            [sys.executable, "-c", MEASURE, str(path), str(args.reads)], capture_output=True, text=True, check=True
        )
        r = json.loads(out.stdout)
        print(
            f"| {label} | {r['frames']} | {r['open_s']:.3f} | {r['open_rss_mib']:.1f} | {r['peak_rss_mib']:.0f} | "
            f"{r['random_read_ms']:.1f} | {r['sequential_read_ms']:.1f} |"
        )


if __name__ == "__main__":
    main()
