"""Frames of a video as a lazy (T, H, W, 3) uint8 RGB stack.

A :class:`FrameStack` wraps one of three sources:

* a folder of image files (``.jpg/.jpeg/.png/.bmp/.tif/.tiff``), ordered by the trailing integer
  in the file name (``0001.jpg``, ``frame_561_endo.png``, ``Video1_frame000120.png``);
* a video file (``.mp4/.avi/.mov/.mkv``), decoded with PyAV (see :mod:`.video`);
* any numpy or dask array of shape (T, H, W), (T, H, W, 3) or (T, H, W, 4).

Opening decodes nothing: the folder source reads one file *header* to learn the frame size, the
video source demuxes packet timestamps. ``stack.data`` is a dask array chunked one frame per chunk;
computing frame t decodes only frame t (folders) or frames from the nearest keyframe (video).
Grayscale, RGBA and 16-bit frames become RGB uint8.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import CorruptFrameError, EmptyInputError, FrameSizeError, InputError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv")

#: memory for the frames a stack keeps decoded (at least 2 frames): 52 frames of 854 x 480
RECENT_FRAMES_BYTES = 64 * 2**20
_TRAILING_INT = re.compile(r"(\d+)(?!.*\d)")


def frame_sort_key(name: str) -> tuple[float, str]:
    """Sort key of a frame file name: the trailing integer of its stem, then the name.

    ``0000000000.jpg`` -> 0, ``frame_561_endo.png`` -> 561, ``Video1_frame000120.png`` -> 120.
    Names without any digit sort after all numbered ones, alphabetically.
    """
    stem = Path(name).stem
    match = _TRAILING_INT.search(stem)
    number = float(int(match.group(1))) if match else float("inf")
    return (number, name)


def skipped_files(folder: str | os.PathLike, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> dict[str, int]:
    """How many files of ``folder`` :func:`list_frame_files` leaves out, by lower-case extension
    (``{".jpg": 72}``); hidden files (``.DS_Store``) are not counted."""
    exts = tuple(e.lower() for e in extensions)
    counts: dict[str, int] = {}
    for e in os.scandir(folder):
        if e.is_file() and not e.name.startswith(".") and not e.name.lower().endswith(exts):
            ext = os.path.splitext(e.name)[1].lower() or "(no extension)"
            counts[ext] = counts.get(ext, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def describe_skipped(counts: dict[str, int]) -> str:
    """``72 .jpg files, 1 .txt file`` (empty when nothing was skipped)."""
    return ", ".join(f"{n} {ext} file{'s' if n != 1 else ''}" for ext, n in counts.items())


def list_frame_files(folder: str | os.PathLike, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """The image files of ``folder`` in frame order (see :func:`frame_sort_key`).

    Raises:
        EmptyInputError: when the folder does not exist or holds no file with those extensions.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise EmptyInputError(f"{folder} is not a folder of frames. Give a folder of images or a video file.")
    exts = tuple(e.lower() for e in extensions)
    names = [e.name for e in os.scandir(folder) if e.is_file() and e.name.lower().endswith(exts)]
    if not names:
        other = describe_skipped(skipped_files(folder, exts))
        raise EmptyInputError(
            f"No frame files in {folder}: expected images ending in {', '.join(exts)}"
            f"{f' ({other} skipped)' if other else ''}. Point to the folder that holds the frames themselves."
        )
    names.sort(key=frame_sort_key)
    return [folder / n for n in names]


