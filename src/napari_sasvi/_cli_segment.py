"""``napari-sasvi segment``: its options, and the :class:`~napari_sasvi.core.config.RunConfig`
they make (core errors name config options; :func:`as_flags` shows them as these flags).

Every flag that sets a config option is absent from the parsed arguments unless it is given
(``argparse.SUPPRESS``), so a flag given with the default's value still overrides ``--config``;
the defaults shown by ``--help`` are read from :class:`RunConfig`, where each is declared.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from ._cli_events import lost_lines, video_done_lines  # noqa: F401 - lost_lines: its old home
from ._cli_policy import POLICY_FLAGS, add_policy_options
from .core.config import DEVICES, ENCODINGS, FROM_LABELS, OVERSEERS, TRACKERS, RunConfig
from .core.datasets import PRESETS, canonical_dataset
from .core.errors import InputError

#: the value of every option when nothing sets it (RunConfig's defaults, as a dict)
_DEFAULTS = RunConfig().to_dict()
#: the config options by their dotted names (the `dest` of the flags that set them)
_CONFIG_KEYS = {k for k, v in _DEFAULTS.items() if not isinstance(v, dict)} | {
    f"{section}.{k}" for section, v in _DEFAULTS.items() if isinstance(v, dict) for k in v
}


ENCODING_HELP = (
    "auto decides from the files (and says what it chose); class-ids: pixel values are class ids; "
    "source: the dataset's own values (CholecSeg8k watershed greys, a table's source_values)"
)


def add_encoding_option(p, flag: str, what: str) -> None:
    p.add_argument(flag, choices=list(ENCODINGS), default="auto", help=f"{what}: {ENCODING_HELP}")


def _default(key: str) -> Any:
    value: Any = _DEFAULTS
    for part in key.split("."):
        value = value[part]
    return value


def _option(group, flag: str, key: str, help: str, **kw) -> None:
    """A flag that sets the config option ``key``: present in the parsed arguments only when given,
    its help ending with the config's default."""
    default = _default(key)
    if default is not None:
        shown = " ".join(map(str, default)) if isinstance(default, list) else default
        help = f"{help} (default: {shown})"
    if "choices" not in kw and kw.get("action") not in ("store_true", argparse.BooleanOptionalAction):
        kw.setdefault("metavar", flag.lstrip("-").upper().replace("-", "_"))
    group.add_argument(flag, dest=key, default=argparse.SUPPRESS, help=help, **kw)


class _DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in the help, except None ("not given", said by the help text where it matters)."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


