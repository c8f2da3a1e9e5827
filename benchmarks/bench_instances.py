"""Instances (issue 29): identity, accuracy per object and cost of ``--instances``.

    python benchmarks/bench_instances.py [--data ../shared/data] [--parts synthetic,real,cost]

* synthetic: the synthetic clip's four instruments (two graspers cross and one hides the other;
  the L-hook's tip sweeps across the view), detected frame by frame by the noisy instance overseer
  (``noisy_instances``: ids that say nothing of identity, a one-frame dropout, a spurious blob,
  the crossing graspers merged into one detection for two frames, jittered edges). Three rows per
  clip: ``detections``: the identity step alone (IdentityCache, no tracker: tracking by
  detection); ``flow``: SASVi --instances with the flow tracker; and the class-only run of the same
  detections merged per class (Dice per class of the instrument classes, for comparison).
  The identity rules were developed on the 60-frame clip of seed 0 (the demo); the 120-frame
  clips of seeds 0, 1 and 2 were not looked at before their numbers were written down.
* real: CholecInstanceSeg (10 LabelMe frames, one in 30 of the video; group ids are identities)
  replayed with its ids and with them stripped (the identity step must find them: frames 30
  apart), scored against itself; Endoscapes (4 annotated frames of 120, COCO RLE, no track ids):
  tracks made, and which annotated objects kept their id from one annotated frame to the next.
* cost: N squares of one class (N = 2, 4, 8) moving on a 480 x 854 clip of 60 frames, the flow
  tracker, --instances against the class-only run of the same masks merged: frames/s and peak
  memory (each run in a subprocess of its own; ru_maxrss).

Identity scores are those of ``napari-sasvi evaluate tracks`` (matches need IoU >= 0.5 and the
same class; ID switches as CLEAR-MOT counts them; IDF1 over a global assignment). Dice per object:
the track that overlaps the object most over the clip, pixels pooled over frames.
"""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_sasvi.core.datasets import SYNTHETIC, get_class_table
from napari_sasvi.core.demo_instances import gt_instances, object_dice
from napari_sasvi.core.engine import run_sasvi
from napari_sasvi.core.engine.instances import paint_tracks
from napari_sasvi.core.inputs.instance_labels import open_instance_labels
from napari_sasvi.core.instances.identity import IdentityCache, IdentityParams, mask_iou
from napari_sasvi.core.instances.types import Instance
from napari_sasvi.core.metrics.accuracy import overlap_counts
from napari_sasvi.core.metrics.identity import track_metrics
from napari_sasvi.core.overseers.base import merge_instances, result_to_label_map
from napari_sasvi.core.overseers.replay import ReplayOverseer
from napari_sasvi.core.overseers.replay_instances import InstanceReplayOverseer
from napari_sasvi.core.policy import PolicyParams
from napari_sasvi.core.store.sasvi_store import SasviStore
from napari_sasvi.core.synthetic import SyntheticVideo
from napari_sasvi.core.trackers.flow import FlowTracker

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CHOLEC = "cholecinstanceseg_sample_VID03_t80_sparse"
ENDO = "endoscapes_surgicalsam2_video4_21725-24700"


class Listed:
    """An instance overseer over a list of per-frame detections (optionally without identities)."""

    needs_frames = False

    def __init__(self, per_frame, name: str, strip_ids: bool = False):
        self.per_frame, self.name, self.strip = per_frame, name, strip_ids

    def predict_instances(self, frames, indices):
        out = []
        for t in indices:
            found = self.per_frame(t)
            out.append([Instance(d.class_id, d.mask, d.score, None) for d in found] if self.strip else list(found))
        return out

    def predict(self, frames, indices):
        return [merge_instances(x) for x in self.predict_instances(frames, indices)]

    def describe(self):
        return {"type": "listed", "name": self.name, "strip_ids": self.strip}


def _scores(track_maps, gt_lists, pred_classes) -> dict:
    ev = track_metrics(track_maps, gt_lists, pred_classes)
    o = ev.overall
    return {
        "idsw": o.idsw,
        "idf1": o.idf1,
        "motsa": o.motsa,
        "tp": o.tp,
        "fp": o.fp,
        "fn": o.fn,
        "tracks": o.pred_tracks,
    }


