"""Reader contribution: frame folders and video files as lazy RGB image layers."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..core.errors import SasviError
from ..core.frames import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, open_frames

log = logging.getLogger(__name__)


def _is_frame_folder(path: Path) -> bool:
    if not path.is_dir():
        return False
    with os.scandir(path) as it:
        return any(e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS) for e in it)


def get_reader(path):
    """Return a reader for a folder of frames or a video file, else None (napari tries others)."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(path)
    if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file():
        return read_frames
    if _is_frame_folder(p):
        return read_frames
    return None


def read_frames(path):
    """Layer data: the frames as a dask-backed RGB image layer named after the video."""
    if isinstance(path, (list, tuple)):
        path = path[0]
    try:
        stack = open_frames(path)
    except SasviError as e:
        # napari reports reader exceptions to the user; keep our message, it says what to do
        raise ValueError(str(e)) from e
    meta = {"source": str(Path(path).resolve()), "sasvi_frames": True}
    if getattr(stack.source, "fps", None):
        meta["fps"] = stack.source.fps
    return [(stack.data, {"name": stack.name, "rgb": True, "contrast_limits": (0, 255), "metadata": meta}, "image")]