# -- segment ---------------------------------------------------------------------------------------
def add_segment(sub) -> None:
    p = sub.add_parser(
        "segment",
        help="run SASVi on a video, a frame folder, or a folder of videos",
        formatter_class=_DefaultsHelp,
    )
    p.add_argument("input", type=Path, help="frame folder, video file, or a root folder of videos")
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output store (.zarr folder); for a root of videos, a folder with one store per video",
    )
    g = p.add_argument_group("overseer")
    _option(
        g,
        "--overseer",
        "overseer.kind",
        "a trained frame-wise model; replay: existing frame-wise predictions act as the overseer; "
        "none: propagate the annotated frames of --anchors alone",
        choices=list(OVERSEERS),
    )
    _option(
        g,
        "--overseer-checkpoint",
        "overseer.checkpoint",
        "maskrcnn/detr/mask2former: a .pth state dict, or a published checkpoint's name "
        "(cadis/maskrcnn, cholecseg8k/detr, ...; 'published': the one of --overseer and --dataset), "
        "downloaded into the user cache when online; pixel: the .skops file `napari-sasvi train` wrote; "
        "text: SAM 3's Hub id (default facebook/sam3, gated: accept its licence and log in) or a save_pretrained folder",
    )
    _option(
        g,
        "--prompts",
        "overseer.prompts",
        '--overseer text: the classes to prompt SAM 3 with, by name ("grasper, hook"; NAME=WORDS prompts a class '
        "with other words); default: every class of the table but the ignored ones",
    )
    _option(
        g,
        "--overseer-masks",
        "overseer.masks",
        "replay: folder of label PNGs, .npy or zarr (for a root: one per video, same names)",
        type=Path,
    )
    _option(
        g,
        "--masks-encoding",
        "overseer.masks_encoding",
        f"replay: how the mask files store classes: {ENCODING_HELP}",
        choices=list(ENCODINGS),
    )
    _option(
        g,
        "--anchors",
        "overseer.anchors",
        "--overseer none: annotated frames, label files for some frames named after them "
        "(for a root of videos: one sub-folder per video)",
        type=Path,
    )
    _option(
        g,
        "--anchors-encoding",
        "overseer.anchors_encoding",
        f"how the anchor files store classes: {ENCODING_HELP}",
        choices=list(ENCODINGS),
    )
    _option(
        g,
        "--overseer-score-threshold",
        "overseer.score_threshold",
        "keep instances scoring above this (reference: Mask R-CNN 0.05, DETR 0, Mask2Former 0; text: 0.5)",
        type=float,
    )
    _option(
        g,
        "--overseer-mask-threshold",
        "overseer.mask_threshold",
        "mask probability (Mask R-CNN, reference 0.5; text 0.5) or logit (DETR 0.5, Mask2Former 0) threshold",
        type=float,
    )
    _option(g, "--batch-size", "overseer.batch_size", "overseer batch size over the look-ahead window", type=int)
    p.add_argument("--config", type=Path, help="a run config (YAML/JSON, see docs/python.md); flags given override it")
    p.add_argument("--save-config", type=Path, help="write the run's config (YAML/JSON) here, to run it again")
    c = p.add_mutually_exclusive_group()
    # both set `dataset`; required unless --config gives it (RunConfig's default, synthetic, is for Python)
    for flag, kw in (
        (
            "--dataset",
            dict(
                type=canonical_dataset,
                choices=[*PRESETS, FROM_LABELS],
                help=f"class table preset; {FROM_LABELS}: with --instances, the classes the instance label files "
                "name (palette PNGs: one per object)",
            ),
        ),
        (
            "--classes",
            dict(type=Path, metavar="CLASSES", help="class table file (.yaml/.json: classes: [{id, name, color}])"),
        ),
    ):
        c.add_argument(flag, dest="dataset", default=argparse.SUPPRESS, **kw)
    s = p.add_argument_group("tracker")
    _option(
        s,
        "--tracker",
        "tracker.kind",
        "sam2: the sam2 package's video predictor (implied by --sam2-model/--sam2-config); flow: optical flow "
        "carries the prompts (no weights, CPU); hf: SAM2/SAM2.1, EdgeTAM or the SAM3 tracker through transformers",
        choices=list(TRACKERS),
    )
    _option(
        s,
        "--tracker-model",
        "tracker.model",
        "sam2: an official model name (as --sam2-model); flow: the flow method, dis (default), dis-fast or farneback; "
        "hf: a folder saved with save_pretrained, or a Hub repository id (downloaded when online)",
    )
    m = s.add_mutually_exclusive_group()
    m.add_argument("--sam2-model", help="official model name (sam2.1_hiera_tiny, ...); downloaded when online")
    _option(m, "--sam2-config", "tracker.config", "config name (sam2.1_hiera_t, sam2_hiera_l, ...) or YAML path")
    _option(
        s,
        "--sam2-checkpoint",
        "tracker.checkpoint",
        "checkpoint file for --sam2-config ({'model': state_dict})",
        type=Path,
    )
    _option(
        s,
        "--sam2-random-weights",
        "tracker.random_weights",
        "no checkpoint: random weights (tests, demos)",
        action="store_true",
    )
    _option(s, "--image-size", "tracker.image_size", "override SAM2's input size (a multiple of 32)", type=int)
    _option(s, "--device", "device", "auto: CUDA, then MPS, then the CPU", choices=list(DEVICES))
    add_policy_options(p, _option)
    o = p.add_argument_group("outputs")
    _option(o, "--events-json", "export.events_json", "write the re-prompt events (a JSON list) here", type=Path)
    _option(o, "--export-png", "export.png", "also write <frame>_rgb_mask.png palette PNGs here", type=Path)
    _option(o, "--export-npz", "export.npz", "with --export-png: also <frame>_binary_mask.npz", action="store_true")
    _option(
        o, "--overwrite", "export.overwrite", "with --export-png: replace mask files already there", action="store_true"
    )
    _option(
        o,
        "--export-size",
        "export.size",
        "size of the exported PNGs (0 0: the frame size)",
        type=int,
        nargs=2,
        metavar=("W", "H"),
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
    "overseer.score_threshold": "--overseer-score-threshold",
    "overseer.mask_threshold": "--overseer-mask-threshold",
    "overseer.prompts": "--prompts",
    "tracker.random_weights": "--sam2-random-weights",
    "tracker.checkpoint": "--sam2-checkpoint",
    "tracker.config": "--sam2-config",
    "tracker.image_size": "--image-size",
    "tracker.model": "--tracker-model",
    "tracker.kind": "--tracker",
    "export.overwrite": "--overwrite",
    "export.png": "--export-png",
    "export.npz": "--export-npz",
    "export.size": "--export-size",
    "export.events_json": "--events-json",
    **POLICY_FLAGS,
}
#: what a message about the --config file starts with: its option names stay as the file spells them
CONFIG_FILE_PREFIX = "--config: "