# -- synthetic --------------------------------------------------------------------------------------
def synthetic_rows(n_frames: int, seed: int, work: Path) -> list[dict]:
    video = SyntheticVideo(n_frames=n_frames, seed=seed)
    n = video.n_frames
    frames = np.stack([video.frame(t) for t in range(n)])
    gt_maps = [video.instance_labels(t) for t in range(n)]
    gts = [gt_instances(video, t) for t in range(n)]
    ov = Listed(video.noisy_instances, f"synthetic seed {seed}")
    rows = []
    # the identity step alone: tracking by detection
    cache = IdentityCache(ov, n)
    det_maps = [paint_tracks(cache.masks(t), frames.shape[1:3]) for t in range(n)]
    row = {"clip": f"synthetic {n}f seed {seed}", "run": "detections (no tracker)"}
    row |= _scores(det_maps, gts, dict(cache.class_of))
    row["dice"] = {g: round(d, 3) for g, (_, d) in object_dice(det_maps, gt_maps).items()}
    rows.append(row)
    # SASVi --instances, flow tracker
    out = work / f"syn{n}_{seed}_i.zarr"
    t0 = time.perf_counter()
    run_sasvi(frames, ov, FlowTracker(), str(out), SYNTHETIC, PolicyParams(), instances=IdentityParams())
    secs = time.perf_counter() - t0
    store = SasviStore.read(out)
    maps = [np.asarray(store.tracks[t]) for t in range(n)]
    row = {"clip": f"synthetic {n}f seed {seed}", "run": "SASVi --instances (flow)", "fps": round(n / secs, 1)}
    row |= _scores(maps, gts, {k: t.class_id for k, t in store.track_table.items()})
    row["dice"] = {g: round(d, 3) for g, (_, d) in object_dice(maps, gt_maps).items()}
    inst_labels = [np.asarray(store.labels[t]) for t in range(n)]
    rows.append(row)
    # the class-only run of the same detections, merged per class
    merged = np.stack(
        [result_to_label_map(merge_instances(video.noisy_instances(t)), frames.shape[1:3], 255) for t in range(n)]
    )
    out_c = work / f"syn{n}_{seed}_c.zarr"
    t0 = time.perf_counter()
    run_sasvi(frames, ReplayOverseer(merged, SYNTHETIC, frame_count=n, frame_size=frames.shape[1:3]), FlowTracker(),
              str(out_c), SYNTHETIC, PolicyParams())  # fmt: skip
    secs = time.perf_counter() - t0
    cls = SasviStore.read(out_c)
    ids = sorted(set(video.instance_classes.values()))
    truth = [np.where(video.instance_labels(t) > 0, video.labels(t), 255).astype(np.uint8) for t in range(n)]
    dice_c = overlap_counts((np.asarray(cls.labels[t]) for t in range(n)), iter(truth), ids).dice()
    dice_i = overlap_counts(iter(inst_labels), iter(truth), ids).dice()
    rows.append({
        "clip": f"synthetic {n}f seed {seed}", "run": "class Dice: class-only run | --instances run",
        "fps": round(n / secs, 1),
        "class_dice": {SYNTHETIC.by_id(c).name: [round(dice_c.get(c, float("nan")), 3), round(dice_i.get(c, float("nan")), 3)] for c in ids},
    })  # fmt: skip
    return rows


# -- real data --------------------------------------------------------------------------------------
def cholec_rows(data: Path, work: Path) -> list[dict]:
    from napari_sasvi.core.inputs.frames import open_frames

    root = data / CHOLEC
    classes = get_class_table("cholecinstanceseg")
    stack = open_frames(root / "frames")
    n = len(stack)
    src = open_instance_labels(root / "annotations_labelme", classes, frame_count=n)
    gts = [src.instances(t) for t in range(n)]
    per_class = {}
    for g in gts:
        for d in g:
            per_class[classes.by_id(d.class_id).name] = per_class.get(classes.by_id(d.class_id).name, 0) + 1
    rows = [{"clip": "CholecInstanceSeg VID03 (10 frames, 1 in 30)", "run": "instances read", "per_class": per_class,
             "objects": len({(d.class_id, d.source_id) for g in gts for d in g})}]  # fmt: skip
    for strip in (False, True):
        out = work / f"cholec_{int(strip)}.zarr"
        ov = Listed(src.instances, "cholecinstanceseg", strip_ids=strip)
        run_sasvi(stack, ov, FlowTracker(), str(out), classes, PolicyParams(), instances=IdentityParams())
        store = SasviStore.read(out)
        maps = [np.asarray(store.tracks[t]) for t in range(n)]
        row = {"clip": "CholecInstanceSeg VID03", "run": "--instances, " + ("ids stripped" if strip else "file ids")}
        row |= _scores(maps, gts, {k: t.class_id for k, t in store.track_table.items()})
        rows.append(row)
    return rows


