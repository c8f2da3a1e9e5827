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


def _is_label_folder(path: Path) -> bool:
    from .core.labels import LABEL_EXTENSIONS

    return path.is_dir() and any(p.suffix.lower() in LABEL_EXTENSIONS for p in path.iterdir())


def _label_sources(pred: Path, array: str, classes, encoding: str):
    """[(name, label stack)] for a store, a label folder, a .npy or a root of those, all read by
    the one label reader (:func:`napari_sasvi.core.labels.open_labels`) with one class table."""
    from .core.errors import InputError
    from .core.labels import open_labels

    def one(path: Path):
        name = path.stem if path.suffix.lower() in (".zarr", ".npy") else path.name
        return (name, open_labels(path, classes, encoding, array=array))

    if not pred.exists():
        raise InputError(f"{pred} does not exist.")
    if pred.is_file() or (pred / "zarr.json").exists() or _is_label_folder(pred):
        return [one(pred)]
    subs = sorted(p for p in pred.iterdir() if (p / "zarr.json").exists() or _is_label_folder(p) or p.suffix == ".npy")
    if not subs:
        raise InputError(
            f"{pred} holds no label stack: give a SASVi store, a folder of label PNGs, or a root of those."
        )
    return [one(p) for p in subs]


def _class_table_arg(args):
    from .core.datasets import get_class_table

    return get_class_table(args.dataset or args.classes) if (args.dataset or args.classes) else None


def _run_evaluate_temporal(args) -> int:
    import json
    import math

    from .core.errors import InputError
    from .core.frames import open_frames
    from .core.temporal import iter_temporal, opencv_flow, pool_results, raft_flow

    table = _class_table_arg(args)
    sources = _label_sources(args.pred, args.array, table, args.masks_encoding)
    flow = raft_flow(str(args.raft_weights) if args.raft_weights else None) if args.flow == "raft" else opencv_flow()
    results, report = [], {}
    for name, labels in sources:
        classes = labels.classes
        print(f"{name}: {labels.desc} read as {labels.encoding} ({labels.reason})")
        ignore = set(classes.ignore_ids) | {255}
        no_label = classes.no_label
        if no_label not in classes.ids:
            ignore.add(no_label)
        frames = None
        if args.frames is not None:
            fpath = (
                args.frames
                if len(sources) == 1
                else next((p for p in (args.frames / name, *args.frames.glob(f"{name}.*")) if p.exists()), None)
            )
            if fpath is None:
                raise InputError(f"No frames for {name!r} under {args.frames}.")
            frames = open_frames(fpath).data
        try:
            gen = iter_temporal(labels, frames, convention=args.convention, ignore=ignore, no_label=no_label, flow=flow)
            bar = _tqdm_progress(range(max(0, labels.shape[0] - 1)), desc=name)
            it = iter(bar)
            while True:
                next(gen)
                next(it, None)
        except StopIteration as stop:
            result = stop.value
        except ValueError as e:
            raise InputError(f"{name}: {e}") from e
        results.append(result)
        report[name] = result.to_dict()
    pooled = pool_results(results, ignore=ignore) if len(results) > 1 else results[0]

    def fmt(v):
        return "  n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"

    print(f"convention: {args.convention}; labels scored: {pooled.labels_scored}")
    print("label    T-IoU  T-ASSD  F-IoU  F-Dice")
    for c in pooled.labels_scored:
        print(
            f"{c:5d}    {fmt(pooled.t_iou.get(c))}  {fmt(pooled.t_assd.get(c))}  {fmt(pooled.f_iou.get(c))}  "
            f"{fmt(pooled.f_dice.get(c))}"
        )
    m = pooled.macro
    print(f"macro    {fmt(m['t_iou'])}  {fmt(m['t_assd'])}  {fmt(m['f_iou'])}  {fmt(m['f_dice'])}")
    if args.json:
        payload = {"pooled": pooled.to_dict() | {"series": None}, "videos": report}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=1, allow_nan=True))
    return 0


