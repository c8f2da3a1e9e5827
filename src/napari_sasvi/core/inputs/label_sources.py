"""Label files as stored: the raw values of a folder of label images, a ``.npy``, a zarr array or
one of our stores, before any encoding is applied (see :mod:`.labels`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..datasets import ClassTable
from ..errors import CorruptFrameError, EmptyInputError, InputError, LabelEncodingError
from .coco_labels import CocoRaw
from .frames import IMAGE_EXTENSIONS, describe_skipped, list_frame_files, skipped_files

LABEL_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff")
#: image files a label folder may hold that are not read: lossy formats change class ids at edges
LOSSY_EXTENSIONS = (".jpg", ".jpeg", ".webp", ".gif", ".jp2")


def skipped_note(counts: dict[str, int]) -> str:
    """``72 .jpg files skipped: masks must be lossless PNG/TIFF/BMP/.npy`` for the image files of a
    label folder that are not read (other files are not mentioned); empty when there are none."""
    lossy = {ext: n for ext, n in counts.items() if ext in LOSSY_EXTENSIONS}
    if not lossy:
        return ""
    return f"{describe_skipped(lossy)} skipped: masks must be lossless PNG/TIFF/BMP/.npy"


class RawFolder:
    """A folder of label images; ``raw(t)`` is the stored values (H, W) of frame t."""

    def __init__(self, folder: Path):
        #: e.g. "72 .jpg files skipped: masks must be lossless ..." ("" when none was)
        self.skipped = ""
        if folder.is_file():  # one label image (a corrected frame)
            self.files = [folder]
        else:
            self.skipped = skipped_note(skipped_files(folder, LABEL_EXTENSIONS)) if folder.is_dir() else ""
            try:
                self.files = list_frame_files(folder, LABEL_EXTENSIONS)
            except EmptyInputError as e:
                why = f"; {self.skipped}" if self.skipped else ""
                raise EmptyInputError(
                    f"No label images in {folder}: expected one .png (or .bmp/.tif) per frame{why}."
                ) from e
        self.desc = str(folder)
        self.kinds: set[str] = set()
        from PIL import Image

        with Image.open(self.files[0]) as im:
            w, h = im.size
        self.shape = (len(self.files), h, w)

    def name(self, t: int) -> str:
        return self.files[t].name

    @property
    def names(self) -> list[str]:
        """The file name of every frame (matching ground truth to frames by name)."""
        return [f.name for f in self.files]

    def raw(self, t: int) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        path = self.files[t]
        try:
            with Image.open(path) as im:
                im.load()
                mode = im.mode
                if mode in ("L", "P"):
                    arr, kind = np.asarray(im), mode
                elif mode == "1":
                    arr, kind = np.asarray(im.convert("L")), "L"
                elif mode in ("RGB", "RGBA", "LA"):
                    a = np.asarray(im)
                    if mode == "LA":
                        arr, kind = a[..., 0], "L"
                    else:
                        rgb = a[..., :3]
                        if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
                            raise LabelEncodingError(
                                f"{path.name} is a colour mask, not a label map.\n"
                                f"  In {path.parent}: its red, green and blue differ, so it codes classes as colours. "
                                "Give label images that store one value per pixel (class ids, mode L or P, or a "
                                "dataset's grey values such as CholecSeg8k's *_watershed_mask.png). Colours are not "
                                "inverted: some datasets give two classes one colour (Cataract-1K 4 and 11)."
                            )
                        arr, kind = rgb[..., 0], "grey-RGB"
                elif mode.startswith("I"):
                    arr, kind = np.asarray(im), "16-bit"
                else:
                    raise LabelEncodingError(
                        f"{path.name}: image mode {mode} is not a label map.\n"
                        f"  In {path.parent}. Give PNGs of mode L or P (one class id per pixel)."
                    )
        except (UnidentifiedImageError, OSError, SyntaxError) as e:
            raise CorruptFrameError(
                f"Cannot read label file {path.name}: {e}\n  In {path.parent}. Replace the file or remove it."
            ) from e
        self.kinds.add(kind)
        return arr


class RawArray:
    """A (T, H, W) array-like (numpy, memory-mapped ``.npy``, dask, zarr) of stored values."""

    def __init__(self, array: Any, desc: str, kind: str = "array", names: list[str] | None = None):
        shape = tuple(int(s) for s in array.shape)
        if len(shape) == 4 and shape[3] == 1:
            shape = shape[:3]
        if len(shape) != 3:
            raise InputError(f"Labels must be a (T, H, W) stack, got shape {tuple(array.shape)} ({desc}).")
        self.array, self.desc, self.shape = array, desc, shape
        self.kinds = {kind}
        #: the frames' file names where known (a store made from a frame folder), else None
        self.names = names if names is not None and len(names) == shape[0] else None

    def name(self, t: int) -> str:
        return f"frame {t}"

    def raw(self, t: int) -> np.ndarray:
        from .lazy import read_frame

        a = read_frame(self.array, t)
        if a.ndim == 3:
            a = a[..., 0]
        if a.dtype == bool:
            a = a.astype(np.uint8)
        if not np.issubdtype(a.dtype, np.integer):
            if np.issubdtype(a.dtype, np.floating) and np.array_equal(a, np.round(a)):
                a = a.astype(np.int64)
            else:
                raise LabelEncodingError(
                    f"{self.desc}: labels of type {a.dtype} are not integer class ids.\n"
                    "  Give integer label maps (one class id per pixel)."
                )
        return a


def _store_array(path: Path, array: str):
    """(array, class table, frame names) of one of our stores, or (zarr array, None, None) of a
    plain zarr."""
    import zarr

    node = zarr.open(str(path), mode="r")
    if isinstance(node, zarr.Group):
        if "sasvi" in node.attrs:
            if array not in node:
                raise InputError(f"{path} holds no {array!r} array (a SASVi store has 'labels' and 'overseer').")
            sasvi = node.attrs["sasvi"]
            return node[array], ClassTable.from_dict(sasvi["classes"]), _frame_names(sasvi.get("frames"))
        for key in (array, "labels", "overseer"):
            if key in node:
                return node[key], None, None
        raise InputError(f"{path} is a zarr group without a 'labels' or 'overseer' array.")
    return node, None, None


def _frame_names(frames: str | None) -> list[str] | None:
    """The file names of the frames a store was made from, when it recorded a frame folder that
    still holds them (None for a video file, an array, or a folder that is gone)."""
    if not frames or not Path(frames).is_dir():
        return None
    try:
        return [p.name for p in list_frame_files(frames, IMAGE_EXTENSIONS)]
    except EmptyInputError:
        return None


def _is_zarr(path: Path) -> bool:
    return path.is_dir() and any((path / n).exists() for n in ("zarr.json", ".zarray", ".zgroup"))


def open_raw(source: Any, array: str) -> tuple[Any, ClassTable | None]:
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise InputError(f"Labels {path} do not exist.")
        if path.suffix.lower() == ".npy":
            return RawArray(np.load(path, mmap_mode="r", allow_pickle=False), str(path), "npy"), None
        if _is_zarr(path):
            arr, table, names = _store_array(path, array)
            return RawArray(arr, str(path), "store" if table is not None else "zarr", names), table
        if path.suffix.lower() == ".json" and path.is_file():
            return CocoRaw(path), None
        if path.is_dir() or (path.is_file() and path.suffix.lower() in LABEL_EXTENSIONS):
            return RawFolder(path), None
        raise InputError(
            f"Cannot read labels from {path}: give a folder of label PNGs, a .npy stack, a zarr store or a COCO .json."
        )
    if hasattr(source, "raw_source"):  # a LabelStack: read its files again
        return source.raw_source, None
    if hasattr(source, "shape") and hasattr(source, "__getitem__"):
        return RawArray(source, f"{type(source).__name__} {tuple(source.shape)}"), None
    raise InputError(f"Cannot read labels from a {type(source).__name__}.")
