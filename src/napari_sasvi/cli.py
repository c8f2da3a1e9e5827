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
from .core.errors import SasviError

log = logging.getLogger("napari_sasvi")


def _tqdm_progress(iterable, *, total=None, desc=None, **kw):
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="frame", dynamic_ncols=True, **kw)


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
    from .core.export import export_frames

    n = export_frames(
        args.video,
        args.out_dir,
        every=args.every,
        quality=args.quality,
        overwrite=args.overwrite,
        progress=_tqdm_progress,
    )
    print(f"wrote {n} frames to {args.out_dir}")
    return 0


# -- segment ---------------------------------------------------------------------------------------
def _add_segment(sub) -> None:
    p = sub.add_parser(
        "segment",
        help="run SASVi on a video, a frame folder, or a folder of videos",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("input", type=Path, help="frame folder, video file, or a root folder of videos")
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output store (.zarr folder); for a root of videos, a folder with one store per video",
    )
    g = p.add_argument_group("overseer")
    g.add_argument(
        "--overseer",
        choices=["replay", "maskrcnn", "detr", "mask2former"],
        default="replay",
        help="a trained frame-wise model, or replay: existing frame-wise predictions act as the overseer",
    )
    g.add_argument(
        "--overseer-checkpoint",
        help="maskrcnn/detr/mask2former: a .pth state dict, or a published checkpoint's name "
        "(cadis/maskrcnn, cholecseg8k/detr, ...; 'published': the one of --overseer and --dataset), "
        "downloaded into the user cache when online",
    )
    g.add_argument(
        "--overseer-masks",
        type=Path,
        help="replay: folder of label PNGs, .npy or zarr (for a root: one per video, same names)",
    )
    _add_encoding_option(g, "--masks-encoding", "replay: how the mask files store classes")
    g.add_argument(
        "--overseer-score-threshold",
        type=float,
        help="keep instances scoring above this (reference: Mask R-CNN 0.05, DETR 0, Mask2Former 0)",
    )
    g.add_argument(
        "--overseer-mask-threshold",
        type=float,
        help="mask probability (Mask R-CNN, reference 0.5) or logit (DETR 0.5, Mask2Former 0) threshold",
    )
    g.add_argument("--batch-size", type=int, default=8, help="overseer batch size over the look-ahead window")
    p.add_argument("--config", type=Path, help="a run config (YAML/JSON, see docs/python.md); flags given override it")
    p.add_argument("--save-config", type=Path, help="write the run's config (YAML/JSON) here, to run it again")
    c = p.add_mutually_exclusive_group()
    c.add_argument("--dataset", choices=["cadis", "cholecseg8k", "cataract1k", "synthetic"], help="class table preset")
    c.add_argument("--classes", type=Path, help="class table file (.yaml/.json: classes: [{id, name, color}])")
    s = p.add_argument_group("tracker")
    s.add_argument(
        "--tracker",
        choices=["sam2", "flow", "hf"],
        default="sam2",
        help="sam2: the sam2 package's video predictor; flow: optical flow carries the prompts (no weights, "
        "CPU); hf: SAM2/SAM2.1, EdgeTAM or the SAM3 tracker through transformers",
    )
    s.add_argument(
        "--tracker-model",
        help="sam2: an official model name (as --sam2-model); flow: the flow method, dis (default) or farneback; "
        "hf: a folder saved with save_pretrained, or a Hub repository id (downloaded when online)",
    )
    m = s.add_mutually_exclusive_group()
    m.add_argument("--sam2-model", help="official model name (sam2.1_hiera_tiny, ...); downloaded when online")
    m.add_argument("--sam2-config", help="config name (sam2.1_hiera_t, sam2_hiera_l, ...) or YAML path")
    s.add_argument("--sam2-checkpoint", type=Path, help="checkpoint file for --sam2-config ({'model': state_dict})")
    s.add_argument("--sam2-random-weights", action="store_true", help="no checkpoint: random weights (tests, demos)")
    s.add_argument("--image-size", type=int, help="override SAM2's input size (a multiple of 32)")
    s.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto")
    pol = p.add_argument_group("policy")
    pol.add_argument(
        "--mode",
        choices=["default", "reference"],
        default="default",
        help="reference: the published behaviour decision for decision; default: its defects fixed",
    )
    pol.add_argument("--lookahead", type=int, help="overseer look-ahead frames (reference 10)")
    pol.add_argument("--persistence", type=int, help="frames a new class must persist (reference 3)")
    pol.add_argument("--overlap", type=float, help="duplicate overlap threshold (reference 0.70)")
    pol.add_argument("--buffer", type=int, help="frames between forced re-seeds (reference 25)")
    o = p.add_argument_group("outputs")
    o.add_argument("--events-json", type=Path, help="write the re-prompt events (a JSON list) here")
    o.add_argument("--export-png", type=Path, help="also write <frame>_rgb_mask.png palette PNGs here")
    o.add_argument("--export-npz", action="store_true", help="with --export-png: also <frame>_binary_mask.npz")
    o.add_argument("--overwrite", action="store_true", help="with --export-png: replace mask files already there")
    o.add_argument(
        "--export-size",
        type=int,
        nargs=2,
        default=[299, 299],
        metavar=("W", "H"),
        help="size of the exported PNGs (0 0: the frame size)",
    )
    p.set_defaults(func=_run_segment)


