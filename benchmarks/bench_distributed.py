"""Many videos on dask.distributed: sequential vs a LocalCluster, equality, a worker killed
mid-video, and the scaling on paper.

    python benchmarks/bench_distributed.py [--videos 4] [--frames 60] [--workers 2] [--tracker flow|sam2]

1. ``--videos`` synthetic videos (frame folders of PNGs, 240 x 320, and their noisy overseer masks,
   replayed) run one after another in this process (``segment_videos``), then on a LocalCluster of
   ``--workers`` single-threaded CPU workers (``segment --scheduler local``'s path). Wall times,
   the cluster's start-up, and the stores compared byte for byte (labels, overseer, events).
2. The same on a fresh output folder, with the worker that runs the first video killed (SIGKILL)
   when half its frames are on disk: what its store held then, where the rerun resumed, and the
   wall-time cost against the undisturbed cluster run.
3. The scaling on paper for N GPUs, from the measured per-video cost.

Trackers: ``flow`` (DIS optical flow, CPU) or ``sam2`` (SAM2.1 tiny, random weights, at
``--image-size``). Outputs go to ``benchmarks/_work/distributed`` (ignored by git).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def make_videos(root: Path, n_videos: int, n_frames: int, h: int, w: int):
    from napari_sasvi.core.synthetic import write_synthetic_videos

    frames_root, masks_root = root / "videos", root / "masks"
    if frames_root.exists() and len(list(frames_root.iterdir())) == n_videos:
        if all(len(list(d.iterdir())) == n_frames for d in frames_root.iterdir()):
            return frames_root, masks_root
    shutil.rmtree(root, ignore_errors=True)
    names = [f"video{k + 1:02d}" for k in range(n_videos)]
    return write_synthetic_videos(root, names, n_frames=n_frames, size=(h, w), seed=10)


def config(args, masks):
    from napari_sasvi.core.config import RunConfig

    tracker = {"kind": "flow"}
    if args.tracker == "sam2":
        tracker = {"kind": "sam2", "config": "sam2.1_hiera_t", "random_weights": True, "image_size": args.image_size}
    return RunConfig.from_dict(
        {"dataset": "synthetic", "device": "cpu", "tracker": tracker, "overseer": {"masks": str(masks)}}
    )


def same(a: Path, b: Path) -> bool:
    from napari_sasvi.core.store.sasvi_store import SasviStore

    sa, sb = SasviStore.read(a), SasviStore.read(b)
    return (
        sa.complete
        and sb.complete
        and np.array_equal(np.asarray(sa.labels[:]), np.asarray(sb.labels[:]))
        and np.array_equal(np.asarray(sa.overseer[:]), np.asarray(sb.overseer[:]))
        and sa.events == sb.events
    )


def _pid(dask_worker=None):
    return os.getpid()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tracker", choices=["flow", "sam2"], default="flow")
    ap.add_argument("--image-size", type=int, default=256)
    args = ap.parse_args()

    import logging

    import distributed

    logging.getLogger("distributed").setLevel(logging.CRITICAL)  # the killed worker's tracebacks are expected
    from napari_sasvi.core.engine.batch import segment_videos
    from napari_sasvi.core.engine.distributed import (
        BatchProgress,
        ClusterReady,
        iter_segment_distributed,
        local_cluster,
    )
    from napari_sasvi.core.progress import drain

    work = HERE / "_work" / "distributed"
    videos, masks = make_videos(work / "data", args.videos, args.frames, args.height, args.width)
    cfg = config(args, masks)
    names = sorted(p.name for p in videos.iterdir())
    total = args.videos * args.frames
    print(f"{args.videos} videos x {args.frames} frames ({args.height} x {args.width}), tracker {args.tracker}, "
          f"{os.cpu_count()} cores")  # fmt: skip

    # 1. sequential, then the cluster
    for sub in ("seq", "dist", "killed"):
        shutil.rmtree(work / sub, ignore_errors=True)
    t0 = time.perf_counter()
    seq = drain(segment_videos(videos, cfg, work / "seq"))
    t_seq = time.perf_counter() - t0
    per_video = {n: s.seconds for n, s in seq.videos.items()}
    print(
        f"sequential: {t_seq:.1f} s ({total / t_seq:.1f} frames/s); per video {np.mean(list(per_video.values())):.1f} s"
    )

    marks = {}

    def on_ready(item):
        if isinstance(item, ClusterReady):
            marks["ready"] = time.perf_counter()

    t0 = time.perf_counter()
    dist = drain(
        iter_segment_distributed(videos, cfg, work / "dist", scheduler="local", n_workers=args.workers), on_ready
    )
    t_dist = time.perf_counter() - t0
    startup = marks["ready"] - t0
    on_workers = np.mean([s.seconds for s in dist.videos.values()])
    equal = [same(work / "seq" / f"{n}.zarr", work / "dist" / f"{n}.zarr") for n in names]
    print(f"LocalCluster, {args.workers} workers: {t_dist:.1f} s (cluster start {startup:.1f} s; "
          f"{total / t_dist:.1f} frames/s; per video on a worker {on_workers:.1f} s); speed-up {t_seq / t_dist:.2f}x; "
          f"identical to sequential: {sum(equal)}/{len(equal)} videos")  # fmt: skip
    # SAM2 on the CPU: float results depend on torch's thread count; the workers had
    # cores // workers threads each. The reference for equality is a sequential run with as many.
    ref = "seq"
    if args.tracker == "sam2":
        import torch

        threads = max(1, (os.cpu_count() or 1) // min(args.workers, args.videos))
        default_threads = torch.get_num_threads()
        torch.set_num_threads(threads)
        shutil.rmtree(work / "seq_threads", ignore_errors=True)
        drain(segment_videos(videos, cfg, work / "seq_threads"))
        torch.set_num_threads(default_threads)
        ref = "seq_threads"
        eq_t = [same(work / ref / f"{n}.zarr", work / "dist" / f"{n}.zarr") for n in names]
        print(f"  against a sequential run with {threads} torch thread(s), as each worker had: "
              f"identical {sum(eq_t)}/{len(eq_t)} videos")  # fmt: skip

    # 2. a worker killed mid-video
    target = names[0]
    kill = {}
    cluster = local_cluster(args.workers, "cpu")
    client = distributed.Client(cluster)
    try:

        def on_item(item):
            if "t" in kill or not isinstance(item, BatchProgress):
                return
            done, n = item.videos[target]
            if done >= n // 2:
                for w, keys in client.processing().items():
                    if any(f"sasvi-{target}-" in str(k) for k in keys):
                        pid = client.run(_pid, workers=[w])[w]
                        os.kill(pid, signal.SIGKILL)
                        progress = json.loads((work / "killed" / f"{target}.zarr" / "sasvi_progress.json").read_text())
                        kill.update(t=time.perf_counter(), done=progress["frames_done"],
                                    start=(progress.get("snapshot") or {}).get("frame"))  # fmt: skip

        t0 = time.perf_counter()
        # the cluster's threads per worker as segment --scheduler local sets them
        killed = drain(iter_segment_distributed(videos, cfg, work / "killed", client=client, poll=0.05), on_item)
        t_killed = time.perf_counter() - t0
    finally:
        client.close()
        cluster.close()
    s = killed.videos[target]
    equal_k = [same(work / ref / f"{n}.zarr", work / "killed" / f"{n}.zarr") for n in names]
    print(
        f"worker killed with {kill.get('done')} of {args.frames} frames of {target} on disk "
        f"(segment start {kill.get('start')}): resumed at frame {s.resumed_from}, {s.frames_written} frames written "
        f"after the restart; frames lost: {max(0, kill.get('done', 0) - s.resumed_from)}; "
        f"wall {t_killed:.1f} s vs {t_dist:.1f} s undisturbed (+{t_killed - t_dist:.1f} s); "
        f"identical to sequential{' (same threads)' if ref != 'seq' else ''}: {sum(equal_k)}/{len(equal_k)} videos"
    )

    # 3. scaling on paper
    c = float(np.mean(list(per_video.values())))
    fps = args.frames / c
    print(f"\nper-video cost here: {c:.1f} s for {args.frames} frames ({fps:.1f} frames/s on one worker)")
    print("scaling on paper: wall(N) = start-up + ceil(V / N) x per-video cost for V equal videos")
    print("(unequal lengths: max(longest video, total / N)); Cholec80 = 80 videos x ~40 min")
    frames_per_video = 40 * 60 * 25
    for rate, what in ((fps, "this worker's rate"), (2.0, "2 frames/s"), (10.0, "10 frames/s")):
        cells = []
        for n in (1, 2, 4, 8, 16, 80):
            hours = math.ceil(80 / n) * frames_per_video / rate / 3600
            cells.append(f"N={n}: {hours:,.0f} h")
        print(f"  {what:>20s} per GPU, 25 fps frames: " + ", ".join(cells))
    print("\ncommand: python " + " ".join(shlex.quote(a) for a in [str(Path(sys.argv[0])), *sys.argv[1:]]))


if __name__ == "__main__":
    main()
