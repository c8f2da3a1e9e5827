"""The replay overseer: frame-wise predictions that already exist act as the overseer.

Sources: a folder of label-id PNGs (palette or greyscale; greyscale RGB such as CholecSeg8k's
watershed masks is read from its first channel and mapped through the class table's
``source_values``), a ``.npy`` stack, a zarr array or an output store of ours, or any (T, H, W)
array (a napari labels layer's data).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..datasets import ClassTable
from ..errors import CorruptFrameError, EmptyInputError, InputError
from ..frames import list_frame_files
from .base import OverseerResult, label_map_to_result


class _LabelFolder:
    """A folder of label images as a lazy (T, H, W) array."""

    def __init__(self, folder: Path, source_values: dict[int, int]):
        self.files = list_frame_files(folder, (".png", ".bmp", ".tif", ".tiff"))
        self.folder = folder
        from PIL import Image

        with Image.open(self.files[0]) as im:
            w, h = im.size
        self.shape = (len(self.files), h, w)
        self.ndim = 3
        self.dtype = np.dtype(np.uint8)
        lut = np.arange(256, dtype=np.uint8)
        if source_values:
            lut[:] = 255
            for k, v in source_values.items():
                lut[k] = v
        self._lut = lut if source_values else None

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, t: int) -> np.ndarray:
        from PIL import Image

        path = self.files[t]
        try:
            with Image.open(path) as im:
                im.load()
                if im.mode == "P" or im.mode == "L":
                    arr = np.asarray(im)
                elif im.mode in ("RGB", "RGBA"):
                    rgb = np.asarray(im)[..., :3]
                    if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
                        raise InputError(
                            f"{path} is a colour mask; give label-id images (one class id per pixel, "
                            "palette or greyscale), not colour-coded masks."
                        )
                    arr = rgb[..., 0]
                else:
                    arr = np.asarray(im.convert("L"))
        except OSError as e:
            raise CorruptFrameError(f"Cannot read label file {path}: {e}. Replace or remove it.") from e
        if arr.shape != self.shape[1:]:
            raise InputError(
                f"Label file {path.name} is {arr.shape[::-1]} but {self.files[0].name} is {self.shape[:0:-1]}."
            )
        return self._lut[arr] if self._lut is not None else arr.astype(np.uint8)


def open_label_stack(source: Any, classes: ClassTable | None = None):
    """A (T, H, W) label stack from a folder, ``.npy``, zarr path, or an array (returned as is)."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise InputError(f"Overseer masks {path} do not exist.")
        if path.suffix == ".npy":
            return np.load(path, mmap_mode="r", allow_pickle=False)
        if path.is_dir() and (
            (path / "zarr.json").exists() or (path / ".zarray").exists() or (path / ".zgroup").exists()
        ):
            import zarr

            node = zarr.open(str(path), mode="r")
            if isinstance(node, zarr.Group):
                for key in ("overseer", "labels"):
                    if key in node:
                        return node[key]
                raise InputError(f"{path} is a zarr group without an 'overseer' or 'labels' array.")
            return node
        if path.is_dir():
            try:
                return _LabelFolder(path, dict(classes.source_values) if classes else {})
            except EmptyInputError as e:
                raise EmptyInputError(f"No label images in {path}: expected one .png per frame.") from e
        raise InputError(
            f"Cannot read overseer masks from {path}: give a folder of label PNGs, a .npy or a zarr store."
        )
    if hasattr(source, "shape") and hasattr(source, "__getitem__"):
        return source
    raise InputError(f"Cannot use {type(source).__name__} as overseer masks.")


class ReplayOverseer:
    """Existing frame-wise label maps as the overseer (see the module docstring)."""

    needs_frames = False

    def __init__(
        self,
        source: Any,
        classes: ClassTable,
        frame_count: int | None = None,
        frame_size: tuple[int, int] | None = None,
    ):
        self.source_desc = str(source) if isinstance(source, (str, os.PathLike)) else type(source).__name__
        self.labels = open_label_stack(source, classes)
        self.classes = classes
        self.name = "replay"
        shape = tuple(int(s) for s in self.labels.shape)
        if len(shape) != 3:
            raise InputError(f"Overseer masks must be a (T, H, W) label stack, got shape {shape}.")
        if frame_count is not None and shape[0] != frame_count:
            raise InputError(
                f"The overseer masks ({self.source_desc}) hold {shape[0]} frames but the video has {frame_count}: "
                "they must be the frame-wise predictions of this very video, one per frame."
            )
        if frame_size is not None and shape[1:] != tuple(frame_size):
            raise InputError(
                f"The overseer masks are {shape[2]}x{shape[1]} pixels but the frames are {frame_size[1]}x{frame_size[0]}: "
                "resize the masks (nearest neighbour) to the frame size."
            )

    def label_map(self, t: int) -> np.ndarray:
        from ..lazy import read_frame

        return read_frame(self.labels, t)

    def predict(self, frames: Sequence[np.ndarray] | None, indices: Sequence[int]) -> list[OverseerResult]:
        ids = self.classes.ids
        return [
            label_map_to_result(
                self.label_map(t), ids, self.classes.no_label if self.classes.no_label not in ids else None
            )
            for t in indices
        ]

    def fingerprint(self) -> str:
        """A hash of the masks: all of an in-memory array; file names and sizes of a folder; a
        sample of 16 frames of a lazy (dask, zarr, memory-mapped) stack, read without loading it."""
        import hashlib

        h = hashlib.sha256(repr(tuple(int(x) for x in self.labels.shape)).encode())
        if isinstance(self.labels, _LabelFolder):
            for f in self.labels.files:
                h.update(f"{f.name}:{f.stat().st_size}".encode())
        elif isinstance(self.labels, np.ndarray) and not isinstance(self.labels, np.memmap):
            h.update(np.ascontiguousarray(self.labels).tobytes())
        else:
            n = int(self.labels.shape[0])
            for t in sorted(set(np.linspace(0, n - 1, min(n, 16)).round().astype(int).tolist())):
                h.update(np.ascontiguousarray(self.label_map(t)).tobytes())
        return h.hexdigest()

    def describe(self) -> dict:
        return {"type": "replay", "source": self.source_desc, "fingerprint": self.fingerprint()}
