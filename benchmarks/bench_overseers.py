"""Overseer speed: frames/s of Mask R-CNN, DETR and Mask2Former at batch 1 and batch 8, at the
reference input sizes (Mask R-CNN and Mask2Former 299 x 299, DETR 200 x 200 then 800 x 800), with
the whole pre- and post-processing (what the engine calls), on the device given.

    python benchmarks/bench_overseers.py [--frames 8] [--device cpu] [--arch maskrcnn detr mask2former]
                                         [--detr-kept 5 100] [--detr-frames 2]

Input: real CholecSeg8k frames (480 x 854) from ../shared/data when present, else the synthetic
clip at 480 x 854. The architectures of the published CholecSeg8k checkpoints with random weights
(no weights can be downloaded here): speed does not depend on the weights, except for Mask R-CNN's
post-processing, which grows with the number of detections (reported), and DETR, whose mask head
runs on the queries the post-processing keeps: with random weights nearly all 100; a trained DETR
keeps a handful. ``--detr-kept K`` times DETR as if K queries found an object (the others' class
logits are set to "no object" before the post-processing): K = 100 is the full head's cost.
Peak RSS per setting is reported too (ru_maxrss of this process, so it only grows).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np


def load_frames(n: int) -> tuple[list[np.ndarray], str]:
    from PIL import Image

    folder = (
        Path(__file__).resolve().parents[2] / "shared" / "data" / "cholecseg8k_surgicalsam2_frames561-633" / "frames"
    )
    files = sorted(folder.glob("*.png"))[:n] if folder.is_dir() else []
    if len(files) == n:
        return [np.asarray(Image.open(f).convert("RGB")) for f in files], f"CholecSeg8k frames {folder}"
    from napari_sasvi.core.synthetic import SyntheticVideo

    v = SyntheticVideo(n_frames=n, height=480, width=854, seed=0)
    return [v.frame(t) for t in range(n)], "synthetic 480 x 854"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=8, help="frames timed per setting (a multiple of 8)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--arch", nargs="+", default=["maskrcnn", "detr", "mask2former"])
    ap.add_argument("--dataset", default="cholecseg8k")
    ap.add_argument("--detr-kept", type=int, nargs="+", default=[5, 100], help="queries kept (see above)")
    ap.add_argument("--detr-frames", type=int, default=2, help="frames timed per DETR setting")
    args = ap.parse_args()

    import torch

    from napari_sasvi.core.datasets import get_class_table
    from napari_sasvi.core.overseers.models import REFERENCE_SPECS, build_model
    from napari_sasvi.core.overseers.trained import TrainedOverseer

    frames, source = load_frames(args.frames)
    classes = get_class_table(args.dataset)
    print(f"command: python benchmarks/bench_overseers.py {' '.join(sys.argv[1:])}")
    print(f"input: {source}, {len(frames)} frames of {frames[0].shape[1]} x {frames[0].shape[0]}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    print(f"{'overseer':<22} {'batch':>5} {'frames/s':>9} {'s/frame':>8} {'classes/frame':>14} {'peak RSS MiB':>13}")
    settings = []
    for arch in args.arch:
        if arch == "detr":
            settings += [(arch, k) for k in args.detr_kept]
        else:
            settings.append((arch, None))
    for arch, kept in settings:
        spec = REFERENCE_SPECS[(args.dataset, arch)]
        torch.manual_seed(0)
        ov = TrainedOverseer(build_model(spec), spec, classes, device=args.device)
        if kept is not None:
            _keep_only(ov, kept)
        use = frames[: args.detr_frames] if arch == "detr" else frames
        ov.predict(use[:1], [0])  # warm-up (allocations, lazy inits)
        for batch in (1, 8):
            found = 0
            t0 = time.perf_counter()
            for i in range(0, len(use), batch):
                chunk = use[i : i + batch]
                for res in ov.predict(chunk, list(range(i, i + len(chunk)))):
                    found += len(res)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            n = len(use)
            name = arch if kept is None else f"detr ({kept} kept)"
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"{name:<22} {batch:>5} {n / dt:>9.3f} {dt / n:>8.2f} {found / n:>14.1f} {rss:>13.0f}", flush=True)
    return 0


def _keep_only(ov, kept: int) -> None:
    """Instrument DETR so that only the first ``kept`` queries name an object class."""
    fast = ov._detr_fast

    def wrapped(pixel_values, pixel_mask):
        logits, masks_for = fast(pixel_values, pixel_mask)
        logits = logits.clone()
        logits[:, kept:, -1] = logits[:, kept:, :-1].max(-1).values + 10.0
        logits[:, :kept, -1] = logits[:, :kept, :-1].max(-1).values - 10.0
        return logits, masks_for

    ov._detr_fast = wrapped


if __name__ == "__main__":
    raise SystemExit(main())