def to_rgb_uint8(array: np.ndarray, where: str = "frame") -> np.ndarray:
    """Convert one frame (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) of any integer or float dtype
    to (H, W, 3) uint8 RGB.

    16-bit integers are scaled by 1/257 (65535 -> 255); floats are taken as [0, 1] when their
    maximum is at most 1, else as [0, 255]; alpha is dropped.
    """
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise InputError(f"{where}: expected an image of shape (H, W), (H, W, 3) or (H, W, 4), got {a.shape}.")
    a = a[..., :3]
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if a.dtype == np.uint16:
        return ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        scale = 255.0 if a.size and np.nanmax(a) <= 1.0 else 1.0
        return np.clip(np.nan_to_num(a) * scale + 0.5, 0, 255).astype(np.uint8)
    if a.dtype == bool:
        return a.astype(np.uint8) * 255
    if np.issubdtype(a.dtype, np.integer):
        if a.size and a.max() > 255:
            return (np.clip(a, 0, 65535).astype(np.uint32) // 257).astype(np.uint8)
        return np.clip(a, 0, 255).astype(np.uint8)
    raise InputError(f"{where}: unsupported pixel type {a.dtype}.")


class FrameSource(Protocol):
    """What :class:`FrameStack` needs from a source of frames."""

    name: str

    @property
    def shape(self) -> tuple[int, int, int, int]: ...

    def read(self, t: int) -> np.ndarray:
        """Frame ``t`` as (H, W, 3) uint8 RGB."""
        ...

    def fingerprint(self) -> str: ...


class FolderSource:
    """Frames from a folder of image files, decoded one file per frame on demand."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.files = list_frame_files(self.folder)
        self.name = self.folder.name
        self.decoded = 0  # number of image decodes so far (tests count them)
        h, w = self._header_size(self.files[0])
        self._shape = (len(self.files), h, w, 3)

    @staticmethod
    def _header_size(path: Path) -> tuple[int, int]:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as im:  # reads the header only
                w, h = im.size
        except (UnidentifiedImageError, OSError) as e:
            raise CorruptFrameError(f"Cannot read frame file {path}: {e}. Replace or remove it.") from e
        return h, w

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return self._shape

    def read(self, t: int) -> np.ndarray:
        path = self.files[t]
        self.decoded += 1
        frame = _decode_image_file(path)
        if frame.shape[:2] != self._shape[1:3]:
            raise FrameSizeError(
                f"Frame {t} ({path.name}) is {frame.shape[1]}x{frame.shape[0]} pixels but frame 0 "
                f"({self.files[0].name}) is {self._shape[2]}x{self._shape[1]}.\n  All frames of a video "
                "must have one size: resize them, or move the odd ones out of the folder."
            )
        return frame

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        h.update(f"folder:{self._shape}".encode())
        for p in self.files:
            h.update(f"{p.name}:{p.stat().st_size}\n".encode())
        return h.hexdigest()

    def validate(self) -> None:
        """Read every file's header: a file that is no image or has another size is an error now,
        before any output exists (decoding errors inside a file still show when it is read)."""
        h, w = self._shape[1:3]
        for t, path in enumerate(self.files):
            fh, fw = self._header_size(path)
            if (fh, fw) != (h, w):
                raise FrameSizeError(
                    f"Frame {t} ({path.name}) is {fw}x{fh} pixels but frame 0 ({self.files[0].name}) is {w}x{h}.\n"
                    f"  In {self.folder}. All frames of a video must have one size: resize them, or move the odd "
                    "ones out of the folder. Nothing was written."
                )

    def __repr__(self) -> str:
        return f"FolderSource({str(self.folder)!r}, frames={len(self.files)})"


def _decode_rgb8_png(path: Path) -> np.ndarray | None:
    """An 8-bit RGB PNG decoded by OpenCV (about a third less CPU than Pillow's decoder, the same
    pixels: PNG is lossless), or None for any other file, or one OpenCV does not decode whole.

    Only 8-bit truecolour PNGs take this path: Pillow and OpenCV scale 16-bit samples differently,
    and lossy formats (JPEG) may decode differently, which would change the frames' content hashes
    a store keeps (and its labels). A file OpenCV refuses (truncated, a bad checksum) goes to
    Pillow's decoder, which decides as it always did."""
    if path.suffix.lower() != ".png":
        return None
    try:
        import cv2
    except ImportError:  # pragma: no cover - opencv is a dependency
        return None
    try:
        data = path.read_bytes()
    except OSError:
        return None
    # signature, then the IHDR chunk: width, height, bit depth (byte 24), colour type (25; 2 = RGB)
    if len(data) < 33 or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR" or data[24] != 8 or data[25] != 2:
        return None
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if bgr is None or bgr.ndim != 3 or bgr.shape[2] != 3:
        return None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _decode_image_file(path: Path) -> np.ndarray:
    """Decode one image file to (H, W, 3) uint8 RGB; a truncated or corrupt file raises."""
    from PIL import Image, UnidentifiedImageError

    fast = _decode_rgb8_png(path)
    if fast is not None:
        return fast
    try:
        with Image.open(path) as im:
            im.load()  # raises OSError on truncated data (LOAD_TRUNCATED_IMAGES stays False)
            mode = im.mode
            if mode in ("RGB", "L"):
                arr = np.asarray(im)
            elif mode.startswith("I;16") or mode in ("I", "F"):
                arr = np.asarray(im)
                if mode == "I" and arr.size and arr.max() > 255:
                    arr = np.clip(arr, 0, 65535).astype(np.uint16)
            else:  # P, LA, RGBA, CMYK, YCbCr, 1 ...
                arr = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        # Pillow cannot decode some valid TIFFs (16-bit RGB); OpenCV can. Other formats do not
        # fall back: OpenCV would return a truncated JPEG's partial pixels without an error.
        arr = _decode_with_opencv(path) if path.suffix.lower() in (".tif", ".tiff") else None
        if arr is None:
            raise CorruptFrameError(
                f"Cannot decode frame file {path.name}: the file is truncated or not an image.\n"
                f"  {path}: {e}\n  Replace it (re-extract the frame) or remove it from the folder."
            ) from e
    return to_rgb_uint8(arr, where=str(path))


def _decode_with_opencv(path: Path) -> np.ndarray | None:
    """OpenCV fallback for formats Pillow does not handle (16-bit RGB TIFF); None if it fails too."""
    try:
        import cv2
    except ImportError:  # pragma: no cover - opencv is a dependency
        return None
    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        return None
    if arr.ndim == 3 and arr.shape[2] >= 3:
        arr = arr[..., [2, 1, 0]]  # BGR(A) -> RGB
    return arr


class ArraySource:
    """Frames from an in-memory or dask array (T, H, W[, C]); converted frame by frame."""

    def __init__(self, array: Any, name: str = "frames"):
        shape = tuple(int(s) for s in array.shape)
        if len(shape) == 3:
            shape = (*shape, 1)
        if len(shape) != 4 or shape[3] not in (1, 3, 4) or shape[0] == 0:
            raise InputError(
                f"Expected frames of shape (T, H, W), (T, H, W, 3) or (T, H, W, 4) with T > 0, got {tuple(array.shape)}."
            )
        self.array = array
        self.name = name
        self._shape = (shape[0], shape[1], shape[2], 3)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return self._shape

    def read(self, t: int) -> np.ndarray:
        from .lazy import read_frame

        return to_rgb_uint8(read_frame(self.array, t), where=f"{self.name} frame {t}")

    def fingerprint(self) -> str:
        # Hash a sparse sample of frames: cheap, and it changes when the content changes.
        h = hashlib.sha256(f"array:{self._shape}".encode())
        n = self._shape[0]
        for t in sorted({0, n // 2, n - 1}):
            h.update(self.read(t)[::7, ::7].tobytes())
        return h.hexdigest()


class FrameStack:
    """A lazy (T, H, W, 3) uint8 RGB video.

    Attributes:
        source: where the frames come from (folder, video or array source).
        name: a display name (folder name, video file stem).
    """

    def __init__(self, source: FrameSource):
        self.source = source
        self.name = source.name
        self._data = None
        self._lock = threading.Lock()
        #: called as ``on_read(t, frame)`` after every frame :meth:`frame` decodes (a run's content
        #: ledger); a frame served from the recent-frames cache was checked when it was decoded
        self.on_read = None
        # the last frames decoded, for the consumers of one frame in turn (the overseer's batch,
        # then the tracker): a file is decoded and hashed once, not once per consumer. Arrays are
        # read afresh every time (cheap, and their content may change under us).
        self._recent: OrderedDict[int, np.ndarray] = OrderedDict()
        self._recent_lock = threading.Lock()
        self._recent_bytes = 0 if isinstance(source, ArraySource) else RECENT_FRAMES_BYTES

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def open(cls, path_or_array: Any, name: str | None = None) -> FrameStack:
        """Open a frame folder, a video file, or wrap an array. Decodes nothing."""
        if isinstance(path_or_array, FrameStack):
            return path_or_array
        if isinstance(path_or_array, (str, os.PathLike)):
            path = Path(path_or_array)
            if path.is_dir():
                return cls(FolderSource(path))
            if path.suffix.lower() in VIDEO_EXTENSIONS:
                from .video import VideoSource

                return cls(VideoSource(path))
            if not path.exists():
                raise InputError(f"{path} does not exist. Give a folder of frames or a video file.")
            raise InputError(f"{path} is neither a folder of frames nor a video file ({', '.join(VIDEO_EXTENSIONS)}).")
        if hasattr(path_or_array, "shape") and hasattr(path_or_array, "__getitem__"):
            return cls(ArraySource(path_or_array, name=name or "frames"))
        raise InputError(f"Cannot open frames from {type(path_or_array).__name__}.")

    # -- access --------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int, int]:
        return self.source.shape

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def frame_size(self) -> tuple[int, int]:
        """(H, W) of every frame."""
        return self.shape[1], self.shape[2]

    def frame(self, t: int) -> np.ndarray:
        """Frame ``t`` as (H, W, 3) uint8 RGB, decoded now."""
        n = len(self)
        if not -n <= t < n:
            raise IndexError(f"frame {t} out of range for a video of {n} frames")
        t = t % n
        with self._recent_lock:
            hit = self._recent.get(t)
            if hit is not None:
                self._recent.move_to_end(t)
                return hit.copy()  # the caller may write into its frame
        frame = self.source.read(t)
        if self.on_read is not None:
            self.on_read(t, frame)  # raises on a changed frame: nothing is cached then
        if self._recent_bytes and frame.nbytes:
            keep = max(2, self._recent_bytes // frame.nbytes)
            with self._recent_lock:
                self._recent[t] = frame.copy()
                self._recent.move_to_end(t)
                while len(self._recent) > keep:
                    self._recent.popitem(last=False)
        return frame

    @property
    def path(self) -> Path | None:
        """The frame folder or video file, or None for an array."""
        return getattr(self.source, "folder", None) or getattr(self.source, "path", None)

    def validate(self) -> None:
        """Cheap checks of the whole input before a run writes anything (frame folders: every
        file's header and size)."""
        check = getattr(self.source, "validate", None)
        if check is not None:
            check()

    def __iter__(self):
        for t in range(len(self)):
            yield self.frame(t)

    @property
    def data(self):
        """The frames as a dask array (T, H, W, 3) uint8, one chunk per frame."""
        with self._lock:
            if self._data is None:
                from .lazy import lazy_stack

                # a cheap unique name: hashing the source (a stat per file) would cost ~0.5 s for
                # 5,000 frames, and dask only needs the name to be unique per content
                token = (
                    id(self.source)
                    if isinstance(self.source, ArraySource)
                    else abs(hash((repr(self.source), self.shape)))
                )
                self._data = lazy_stack(self.source.read, self.shape, np.uint8, f"sasvi-frames-{self.name}-{token}")
            return self._data

    def fingerprint(self) -> str:
        """A hash that changes when the frames (names, sizes or content) change."""
        return self.source.fingerprint()

    def __repr__(self) -> str:
        return f"FrameStack({self.source!r}, shape={self.shape})"


def open_frames(path_or_array: Any, name: str | None = None) -> FrameStack:
    """Open a frame folder, video file or array as a lazy :class:`FrameStack`."""
    return FrameStack.open(path_or_array, name=name)