#: config name -> the segment flag that sets it (core errors name config options; the CLI shows flags)
CONFIG_FLAGS = {
    "overseer.checkpoint": "--overseer-checkpoint",
    "overseer.masks_encoding": "--masks-encoding",
    "overseer.masks": "--overseer-masks",
    "overseer.kind": "--overseer",
    "overseer.batch_size": "--batch-size",
    "tracker.random_weights": "--sam2-random-weights",
    "tracker.checkpoint": "--sam2-checkpoint",
    "tracker.config": "--sam2-config",
    "tracker.image_size": "--image-size",
    "tracker.model": "--tracker-model",
    "tracker.kind": "--tracker",
    "export.overwrite": "--overwrite",
    "export.png": "--export-png",
    "export.events_json": "--events-json",
    "policy.lookahead": "--lookahead",
    "policy.persistence": "--persistence",
    "policy.overlap": "--overlap",
    "policy.buffer": "--buffer",
}


def _as_flags(message: str) -> str:
    import re

    for name, flag in CONFIG_FLAGS.items():
        message = re.sub(rf"(?<![\w.-]){re.escape(name)}(?![\w])", flag, message)
    return message


def config_from_args(args):
    """The run's :class:`~napari_sasvi.core.config.RunConfig`: ``--config FILE`` as the base (if
    given), then every option given on the command line."""
    from .core.config import RunConfig
    from .core.errors import InputError

    base = RunConfig.load(args.config) if args.config else None
    if base is None and not (args.dataset or args.classes):
        raise InputError("Give the class table: --dataset NAME or --classes FILE (or --config FILE).")
    if args.tracker != "sam2" and (args.sam2_model or args.sam2_config):
        raise InputError(
            f"--sam2-model/--sam2-config are for --tracker sam2; the {args.tracker} tracker takes --tracker-model."
        )
    if args.tracker == "sam2" and args.tracker_model and args.sam2_model and args.tracker_model != args.sam2_model:
        raise InputError("Give the SAM2 model once: --tracker-model or --sam2-model.")
    d = base.to_dict() if base else RunConfig().to_dict()

    def put(section, key, value):
        (d[section] if section else d)[key] = value

    if args.dataset or args.classes:
        put(None, "dataset", str(args.dataset or args.classes))
    if base is None or args.mode != "default":
        put(None, "mode", args.mode)
    if base is None or args.device != "auto":
        put(None, "device", args.device)
    if base is None or args.overseer != "replay":
        put("overseer", "kind", args.overseer)
    if base is None or args.tracker != "sam2":
        put("tracker", "kind", args.tracker)
    for section, key, value in (
        ("overseer", "checkpoint", args.overseer_checkpoint),
        ("overseer", "masks", str(args.overseer_masks) if args.overseer_masks else None),
        ("overseer", "score_threshold", args.overseer_score_threshold),
        ("overseer", "mask_threshold", args.overseer_mask_threshold),
        ("tracker", "model", args.tracker_model or args.sam2_model),
        ("tracker", "config", args.sam2_config),
        ("tracker", "checkpoint", str(args.sam2_checkpoint) if args.sam2_checkpoint else None),
        ("tracker", "image_size", args.image_size),
        ("policy", "lookahead", args.lookahead),
        ("policy", "persistence", args.persistence),
        ("policy", "overlap", args.overlap),
        ("policy", "buffer", args.buffer),
        ("export", "png", str(args.export_png) if args.export_png else None),
        ("export", "events_json", str(args.events_json) if args.events_json else None),
    ):
        if value is not None:
            put(section, key, value)
    for section, key, value, default in (
        ("overseer", "masks_encoding", args.masks_encoding, "auto"),
        ("overseer", "batch_size", args.batch_size, 8),
        ("tracker", "random_weights", args.sam2_random_weights, False),
        ("export", "npz", args.export_npz, False),
        ("export", "overwrite", args.overwrite, False),
    ):
        if base is None or value != default:
            put(section, key, value)
    if base is None or args.export_size != [299, 299]:
        put("export", "size", None if args.export_size == [0, 0] else list(args.export_size))
    return RunConfig.from_dict(d)


