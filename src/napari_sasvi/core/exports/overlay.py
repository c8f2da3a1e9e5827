"""An MP4 of the frames with the labels blended in, for a quick look."""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import numpy as np

from ..datasets import ClassTable
from ..errors import InputError
from ..fsutil import atomic_path, check_output_path
from .common import ExportProgress, ExportSummary, check_every, frame_range, open_sources


def overlay(frame: np.ndarray, labels: np.ndarray, classes: ClassTable, opacity: float) -> np.ndarray:
    """Frame with the class colours blended in at ``opacity`` (unlabelled pixels untouched)."""
    lut = np.zeros((256, 3), np.float32)
    has = np.zeros(256, bool)
    for c in classes:
        lut[c.id] = c.color[:3]
        has[c.id] = True
    if classes.no_label in classes.ids and all(v == 0 for v in classes.by_id(classes.no_label).color[:3]):
        has[classes.no_label] = False  # a black background class: leave the frame visible
    colour = lut[labels]
    a = (has[labels] * float(opacity))[..., None]
    return (frame.astype(np.float32) * (1 - a) + colour * a).round().clip(0, 255).astype(np.uint8)


def iter_export_overlay_mp4(
    store,
    out: str | os.PathLike,
    *,
    opacity: float = 0.5,
    fps: float | None = None,
    every: int = 1,
    array: str = "labels",
    frames: Any = None,
    overwrite: bool = False,
) -> Generator[ExportProgress, None, ExportSummary]:
    """An H.264 MP4 (MPEG-4 part 2 where this PyAV has no libx264) of the frames with the labels
    blended at ``opacity``; ``fps`` defaults to the source video's rate, else 25."""
    import av

    from ..inputs.video import iter_write_video

    check_every(every)
    if not 0 <= opacity <= 1:
        raise InputError(f"opacity must lie in 0..1, got {opacity}.")
    if fps is not None and not fps > 0:
        raise InputError(f"fps must be above 0, got {fps}.")
    target = check_output_path(out, "overlay video")
    if target.suffix.lower() not in (".mp4", ".mov", ".mkv"):
        raise InputError(f"Give the overlay an .mp4 file name, got {target.name}.")
    if target.exists() and not overwrite:
        raise InputError(f"{target} exists; pass --overwrite to replace it, or choose another name.")
    sources, classes, notes = open_sources([store], array, [frames] if frames is not None else None)
    if len(sources) != 1:
        raise InputError(f"An overlay video shows one store; {len(sources)} were given.")
    s = sources[0]
    stack = s.stack()
    # every N-th frame at the source's rate / N keeps the video's real duration
    rate = fps or (getattr(stack.source, "fps", None) or 25.0) / every
    idx = list(frame_range(s, every))
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    blended = (overlay(s.frame(t), s.labels(t), classes, opacity) for t in idx)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:  # the temporary name keeps the suffix PyAV picks the container by
        for n in iter_write_video(tmp, blended, fps=rate, codec=codec):
            yield ExportProgress(n, len(idx), s.name)
    return ExportSummary("overlay-mp4", target, {s.name: len(idx)}, [*notes, f"codec {codec}, {rate:g} frames/s"])
