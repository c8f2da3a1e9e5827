"""The layout the published SASVi scripts read and write: frames as ``%010d.jpg`` files, and labels
as ``<frame>_rgb_mask.png`` palette PNGs (with ``<frame>_binary_mask.npz`` on request)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from ..errors import InputError
from ..fsutil import atomic_path
from ..inputs.frames import IMAGE_EXTENSIONS, FrameStack, open_frames


def _atomic_save(image: Image.Image, path: Path, **kwargs) -> None:
    """Save through a temporary name and rename, so a crash never leaves a half-written file."""
    with atomic_path(path) as tmp:
        image.save(tmp, format=kwargs.pop("format", None), **kwargs)


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


def iter_export_reference_masks(
    store_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    size: tuple[int, int] | None = (299, 299),
    npz: bool = False,
    frame_names: list[str] | None = None,
    array: str = "labels",
) -> Iterator[int]:
    """Write a store's labels in the reference layout (see :func:`iter_export_label_pngs`)."""
    from ..store.sasvi_store import SasviStore

    store = SasviStore.read(store_path)
    yield from iter_export_label_pngs(store.group[array], store.classes, out_dir, size, npz, frame_names)


def iter_export_label_pngs(
    labels,
    classes,
    out_dir: str | os.PathLike,
    size: tuple[int, int] | None = (299, 299),
    npz: bool = False,
    frame_names: list[str] | None = None,
    suffix: str = "_rgb_mask.png",
) -> Iterator[int]:
    """Write a (T, H, W) label stack in the reference layout: ``<frame>_rgb_mask.png`` (``suffix``) palette
    PNGs of class ids (resized nearest to ``size`` = (W, H); None keeps the frame size) and, with
    ``npz``, ``<frame>_binary_mask.npz`` (key ``arr``: bool, num_classes x H x W, unlabelled pixels
    OR-ed into channel 0, or into the last channel for CaDIS). Reads one frame at a time; yields
    each frame index written."""
    import numpy as np

    n = labels.shape[0]
    if frame_names is not None and len(frame_names) != n:
        raise InputError(f"{len(frame_names)} frame names for a stack of {n} frames.")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file; give a folder for the PNG export.")
    out.mkdir(parents=True, exist_ok=True)
    palette = classes.palette()
    ids = classes.ids
    unlabelled_channel = len(ids) - 1 if classes.name == "cadis" else 0
    for t in range(n):
        lab = np.asarray(labels[t]).astype(np.uint8)
        if size is not None:
            lab = np.asarray(Image.fromarray(lab).resize(tuple(size), Image.NEAREST))
        img = Image.frombytes("P", (lab.shape[1], lab.shape[0]), np.ascontiguousarray(lab).tobytes())
        img.putpalette(palette)
        name = frame_names[t] if frame_names is not None else f"{t:010d}"
        _atomic_save(img, out / f"{name}{suffix}", format="PNG")
        if npz:
            binary = np.stack([lab == c for c in ids])
            binary[unlabelled_channel] |= ~np.isin(lab, ids)
            with atomic_path(out / f"{name}_binary_mask.npz") as tmp:
                np.savez_compressed(tmp, arr=binary)
        yield t