def _run_segment(args) -> int:
    from tqdm.auto import tqdm

    from .core.pipeline import FrameDone
    from .core.segment import VideoDone, VideoStarted, segment_videos

    config = config_from_args(args)
    if config.tracker.kind == "flow" and config.device not in ("auto", "cpu"):
        print(
            f"note: the flow tracker runs on the CPU; --device {config.device} applies to the overseer only",
            file=sys.stderr,
        )
    if args.save_config:
        config.save(args.save_config)
    bar = None
    gen = segment_videos(args.input, config, args.out)
    try:
        for item in gen:
            if isinstance(item, VideoStarted):
                print(f"{item.name}: {item.note}")
                bar = tqdm(total=item.n_frames, desc=item.name, unit="frame", dynamic_ncols=True)
            elif isinstance(item, FrameDone) and bar is not None:
                bar.update(item.done - bar.n)
                bar.set_postfix_str(f"{item.fps:.2f} frames/s", refresh=False)
            elif isinstance(item, VideoDone):
                if bar is not None:
                    bar.update(item.summary.frames_written + item.summary.resumed_from - bar.n)
                    bar.close()
                    bar = None
                s = item.summary
                restarts = [e["frame"] for e in s.events if e["kind"] == "restart"]
                state = f"resumed at frame {s.resumed_from}, " if s.resumed_from else ""
                print(f"{item.name}: {state}{s.frames_written} frames written to {s.store}; restarts at {restarts}")
    finally:
        if bar is not None:
            bar.close()
    return 0


