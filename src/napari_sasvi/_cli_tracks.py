"""``napari-sasvi evaluate tracks``: identity metrics and per-track T-IoU of instance tracks."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from ._cli_progress import drive_evaluation
from .core.datasets import PRESETS as DATASET_PRESETS
from .core.datasets import canonical_dataset, get_class_table
from .core.progress import drain


def add_evaluate_tracks(esub) -> None:
    p = esub.add_parser(
        "tracks",
        help="ID switches, IDF1, MOTSA (and HOTA) of instance tracks against instance ground truth; per-track T-IoU",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "pred",
        type=Path,
        help="a SASVi store made with --instances, or a folder of track-id PNGs (8/16-bit grey, 0 = none; "
        "classes from an instances.json beside them)",
    )
    p.add_argument(
        "gt",
        type=Path,
        help="instance ground truth: a folder of instance PNGs + instances.json, LabelMe files, or a COCO .json "
        "with track ids",
    )
    c = p.add_mutually_exclusive_group()
    c.add_argument(
        "--dataset",
        type=canonical_dataset,
        choices=list(DATASET_PRESETS),
        help="the class table of the ground truth's class ids (a store brings its own)",
    )
    c.add_argument("--classes", type=Path, help="class table file (instead of --dataset)")
    p.add_argument("--every", type=int, default=1, metavar="N", help="score the ground truth of every N-th frame only")
    p.add_argument("--ignore-class", action="store_true", help="tracks match objects of any class")
    p.add_argument("--hota", action="store_true", help="also HOTA (needs the trackeval package)")
    p.add_argument("--json", type=Path, help="write every figure, per class and per track, here")
    p.set_defaults(func=run_evaluate_tracks)


def _fmt(v, width: int = 6) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a".rjust(width)
    return f"{v:{width}.3f}"


def _row(label: str, s, with_hota: bool) -> str:
    counts = f"{s.tp:6d} {s.fp:6d} {s.fn:6d} {s.idsw:5d}"
    ratios = " ".join(_fmt(v) for v in (s.idf1, s.motsa, s.mean_iou))
    hota = " " + _fmt(s.hota.hota if s.hota is not None else None) if with_hota else ""
    return f"{label:<24s} {counts} {ratios}{hota}"


def run_evaluate_tracks(args) -> int:
    from .core.metrics.evaluate_tracks import iter_evaluate_tracks

    given = get_class_table(args.dataset or args.classes) if (args.dataset or args.classes) else None
    result, table = drive_evaluation(
        iter_evaluate_tracks(
            args.pred, args.gt, given, every=args.every, ignore_class=args.ignore_class, hota=args.hota
        )
    )
    names = {c.id: c.name for c in table}
    head = f"{'class':<24s} {'TP':>6s} {'FP':>6s} {'FN':>6s} {'IDSW':>5s} {'IDF1':>6s} {'MOTSA':>6s} {'mIoU':>6s}"
    print(head + (f" {'HOTA':>6s}" if args.hota else ""))
    for s in result.per_class:
        print(_row(f"{s.class_id:3d} {names.get(s.class_id, '?')}"[:24], s, args.hota))
    print(_row("overall", result.overall, args.hota))
    o = result.overall
    print(
        f"{o.gt_objects} ground-truth objects, {o.pred_tracks} tracks on {result.n_scored} scored frames of "
        f"{result.n_frames}; matches need IoU >= {result.threshold}"
        + (" and the same class" if result.class_aware else " (any class)")
    )
    with_pairs = sum(t.t_iou is not None for t in result.tracks)
    print(
        f"per-track T-IoU (consecutive frames, no warping): macro {_fmt(result.t_iou_macro).strip()} "
        f"over {with_pairs} of {len(result.tracks)} tracks"
        + (" (the others are on no two consecutive frames)" if with_pairs < len(result.tracks) else "")
    )
    if not args.hota:
        print("HOTA: add --hota (needs the trackeval package)")
    if args.json:
        payload = result.to_dict() | {
            "pred": str(args.pred),
            "gt": str(args.gt),
            "every": args.every,
            "classes": {str(k): v for k, v in names.items()},
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=1))
        print(f"wrote {args.json}")
    return 0


def print_identity_table(result, table) -> None:
    """The identity table (per class and overall: TP FP FN IDSW IDF1 MOTSA mIoU)."""
    names = {c.id: c.name for c in table}
    print(f"   {'class':<24s} {'TP':>6s} {'FP':>6s} {'FN':>6s} {'IDSW':>5s} {'IDF1':>6s} {'MOTSA':>6s} {'mIoU':>6s}")
    for s in result.per_class:
        print("   " + _row(f"{s.class_id:3d} {names.get(s.class_id, '?')}"[:24], s, False))
    print("   " + _row("overall", result.overall, False))


def run_demo_instances(args, out, tracker, on_item, bars) -> int:
    """``demo --instances``: the instance demo (:mod:`~.core.demo_instances`) and its scores."""
    from .core.demo_instances import iter_demo_instances

    try:
        report = drain(iter_demo_instances(out, args.frames, args.seed, tracker), on_item)
    finally:
        bars.close()
    video, identity = report["video"], report["identity"]
    o = identity.overall
    print(
        f"   identity against the ground truth ({o.gt_objects} instruments, {o.pred_tracks} tracks): "
        f"ID switches {o.idsw}, IDF1 {_fmt(o.idf1).strip()}, MOTSA {_fmt(o.motsa).strip()}"
    )
    print_identity_table(identity, video.classes)
    names = {c.id: c.name for c in video.classes}
    for g, (k, d) in report["dice"].items():
        cls = names[video.instance_classes[g]]
        print(f"   instrument {g} ({cls}): track #{k}, Dice {d:.3f}" if k else f"   instrument {g} ({cls}): no track")
    if args.out is None:
        print(f"   the demo's frames, detections and store are in {out} (a temporary folder: --out DIR keeps them)")
    if args.view:
        import napari

        viewer = napari.Viewer()
        viewer.open(str(out / "frames"), plugin="napari-sasvi")
        viewer.open(str(report["store"]), plugin="napari-sasvi")
        napari.run()
    return 0


__all__ = ["add_evaluate_tracks", "print_identity_table", "run_demo_instances", "run_evaluate_tracks"]
