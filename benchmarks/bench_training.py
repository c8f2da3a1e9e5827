"""Training overseers, measured: what SASVi adds on real data, a Mask R-CNN on a CPU budget, and the
training throughput of each overseer.

    python benchmarks/bench_training.py [--part real|budget|throughput|all] [--budget-minutes 5]

* ``real``: on the CholecSeg8k clip of ``../shared/data`` (72 annotated frames, 854 x 480), the pixel
  classifier is trained from 1, 3 and 5 ground-truth frames (evenly spaced); its frame-wise labels and
  SASVi's with the flow tracker driven by it are scored against the ground truth of all 72 frames:
  Dice (macro) and the temporal consistency T (IoU and ASSD between flow-warped consecutive labels).
* ``budget``: Mask R-CNN (the reference recipe, from scratch: no pretrained weights offline) on 5 % of
  the synthetic clip's frames for a fixed CPU time; scored the same way on the whole clip.
* ``throughput``: training frames per second of each overseer (a few steps after a warm-up one).

Everything runs through the public CLI, as a user would. Outputs go to ``benchmarks/_work/training``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from bench_real_labels import run  # the same CLI runner (this folder is on sys.path for scripts)
from PIL import Image

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared/data/cholecseg8k_surgicalsam2_frames561-633"


def scores(store: Path, gt: Path, frames: Path, work: Path, dataset: str) -> dict:
    out = {}
    for array in ("overseer", "labels"):
        run("evaluate", "frames", store, gt, "--array", array, "--dataset", dataset, "--json", work / "f.json")
        d = json.loads((work / "f.json").read_text())["macro_dice"]
        run("evaluate", "temporal", store, "--array", array, "--frames", frames, "--json", work / "t.json")
        m = json.loads((work / "t.json").read_text())["pooled"]["macro"]
        out[array] = {"dice": d, "t_iou": m["t_iou"], "t_assd": m["t_assd"]}
    return out


def gt_temporal(gt: Path, frames: Path, work: Path, dataset: str) -> dict:
    run("evaluate", "temporal", gt, "--frames", frames, "--dataset", dataset, "--json", work / "t.json")
    return json.loads((work / "t.json").read_text())["pooled"]["macro"]


def part_real(work: Path, data: Path) -> None:
    root = work / "chole"
    if not root.exists():
        (root / "frames").mkdir(parents=True)
        (root / "masks").mkdir()
        for m in sorted((data / "masks").glob("*.png")):  # the 72 frames that have a mask
            shutil.copy(data / "frames" / m.name, root / "frames" / m.name)
            shutil.copy(m, root / "masks" / m.name)
    n = len(list((root / "masks").glob("*.png")))
    g = gt_temporal(root / "masks", root / "frames", work, "cholecseg8k")
    rows = []
    for k in (1, 3, 5):
        picks = sorted({round(i * (n - 1) / max(1, k - 1)) for i in range(k)}) if k > 1 else [0]
        out = work / f"pixel_{k}"
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        run("train", "--overseer", "pixel", "--dataset", "cholecseg8k", "--data", root, "--out", out,
            "--frames", ",".join(map(str, picks)))  # fmt: skip
        train_s = time.perf_counter() - t0
        store = work / f"pixel_{k}.zarr"
        shutil.rmtree(store, ignore_errors=True)
        t0 = time.perf_counter()
        run("segment", root / "frames", "--dataset", "cholecseg8k", "--overseer", "pixel",
            "--overseer-checkpoint", out / "overseer.skops", "--tracker", "flow", "--out", store)  # fmt: skip
        seg_s = time.perf_counter() - t0
        s = scores(store, root / "masks", root / "frames", work, "cholecseg8k")
        # the same frames also as SASVi's annotated frames (anchors): written exactly, re-prompted there
        anchors = work / f"anchors_{k}"
        shutil.rmtree(anchors, ignore_errors=True)
        anchors.mkdir()
        names = sorted(p.name for p in (root / "masks").glob("*.png"))
        for i in picks:
            shutil.copy(root / "masks" / names[i], anchors / names[i])
        store_a = work / f"pixel_{k}_anchors.zarr"
        shutil.rmtree(store_a, ignore_errors=True)
        run("segment", root / "frames", "--dataset", "cholecseg8k", "--overseer", "pixel",
            "--overseer-checkpoint", out / "overseer.skops", "--tracker", "flow", "--anchors", anchors,
            "--out", store_a)  # fmt: skip
        s["anchored"] = scores(store_a, root / "masks", root / "frames", work, "cholecseg8k")["labels"]
        rows.append((k, picks, train_s, seg_s, s))
    print("# command: python benchmarks/bench_training.py --part real")
    print(f"# CholecSeg8k frames 561-632 ({n} frames with ground truth, 854 x 480), CPU (2 cores)")
    print("| GT frames for training | labels | Dice (macro) | T-IoU | T-ASSD (px) | train (s) | run (s) |")
    print("|---|---|---|---|---|---|---|")
    print(f"| - | ground truth | 1.000 | {g['t_iou']:.3f} | {g['t_assd']:.2f} | - | - |")
    for k, picks, train_s, seg_s, s in rows:
        o, lab = s["overseer"], s["labels"]
        print(
            f"| {k} {picks} | pixel classifier | {o['dice']:.3f} | {o['t_iou']:.3f} | {o['t_assd']:.2f} | {train_s:.1f} | - |"
        )
        print(
            f"| {k} | SASVi (flow) driven by it | {lab['dice']:.3f} | {lab['t_iou']:.3f} | {lab['t_assd']:.2f} | - | {seg_s:.1f} |"
        )
        a = s["anchored"]
        print(
            f"| {k} | SASVi (flow), the GT frames also as anchors | {a['dice']:.3f} | {a['t_iou']:.3f} | {a['t_assd']:.2f} | - | - |"
        )
    sys.stdout.flush()


def _synthetic(work: Path, n: int = 120) -> Path:
    from napari_sasvi.core.synthetic import SyntheticVideo

    root = work / "synthetic"
    if root.exists():
        return root
    v = SyntheticVideo(n_frames=n, seed=0)
    (root / "frames").mkdir(parents=True)
    (root / "masks").mkdir()
    for t in range(n):
        Image.fromarray(v.frame(t)).save(root / "frames" / f"{t:04d}.png")
        Image.fromarray(v.labels(t)).save(root / "masks" / f"{t:04d}.png")
    return root


def part_budget(work: Path, minutes: float) -> None:
    root = _synthetic(work)
    n = len(list((root / "masks").glob("*.png")))
    k = max(1, round(0.05 * n))
    picks = [int(x) for x in np.linspace(0, n - 1, k).round()]
    out = work / "maskrcnn_budget"
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    log = run("train", "--overseer", "maskrcnn", "--dataset", "synthetic", "--data", root, "--out", out,
              "--frames", ",".join(map(str, picks)), "--budget-minutes", minutes, "--steps", 100000,
              "--val-every", 100000, "--pretrained", "no")  # fmt: skip
    train_s = time.perf_counter() - t0
    steps = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines() if '"loss"' in x]
    store = work / "maskrcnn_budget.zarr"
    shutil.rmtree(store, ignore_errors=True)
    run("segment", root / "frames", "--dataset", "synthetic", "--overseer", "maskrcnn",
        "--overseer-checkpoint", out / "overseer.pth", "--tracker", "flow", "--out", store)  # fmt: skip
    s = scores(store, root / "masks", root / "frames", work, "synthetic")
    g = gt_temporal(root / "masks", root / "frames", work, "synthetic")
    # the pixel classifier from the same frames, for comparison (seconds, not minutes)
    px = work / "pixel_budget"
    shutil.rmtree(px, ignore_errors=True)
    t0 = time.perf_counter()
    run("train", "--overseer", "pixel", "--dataset", "synthetic", "--data", root, "--out", px,
        "--frames", ",".join(map(str, picks)))  # fmt: skip
    px_s = time.perf_counter() - t0
    store_px = work / "pixel_budget.zarr"
    shutil.rmtree(store_px, ignore_errors=True)
    run("segment", root / "frames", "--dataset", "synthetic", "--overseer", "pixel",
        "--overseer-checkpoint", px / "overseer.skops", "--tracker", "flow", "--out", store_px)  # fmt: skip
    sp = scores(store_px, root / "masks", root / "frames", work, "synthetic")
    print(f"# command: python benchmarks/bench_training.py --part budget --budget-minutes {minutes}")
    print(f"# synthetic clip ({n} frames, 320 x 256), Mask R-CNN from {k} frames (5 %) {picks}, from scratch, CPU")
    print(f"# {len(steps)} steps of batch 8 in {train_s:.0f} s; loss {steps[0]['loss']:.3f} -> {steps[-1]['loss']:.3f}")
    print(log.strip().splitlines()[-2])
    print("| labels | Dice (macro) | T-IoU | T-ASSD (px) |")
    print("|---|---|---|---|")
    print(f"| ground truth | 1.000 | {g['t_iou']:.3f} | {g['t_assd']:.2f} |")
    for res, array, who in (
        (s, "overseer", f"Mask R-CNN ({train_s:.0f} s)"),
        (s, "labels", "SASVi (flow) driven by it"),
        (sp, "overseer", f"pixel classifier, same frames ({px_s:.0f} s with validation)"),
        (sp, "labels", "SASVi (flow) driven by it"),
    ):
        o = res[array]
        print(f"| {who} | {o['dice']:.3f} | {o['t_iou']:.3f} | {o['t_assd']:.2f} |")
    sys.stdout.flush()


def part_throughput(work: Path) -> None:
    root = _synthetic(work)
    only = work / "synthetic_6"  # masks on 6 frames only: no validation frames, the steps alone are timed
    if not only.exists():
        (only / "masks").mkdir(parents=True)
        shutil.copytree(root / "frames", only / "frames")
        for t in range(0, 120, 20):
            shutil.copy(root / "masks" / f"{t:04d}.png", only / "masks" / f"{t:04d}.png")
    rows = []
    for arch, batch, steps in (("pixel", 0, 0), ("maskrcnn", 8, 3), ("mask2former", 2, 3), ("detr", 1, 2)):
        out = work / f"throughput_{arch}"
        shutil.rmtree(out, ignore_errors=True)
        if arch == "pixel":
            t0 = time.perf_counter()
            run("train", "--overseer", "pixel", "--dataset", "synthetic", "--data", only, "--out", out)
            secs = time.perf_counter() - t0
            rows.append((arch, "6 frames", f"{6 / secs:.2f} frames/s (features + fit, whole command {secs:.1f} s)"))
            continue
        common = ["train", "--overseer", arch, "--dataset", "synthetic", "--data", only, "--frames",
                  "0,20,40,60,80,100", "--batch-size", batch, "--pretrained", "no", "--out", out]  # fmt: skip
        run(*common, "--steps", 1 + steps)  # step 1 is the warm-up (allocations, first-call costs)
        log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines() if '"loss"' in x]
        secs = log[-1]["seconds"] - log[0]["seconds"]
        rows.append((arch, f"batch {batch}", f"{steps * batch / secs:.2f} frames/s ({secs / steps:.1f} s/step)"))
    print("# command: python benchmarks/bench_training.py --part throughput")
    print("# training on the CPU (2 cores), synthetic frames at the recipes' input sizes, from scratch")
    print("| overseer | batch | training throughput |")
    print("|---|---|---|")
    for arch, batch, fps in rows:
        print(f"| {arch} | {batch} | {fps} |")
    sys.stdout.flush()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=["real", "budget", "throughput", "all"], default="all")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--budget-minutes", type=float, default=5.0)
    ap.add_argument("--work", type=Path, default=HERE / "_work" / "training")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.part in ("real", "all"):
        part_real(args.work, args.data)
    if args.part in ("budget", "all"):
        part_budget(args.work, args.budget_minutes)
    if args.part in ("throughput", "all"):
        part_throughput(args.work)


if __name__ == "__main__":
    main()
