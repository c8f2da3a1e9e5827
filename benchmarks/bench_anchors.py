"""A few annotated frames: Dice and temporal consistency of SASVi from ground-truth anchors alone,
of a noisy frame-wise overseer alone, and of SASVi driven by it with and without anchors.

    python benchmarks/bench_anchors.py [--data ../shared/data/cholecseg8k_surgicalsam2_frames561-633]
        [--clips cholecseg8k synthetic] [--anchors 1 3 6] [--with-overseer 1 3]

Two clips, the optical-flow tracker (DIS, no weights, CPU), everything through the public CLI
(``napari-sasvi segment --overseer none|replay --anchors DIR`` and ``evaluate``):

* ``cholecseg8k``: the real CholecSeg8k clip (frames 561-632: 72 frames 854 x 480; its watershed
  masks are the ground truth). Its "noisy overseer" is made here from the ground truth, seeded:
  boundaries displaced by a smooth random field (~3 px), each class present dropped from a frame
  with probability 0.08, a false 25-px blob of a present class on 10 % of the frames.
* ``synthetic``: the embedded synthetic sample (120 frames 256 x 320) and its own noisy labels
  (dropouts, a confusion, blobs, jittered boundaries).

Anchors are ground-truth frames at the centres of k equal spans. Dice is over all frames, the
anchor frames included (they are exact by construction); T-IoU / T-ASSD in the default
convention. Outputs go to ``benchmarks/_work/anchors`` (ignored by git).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shlex
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from napari_sasvi.cli import main as cli
from napari_sasvi.core.datasets import CHOLECSEG8K, SYNTHETIC

HERE = Path(__file__).resolve().parent


def run(*argv) -> str:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli([str(a) for a in argv])
    if code != 0:
        raise SystemExit(f"napari-sasvi {shlex.join(map(str, argv))} failed with {code}:\n{err.getvalue()[-2000:]}")
    return out.getvalue()


def _save(folder: Path, arrays, names) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for a, name in zip(arrays, names, strict=True):
        Image.fromarray(a).save(folder / f"{name}.png")
    return folder


def corrupt(gt: np.ndarray, no_label: int, seed: int = 0) -> np.ndarray:
    """A noisy frame-wise overseer from ground truth (see the module docstring)."""
    import cv2

    rng = np.random.default_rng(seed)
    t_n, h, w = gt.shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty_like(gt)
    for t in range(t_n):
        coarse = rng.uniform(-1, 1, (2, 8, 14)).astype(np.float32)
        fy, fx = (cv2.resize(c, (w, h), interpolation=cv2.INTER_CUBIC) * 3.0 for c in coarse)
        o = cv2.remap(gt[t], x + fx, y + fy, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
        present = [int(c) for c in np.unique(gt[t]) if c != no_label and c != 255]
        for c in present:
            if rng.random() < 0.08:
                o[o == c] = no_label
        if present and rng.random() < 0.10:
            c = int(rng.choice(present))
            cy, cx = int(rng.integers(25, h - 25)), int(rng.integers(25, w - 25))
            o[(y - cy) ** 2 + (x - cx) ** 2 <= 25 * 25] = c
        out[t] = o
    return out


def prepare(clip: str, data: Path, work: Path):
    """frames folder, ground truth (class ids), noisy overseer (class ids), names, class table."""
    root = work / clip
    frames_dir, gt_dir, noisy_dir = root / "frames", root / "gt", root / "noisy"
    table = CHOLECSEG8K if clip == "cholecseg8k" else SYNTHETIC
    if clip == "cholecseg8k":
        masks = sorted((data / "masks").glob("*.png"))
        names = [m.stem for m in masks]
        lut = np.full(256, 255, np.uint8)
        for grey, c in CHOLECSEG8K.source_values.items():
            lut[grey] = c
        gt = np.stack(
            [
                lut[
                    np.asarray(Image.open(m))[..., 0]
                    if np.asarray(Image.open(m)).ndim == 3
                    else np.asarray(Image.open(m))
                ]
                for m in masks
            ]
        )
        if not frames_dir.exists():
            frames_dir.mkdir(parents=True)
            for m in masks:
                shutil.copy(data / "frames" / m.name, frames_dir / m.name)
        noisy = corrupt(gt, table.no_label)
    else:
        from napari_sasvi.core.synthetic import SyntheticVideo

        video = SyntheticVideo()
        frames, gt = video.arrays()
        _, noisy = video.arrays(noisy=True)
        names = [f"{t:04d}" for t in range(len(frames))]
        if not frames_dir.exists():
            _save(frames_dir, frames, names)
    if not gt_dir.exists():
        _save(gt_dir, gt, names)
        _save(noisy_dir, noisy, names)
    return frames_dir, gt_dir, noisy_dir, gt, names, table


def anchor_frames(n: int, k: int) -> list[int]:
    return [int((i + 0.5) * n / k) for i in range(k)]


def scores(pred: Path, gt_dir: Path, dataset: str, work: Path) -> dict:
    fj, tj = work / f"{pred.name}.frames.json", work / f"{pred.name}.temporal.json"
    run("evaluate", "frames", pred, gt_dir, "--dataset", dataset, "--masks-encoding", "class-ids",
        "--gt-encoding", "class-ids", "--json", fj)  # fmt: skip
    run("evaluate", "temporal", pred, "--dataset", dataset, "--masks-encoding", "class-ids", "--json", tj)
    f, t = json.loads(fj.read_text()), json.loads(tj.read_text())["pooled"]["macro"]
    return {"dice": f["macro_dice"], "t_iou": t["t_iou"], "t_assd": t["t_assd"]}


def bench_clip(clip: str, a) -> list[tuple]:
    frames_dir, gt_dir, noisy_dir, gt, names, table = prepare(clip, a.data, a.work)
    n, dataset, work = len(names), table.name, a.work / clip
    common = ["--dataset", dataset, "--tracker", "flow"]

    def segment(tag: str, *extra) -> tuple[Path, float]:
        out = work / f"{tag}.zarr"
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        run("segment", frames_dir, "--out", out, *common, *extra)
        return out, time.perf_counter() - t0

    def anchors_dir(k: int) -> Path:
        d = work / f"anchors_{k}"
        shutil.rmtree(d, ignore_errors=True)
        fr = anchor_frames(n, k)
        _save(d, gt[fr], [names[t] for t in fr])
        return d

    rows = [(clip, "noisy overseer alone (frame-wise)", "-", scores(noisy_dir, gt_dir, dataset, work), 0.0)]
    for k in a.anchors:
        out, secs = segment(f"anchors_{k}", "--overseer", "none", "--anchors", anchors_dir(k))
        what = f"SASVi, no overseer, {k} GT anchor(s)"
        rows.append((clip, what, anchor_frames(n, k), scores(out, gt_dir, dataset, work), secs))
    ov = ["--overseer-masks", noisy_dir, "--masks-encoding", "class-ids"]
    out, secs = segment("noisy", *ov)
    rows.append((clip, "SASVi, noisy overseer", "-", scores(out, gt_dir, dataset, work), secs))
    for k in a.with_overseer:
        out, secs = segment(f"noisy_anchors_{k}", *ov, "--anchors", anchors_dir(k))
        what = f"SASVi, noisy overseer + {k} GT anchor(s)"
        rows.append((clip, what, anchor_frames(n, k), scores(out, gt_dir, dataset, work), secs))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data", type=Path, default=HERE.parent.parent / "shared/data/cholecseg8k_surgicalsam2_frames561-633"
    )
    ap.add_argument("--clips", nargs="+", default=["cholecseg8k", "synthetic"])
    ap.add_argument("--anchors", nargs="+", type=int, default=[1, 3, 6])
    ap.add_argument("--with-overseer", nargs="+", type=int, default=[1, 3])
    ap.add_argument("--work", type=Path, default=HERE / "_work" / "anchors")
    a = ap.parse_args()
    command = "python benchmarks/bench_anchors.py " + shlex.join(sys.argv[1:])
    rows = [row for clip in a.clips for row in bench_clip(clip, a)]
    print(f"# command: {command}")
    print(
        "# flow tracker (DIS), default mode; Dice over all frames (anchor frames included); T in the default convention"
    )
    print("| clip | labels | anchor frames | Dice | T-IoU | T-ASSD | run (s) |")
    print("|---|---|---|---|---|---|---|")
    for clip, what, fr, s, secs in rows:
        print(f"| {clip} | {what} | {fr} | {s['dice']:.3f} | {s['t_iou']:.3f} | {s['t_assd']:.2f} | {secs:.1f} |")


if __name__ == "__main__":
    main()
