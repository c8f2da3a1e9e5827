"""Prompts without a model (issue 30): one box on the first frame, grown into a mask, carried by the
flow tracker through DAVIS 2016.

    python benchmarks/bench_prompts.py [davis] [clicks] [speed] [--data ../shared/data]

``davis`` (blackswan, car-shadow): the box is the tight box of the ground-truth mask on frame 0
(x1, y1 exclusive, no margin: the headline), and the same box with a 5 % margin on each side (of
the box's width and height, cut to the frame). :func:`~napari_sasvi.core.prompts.grow.grow_mask`
grows frame 0's mask from it; the flow tracker (DIS, defaults) carries that mask through the
sequence. Dice per frame, then the mean over every frame (frame 0 included), for

* grown + flow: the flow tracker from the grown mask;
* grown, copied: the grown mask on every frame (the trivial baseline);
* GT + flow, GT copied: the same from the ground-truth mask itself (what a perfect first mask
  gives: the tracker's share of the error);
* engine: the grown mask as the one anchor of an anchors run
  (:func:`~napari_sasvi.core.engine.iter_from_anchors`, flow tracker, into a store), read back.

ms/frame: the flow propagation's, on whatever machine runs it.

``clicks``: one positive click at the ground truth's innermost pixel (the distance transform's
maximum) on frames 0, 10, 20, 30 of blackswan, car-shadow and bmx-trees: what ``grow_mask`` does
for clicks (GrabCut from a probable-foreground disc around the click, the frame border sure
background), against the alternative it was chosen over, a marker watershed on the colour gradient
of the smoothed frame (the click's disc floods against the frame's border). Dice per frame.

``speed``: ``grow_mask`` at 854 x 480 (the DAVIS first frames): the box, and one click; median of 5.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from napari_sasvi.core.datasets import ClassTable
from napari_sasvi.core.engine import iter_from_anchors
from napari_sasvi.core.inputs.anchors import Anchors
from napari_sasvi.core.inputs.frames import open_frames
from napari_sasvi.core.prompts import grow
from napari_sasvi.core.prompts.grow import grow_mask
from napari_sasvi.core.store.sasvi_store import SasviStore
from napari_sasvi.core.trackers.flow import FlowTracker

HERE = Path(__file__).resolve().parent
BINARY = ClassTable.from_dict(
    {"classes": [{"id": 0, "name": "Background"}, {"id": 1, "name": "Object"}], "no_label": 255, "ignore_ids": [0]},
    "binary",
)
DAVIS = ["davis2016_eor-vos_blackswan", "davis2016_osvos-tf_car-shadow"]
CLICK_SEQUENCES = [*DAVIS, "davis2016_eor-vos_bmx-trees"]


def dice(p: np.ndarray, g: np.ndarray) -> float:
    s = np.count_nonzero(p) + np.count_nonzero(g)
    return 1.0 if s == 0 else 2 * np.count_nonzero(p & g) / s


def mean_dice(pred, gt: np.ndarray) -> float:
    """Dice per frame, averaged over the frames; ``pred`` one mask per frame (or one for all)."""
    pred = np.broadcast_to(pred, gt.shape)
    return float(np.mean([dice(p, g) for p, g in zip(pred, gt, strict=True)]))


def frame(data: Path, name: str, t: int) -> np.ndarray:
    return np.asarray(Image.open(sorted((data / name / "frames").glob("*"))[t]).convert("RGB"))


def truth(data: Path, name: str) -> np.ndarray:
    """(T, H, W) bool: the 0/255 masks."""
    return np.stack([np.asarray(Image.open(m)) > 127 for m in sorted((data / name / "masks").glob("*.png"))])


def tight_box(m: np.ndarray, margin: float = 0.0) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(m)
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    mx, my = round(margin * (x1 - x0)), round(margin * (y1 - y0))
    h, w = m.shape
    return int(max(0, x0 - mx)), int(max(0, y0 - my)), int(min(w, x1 + mx)), int(min(h, y1 + my))


def flow(stack, first: np.ndarray) -> tuple[np.ndarray, float]:
    """The flow tracker from ``first`` on frame 0: (T, H, W) bool, seconds per frame."""
    tr = FlowTracker()
    tr.bind(stack)
    tr.add_mask(0, 1, first)
    out = np.zeros((len(stack), *first.shape), bool)
    t0 = time.perf_counter()
    for t, logits in tr.propagate(0):
        out[t] = logits[1] > 0
    return out, (time.perf_counter() - t0) / len(stack)


def engine(stack, first: np.ndarray, out: Path) -> np.ndarray:
    """The grown mask as the one anchor of an anchors run, read back from the store."""
    shutil.rmtree(out, ignore_errors=True)
    for _ in iter_from_anchors(
        stack, Anchors({0: first.astype(np.uint8)}, "grown", "class-ids"), FlowTracker(), str(out), BINARY
    ):
        pass
    return np.asarray(SasviStore.read(out).labels[:]) == 1


def davis(a) -> None:
    print(
        "| sequence | box | first mask Dice | grown + flow | grown, copied | GT + flow | GT copied | engine | ms/frame (flow) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in DAVIS:
        gt = truth(a.data, name)
        stack = open_frames(str(a.data / name / "frames"))
        img0 = np.asarray(stack.frame(0))
        gt_flow, _ = flow(stack, gt[0])
        ref = (mean_dice(gt_flow, gt), mean_dice(gt[0], gt))
        for label, margin in (("tight (headline)", 0.0), ("5 % margin", 0.05)):
            box = tight_box(gt[0], margin)
            first = grow_mask(img0, box=box)
            pred, spf = flow(stack, first)
            eng = engine(stack, first, a.work / f"{name}.{margin}.zarr")
            print(
                f"| {name.split('_')[-1]} ({len(gt)} frames) | {label} {box} | {dice(first, gt[0]):.3f} "
                f"| {mean_dice(pred, gt):.3f} | {mean_dice(first, gt):.3f} "
                f"| {ref[0]:.3f} | {ref[1]:.3f} | {mean_dice(eng, gt):.3f} | {1000 * spf:.0f} |",
                flush=True,
            )


def innermost(m: np.ndarray) -> tuple[int, int]:
    d = cv2.distanceTransform(m.astype(np.uint8), cv2.DIST_L2, 5)
    y, x = np.unravel_index(int(np.argmax(d)), d.shape)
    return int(x), int(y)


def watershed_from_click(img: np.ndarray, x: int, y: int) -> np.ndarray:
    """The alternative for clicks: the click's disc floods the colour gradient against the border."""
    from skimage.segmentation import watershed

    h, w = img.shape[:2]
    r = max(2, round(grow.CLICK_RADIUS * min(h, w)))
    markers = np.zeros((h, w), np.int32)
    markers[[0, -1], :] = 1
    markers[:, [0, -1]] = 1
    cv2.circle(markers, (x, y), r, 2, -1)
    mask = watershed(grow.gradient(img), markers) == 2
    return grow._keep_clicked(mask, img, np.array([[x, y]]), np.array([1]), r)


