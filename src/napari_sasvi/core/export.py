"""Write frames out as ``%010d.jpg`` files, the layout the published SASVi scripts read."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from .errors import InputError
from .frames import IMAGE_EXTENSIONS, FrameStack, open_frames
from .progress import ProgressFactory, no_progress


def _atomic_save(image: Image.Image, path: Path, **kwargs) -> None:
    """Save through a temporary name and rename, so a crash never leaves a half-written file."""
    tmp = path.with_name(f".{path.name}.partial")
    image.save(tmp, format=kwargs.pop("format", None), **kwargs)
    os.replace(tmp, path)


def iter_export_frames(
    frames: FrameStack | str | os.PathLike,
    out_dir: str | os.PathLike,
    every: int = 1,
    quality: int = 95,
    overwrite: bool = False,
) -> Iterator[int]:
    """Write every ``every``-th frame to ``out_dir/%010d.jpg``, numbered 0, 1, 2, ... in output
    order; yields each written source frame index.

    Raises:
        InputError: bad ``every``/``quality``, ``out_dir`` is a file, or it already holds frames
            and ``overwrite`` is False (nothing is touched then).
    """
    stack = open_frames(frames)
    if every < 1:
        raise InputError(f"--every must be 1 or more, got {every}.")
    if not 1 <= quality <= 100:
        raise InputError(f"JPEG quality must lie in 1..100, got {quality}.")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file; give a folder to write the frames into.")
    out.mkdir(parents=True, exist_ok=True)
    existing = [p for p in out.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS]
    if existing and not overwrite:
        raise InputError(
            f"{out} already holds {len(existing)} image files; choose an empty folder or pass "
            "--overwrite to replace them."
        )
    for i, t in enumerate(range(0, len(stack), every)):
        _atomic_save(Image.fromarray(stack.frame(t)), out / f"{i:010d}.jpg", format="JPEG", quality=quality)
        yield t


def export_frames(
    frames: FrameStack | str | os.PathLike,
    out_dir: str | os.PathLike,
    every: int = 1,
    quality: int = 95,
    overwrite: bool = False,
    progress: ProgressFactory = no_progress,
) -> int:
    """Drive :func:`iter_export_frames` to the end; returns the number of frames written."""
    stack = open_frames(frames)
    total = (len(stack) + every - 1) // max(every, 1)
    n = 0
    for _ in progress(iter_export_frames(stack, out_dir, every, quality, overwrite), total=total, desc="frames"):
        n += 1
    return n