def endoscapes_rows(data: Path, work: Path) -> list[dict]:
    root = data / ENDO
    coco = root / "annotations_coco_rle.json"
    classes = get_class_table(coco)
    from napari_sasvi.core.inputs.frames import open_frames

    stack = open_frames(root / "frames")
    n = len(stack)
    ov = InstanceReplayOverseer(coco, classes, frame_count=n, frame_size=stack.frame_size)
    out = work / "endo.zarr"
    run_sasvi(stack, ov, FlowTracker(), str(out), classes, PolicyParams(), instances=IdentityParams())
    store = SasviStore.read(out)
    ann = list(ov.source.annotated)
    # which annotated objects were given the id of an object of the annotated frame before
    kept, objects = [], 0
    for a, b in zip(ann, ann[1:], strict=False):
        ids_a = {int(k) for k in np.unique(np.asarray(store.tracks[a])) if k}
        tb = np.asarray(store.tracks[b])
        for d in ov.source.instances(b):
            objects += 1
            k = max(np.unique(tb[d.mask]).tolist(), key=lambda v: np.count_nonzero(tb[d.mask] == v))
            if k in ids_a:
                kept.append(f"{classes.by_id(d.class_id).name} {a}->{b}")
    gt_iou = []  # the same objects' overlap between annotated frames (the ceiling of any IoU linking)
    for a, b in zip(ann, ann[1:], strict=False):
        for d in ov.source.instances(a):
            same = [e for e in ov.source.instances(b) if e.class_id == d.class_id]
            if same:
                gt_iou.append(round(max(mask_iou(d.mask, e.mask) for e in same), 2))
    per_class = {}
    for t in store.track_table.values():
        per_class[classes.by_id(t.class_id).name] = per_class.get(classes.by_id(t.class_id).name, 0) + 1
    return [{
        "clip": "Endoscapes video 4 (120 frames at 1 fps, 4 annotated)", "run": "--instances (flow)",
        "instances_read": sum(len(ov.source.instances(t)) for t in ann), "tracks": len(store.track_table),
        "tracks_per_class": per_class, "objects_on_later_annotated_frames": objects,
        "kept_their_id": kept, "best_same_class_gt_iou_between_annotated_frames": gt_iou,
    }]  # fmt: skip


# -- cost -------------------------------------------------------------------------------------------
def _squares(k: int, n: int, h: int, w: int):
    """k squares of one class on a grid, each drifting right 2 px a frame; frames and detections."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 50, (n, h, w, 3), dtype=np.uint8)
    cols = int(np.ceil(np.sqrt(k)))
    centres = [
        (60 + (i // cols) * (h - 120) // max(1, cols - 1 or 1), 60 + (i % cols) * (w - 240) // max(1, cols - 1 or 1))
        for i in range(k)
    ]

    def dets(t):
        out = []
        for y, x in centres:
            m = np.zeros((h, w), bool)
            m[y - 25 : y + 25, x + 2 * t - 25 : x + 2 * t + 25] = True
            out.append(Instance(5, m, 0.9))
        return out

    for t in range(n):
        for d in dets(t):
            frames[t][d.mask] = (200, 80, 80)
    return frames, dets


def cost_child(k: int, mode: str) -> dict:
    n, h, w = 60, 480, 854
    frames, dets = _squares(k, n, h, w)
    out = Path(tempfile.mkdtemp()) / "c.zarr"
    if mode == "instances":
        ov, kw = Listed(dets, f"{k} squares"), {"instances": IdentityParams()}
    else:
        merged = np.stack([result_to_label_map(merge_instances(dets(t)), (h, w), 255) for t in range(n)])
        ov, kw = ReplayOverseer(merged, SYNTHETIC, frame_count=n, frame_size=(h, w)), {}
    t0 = time.perf_counter()
    run_sasvi(frames, ov, FlowTracker(), str(out), SYNTHETIC, PolicyParams(), **kw)
    secs = time.perf_counter() - t0
    tracks = len(SasviStore.read(out).track_table)
    return {
        "instances": k,
        "mode": mode,
        "fps": round(n / secs, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "tracks": tracks,
    }


def cost_rows() -> list[dict]:
    rows = []
    for k in (2, 4, 8):
        for mode in ("class", "instances"):
            cmd = [sys.executable, __file__, "--cost-child", str(k), mode]
            rows.append(
                json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
            )
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--parts", default="synthetic,real,cost")
    p.add_argument("--cost-child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.cost_child:
        print(json.dumps(cost_child(int(args.cost_child[0]), args.cost_child[1])))
        return 0
    print(
        "$ python " + " ".join(shlex.quote(a) for a in [f"benchmarks/{Path(__file__).name}", *(argv or sys.argv[1:])])
    )
    parts = set(args.parts.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "synthetic" in parts:
            for n, seed in ((60, 0), (120, 0), (120, 1), (120, 2)):
                for row in synthetic_rows(n, seed, work):
                    print(json.dumps(row))
        if "real" in parts:
            for row in cholec_rows(args.data, work) + endoscapes_rows(args.data, work):
                print(json.dumps(row))
    if "cost" in parts:
        for row in cost_rows():
            print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
