"""The engine's front door: build the models a :class:`~.config.RunConfig` names, find the videos
under an input, and run SASVi on each of them.

:func:`segment_videos` is a generator over a batch of videos (the CLI, the widget and the Python
API drive it); :func:`segment_video` runs one video to the end. Models are built once per batch
and memoised in a :class:`Models` that callers may keep between batches (the widget does).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Generator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..config import TRAINED_OVERSEERS, OverseerConfig, RunConfig, TrackerConfig
from ..datasets import ClassTable
from ..errors import InputError
from ..inputs.anchors import read_anchors
from ..inputs.frames import FrameStack, open_frames
from ..inputs.videos import VideoJob, frame_names, plan_videos
from ..overseers.replay_instances import AnchoredInstances
from ..policy import Event
from ..progress import drain
from ..records import FrameDone, RunSummary, StoreOpened
from .anchored import iter_from_anchors
from .run import iter_sasvi

log = logging.getLogger(__name__)


# -- models -----------------------------------------------------------------------------------------
def build_tracker(cfg: TrackerConfig, device: str = "auto", legacy: bool = False):
    """The tracker a :class:`TrackerConfig` names (``legacy``: the predictor ``reference`` mode needs)."""
    if cfg.kind == "flow":
        from ..trackers.flow import FlowTracker

        if device not in ("auto", "cpu"):
            log.warning("the flow tracker runs on the CPU; device %s is for the overseer", device)
        return FlowTracker(method=cfg.model or "dis")
    if cfg.kind == "hf":
        from ..trackers.hf import HFVideoTracker

        if not cfg.model:
            raise InputError(
                "tracker.kind hf needs tracker.model: a folder saved with save_pretrained, or a Hub repository "
                "id (facebook/sam2.1-hiera-tiny, yonigozlan/EdgeTAM-hf, facebook/sam3) while online."
            )
        return HFVideoTracker.load(cfg.model, device=device)
    from ..trackers.sam2 import SAM2Tracker

    if cfg.model is None and cfg.config is None:
        raise InputError(
            "Choose SAM2: tracker.model NAME, or tracker.config NAME_OR_PATH with tracker.checkpoint FILE "
            "(or tracker.kind flow, which needs no weights)."
        )
    if cfg.model is None and cfg.checkpoint is None and not cfg.random_weights:
        raise InputError("tracker.config needs tracker.checkpoint FILE (or tracker.random_weights for a test run).")
    return SAM2Tracker(
        model=cfg.model,
        config=cfg.config,
        checkpoint=cfg.checkpoint,
        device=device,
        legacy=legacy,
        image_size=cfg.image_size,
    )


def build_trained_overseer(cfg: OverseerConfig, classes: ClassTable, device: str = "auto", reuse=None):
    """A trained overseer (Mask R-CNN, DETR, Mask2Former) from its checkpoint file or published name,
    a pixel classifier from its ``.skops`` file, or SAM 3 prompted with text (``reuse``: the
    overseer built before, whose SAM 3 is kept if it is the same model on the same device)."""
    from ..overseers.trained import load_overseer

    if cfg.kind == "text":
        from ..overseers.text import load_text_overseer

        return load_text_overseer(
            cfg.checkpoint, classes, device, cfg.prompts, cfg.score_threshold, cfg.mask_threshold, reuse=reuse
        )
    if cfg.kind == "pixel":
        from ..overseers.pixel import load_pixel_overseer

        if cfg.checkpoint is None:
            raise InputError(
                "overseer.kind pixel needs overseer.checkpoint: the .skops file `napari-sasvi train --overseer pixel` wrote."
            )
        return load_pixel_overseer(cfg.checkpoint, classes)
    if cfg.checkpoint is None:
        raise InputError(
            f"overseer.kind {cfg.kind} needs overseer.checkpoint: a .pth file or a published name "
            f"({classes.name}/{cfg.kind}, or 'published')."
        )
    return load_overseer(cfg.kind, cfg.checkpoint, classes, device, cfg.score_threshold, cfg.mask_threshold)


def replay_overseer(masks: Any, classes: ClassTable, stack: FrameStack, encoding: str = "auto", instances=False):
    """The replay overseer of one video, its masks read and validated now (before any output);
    ``instances``: instance label files (:class:`~..overseers.replay_instances.InstanceReplayOverseer`)."""
    from ..overseers.replay import ReplayOverseer
    from ..overseers.replay_instances import InstanceReplayOverseer

    if masks is None:
        raise InputError("overseer.kind replay needs overseer.masks (a folder of label PNGs, a .npy or a zarr store).")
    if instances:
        files = getattr(getattr(stack, "source", None), "files", None)
        return InstanceReplayOverseer(
            masks, classes, frame_count=len(stack), frame_size=stack.frame_size,
            frame_names=[f.stem for f in files] if files else None,
        )  # fmt: skip
    try:
        return ReplayOverseer(masks, classes, frame_count=len(stack), frame_size=stack.frame_size, encoding=encoding)
    except InputError as e:
        detail = _unmatched_names(masks, stack) if "frames but the video has" in str(e) else ""
        if detail:
            raise InputError(f"{e}\n{detail}") from None
        raise


def _unmatched_names(masks: Any, stack: FrameStack, show: int = 5) -> str:
    """For a frame folder and a mask folder of different lengths: which frames have no mask and
    which masks no frame, matched by file name without extension ("" when not both folders)."""
    from ..inputs.frames import list_frame_files
    from ..inputs.label_sources import LABEL_EXTENSIONS

    files = getattr(getattr(stack, "source", None), "files", None)
    if not files or not isinstance(masks, (str, os.PathLike)) or not Path(masks).is_dir():
        return ""
    try:
        mask_files = list_frame_files(masks, LABEL_EXTENSIONS)
    except (OSError, InputError):
        return ""
    mask_stems, frame_stems = {m.stem for m in mask_files}, {f.stem for f in files}
    lines = []
    for what, names in (
        ("Frames without a mask", [f.name for f in files if f.stem not in mask_stems]),
        ("Masks without a frame", [m.name for m in mask_files if m.stem not in frame_stems]),
    ):
        if names:
            more = f", ... ({len(names)} in all)" if len(names) > show else ""
            lines.append(f"  {what} (matched by file name): {', '.join(names[:show])}{more}")
    return "\n".join(lines)


class Models:
    """Built models, memoised by what decides them (a tracker by its config, device and predictor;
    a trained overseer by its config, classes, device and checkpoint file time). One of each is kept."""

    def __init__(self):
        self._tracker: tuple[tuple, Any] | None = None
        self._overseer: tuple[tuple, Any] | None = None
        self.builds = {"tracker": 0, "overseer": 0}  # models built (a cluster worker builds each once)

    def tracker(self, config: RunConfig):
        legacy = config.mode == "reference"
        key = (config.tracker, config.device, legacy)
        if config.tracker.kind == "flow":  # cheap, holds per-run state only
            return build_tracker(config.tracker, config.device, legacy)
        if self._tracker is None or self._tracker[0] != key:
            self._tracker = None  # free the old model before building the next
            self._tracker = (key, build_tracker(config.tracker, config.device, legacy))
            self.builds["tracker"] += 1
        return self._tracker[1]

    def overseer(self, config: RunConfig, classes: ClassTable):
        cfg = config.overseer
        ckpt = Path(cfg.checkpoint) if cfg.checkpoint else None
        stamp = ckpt.stat().st_mtime_ns if ckpt is not None and ckpt.is_file() else None
        key = (replace(cfg, batch_size=1, masks=None, masks_encoding="auto"), classes.name, config.device, stamp)
        if self._overseer is None or self._overseer[0] != key:
            old, self._overseer = self._overseer, None  # freed before the next is built, unless SAM 3 is kept
            reuse = old[1] if old is not None and old[0][0].kind == cfg.kind == "text" else None
            del old
            self._overseer = (key, build_trained_overseer(cfg, classes, config.device, reuse=reuse))
            self.builds["overseer"] += 1
        return self._overseer[1]


# -- the batch --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VideoStarted:
    """Video ``index`` of ``total`` starts: its frames are open, its overseer is ready."""

    index: int
    total: int
    name: str
    store: str
    n_frames: int
    note: str = ""


@dataclass(frozen=True)
class VideoDone:
    """A video's run ended (``summary.cancelled`` when it was stopped)."""

    name: str
    summary: RunSummary


