"""``napari-sasvi segment``: its options, and the :class:`~napari_sasvi.core.config.RunConfig`
they make (core errors name config options; :func:`as_flags` shows them as these flags)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .core.datasets import PRESETS, canonical_dataset


def add_encoding_option(p, flag: str, what: str) -> None:
    p.add_argument(
        flag,
        choices=["auto", "class-ids", "source"],
        default="auto",
        help=f"{what}: auto decides from the files (and says what it chose); class-ids: pixel values are class ids; "
        "source: the dataset's own values (CholecSeg8k watershed greys, a table's source_values)",
    )


# -- segment ---------------------------------------------------------------------------------------
def add_segment(sub) -> None:
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
        choices=["replay", "maskrcnn", "detr", "mask2former", "pixel", "none"],
        default="replay",
        help="a trained frame-wise model; replay: existing frame-wise predictions act as the overseer; "
        "none: propagate the annotated frames of --anchors alone",
    )
    g.add_argument(
        "--overseer-checkpoint",
        help="maskrcnn/detr/mask2former: a .pth state dict, or a published checkpoint's name "
        "(cadis/maskrcnn, cholecseg8k/detr, ...; 'published': the one of --overseer and --dataset), "
        "downloaded into the user cache when online; pixel: the .skops file `napari-sasvi train` wrote",
    )
    g.add_argument(
        "--overseer-masks",
        type=Path,
        help="replay: folder of label PNGs, .npy or zarr (for a root: one per video, same names)",
    )
    add_encoding_option(g, "--masks-encoding", "replay: how the mask files store classes")
    g.add_argument(
        "--anchors",
        type=Path,
        help="--overseer none: annotated frames, label files for some frames named after them "
        "(for a root of videos: one sub-folder per video)",
    )
    add_encoding_option(g, "--anchors-encoding", "how the anchor files store classes")
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
    c.add_argument("--dataset", type=canonical_dataset, choices=list(PRESETS), help="class table preset")
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
        help="sam2: an official model name (as --sam2-model); flow: the flow method, dis (default), dis-fast or farneback; "
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
    d = p.add_argument_group("cluster (dask.distributed; see docs/scale-out.md)")
    d.add_argument(
        "--scheduler",
        nargs="?",
        const="local",
        metavar="local|ADDRESS",
        help="run one task per video on dask.distributed: local (the default when the flag is given "
        "alone) starts a LocalCluster on this machine; an address (tcp://host:8786) uses a running "
        "cluster whose workers share the output folder's file system. Without the flag: one process, "
        "videos in turn",
    )
    d.add_argument(
        "--workers",
        type=int,
        help="--scheduler local: number of workers (default: one per CUDA device, else one per 2 cores)",
    )
    d.add_argument(
        "--retries",
        type=int,
        default=1,
        help="--scheduler: extra attempts for a video whose task raised (a worker that dies is "
        "rescheduled anyway; its video resumes from its store)",
    )
    p.set_defaults(func=_run_segment)


#: config name -> the segment flag that sets it (core errors name config options; the CLI shows flags)
CONFIG_FLAGS = {
    "overseer.checkpoint": "--overseer-checkpoint",
    "overseer.masks_encoding": "--masks-encoding",
    "overseer.masks": "--overseer-masks",
    "overseer.anchors_encoding": "--anchors-encoding",
    "overseer.anchors": "--anchors",
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


def as_flags(message: str) -> str:
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
        ("overseer", "anchors", str(args.anchors) if args.anchors else None),
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
        ("overseer", "anchors_encoding", args.anchors_encoding, "auto"),
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
    from ._cli_progress import Progress
    from .core.engine import FrameDone
    from .core.engine.batch import VideoDone, VideoStarted, segment_videos
    from .core.errors import InputError
    from .core.inputs.videos import describe_videos, plan_videos

    config = config_from_args(args)
    if config.tracker.kind == "flow" and config.device not in ("auto", "cpu"):
        print(
            f"note: the flow tracker runs on the CPU; --device {config.device} applies to the overseer only",
            file=sys.stderr,
        )
    if args.save_config:
        config.save(args.save_config)
    if args.scheduler is None and (args.workers is not None or args.retries != 1):
        raise InputError("--workers and --retries are for a cluster run: add --scheduler local (or an address).")
    jobs = plan_videos(args.input, args.out, config)
    print(as_flags(describe_videos(args.input, jobs)))
    if args.scheduler is not None:
        return _run_segment_distributed(args, config)
    bar = None
    gen = segment_videos(jobs, config)
    try:
        for item in gen:
            if isinstance(item, VideoStarted):
                print(f"{item.name}: {item.note}")
                bar = Progress(item.n_frames, item.name)
            elif isinstance(item, FrameDone) and bar is not None:
                bar.update_to(item.done, f"{item.fps:.2f} frames/s")
            elif isinstance(item, VideoDone):
                if bar is not None:
                    bar.update_to(item.summary.frames_written + item.summary.resumed_from)
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


def _run_segment_distributed(args, config) -> int:
    """``segment --scheduler``: one aggregated bar over every video's frames (read from the stores),
    the dashboard's address, and a line per video as it ends."""
    from ._cli_progress import Progress
    from .core.engine.batch import VideoDone
    from .core.engine.distributed import BatchProgress, ClusterReady, VideoFailed, iter_segment_distributed
    from .core.errors import InputError

    if args.workers is not None and args.scheduler != "local":
        raise InputError(
            "--workers sizes the local cluster (--scheduler local); a running cluster has its own workers."
        )
    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers must be 1 or more, got {args.workers}.")
    if args.retries < 0:
        raise InputError(f"--retries must be 0 or more, got {args.retries}.")
    bar, failed = None, []
    gen = iter_segment_distributed(
        args.input, config, args.out, scheduler=args.scheduler, n_workers=args.workers, retries=args.retries
    )
    try:
        for item in gen:
            if isinstance(item, ClusterReady):
                where = "a local cluster" if args.scheduler == "local" else args.scheduler
                print(f"{item.videos} video(s) on {where} of {item.workers} worker(s); dashboard: {item.dashboard}")
            elif isinstance(item, BatchProgress):
                if bar is None:
                    bar = Progress(item.total, "all videos")
                bar.update_to(item.done, f"{item.finished}/{len(item.videos)} videos done")
            elif isinstance(item, VideoDone):
                s = item.summary
                restarts = [e["frame"] for e in s.events if e["kind"] == "restart"]
                state = f"resumed at frame {s.resumed_from}, " if s.resumed_from else ""
                msg = f"{item.name}: {state}{s.frames_written} frames written to {s.store}; restarts at {restarts}"
                (bar.write if bar is not None else print)(msg)
            elif isinstance(item, VideoFailed):
                failed.append(item.name)
                (bar.write if bar is not None else print)(f"{item.name}: FAILED: {as_flags(item.message)}")
    finally:
        if bar is not None:
            bar.close()
    if failed:
        print(
            f"napari-sasvi segment: {len(failed)} video(s) failed ({', '.join(failed)}); the others are done. "
            "Fix them and run the same command again: finished videos and frames are kept.",
            file=sys.stderr,
        )
        return 1
    return 0
