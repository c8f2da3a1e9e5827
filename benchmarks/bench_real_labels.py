"""Real label files in, right numbers out: CholecSeg8k's watershed masks and the same masks as
class ids, replayed as the overseer with the flow tracker; Dice against the ground truth and the
temporal metrics in both conventions, for the overseer and for SASVi.

    python benchmarks/bench_real_labels.py [--data ../shared/data/cholecseg8k_surgicalsam2_frames561-633]

Everything goes through the public CLI (``napari-sasvi segment`` / ``evaluate``), as a user would
run it. The clip has 73 frames and 72 masks: the first 72 frames are used. Outputs go to
``benchmarks/_work/real_labels`` (ignored by git).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from napari_sasvi.cli import main as cli
from napari_sasvi.core.datasets import CHOLECSEG8K

HERE = Path(__file__).resolve().parent


def run(*argv) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = cli([str(a) for a in argv])
    if code != 0:
        raise SystemExit(f"napari-sasvi {' '.join(map(str, argv))} failed with {code}")
    return out.getvalue()


def prepare(data: Path, work: Path) -> tuple[Path, Path, Path]:
    frames, ws, ids = work / "frames", work / "masks_watershed", work / "masks_class_ids"
    if frames.exists():
        return frames, ws, ids
    for d in (frames, ws, ids):
        d.mkdir(parents=True)
    lut = np.full(256, 255, np.uint8)
    for grey, c in CHOLECSEG8K.source_values.items():
        lut[grey] = c
    masks = sorted((data / "masks").glob("*.png"))
    for m in masks:
        shutil.copy(data / "frames" / m.name, frames / m.name)
        shutil.copy(m, ws / m.name)
        Image.fromarray(lut[np.asarray(Image.open(m))[..., 0]]).save(ids / m.name)
    return frames, ws, ids


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--data", type=Path, default=HERE.parent.parent / "shared/data/cholecseg8k_surgicalsam2_frames561-633"
    )
    ap.add_argument("--work", type=Path, default=HERE / "_work" / "real_labels")
    args = ap.parse_args()
    frames, ws, ids = prepare(args.data, args.work)
    rows = []
    for enc, masks in (("watershed greys", ws), ("class ids", ids)):
        for mode in ("default", "reference"):
            store = args.work / f"{masks.name}_{mode}.zarr"
            shutil.rmtree(store, ignore_errors=True)
            t0 = time.perf_counter()
            log = run("segment", frames, "--out", store, "--overseer-masks", masks, "--dataset", "cholecseg8k",
                      "--tracker", "flow", "--mode", mode)  # fmt: skip
            secs = time.perf_counter() - t0
            read_as = next(line for line in log.splitlines() if "read as" in line).split("read as ")[1]
            restarts = next(line for line in log.splitlines() if "restarts at" in line).split("restarts at ")[1]
            for array, who in (("overseer", "overseer (replayed GT)"), ("labels", f"SASVi {mode}")):
                if array == "overseer" and mode == "reference":
                    continue  # the same masks as in the default run
                r = {"masks": enc, "read as": read_as.split(" (")[0], "who": who, "restarts": restarts}
                run("evaluate", "frames", store, ws, "--array", array, "--json", args.work / "f.json")
                r["dice"] = json.loads((args.work / "f.json").read_text())["macro_dice"]
                for conv in ("default", "reference"):
                    run("evaluate", "temporal", store, "--array", array, "--frames", frames, "--convention", conv,
                        "--json", args.work / "t.json")  # fmt: skip
                    m = json.loads((args.work / "t.json").read_text())["pooled"]["macro"]
                    r[conv] = m
                r["seconds"] = secs if array == "labels" else None
                rows.append(r)
    print(f"# command: python benchmarks/bench_real_labels.py --data {args.data}")
    print(
        "# CholecSeg8k frames 561-632 (72 frames, 854 x 480), masks replayed as the overseer, flow tracker (DIS), CPU"
    )
    print("| masks | read as | labels | Dice (macro) | T-IoU def. | T-ASSD def. (px) | F-IoU def. | "
          "T-IoU ref. | T-ASSD ref. | F-IoU ref. | restarts | run (s) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        d, f = r["default"], r["reference"]
        secs = f"{r['seconds']:.1f}" if r["seconds"] else "-"
        print(
            f"| {r['masks']} | {r['read as']} | {r['who']} | {r['dice']:.3f} | {d['t_iou']:.3f} | {d['t_assd']:.2f} | "
            f"{d['f_iou']:.3f} | {f['t_iou']:.3f} | {f['t_assd']:.2f} | {f['f_iou']:.3f} | {r['restarts']} | {secs} |"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