# -- evaluate --------------------------------------------------------------------------------------
def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="temporal consistency (T, F) and frame-wise accuracy of label stacks")
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
    _add_encoding_option(t, "--masks-encoding", "how label files store classes")
    t.add_argument("--json", type=Path, help="write per-label, macro and per-frame figures here")
    t.set_defaults(func=_run_evaluate_temporal)
    f = esub.add_parser(
        "frames",
        help="per-class Dice and IoU of predictions against ground truth",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    f.add_argument("pred", type=Path, help="a SASVi store or a folder of label PNGs (or a root of those)")
    f.add_argument("gt", type=Path, help="ground truth: a store or a folder of label PNGs (or a root, same names)")
    _add_class_table_options(f, "class table deciding which ids count (a store brings its own)")
    _add_encoding_option(f, "--masks-encoding", "how the prediction's label files store classes")
    _add_encoding_option(f, "--gt-encoding", "how the ground truth's label files store classes")
    f.add_argument(
        "--resize",
        choices=["none", "nearest"],
        default="none",
        help="predictions of another size than the ground truth: refuse, or resize them (nearest neighbour)",
    )
    f.add_argument("--csv", type=Path, help="per-class Dice and IoU and their macro mean as CSV")
    f.add_argument("--json", type=Path, help="the same as JSON, with per-frame macro Dice")
    f.set_defaults(func=_run_evaluate_frames)


def _add_class_table_options(p, dataset_help: str) -> None:
    c = p.add_mutually_exclusive_group()
    c.add_argument("--dataset", choices=["cadis", "cholecseg8k", "cataract1k", "synthetic"], help=dataset_help)
    c.add_argument("--classes", type=Path, help="class table file")
    p.add_argument("--array", choices=["labels", "overseer"], default="labels", help="which array of a store")


def _add_encoding_option(p, flag: str, what: str) -> None:
    p.add_argument(
        flag,
        choices=["auto", "class-ids", "source"],
        default="auto",
        help=f"{what}: auto decides from the files (and says what it chose); class-ids: pixel values are class ids; "
        "source: the dataset's own values (CholecSeg8k watershed greys, a table's source_values)",
    )


def _class_table_arg(args):
    from .core.datasets import get_class_table

    return get_class_table(args.dataset or args.classes) if (args.dataset or args.classes) else None


def _drive(gen):
    """Run an evaluation generator: its notes printed, a progress bar per video; returns its result."""
    from tqdm.auto import tqdm

    from .core.evaluate import Progress, Reading

    bars: dict[str, object] = {}
    try:
        while True:
            item = next(gen)
            if isinstance(item, Reading):
                print(item.message)
            elif isinstance(item, Progress):
                bar = bars.get(item.name)
                if bar is None:
                    bar = bars[item.name] = tqdm(total=item.total, desc=item.name, unit="frame", dynamic_ncols=True)
                bar.update(item.done - bar.n)
    except StopIteration as stop:
        return stop.value
    finally:
        for bar in bars.values():
            bar.close()


def _fmt(v) -> str:
    import math

    return "  n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def _run_evaluate_temporal(args) -> int:
    import json

    from .core.evaluate import iter_evaluate_temporal
    from .core.temporal import opencv_flow, raft_flow

    flow = raft_flow(str(args.raft_weights) if args.raft_weights else None) if args.flow == "raft" else opencv_flow()
    pooled, report = _drive(
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

    from .core.evaluate import iter_evaluate_frames

    report = _drive(
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
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with open(args.csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=["id", "name", "dice", "iou"])
            w.writeheader()
            w.writerows(rows)
            w.writerow({"id": "", "name": "macro", "dice": report["macro_dice"], "iou": report["macro_iou"]})
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
    p.add_argument("--out", type=Path, default=Path("sasvi-demo"), help="folder for the demo's outputs")
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
    p.set_defaults(func=_run_demo)


def _run_demo(args) -> int:
    from tqdm.auto import tqdm

    from .core.config import TrackerConfig
    from .core.demo import iter_demo
    from .core.pipeline import FrameDone

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
    gen = iter_demo(args.out, args.frames, args.seed, args.mode, tracker)
    bar = None
    try:
        while True:
            item = next(gen)
            if isinstance(item, FrameDone):
                bar = bar or tqdm(total=item.total, desc="sasvi", unit="frame", dynamic_ncols=True)
                bar.update(item.done - bar.n)
            else:
                if bar is not None:
                    bar.close()
                    bar = None
                print(item)
    except StopIteration as stop:
        report = stop.value
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
    if args.view:
        import napari

        from ._napari.sample import labels_layer_kwargs
        from .core.store import SasviStore

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
    _add_segment(sub)
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
        print(f"napari-sasvi {args.command}: error: {_as_flags(str(e))}", file=sys.stderr)
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