def as_flags(message: str) -> str:
    if message.startswith(CONFIG_FILE_PREFIX):
        return message
    for name, flag in CONFIG_FLAGS.items():
        message = re.sub(rf"(?<![\w.-]){re.escape(name)}(?![\w])", flag, message)
    return message


#: options that only mean something for one overseer or tracker kind: a flag that changes the kind
#: drops the --config file's values of these (a SAM2 checkpoint means nothing to the flow tracker)
_KIND_OPTIONS = {
    "overseer": ("checkpoint", "masks", "masks_encoding", "score_threshold", "mask_threshold", "prompts"),
    "tracker": ("model", "config", "checkpoint", "random_weights", "image_size"),
}


def config_from_args(args) -> RunConfig:
    """The run's :class:`~napari_sasvi.core.config.RunConfig`: ``--config FILE`` as the base (if
    given; else ``RunConfig()``), then every option given on the command line, whatever its value."""
    given = {k: v for k, v in vars(args).items() if k in _CONFIG_KEYS}
    if args.config:
        try:
            base = RunConfig.load(args.config)
        except InputError as e:
            raise InputError(f"{CONFIG_FILE_PREFIX}{e}") from None
    elif "dataset" not in given:
        raise InputError(
            "Give the class table: --dataset NAME or --classes FILE (or --config FILE); with --instances and "
            "instance label files that name their classes (palette PNGs, LabelMe, COCO): --dataset from-labels."
        )
    else:
        base = RunConfig()
    sam2 = args.sam2_model or given.get("tracker.config")
    kind = given.setdefault("tracker.kind", "sam2") if sam2 else None  # a SAM2 model or config names the tracker
    if kind not in (None, "sam2"):
        raise InputError(
            f"--sam2-model/--sam2-config are for --tracker sam2; the {kind} tracker takes --tracker-model."
        )
    if args.sam2_model:
        if given.setdefault("tracker.model", args.sam2_model) != args.sam2_model:
            raise InputError("Give the SAM2 model once: --tracker-model or --sam2-model.")
    if given.get("export.size") == [0, 0]:
        given["export.size"] = None
    for section, options in _KIND_OPTIONS.items():
        kind = given.get(f"{section}.kind")
        if kind is not None and kind != getattr(base, section).kind:
            base = base.replace(**{section: {k: _default(f"{section}.{k}") for k in options}})
    return base.replace(**given)  # a Path is kept as its string by the config


def _run_segment(args) -> int:
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
    return run_jobs(jobs, config)


def run_jobs(jobs, config) -> int:
    """Run a batch's jobs one after another, showing each video's progress (the one display)."""
    from ._cli_progress import Progress
    from .core.engine import FrameDone
    from .core.engine.batch import VideoDone, VideoStarted, segment_videos

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
                print("\n".join(video_done_lines(item.name, item.summary, config.class_table())))
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
                msg = "\n".join(video_done_lines(item.name, item.summary, config.class_table()))
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
