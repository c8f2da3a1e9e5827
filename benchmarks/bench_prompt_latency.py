"""Latency of a click (issue 30): from a prompt to its mask, SAM2's image path and the classical one.

    python benchmarks/bench_prompt_latency.py [--device cpu|cuda] [--config sam2.1_hiera_t] [--image-size 1024]
        [--frames FOLDER] [--clicks 8] [--repeats 3]

SAM2 (random weights, seeded: the time does not depend on the weights' values) at ``--image-size``
on real frames (default: the CholecSeg8k clip in ../shared/data, 854 x 480; a synthetic clip if it
is missing). Per frame: the image features once (the first click on a frame, or the prefetch when
the frame is shown), then a user's click sequence: 1, 2, ... ``--clicks`` clicks (every third one
negative) and a box with them, each a separate prompt on the cached features, as the napari panel
makes them. Reported: features (s), and per click the prompt encoder + mask decoder time (ms,
median and p95 over frames x repeats x clicks), for SAM2 and for the classical GrabCut/watershed
segmenter. The napari panel's own click-to-screen time and the event loop's lateness while
features are computed: ``benchmarks/bench_prompt_gui.py``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FRAMES = ROOT.parent / "shared" / "data" / "cholecseg8k_surgicalsam2_frames561-633" / "frames"


def _frames(folder: Path | None, n: int) -> tuple[list[np.ndarray], str]:
    from napari_sasvi.core.inputs.frames import open_frames

    if folder is not None and folder.is_dir():
        stack = open_frames(folder)
        idx = np.linspace(0, len(stack) - 1, n).round().astype(int)
        return [stack.frame(int(t)) for t in idx], str(folder)
    from napari_sasvi.core.synthetic import SyntheticVideo

    frames, _ = SyntheticVideo(n_frames=n, height=480, width=854, seed=1).arrays()
    return list(frames), "synthetic 854 x 480"


def _click_sequence(h: int, w: int, k: int, rng) -> list:
    """Prompts of a user refining one object: 1..k clicks, every third negative, then a box."""
    from napari_sasvi.core.prompts import ObjectPrompt

    cx, cy = w / 2, h / 2
    pts = [(float(cx + rng.uniform(-w / 8, w / 8)), float(cy + rng.uniform(-h / 8, h / 8))) for _ in range(k)]
    labels = [0 if i % 3 == 2 else 1 for i in range(k)]
    out = [ObjectPrompt(0, 1, 1, tuple(pts[: i + 1]), tuple(labels[: i + 1])) for i in range(k)]
    box = (cx - w / 5, cy - h / 5, cx + w / 5, cy + h / 5)
    out.append(ObjectPrompt(0, 1, 1, tuple(pts), tuple(labels), box))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--config", default="sam2.1_hiera_t")
    ap.add_argument("--image-size", type=int, default=1024)
    ap.add_argument("--frames", type=Path, default=DEFAULT_FRAMES)
    ap.add_argument("--n-frames", type=int, default=3)
    ap.add_argument("--clicks", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    import torch

    from napari_sasvi.core.prompts import GrowSegmenter, Sam2ImageSegmenter
    from napari_sasvi.core.trackers.sam2_model import build_sam2_predictor

    torch.manual_seed(0)
    model = build_sam2_predictor(args.config, None, args.device, args.image_size)
    seg = Sam2ImageSegmenter(model, {"config": args.config, "image_size": args.image_size})
    frames, source = _frames(args.frames, args.n_frames)
    h, w = frames[0].shape[:2]
    rng = np.random.default_rng(0)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    # warm-up (first CUDA kernels, allocator): one frame and a click, not counted
    seg.features("warm", frames[0])
    seg.segment(frames[0], _click_sequence(h, w, 1, rng)[0], key="warm")
    feats, sam_ms, grow_ms = [], [], []
    grow = GrowSegmenter()
    for i, img in enumerate(frames):
        sync()
        t0 = time.perf_counter()
        seg.features(i, img)
        sync()
        feats.append(time.perf_counter() - t0)
        for _ in range(args.repeats):
            for p in _click_sequence(h, w, args.clicks, rng):
                sync()
                t0 = time.perf_counter()
                seg.segment(img, p, key=i)
                sync()
                sam_ms.append(1000 * (time.perf_counter() - t0))
        for p in _click_sequence(h, w, args.clicks, rng):
            t0 = time.perf_counter()
            grow.segment(img, p)
            grow_ms.append(1000 * (time.perf_counter() - t0))
    name = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(
        f"\nclick latency, {args.config} at {args.image_size} (random weights), {name}, frames: {source} ({w} x {h})\n"
    )
    print("| what | median | p95 | n |")
    print("|---|---|---|---|")
    print(
        f"| SAM2 image features, once per frame | {1000 * np.median(feats):.0f} ms | {1000 * np.max(feats):.0f} ms (max) | {len(feats)} |"
    )
    print(
        f"| SAM2 click on cached features (prompt encoder + decoder) | {np.median(sam_ms):.1f} ms | {np.percentile(sam_ms, 95):.1f} ms | {len(sam_ms)} |"
    )
    print(
        f"| classical (GrabCut / watershed) click or box | {np.median(grow_ms):.1f} ms | {np.percentile(grow_ms, 95):.1f} ms | {len(grow_ms)} |"
    )
    print(f"\ncommand: python {shlex.join(['benchmarks/bench_prompt_latency.py', *sys.argv[1:]])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
