"""Anchors only (no overseer), one anchor on frame 0: the flow tracker against the copy baseline,
before and after lost objects are re-seeded from their anchor (issue 28, item 3).

    python benchmarks/bench_lost.py [--data ../shared/data] [--sequences ...]

Sequences: the synthetic sample, three DAVIS 2016 sequences (0/255 masks: the object is class 1)
and the CholecSeg8k clip (watershed greys read with ``CHOLECSEG8K.source_values``). Everything
through the public Python API (:func:`~napari_sasvi.core.engine.iter_from_anchors`).

* copy: the anchor's mask on every frame (the trivial baseline);
* flow before: the same run with the loss watch off (``LOST_BELOW = 0``: no object is ever lost;
  the labels are those of the tracker before this change, whose confidence does not steer it);
* flow after: the default ``LOST_BELOW``; the lost events listed.

Dice: per class, pooled over every frame (2 |P & G| / (|P| + |G|) over the whole sequence), then
the mean over the scored classes present (the dataset's ignored ids left out). frames/s: the
run's, on whatever machine runs it. ``--cost`` also times the tracker alone on the synthetic clip
with the confidence signals computed and with them switched off.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

import napari_sasvi.core.engine.anchored as anchored
import napari_sasvi.core.trackers.flow_object as flow_object
from napari_sasvi.core.datasets import CHOLECSEG8K, SYNTHETIC, ClassTable
from napari_sasvi.core.engine import iter_from_anchors
from napari_sasvi.core.inputs.anchors import Anchors
from napari_sasvi.core.inputs.frames import open_frames
from napari_sasvi.core.policy import Event
from napari_sasvi.core.store.sasvi_store import SasviStore
from napari_sasvi.core.synthetic import SyntheticVideo
from napari_sasvi.core.trackers.flow import FlowTracker

HERE = Path(__file__).resolve().parent
BINARY = ClassTable.from_dict(
    {"classes": [{"id": 0, "name": "Background"}, {"id": 1, "name": "Object"}], "no_label": 255, "ignore_ids": [0]},
    "binary",
)
SEQUENCES = [
    "synthetic",
    "davis2016_eor-vos_blackswan",
    "davis2016_eor-vos_bmx-trees",
    "davis2016_osvos-tf_car-shadow",
    "cholecseg8k_surgicalsam2_frames561-633",
]


def load(name: str, data: Path):
    """Frames (T, H, W, 3) uint8, ground truth (T, H, W) class ids, class table."""
    if name == "synthetic":
        frames, gt = SyntheticVideo().arrays()
        return frames, gt, SYNTHETIC
    d = data / name
    masks = sorted((d / "masks").glob("*.png"))
    if name.startswith("cholecseg8k"):
        lut = np.full(256, 255, np.uint8)
        for grey, c in CHOLECSEG8K.source_values.items():
            lut[grey] = c
        arrays = [np.asarray(Image.open(m)) for m in masks]
        gt, table = np.stack([lut[a[..., 0] if a.ndim == 3 else a] for a in arrays]), CHOLECSEG8K
    else:
        gt, table = np.stack([(np.asarray(Image.open(m)) > 127).astype(np.uint8) for m in masks]), BINARY
    frame_files = sorted((d / "frames").glob("*"))[: len(masks)]  # CholecSeg8k's last frame has no mask
    return np.stack([np.asarray(Image.open(f).convert("RGB")) for f in frame_files]), gt, table


def dice(pred: np.ndarray, gt: np.ndarray, table: ClassTable) -> float:
    vals = []
    for c in table.ids:
        if c in table.ignore_ids:
            continue
        p, g = pred == c, gt == c
        if g.any() or p.any():
            vals.append(2 * np.count_nonzero(p & g) / (np.count_nonzero(p) + np.count_nonzero(g)))
    return float(np.mean(vals))


def run(frames, gt, table, out: Path, lost_below: float):
    shutil.rmtree(out, ignore_errors=True)
    old, anchored.LOST_BELOW = anchored.LOST_BELOW, lost_below
    lost = []
    t0 = time.perf_counter()
    try:
        gen = iter_from_anchors(frames, Anchors({0: gt[0]}, "gt", "class-ids"), FlowTracker(), str(out), table)
        for item in gen:
            if isinstance(item, Event) and item.kind == "lost":
                lost.append(item)
    finally:
        anchored.LOST_BELOW = old
    fps = len(frames) / (time.perf_counter() - t0)
    return np.asarray(SasviStore.read(out).labels[:]), lost, fps


def cost(repeats: int = 3) -> tuple[float, float]:
    """frames/s of the tracker alone on the synthetic clip (every class prompted at frame 0), with
    the confidence signals and without (the updates made no-ops), alternating, best of ``repeats``."""
    frames, gt = SyntheticVideo().arrays()
    stack = open_frames(frames)

    def once() -> float:
        tr = FlowTracker()
        tr.bind(stack)
        for c in np.unique(gt[0]):
            tr.add_mask(0, int(c), gt[0] == c)
        t0 = time.perf_counter()
        for _ in tr.propagate(0):
            pass
        return len(frames) / (time.perf_counter() - t0)

    on, off = [], []
    real = flow_object.sample_error, flow_object.ObjectConfidence.update_fit, flow_object.ObjectConfidence.update_area
    for _ in range(repeats):
        on.append(once())
        flow_object.sample_error = lambda *a, **k: None
        flow_object.ObjectConfidence.update_fit = flow_object.ObjectConfidence.update_area = lambda *a, **k: None
        try:
            off.append(once())
        finally:
            flow_object.sample_error, flow_object.ObjectConfidence.update_fit = real[0], real[1]
            flow_object.ObjectConfidence.update_area = real[2]
    return max(on), max(off)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared/data")
    ap.add_argument("--sequences", nargs="+", default=SEQUENCES)
    ap.add_argument("--work", type=Path, default=HERE / "_work" / "lost")
    ap.add_argument("--cost", action="store_true", help="also time the confidence signals' cost")
    a = ap.parse_args()
    print(f"# command: python benchmarks/bench_lost.py {shlex.join(sys.argv[1:])}")
    print(f"# one anchor (frame 0), no overseer, flow tracker (DIS); LOST_BELOW = {anchored.LOST_BELOW}")
    print("| sequence | frames | copy Dice | flow before | flow after | lost (class@frame: signal) | frames/s after |")
    print("|---|---|---|---|---|---|---|")
    for name in a.sequences:
        frames, gt, table = load(name, a.data)
        before, _, _ = run(frames, gt, table, a.work / f"{name}.before.zarr", 0.0)
        after, lost, fps = run(frames, gt, table, a.work / f"{name}.after.zarr", anchored.LOST_BELOW)
        copy = np.broadcast_to(gt[0], gt.shape)
        said = ", ".join(f"{e.labels[0]}@{e.frame}: {e.reason.split('(')[1].split(')')[0]}" for e in lost) or "-"
        print(
            f"| {name} | {len(gt)} | {dice(copy, gt, table):.3f} | {dice(before, gt, table):.3f} "
            f"| {dice(after, gt, table):.3f} | {said} | {fps:.1f} |",
            flush=True,
        )
    if a.cost:
        on, off = cost()
        print(f"\ntracker alone, synthetic clip: {off:.1f} frames/s without the confidence signals, {on:.1f} with them")


if __name__ == "__main__":
    main()