@dataclass(frozen=True)
class BatchSummary:
    videos: dict[str, RunSummary] = field(default_factory=dict)

    @property
    def cancelled(self) -> bool:
        return any(s.cancelled for s in self.videos.values())


def _check_exports(config: RunConfig, jobs: list[VideoJob]) -> None:
    """Export paths refused before any run: inside a file, or a folder holding exported masks
    without ``export.overwrite`` (an hour's run must not end in a refusal)."""
    from ..fsutil import check_output_path

    ex = config.export
    if ex.events_json:
        check_output_path(ex.events_json, "events file", folder=False)
    for job in jobs:
        if job.png is None:
            continue
        check_output_path(job.png, "PNG export folder")
        if not ex.overwrite and job.png.is_dir():
            found = sorted(job.png.glob("*_rgb_mask.png"))[:3]
            if found:
                raise InputError(
                    f"{job.png} already holds exported masks ({', '.join(p.name for p in found)}, ...).\n"
                    "  Set export.overwrite to replace them, or choose another export.png folder. Nothing was run."
                )


def segment_videos(
    inputs: Any,
    config: RunConfig | None = None,
    out: str | os.PathLike | None = None,
    *,
    models: Models | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Generator[VideoStarted | StoreOpened | FrameDone | Event | VideoDone, None, BatchSummary]:
    """Run SASVi on every video of ``inputs`` (see :func:`plan_videos`), one after another.

    Yields :class:`VideoStarted`, then the run's items (:class:`~.pipeline.StoreOpened`,
    :class:`~.pipeline.FrameDone`, policy :class:`~.policy.Event`), then :class:`VideoDone`, per
    video; returns a :class:`BatchSummary`. Everything is checked before the first store is made:
    the config, the class table, the export paths; each video's masks and frames before its store.
    ``cancel`` is polled between frames; a cancelled video ends the batch, its frames kept.
    """
    config = config or RunConfig()
    classes = config.class_table()
    params = config.policy_params(classes)
    jobs = plan_videos(inputs, out if out is not None else "", config)
    _check_exports(config, jobs)
    models = models or Models()
    trained = models.overseer(config, classes) if config.overseer.kind in (*TRAINED_OVERSEERS, "text") else None
    tracker = models.tracker(config)
    results: dict[str, RunSummary] = {}
    for i, job in enumerate(jobs):
        stack = open_frames(job.frames, name=job.name)
        if config.overseer.kind == "none" and not config.instances:
            if job.anchors is None:
                raise InputError(
                    "overseer.kind none propagates annotated frames: give overseer.anchors "
                    f"(label files named after their frames) for video {job.name!r}."
                )
            anchors = read_anchors(job.anchors, stack, classes, config.overseer.anchors_encoding)
            note = (
                f"no overseer: {len(anchors.masks)} annotated frame(s) {anchors.frames[:8]}"
                f"{'...' if len(anchors.masks) > 8 else ''} from {anchors.desc} read as {anchors.encoding}"
            )
            yield VideoStarted(i, len(jobs), job.name, str(job.store), len(stack), note)
            summary = yield from iter_from_anchors(
                stack, anchors, tracker, str(job.store), classes, cancel=cancel, config=job_config(config, job)
            )
            results[job.name] = summary
            yield VideoDone(job.name, summary)
            if summary.cancelled:
                break
            _export_png(job, config, stack)
            continue
        if config.overseer.kind == "none":  # instances: the annotated frames replayed (sparse: each an anchor)
            if job.anchors is None:
                raise InputError(f"overseer.kind none with instances needs overseer.anchors for video {job.name!r}.")
            overseer = replay_overseer(job.anchors, classes, stack, instances=True)
            src = overseer.source
            note = f"no overseer: annotated objects {src.desc} ({src.kind}; {len(src.annotated)} annotated frames)"
        elif trained is not None:
            overseer, note = trained, f"overseer {config.overseer.kind}"
        else:
            overseer = replay_overseer(job.masks, classes, stack, config.overseer.masks_encoding, config.instances)
            if config.instances:
                src = overseer.source
                note = f"overseer instances {src.desc} ({src.kind}; {len(src.annotated)} annotated frames)"
            else:
                lab = overseer.labels
                note = f"overseer masks {lab.desc} read as {lab.encoding} ({lab.reason})"
        # dataset from-labels: this video's instance labels bring its classes
        video_classes = classes if classes is not None else overseer.classes
        if classes is None:
            note += f"; classes from the labels: {', '.join(c.name for c in video_classes if c.id != 0)}"
        anchors = None
        if job.anchors is not None and config.instances and config.overseer.kind != "none":
            annotated = replay_overseer(job.anchors, video_classes, stack, instances=True).source
            overseer = AnchoredInstances(overseer, annotated)
            note += (
                f"; {len(annotated.annotated)} annotated frame(s) {list(annotated.annotated)[:8]} ({annotated.kind})"
            )
        elif job.anchors is not None and not config.instances:
            anchors = read_anchors(job.anchors, stack, video_classes, config.overseer.anchors_encoding)
            note += f"; {len(anchors.masks)} annotated frame(s) {anchors.frames[:8]}{'...' if len(anchors.masks) > 8 else ''}"
        yield VideoStarted(i, len(jobs), job.name, str(job.store), len(stack), note)
        summary = yield from iter_sasvi(
            stack,
            overseer,
            tracker,
            str(job.store),
            video_classes,
            params,
            batch_size=config.overseer.batch_size,
            cancel=cancel,
            anchors=anchors,
            config=job_config(config, job),
            instances=config.identity_params(),
        )
        results[job.name] = summary
        yield VideoDone(job.name, summary)
        if summary.cancelled:
            break
        _export_png(job, config, stack)
    write_events_json(config, results, len(jobs))
    return BatchSummary(results)


def job_config(config: RunConfig, job: VideoJob) -> dict:
    """The config a store records: the batch's, with this video's own masks, anchors and PNG
    folder where they are files (a batch's config names their roots), so that the store alone
    says how it was made and resumes (:func:`~.rebuild.resume_job`)."""
    d = config.to_dict()
    for key, value in (("masks", job.masks), ("anchors", job.anchors)):
        if isinstance(value, (str, os.PathLike)):
            d["overseer"][key] = str(value)
    if job.png is not None:
        d["export"]["png"] = str(job.png)
    return d


def write_events_json(config: RunConfig, results: dict[str, RunSummary], n_jobs: int) -> None:
    """``export.events_json``: the event log of one video, or ``{video: events}`` for a batch
    (not written when a video was cancelled or none finished)."""
    if not config.export.events_json or not results or any(s.cancelled for s in results.values()):
        return
    from ..fsutil import atomic_write_text

    payload = next(iter(results.values())).events if n_jobs == 1 else {n: s.events for n, s in results.items()}
    path = Path(config.export.events_json)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(payload, indent=1))


