"""Exports on the real CholecSeg8k clip: the time of each format, its size on disk, and the read-back
with the format's own tools; and the clip through the cluster path, compared with the sequential run.

    python benchmarks/bench_exports.py [--data ../shared/data/cholecseg8k_surgicalsam2_frames561-633]

The clip (72 annotated frames, 854 x 480) and the noisy overseer made from its ground truth are
prepared as in ``bench_anchors.py``; SASVi runs with the flow tracker (no weights here), replaying
that overseer, once in this process and once on a 2-worker LocalCluster (``--scheduler local``).
The store is then exported to every format:

- ``nnunet``: checked with nnU-Net's ``verify_dataset_integrity``;
- ``coco-video``: every RLE decoded with pycocotools and compared with the store's labels;
- ``png``: every PNG read with PIL and compared;
- ``overlay-mp4``: decoded with PyAV (frame count, size, mean error against the blend computed here).

Outputs go to ``benchmarks/_work/exports`` (ignored by git).
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def du(path: Path) -> float:
    """MiB on disk."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 2**20


def main() -> None:
    from bench_anchors import prepare, run

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data", type=Path, default=HERE.parent.parent / "shared/data/cholecseg8k_surgicalsam2_frames561-633"
    )
    args = ap.parse_args()
    import logging

    logging.getLogger("distributed").setLevel(logging.ERROR)
    from PIL import Image

    from napari_sasvi.core.datasets import CHOLECSEG8K
    from napari_sasvi.core.exports import overlay
    from napari_sasvi.core.store.sasvi_store import SasviStore

    work = HERE / "_work" / "exports"
    frames_dir, _, noisy_dir, gt, names, table = prepare("cholecseg8k", args.data, work)
    # a root of one video: the layout segment --scheduler takes (one store per video inside --out)
    root = work / "videos"
    if not root.exists():
        (root).mkdir(parents=True)
        (root / "clip").symlink_to(frames_dir.resolve())
        (work / "masks").mkdir()
        (work / "masks" / "clip").symlink_to(noisy_dir.resolve())
    common = ["--overseer-masks", work / "masks", "--dataset", "cholecseg8k", "--tracker", "flow", "--device", "cpu"]
    for sub in ("seq", "dist", "out"):
        shutil.rmtree(work / sub, ignore_errors=True)
    t0 = time.perf_counter()
    run("segment", root, "--out", work / "seq", *common)
    t_seq = time.perf_counter() - t0
    t0 = time.perf_counter()
    run("segment", root, "--out", work / "dist", *common, "--scheduler", "local", "--workers", "2")
    t_dist = time.perf_counter() - t0
    a, b = SasviStore.read(work / "seq" / "clip.zarr"), SasviStore.read(work / "dist" / "clip.zarr")
    same = np.array_equal(a.labels[:], b.labels[:]) and np.array_equal(a.overseer[:], b.overseer[:])
    same = same and a.events == b.events
    print(f"real clip, {a.n_frames} frames 854 x 480, flow tracker: sequential {t_seq:.1f} s, "
          f"--scheduler local (2 workers) {t_dist:.1f} s; identical: {same}")  # fmt: skip
    store = work / "seq" / "clip.zarr"
    labels = np.asarray(a.labels[:])
    n = len(labels)
    rows = []

    def timed(to, out, *extra):
        t0 = time.perf_counter()
        run("export", store, "--to", to, "--out", out, *extra)
        return time.perf_counter() - t0

    out = work / "out"
    # nnU-Net
    dt = timed("nnunet", out / "nnUNet_raw", "--dataset-id", "561", "--dataset-name", "CholecClip")
    ds = out / "nnUNet_raw" / "Dataset561_CholecClip"
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    t0 = time.perf_counter()
    verify_dataset_integrity(str(ds), 2)
    meta = json.loads((ds / "dataset.json").read_text())
    rows.append(("nnunet", dt, du(ds), f"verify_dataset_integrity passed in {time.perf_counter() - t0:.1f} s; "
                 f"{meta['numTraining']} cases, {len(meta['labels'])} labels, ignore: {'ignore' in meta['labels']}"))  # fmt: skip
    # COCO-video
    from pycocotools import mask as mask_utils

    target = out / "clip_vis.json"
    dt = timed("coco-video", target)
    doc = json.loads(target.read_text())
    bad = 0
    for ann in doc["annotations"]:
        for t, seg in enumerate(ann["segmentations"]):
            want = labels[t] == ann["category_id"]
            got = mask_utils.decode(seg).astype(bool) if seg else np.zeros_like(want)
            bad += int((got != want).sum())
    scores = {CHOLECSEG8K.by_id(x["category_id"]).name: x["score"] for x in doc["annotations"]}
    rows.append(("coco-video", dt, du(target), f"{len(doc['annotations'])} tracks, pixels differing after decode: "
                 f"{bad}; overseer agreement {min(scores.values()):.2f}-{max(scores.values()):.2f}"))  # fmt: skip
    # PNG
    dt = timed("png", out / "png")
    pngs = sorted((out / "png").iterdir())
    same_png = all(np.array_equal(np.asarray(Image.open(p)), labels[t]) for t, p in enumerate(pngs))
    rows.append(("png", dt, du(out / "png"), f"{len(pngs)} files, all equal to the store: {same_png}"))
    # overlay
    import av

    mp4 = out / "clip_overlay.mp4"
    dt = timed("overlay-mp4", mp4, "--opacity", "0.5")
    with av.open(str(mp4)) as c:
        dec = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    frame0 = np.asarray(Image.open(sorted(frames_dir.iterdir())[0]).convert("RGB"))
    err = np.abs(dec[0].astype(int) - overlay(frame0, labels[0], table, 0.5)).mean()
    rows.append(("overlay-mp4", dt, du(mp4), f"{len(dec)} frames {dec[0].shape[1]} x {dec[0].shape[0]} decoded; "
                 f"mean error against the blend {err:.2f} grey levels"))  # fmt: skip
    print(f"\n{'format':<12s} {'s':>6s} {'frames/s':>9s} {'MiB':>7s}  read back")
    for fmt, dt, mib, check in rows:
        print(f"{fmt:<12s} {dt:6.2f} {n / dt:9.1f} {mib:7.1f}  {check}")
    print("\ncommand: python " + " ".join(shlex.quote(a) for a in [str(Path(sys.argv[0])), *sys.argv[1:]]))


if __name__ == "__main__":
    main()
