"""The ``napari-sasvi`` command: argparse subcommands over the core library.

Importing this module pulls in no napari, qtpy or magicgui (a test enforces it); ``demo --view``
imports napari only when asked to open a viewer.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from ._cli_edit import add_edit
from ._cli_export import add_export
from ._cli_progress import Bars, Progress, drive_evaluation
from ._cli_resume import add_resume
from ._cli_segment import add_encoding_option, add_segment, as_flags
from ._cli_tracks import add_evaluate_tracks
from ._cli_train import add_train
from .core.datasets import PRESETS as DATASET_PRESETS
from .core.datasets import canonical_dataset
from .core.errors import SasviError
from .core.progress import drain

log = logging.getLogger("napari_sasvi")


# -- frames ----------------------------------------------------------------------------------------
def _add_frames(sub) -> None:
    p = sub.add_parser(
        "frames",
        help="write a video's frames as %%010d.jpg files (the layout the SASVi scripts read)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("video", type=Path, help="video file (.mp4/.avi/.mov/.mkv) or folder of frames")
    p.add_argument("out_dir", type=Path, help="folder to write the frames into")
    p.add_argument("--every", type=int, default=1, metavar="N", help="keep every N-th frame")
    p.add_argument("--quality", type=int, default=95, metavar="Q", help="JPEG quality 1-100")
    p.add_argument("--overwrite", action="store_true", help="replace image files already in OUT_DIR")
    p.set_defaults(func=_run_frames)


def _run_frames(args) -> int:
    from .core.exports.reference import iter_export_frames
    from .core.inputs.frames import open_frames

    stack = open_frames(args.video)
    total = (len(stack) + args.every - 1) // max(args.every, 1)
    n = 0
    with Progress(total, "frames") as bar:

        def on_frame(_t: int) -> None:
            nonlocal n
            n += 1
            bar.update_to(n)

        drain(iter_export_frames(stack, args.out_dir, args.every, args.quality, args.overwrite), on_frame)
    print(f"wrote {n} frames to {args.out_dir}")
    return 0


# -- evaluate --------------------------------------------------------------------------------------
def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="temporal consistency (T, F), frame-wise accuracy, identity of tracks")
    esub = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    t = esub.add_parser(
        "temporal",
        help="T and F metrics of a store, a label folder, or a root of videos",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    t.add_argument("pred", type=Path, help="a SASVi store (.zarr), a folder of label PNGs, or a root of those")
    t.add_argument("--frames", type=Path, help="the video(s) for F: a frame folder or video file, or a root of them")
    t.add_argument("--flow", choices=["opencv", "raft"], default="opencv", help="optical flow for F")
    t.add_argument("--raft-weights", type=Path, help="RAFT-small state dict (default: torchvision's, when online)")
    t.add_argument(
        "--convention",
        choices=["default", "reference"],
        default="default",
        help="reference: reproduce the published scripts' numbers (D1, D6 kept)",
    )
    _add_class_table_options(t, "class table (ignore ids, no-label value); a store brings its own")
    add_encoding_option(t, "--masks-encoding", "how label files store classes")
    t.add_argument("--json", type=Path, help="write per-label, macro and per-frame figures here")
    t.set_defaults(func=_run_evaluate_temporal)
    f = esub.add_parser(
        "frames",
        help="per-class Dice and IoU of predictions against ground truth",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    f.add_argument("pred", type=Path, help="a SASVi store or a folder of label PNGs (or a root of those)")
    f.add_argument(
        "gt",
        type=Path,
        help="ground truth: a store, a folder of label PNGs (any subset of the frames, matched by name or "
        "frame number), a COCO annotations .json, or a root of those with the same names",
    )
    _add_class_table_options(f, "class table deciding which ids count (a store brings its own)")
    add_encoding_option(f, "--masks-encoding", "how the prediction's label files store classes")
    add_encoding_option(f, "--gt-encoding", "how the ground truth's label files store classes")
    f.add_argument(
        "--resize",
        choices=["none", "nearest"],
        default="none",
        help="predictions of another size than the ground truth: refuse, or resize them (nearest neighbour)",
    )
    f.add_argument("--csv", type=Path, help="per-class Dice and IoU and their macro mean as CSV")
    f.add_argument("--json", type=Path, help="the same as JSON, with per-frame macro Dice")
    f.set_defaults(func=_run_evaluate_frames)
    add_evaluate_tracks(esub)


def _add_class_table_options(p, dataset_help: str) -> None:
    c = p.add_mutually_exclusive_group()
    c.add_argument("--dataset", type=canonical_dataset, choices=list(DATASET_PRESETS), help=dataset_help)
    c.add_argument("--classes", type=Path, help="class table file")
    p.add_argument("--array", choices=["labels", "overseer"], default="labels", help="which array of a store")


def _class_table_arg(args):
    from .core.datasets import get_class_table

    return get_class_table(args.dataset or args.classes) if (args.dataset or args.classes) else None


def _fmt(v) -> str:
    import math

    return "  n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def _run_evaluate_temporal(args) -> int:
    import json

    from .core.metrics.evaluate import iter_evaluate_temporal
    from .core.metrics.temporal import opencv_flow, raft_flow

    flow = raft_flow(str(args.raft_weights) if args.raft_weights else None) if args.flow == "raft" else opencv_flow()
    pooled, report = drive_evaluation(
        iter_evaluate_temporal(
            args.pred,
            _class_table_arg(args),
            frames=args.frames,
            convention=args.convention,
            flow=flow,
            encoding=args.masks_encoding,
            array=args.array,
        )
    )
    print(f"convention: {args.convention}; labels scored: {pooled.labels_scored}")
    print("label    T-IoU  T-ASSD  F-IoU  F-Dice")
    for c in pooled.labels_scored:
        cols = (pooled.t_iou.get(c), pooled.t_assd.get(c), pooled.f_iou.get(c), pooled.f_dice.get(c))
        print(f"{c:5d}    " + "  ".join(_fmt(v) for v in cols))
    m = pooled.macro
    print("macro    " + "  ".join(_fmt(m[k]) for k in ("t_iou", "t_assd", "f_iou", "f_dice")))
    if args.json:
        payload = {"pooled": pooled.to_dict() | {"series": None}, "videos": report}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=1, allow_nan=True))
    return 0


def _run_evaluate_frames(args) -> int:
    import csv
    import json

    from .core.metrics.evaluate import iter_evaluate_frames

    report = drive_evaluation(
        iter_evaluate_frames(
            args.pred,
            args.gt,
            _class_table_arg(args),
            pred_encoding=args.masks_encoding,
            gt_encoding=args.gt_encoding,
            array=args.array,
            resize=args.resize == "nearest",
        )
    )
    rows = report["per_class"]
    for r in rows:
        print(f"{r['id']:3d} {r['name']:<26s} Dice {_fmt(r['dice'])}  IoU {_fmt(r['iou'])}")
    print(
        "macro (over the classes present, ignore ids and unlabelled ground-truth pixels left out): "
        f"Dice {report['macro_dice']:.3f}  IoU {report['macro_iou']:.3f}"
    )
    scored = {"n_scored": report["n_scored"], "n_frames": report["n_frames"]}
    print(f"scored {scored['n_scored']} of {scored['n_frames']} frames (frames without ground truth left out)")
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with open(args.csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=["id", "name", "dice", "iou", "n_scored", "n_frames"])
            w.writeheader()
            w.writerows(rows)
            w.writerow({"id": "", "name": "macro", "dice": report["macro_dice"], "iou": report["macro_iou"]} | scored)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({k: v for k, v in report.items() if k != "classes"}, indent=1))
    return 0


# -- demo ------------------------------------------------------------------------------------------
def _add_demo(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="run SASVi on the embedded synthetic surgical clip (offline, no weights to download)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--out",
        type=Path,
        help="folder for the demo's outputs (default: a new temporary folder, named when the demo ends)",
    )
    p.add_argument("--frames", type=int, default=60, help="length of the synthetic clip (its schedule scales)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic clip")
    p.add_argument("--mode", choices=["default", "reference"], default="default")
    p.add_argument(
        "--tracker",
        choices=["flow", "sam2"],
        default="flow",
        help="flow: optical flow, meaningful without weights; sam2: SAM2 (random weights unless --sam2-model)",
    )
    p.add_argument("--tracker-model", help="flow: dis (default) or farneback")
    p.add_argument("--sam2-model", help="use real SAM2 weights (downloaded when online); implies --tracker sam2")
    p.add_argument("--image-size", type=int, default=128, help="SAM2 input size with random weights")
    p.add_argument("--view", action="store_true", help="open the result in napari (needs a display)")
    p.add_argument(
        "--instances",
        action="store_true",
        help="track each instrument with its own id (two graspers cross) from detections without identity, "
        "scored with ID switches, IDF1 and Dice per object",
    )
    p.set_defaults(func=_run_demo)


def _run_demo(args) -> int:
    import tempfile

    from .core.config import TrackerConfig
    from .core.demo import iter_demo
    from .core.engine import FrameDone

    if args.sam2_model or args.tracker == "sam2":
        tracker = TrackerConfig(
            kind="sam2",
            model=args.sam2_model,
            config=None if args.sam2_model else "sam2.1_hiera_t",
            random_weights=not args.sam2_model,
            image_size=None if args.sam2_model else args.image_size,
        )
    else:
        tracker = TrackerConfig(kind="flow", model=args.tracker_model)
    out = args.out if args.out is not None else Path(tempfile.mkdtemp(prefix="napari-sasvi-demo-"))
    bars = Bars()

    def on_item(item) -> None:
        if isinstance(item, FrameDone):
            bars.show("sasvi", item.done, item.total)
        else:
            bars.close()
            print(item)

    if args.instances:
        from ._cli_tracks import run_demo_instances

        return run_demo_instances(args, out, tracker, on_item, bars)
    try:
        report = drain(iter_demo(out, args.frames, args.seed, args.mode, tracker), on_item)
    finally:
        bars.close()
    classes = report["video"].classes
    ov, sv = report["dice"]["overseer"], report["dice"]["sasvi"]
    print(
        f"   Dice against the ground truth (macro over {len(classes.scored_ids())} classes): "
        f"overseer {report['macro']['overseer']:.3f}, SASVi {report['macro']['sasvi']:.3f}"
    )
    for c in classes:
        print(
            f"   {c.id:2d} {c.name:<24s} overseer {ov.get(c.id, float('nan')):.3f}  SASVi {sv.get(c.id, float('nan')):.3f}"
        )
    print("   temporal consistency (macro, default convention):   T-IoU  T-ASSD  F-IoU")
    for name, m in report["temporal"].items():
        print(f"   {name:<48s}  {m['t_iou']:.3f}  {m['t_assd']:6.2f}  {m['f_iou']:.3f}")
    if args.out is None:
        print(
            f"   the demo's frames, masks and store are in {out} (a temporary folder: --out DIR keeps them elsewhere)"
        )
    if args.view:
        import napari

        from ._napari.sample import labels_layer_kwargs
        from .core.store.sasvi_store import SasviStore

        store = SasviStore.read(report["store"])
        viewer = napari.Viewer()
        viewer.open(str(report["frames"]), plugin="napari-sasvi")
        viewer.add_labels(report["video"].labels_dask(), **labels_layer_kwargs(classes, "Ground truth"))
        viewer.add_labels(store.overseer, **labels_layer_kwargs(classes, "Overseer"))
        viewer.add_labels(store.labels, **labels_layer_kwargs(classes, "SASVi"))
        napari.run()
    return 0


# -- entry point -----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-sasvi",
        description="SASVi: segment whole surgical videos from a frame-wise overseer and SAM2.",
    )
    parser.add_argument("--version", action="version", version=f"napari-sasvi {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_demo(sub)
    _add_frames(sub)
    add_segment(sub)
    add_edit(sub)
    add_resume(sub)
    add_export(sub)
    add_train(sub)
    _add_evaluate(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 on success)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except SasviError as e:
        print(f"napari-sasvi {args.command}: error: {as_flags(str(e))}", file=sys.stderr)
        return 2
    except OSError as e:  # a path the user gave that cannot be written or read
        print(f"napari-sasvi {args.command}: error: {e.strerror or e}: {e.filename or ''}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"napari-sasvi {args.command}: interrupted; finished frames are kept. "
            "Run the same command again to continue.",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
