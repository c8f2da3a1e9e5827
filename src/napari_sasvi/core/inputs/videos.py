"""Inputs: the videos under a path, and the job of each (frames, masks, anchors, store, export).

A path is read as the user said it, not guessed: a video file or a frame folder is one video; a
clip folder (a frames sub-folder beside label-like sub-folders) is one video; any other folder is
a batch root whose videos are listed before anything runs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..errors import InputError
from ..fsutil import check_output_path
from .frames import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, FrameStack

#: names (any case) of a clip folder's frames sub-folder, and prefixes of its label sub-folders
CLIP_FRAMES_FOLDERS = ("frames", "images", "imgs", "img", "rgb")
CLIP_LABEL_PREFIXES = (
    "masks",
    "mask",
    "labels",
    "label",
    "annotations",
    "annotation",
    "gt",
    "ground_truth",
    "groundtruth",
)


def _has_frames(folder: Path) -> bool:
    with os.scandir(folder) as it:
        return any(e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS) for e in it)


def _is_label_folder(name: str) -> bool:
    return name.lower().startswith(CLIP_LABEL_PREFIXES)


def clip_frames(folder: str | os.PathLike) -> Path | None:
    """The frames sub-folder when ``folder`` is one clip, else None.

    A clip folder holds no frame files itself; one sub-folder named ``frames``, ``images``,
    ``imgs``, ``img`` or ``rgb`` (any case) holds its frames; every other sub-folder holding
    images is a label folder (its name starts with ``masks``, ``labels``, ``annotations``, ``gt``
    or ``ground_truth``), e.g. ``clip/{frames, masks, masks_color}``. Such a folder is one video
    named after it, not a batch of one video per sub-folder.
    """
    folder = Path(folder)
    if not folder.is_dir() or _has_frames(folder):
        return None
    frames, others = [], []
    for p in sorted(folder.iterdir()):
        if not p.is_dir() or not _has_frames(p):
            continue
        if p.name.lower() in CLIP_FRAMES_FOLDERS:
            frames.append(p)
        elif not _is_label_folder(p.name):
            others.append(p)
    return frames[0] if len(frames) == 1 and not others else None


def video_frames(video: Path) -> Path:
    """Where a found video's frames are: the clip's frames sub-folder, else the path itself."""
    return clip_frames(video) or video


def find_videos(root: str | os.PathLike) -> list[Path]:
    """The videos under ``root``: itself when it is a video file, a frame folder or a clip folder
    (see :func:`clip_frames`); otherwise its sub-folders holding frames, its clip sub-folders and
    its video files, sorted by name. :func:`video_frames` says where each one's frames are."""
    root = Path(root)
    if not root.exists():
        raise InputError(f"{root} does not exist.")
    if root.is_file() or _has_frames(root) or clip_frames(root) is not None:
        return [root]
    found = sorted(
        p
        for p in root.iterdir()
        if (p.is_dir() and (_has_frames(p) or clip_frames(p) is not None))
        or (p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
    )
    if not found:
        raise InputError(
            f"No video under {root}: expected a frame folder, a video file, a clip folder (frames/ beside "
            "masks/), or a folder of those."
        )
    return found


def describe_videos(root: str | os.PathLike, jobs: Sequence[VideoJob], show: int = 20) -> str:
    """One line saying what ``root`` was read as, for the user before a run starts:
    ``3 videos under ROOT: a, b, c``, or for one clip folder where its frames are and which of its
    sub-folders are not read unless given."""
    root = Path(root)
    if len(jobs) == 1 and jobs[0].frames != root and clip_frames(root) is not None:
        given = {Path(p).resolve() for p in (jobs[0].masks, jobs[0].anchors) if isinstance(p, (str, os.PathLike))}
        unread = sorted(
            p.name for p in root.iterdir() if p.is_dir() and _is_label_folder(p.name) and p.resolve() not in given
        )
        note = f"; {', '.join(unread)} not read unless given as overseer.masks or overseer.anchors" if unread else ""
        return f"{root} is one clip: frames from {jobs[0].frames}{note}"
    if len(jobs) == 1 and Path(jobs[0].frames) == root:
        return f"1 video: {root}"
    names = [j.name for j in jobs]
    more = f", ... ({len(names) - show} more)" if len(names) > show else ""
    return f"{len(names)} video{'s' if len(names) != 1 else ''} under {root}: {', '.join(names[:show])}{more}"


def video_name(path: Path) -> str:
    return path.stem if path.is_file() else path.name


def frame_names(stack: FrameStack) -> list[str] | None:
    """File stems of a frame folder (the reference names its masks after them); None for videos."""
    files = getattr(stack.source, "files", None)
    return [f.stem for f in files] if files is not None else None


def masks_for(video: Path, masks_root: Path | None, single: bool) -> Path | None:
    """The overseer masks of one video: the given path for a single video, else the sub-folder,
    ``.npy`` or ``.zarr`` named after the video."""
    if masks_root is None:
        return None
    if single:
        return masks_root
    name = video_name(video)
    for cand in (masks_root / name, masks_root / f"{name}.npy", masks_root / f"{name}.zarr"):
        if cand.exists():
            return cand
    raise InputError(f"No overseer masks for video {name!r} in {masks_root} (expected {masks_root / name}).")


def anchors_for(video: Path, root: Path | None, single: bool) -> Path | None:
    """The anchors of one video: the given path for a single video, else its sub-folder."""
    if root is None:
        return None
    if single:
        return root
    cand = root / video.stem if video.is_file() else root / video.name
    if cand.is_dir():
        return cand
    raise InputError(f"No anchors for video {video.name!r} in {root} (expected the folder {cand}).")


@dataclass(frozen=True)
class VideoJob:
    """One video of a batch: its frames (a path or an array), its replay masks (a path, an array or
    None), its output store and, for the PNG export, its folder."""

    name: str
    frames: Any
    store: Path
    masks: Any = None
    png: Path | None = None
    anchors: Any = None


def plan_videos(inputs: Any, out: str | os.PathLike, config: RunConfig) -> list[VideoJob]:
    """The jobs of a batch: ``inputs`` is a video file, a frame folder or a root of those (then
    ``out`` is a folder of ``<video>.zarr`` stores), or a list of :class:`VideoJob`."""
    if isinstance(inputs, VideoJob):
        return [inputs]
    if (
        isinstance(inputs, Sequence)
        and not isinstance(inputs, (str, bytes))
        and all(isinstance(j, VideoJob) for j in inputs)
    ):
        return list(inputs)
    root = Path(inputs)
    if not str(out):
        raise InputError("Give the output store (out): a .zarr folder, or a folder of stores for a root of videos.")
    out = check_output_path(out, "output store")
    videos = find_videos(root)
    single = len(videos) == 1 and (root.is_file() or videos[0] == root)
    masks_root = Path(config.overseer.masks) if config.overseer.masks else None
    anchors_root = Path(config.overseer.anchors) if config.overseer.anchors else None
    png = Path(config.export.png) if config.export.png else None
    jobs = []
    for v in videos:
        name = video_name(v)
        jobs.append(
            VideoJob(
                name=name,
                frames=video_frames(v),
                store=out if single else out / f"{name}.zarr",
                masks=masks_for(v, masks_root, single) if config.overseer.kind == "replay" else None,
                anchors=anchors_for(v, anchors_root, single),
                png=None if png is None else (png if single else png / name),
            )
        )
    return jobs


__all__ = [
    "VideoJob",
    "anchors_for",
    "clip_frames",
    "describe_videos",
    "find_videos",
    "frame_names",
    "masks_for",
    "plan_videos",
    "video_frames",
    "video_name",
]