def _export_png(job: VideoJob, config: RunConfig, stack: FrameStack) -> None:
    from ..exports.reference import iter_export_reference_masks

    if job.png is not None:
        size = tuple(config.export.size) if config.export.size else None
        for _ in iter_export_reference_masks(job.store, job.png, size, config.export.npz, frame_names(stack)):
            pass


def segment_video(
    frames: Any,
    out: str | os.PathLike,
    config: RunConfig | None = None,
    *,
    masks: Any = None,
    anchors: Any = None,
    models: Models | None = None,
    cancel: Callable[[], bool] | None = None,
    progress: Callable[[int, int, float], None] | None = None,
    **options: Any,
) -> RunSummary:
    """Run SASVi on one video to the end (or to ``cancel``) and return its summary.

    Args:
        frames: a frame folder, a video file, or a (T, H, W, 3) array.
        out: the output store (a ``.zarr`` folder); an existing store of the same run resumes.
        config: the run's options (default: :class:`RunConfig`, the flow tracker replaying ``masks``).
        masks: replay: the frame-wise masks (a path or a (T, H, W) array); overrides ``overseer.masks``.
        anchors: annotated frames (a folder of label files named after their frames, or a
            (T, H, W) array with the annotated frames painted); overrides ``overseer.anchors``.
        options: config options by dotted name, e.g. ``**{"tracker.kind": "sam2"}``, or ``dataset="cadis"``.
        progress: ``progress(done, total, frames_per_second)`` after every frame.
    """
    config = (config or RunConfig()).replace(**options) if options else (config or RunConfig())
    if masks is not None and not isinstance(masks, (str, os.PathLike)):
        job_masks = masks
    else:
        job_masks = masks if masks is not None else config.overseer.masks
    name = Path(frames).stem if isinstance(frames, (str, os.PathLike)) else "frames"
    job_anchors = anchors if anchors is not None else config.overseer.anchors
    job = VideoJob(name=name, frames=frames, store=Path(out), masks=job_masks, anchors=job_anchors)
    if config.export.png:
        job = replace(job, png=Path(config.export.png))

    def on_item(item):
        if progress is not None and isinstance(item, FrameDone):
            progress(item.done, item.total, item.fps)

    return drain(segment_videos([job], config, models=models, cancel=cancel), on_item).videos[name]


def load_store(path: str | os.PathLike):
    """Open a SASVi store read-only: ``store.labels`` and ``store.overseer`` are (T, H, W) zarr
    arrays, ``store.classes`` the class table, ``store.events`` the re-prompt log."""
    from ..store.sasvi_store import SasviStore

    return SasviStore.read(path)


__all__ = [
    "BatchSummary",
    "Models",
    "VideoDone",
    "VideoStarted",
    "build_tracker",
    "build_trained_overseer",
    "load_store",
    "replay_overseer",
    "segment_video",
    "segment_videos",
]