def clicks(a) -> None:
    print("| sequence | frame | grow_mask (GrabCut from a disc) | marker watershed |")
    print("|---|---|---|---|")
    gm, ws = [], []
    for name in CLICK_SEQUENCES:
        gt = truth(a.data, name)
        for t in (0, 10, 20, 30):
            img = frame(a.data, name, t)
            x, y = innermost(gt[t])
            gm.append(dice(grow_mask(img, np.array([[x, y]]), np.array([1])), gt[t]))
            ws.append(dice(watershed_from_click(img, x, y), gt[t]))
            print(f"| {name.split('_')[-1]} | {t} | {gm[-1]:.3f} | {ws[-1]:.3f} |", flush=True)
    print(f"| mean | | {np.mean(gm):.3f} | {np.mean(ws):.3f} |")


def speed(a) -> None:
    print("| sequence | prompt | grow_mask, median of 5 (s) |")
    print("|---|---|---|")
    for name in DAVIS:
        gt = truth(a.data, name)
        img = frame(a.data, name, 0)
        x, y = innermost(gt[0])
        for label, kw in (
            ("tight box", {"box": tight_box(gt[0])}),
            ("one click", {"points_xy": np.array([[x, y]]), "point_labels": np.array([1])}),
        ):
            ts = []
            for _ in range(5):
                t0 = time.perf_counter()
                grow_mask(img, **kw)
                ts.append(time.perf_counter() - t0)
            print(
                f"| {name.split('_')[-1]} {img.shape[1]} x {img.shape[0]} | {label} | {np.median(ts):.3f} |", flush=True
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("parts", nargs="*", help="davis, clicks, speed (default: all)")
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared/data")
    ap.add_argument("--work", type=Path, default=HERE / "_work" / "prompts")
    a = ap.parse_args()
    if set(a.parts) - {"davis", "clicks", "speed"}:
        ap.error(f"unknown parts {a.parts}: choose from davis, clicks, speed")
    print(f"# command: python benchmarks/bench_prompts.py {shlex.join(sys.argv[1:])}")
    for part in a.parts or ["davis", "clicks", "speed"]:
        print(f"\n## {part}")
        {"davis": davis, "clicks": clicks, "speed": speed}[part](a)


if __name__ == "__main__":
    main()