def _run_evaluate_frames(args) -> int:
    import csv
    import json

    from .core.errors import InputError
    from .core.lazy import read_frame
    from .core.metrics import OverlapCounts, macro, overlap_counts, resize_nearest

    table = _class_table_arg(args)
    preds = _label_sources(args.pred, args.array, table, args.masks_encoding)
    if table is None:  # a store brings its table: the ground truth is read with the same one
        table = preds[0][1].classes
    gts = dict(_label_sources(args.gt, "labels", table, args.gt_encoding))
    total = OverlapCounts({}, {}, {})
    per_frame: dict[str, list[float]] = {}
    classes = table
    for name, pred in preds:
        gt = gts.get(name) if len(preds) > 1 else next(iter(gts.values()))
        if gt is None:
            raise InputError(f"No ground truth for {name!r} in {args.gt}.")
        if pred.classes.ids != classes.ids:
            raise InputError(f"{name}: the prediction's classes ({pred.classes.name}) are not {classes.name}'s.")
        for what, lab in (("prediction", pred), ("ground truth", gt)):
            print(f"{name}: {what} {lab.desc} read as {lab.encoding} ({lab.reason})")
        if pred.shape[0] != gt.shape[0]:
            raise InputError(f"{name}: the prediction has {pred.shape[0]} frames, the ground truth {gt.shape[0]}.")
        resize = None
        if tuple(pred.shape[1:]) != tuple(gt.shape[1:]):
            (ph, pw), (gh, gw) = pred.shape[1:], gt.shape[1:]
            if args.resize != "nearest":
                raise InputError(
                    f"{name}: the prediction is {pw}x{ph} pixels, the ground truth {gw}x{gh}.\n"
                    "  Export the prediction at the frame size (segment ... --export-png DIR --export-size 0 0), "
                    "or add --resize nearest to resize the prediction to the ground truth (nearest neighbour)."
                )
            resize = (gh, gw)
            print(f"{name}: prediction resized from {pw}x{ph} to {gw}x{gh} (nearest neighbour)")
        series = []
        for t in _tqdm_progress(range(pred.shape[0]), desc=name):
            p = read_frame(pred, t)
            one = overlap_counts([p if resize is None else resize_nearest(p, resize)], [read_frame(gt, t)], classes.ids)
            series.append(macro(one.dice(), classes.scored_ids()))
            total.add(one)
        per_frame[name] = series
    dice, iou = total.dice(), total.iou()
    ids = classes.scored_ids()
    rows = [{"id": c.id, "name": c.name, "dice": dice.get(c.id), "iou": iou.get(c.id)} for c in classes if c.id in ids]
    summary = {"macro_dice": macro(dice, ids), "macro_iou": macro(iou, ids)}
    if not any(c in dice for c in ids):
        raise InputError(
            f"No class of {classes.name!r} that counts (ids {ids}) occurs in the prediction or the ground truth.\n"
            "  Check --dataset/--classes and the encodings printed above; nothing was scored."
        )
    for r in rows:
        d = "  n/a" if r["dice"] is None else f"{r['dice']:.3f}"
        i = "  n/a" if r["iou"] is None else f"{r['iou']:.3f}"
        print(f"{r['id']:3d} {r['name']:<26s} Dice {d}  IoU {i}")
    print(
        f"macro (over the classes present, ignore ids and unlabelled ground-truth pixels left out): Dice {summary['macro_dice']:.3f}  IoU {summary['macro_iou']:.3f}"
    )
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with open(args.csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=["id", "name", "dice", "iou"])
            w.writeheader()
            w.writerows(rows)
            w.writerow({"id": "", "name": "macro", "dice": summary["macro_dice"], "iou": summary["macro_iou"]})
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"per_class": rows, **summary, "per_frame_macro_dice": per_frame}, indent=1))
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
    from PIL import Image

    from .core.config import RunConfig, TrackerConfig
    from .core.export import export_frames
    from .core.frames import open_frames
    from .core.metrics import macro, overlap_counts
    from .core.segment import segment_video
    from .core.store import SasviStore
    from .core.synthetic import SyntheticVideo

    video = SyntheticVideo(n_frames=args.frames, seed=args.seed)
    classes = video.classes
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"1/3 synthetic clip: {video.n_frames} frames of {video.height} x {video.width}; "
        f"classes {', '.join(c.name for c in classes)}"
    )
    frames_dir, masks_dir = out / "frames", out / "overseer_masks"
    export_frames(
        open_frames(video.frames_dask(), name=video.name), frames_dir, overwrite=True, progress=_tqdm_progress
    )
    masks_dir.mkdir(exist_ok=True)
    for t in range(video.n_frames):  # the "overseer": ground truth with realistic frame-wise errors
        Image.fromarray(video.noisy_labels(t)).save(masks_dir / f"{t:010d}.png")
    stack = open_frames(frames_dir)
    if args.sam2_model:
        args.tracker = "sam2"
    if args.tracker == "flow":
        print(f"2/3 SASVi ({args.mode} mode), tracker: optical flow ({args.tracker_model or 'dis'}; no weights)")
        tracker = TrackerConfig(kind="flow", model=args.tracker_model)
    else:
        weights = args.sam2_model or "random weights (offline: the labels show the pipeline, not SAM2's skill)"
        print(f"2/3 SASVi ({args.mode} mode), SAM2: {weights}")
        tracker = TrackerConfig(
            kind="sam2",
            model=args.sam2_model,
            config=None if args.sam2_model else "sam2.1_hiera_t",
            random_weights=not args.sam2_model,
            image_size=None if args.sam2_model else args.image_size,
        )
    config = RunConfig(dataset="synthetic", mode=args.mode, tracker=tracker)
    store_path = out / f"{video.name}_{args.mode}.zarr"
    from tqdm.auto import tqdm

    with tqdm(total=len(stack), desc="sasvi", unit="frame", dynamic_ncols=True) as bar:
        summary = segment_video(
            frames_dir, store_path, config, masks=masks_dir, progress=lambda done, total, fps: bar.update(done - bar.n)
        )
    store = SasviStore.read(store_path)
    print(
        f"3/3 wrote {store_path}: {store.frames_done} frames; "
        f"{len(summary.restarts)} restarts at {[e['frame'] for e in summary.restarts]}, "
        f"{sum(e['kind'] == 'add_objects' for e in summary.events)} objects added without a reset"
    )
    ids = classes.scored_ids()
    gt = (video.labels(t) for t in range(video.n_frames))
    ov = overlap_counts((store.overseer[t] for t in range(video.n_frames)), gt, classes.ids).dice()
    gt = (video.labels(t) for t in range(video.n_frames))
    sv = overlap_counts((store.labels[t] for t in range(video.n_frames)), gt, classes.ids).dice()
    print(
        f"   Dice against the ground truth (macro over {len(ids)} classes): overseer {macro(ov, ids):.3f}, "
        f"SASVi {macro(sv, ids):.3f}"
    )
    for c in classes:
        print(
            f"   {c.id:2d} {c.name:<24s} overseer {ov.get(c.id, float('nan')):.3f}  SASVi {sv.get(c.id, float('nan')):.3f}"
        )
    from .core.temporal import temporal_consistency

    ignore = set(classes.ignore_ids) | {classes.no_label}
    print("   temporal consistency (macro, default convention):   T-IoU  T-ASSD  F-IoU")
    for name, lab in (("ground truth", video.labels_dask()), ("overseer", store.overseer), ("SASVi", store.labels)):
        m = temporal_consistency(lab, stack.data, ignore=ignore, no_label=classes.no_label).macro
        print(f"   {name:<48s}  {m['t_iou']:.3f}  {m['t_assd']:6.2f}  {m['f_iou']:.3f}")
    if args.view:
        import napari

        from ._napari.sample import labels_layer_kwargs

        viewer = napari.Viewer()
        viewer.open(str(frames_dir), plugin="napari-sasvi")
        viewer.add_labels(video.labels_dask(), **labels_layer_kwargs(classes, "Ground truth"))
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
