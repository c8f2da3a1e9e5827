"""One label reader for every place that reads label maps: the replay overseer, ``evaluate frames``,
``evaluate temporal`` and the widgets.

A label source is a folder of label images (one per frame, ordered like frames), a ``.npy``
stack, a zarr array, one of our stores, or any (T, H, W) array (a napari labels layer's data). Its
files may store the class ids themselves (``class-ids``: mode L or P PNGs, ``.npy``, our stores)
or a dataset's own values (``source``: CholecSeg8k's watershed greys, DAVIS's 0/255), which the
class table's ``source_values`` map to class ids.

Nothing is guessed silently. :func:`open_labels` reads every frame once (values present, frame
sizes, a content hash per frame), decides the encoding from what it found (``auto``) or checks
the one asked for, logs the choice, and raises :class:`~.errors.LabelEncodingError` listing the
values when they fit no encoding. Values outside the table are never dropped.

Value 255 is never a class id (class ids are 0..254): in every encoding it reads as "unlabelled".
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..datasets import ClassTable
from ..errors import EmptyInputError, FrameSizeError, InputError, LabelEncodingError
from .label_sources import open_raw

log = logging.getLogger(__name__)

Encoding = Literal["auto", "class-ids", "source"]
ENCODINGS: tuple[str, ...] = ("auto", "class-ids", "source")
#: the value every encoding reads as "unlabelled" (never a class id)
UNLABELLED = 255

_DAVIS_HINT = (
    "To map other values to classes, give a class table file with source_values, e.g. for DAVIS "
    "0/255 masks:\n    classes: [{id: 0, name: background}, {id: 1, name: object}]\n"
    "    source_values: {0: 0, 255: 1}\n"
    "and overseer.masks_encoding source (docs/usage.md, 'Label files')."
)


def _fmt_values(values: Iterable[int], limit: int = 24) -> str:
    v = sorted(int(x) for x in values)
    head = ", ".join(str(x) for x in v[:limit])
    return head + (f", ... ({len(v)} values)" if len(v) > limit else "")


# -- raw sources ------------------------------------------------------------------------------------
# -- scan and decision ------------------------------------------------------------------------------
@dataclass(frozen=True)
class LabelScan:
    """What one pass over a label source found.

    Attributes:
        values: the stored values present anywhere.
        frame_values: per frame, the stored values present.
        hashes: per frame, a content hash of the stored values (16-byte blake2b, hex).
        kinds: how the files store their values (``L``, ``P``, ``grey-RGB``, ``16-bit``, ``array``,
            ``npy``, ``store``, ``zarr``).
    """

    values: frozenset[int]
    frame_values: tuple[frozenset[int], ...]
    hashes: tuple[str, ...]
    kinds: frozenset[str]

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for x in self.hashes:
            h.update(x.encode())
        return h.hexdigest()


def present_values(a: np.ndarray) -> list[int]:
    """The values in a label array, sorted (``np.unique``'s; for uint8 a histogram instead of a
    sort: about a tenth of the time on an 854 x 480 frame)."""
    if a.dtype == np.uint8:
        return np.flatnonzero(np.bincount(a.ravel(), minlength=256)).tolist()
    return [int(v) for v in np.unique(a)]


def _present(a: np.ndarray) -> frozenset[int]:
    return frozenset(present_values(a))


def _digest(a: np.ndarray) -> str:
    from ..store.fingerprint import frame_digest  # the one content hash, for frames and masks alike

    return frame_digest(a).tobytes().hex()


def scan_labels(raw, progress: Callable[[int, int], None] | None = None) -> LabelScan:
    """Read every frame once: values, sizes (all equal), content hashes."""
    n, h, w = raw.shape
    if n == 0:
        raise EmptyInputError(f"{raw.desc} holds no frame.")
    frame_values, hashes = [], []
    for t in range(n):
        a = raw.raw(t)
        if a.shape != (h, w):
            raise FrameSizeError(
                f"Label frame {t} ({raw.name(t)}) is {a.shape[1]}x{a.shape[0]} but frame 0 is {w}x{h}.\n"
                f"  In {raw.desc}. All label maps of a video must have one size."
            )
        frame_values.append(_present(a))
        hashes.append(_digest(a))
        if progress is not None:
            progress(t + 1, n)
    values = frozenset().union(*frame_values)
    return LabelScan(values, tuple(frame_values), tuple(hashes), frozenset(raw.kinds))


def _where(scan: LabelScan, bad: set[int], raw) -> str:
    frames = [t for t, v in enumerate(scan.frame_values) if v & bad]
    names = ", ".join(raw.name(t) for t in frames[:5])
    return f"{len(frames)} frames, first {names}" if len(frames) > 5 else names


def decide_encoding(scan: LabelScan, classes: ClassTable, encoding: str = "auto", raw=None) -> tuple[str, str]:
    """The encoding of the scanned labels and why; raises when the values fit no encoding.

    Returns:
        (encoding, reason): ``class-ids`` or ``source``, and a sentence for the log.
    """
    if encoding not in ENCODINGS:
        raise InputError(f"Unknown masks encoding {encoding!r}: use one of {', '.join(ENCODINGS)}.")
    desc = raw.desc if raw is not None else "the labels"
    ids = set(classes.ids)
    as_ids = ids | {classes.no_label, UNLABELLED}
    src = dict(classes.source_values)
    as_src = set(src) | set(classes.source_unlabelled) | {UNLABELLED}
    v = set(scan.values)
    not_ids, not_src = v - as_ids, v - as_src
    found = f"values found: {_fmt_values(v)}"
    table = f"class table {classes.name!r} (ids {_fmt_values(ids)}, no label {classes.no_label})"

    def refuse_ids() -> LabelEncodingError:
        where = f" (in {_where(scan, not_ids, raw)})" if raw is not None else ""
        return LabelEncodingError(
            f"Label values {_fmt_values(not_ids, 8)} are not classes of {classes.name!r}.\n"
            f"  {desc}: {found}{where}; {table}.\n  Nothing was dropped and nothing was written. {_DAVIS_HINT}"
        )

    if encoding == "class-ids":
        if not_ids:
            raise refuse_ids()
        return "class-ids", "asked for"
    if encoding == "source":
        if not src:
            raise LabelEncodingError(
                f"overseer.masks_encoding source needs a class table with source_values.\n"
                f"  {desc}: {table} has none. {_DAVIS_HINT}"
            )
        if not_src:
            raise LabelEncodingError(
                f"Label values {_fmt_values(not_src, 8)} are not in the source_values of {classes.name!r}.\n"
                f"  {desc}: {found}; source_values map {_fmt_values(src)}. Add them to source_values (or to "
                "source_unlabelled) in a class table file."
            )
        return "source", "asked for"
    fits_ids, fits_src = not not_ids, bool(src) and not not_src
    if fits_ids and UNLABELLED not in ids and v == {0, UNLABELLED} and not fits_src:
        raise LabelEncodingError(
            "The labels hold only the values 0 and 255: binary masks, not class ids.\n"
            f"  {desc}: with {table}, 255 would read as 'unlabelled' and the object would vanish. {_DAVIS_HINT}\n"
            "  If 255 really means 'no label' here, set overseer.masks_encoding class-ids."
        )
    if fits_ids and fits_src:
        # the table's source_values name a class for a value that, as a class id, would read as
        # unlabelled (DAVIS 255 -> object): the table says what it means
        named = sorted(x for x in v & set(src) if x == UNLABELLED or (x == classes.no_label and src[x] != x))
        if named:
            return "source", f"{found}; source_values map {_fmt_values(named)} to classes"
        # the values fit both (CholecSeg8k's ids 5, 11, 12 are also watershed greys): the file
        # type decides, as the datasets ship them: watershed greys as RGB, class ids as L/P
        if scan.kinds <= {"grey-RGB"}:
            return "source", f"values fit both encodings; RGB grey files are {classes.name}'s source masks"
        if scan.kinds & {"L", "P", "store", "npy", "array", "zarr", "coco"} and "grey-RGB" not in scan.kinds:
            return "class-ids", f"values fit both encodings; {'/'.join(sorted(scan.kinds))} data are class ids"
        raise LabelEncodingError(
            f"The label values fit both class ids and {classes.name}'s source values.\n"
            f"  {desc}: {found}. Say which: overseer.masks_encoding class-ids or source."
        )
    if fits_src:
        return "source", f"{found} are {classes.name}'s source values"
    if fits_ids:
        return "class-ids", f"{found} are class ids"
    if src:
        closer = not_ids if len(not_ids) <= len(not_src) else not_src
        where = f" (in {_where(scan, closer, raw)})" if raw is not None else ""
        raise LabelEncodingError(
            f"The label values fit neither class ids nor {classes.name}'s source values.\n"
            f"  {desc}: {found}; as class ids, {_fmt_values(not_ids)} are unknown; as source values, "
            f"{_fmt_values(not_src)} are unknown{where}.\n  Nothing was dropped and nothing was written. "
            f"{_DAVIS_HINT}"
        )
    raise refuse_ids()


# -- the decoded stack ------------------------------------------------------------------------------
class LabelStack:
    """A lazy (T, H, W) uint8 stack of class ids, decoded with one encoding.

    ``stack[t]`` reads and decodes frame t (255 where unlabelled). Build it with :func:`open_labels`.

    Attributes:
        encoding: ``class-ids`` or ``source``.
        scan: what the validation pass found (values, per-frame hashes).
        classes: the class table the ids belong to.
        desc: where the labels come from.
    """

    dtype = np.dtype(np.uint8)
    ndim = 3

    def __init__(self, raw, classes: ClassTable, encoding: str, scan: LabelScan):
        self.raw_source = raw
        self.classes = classes
        self.encoding = encoding
        self.scan = scan
        self.desc = raw.desc
        self.shape = tuple(raw.shape)
        self._lut: np.ndarray | None = None
        if encoding == "source":
            lut = np.full(max(256, max(scan.values, default=0) + 1), UNLABELLED, np.uint8)
            for k, c in classes.source_values.items():
                if k < len(lut):
                    lut[k] = c
            self._lut = lut

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def files(self) -> list[Path] | None:
        return getattr(self.raw_source, "files", None)

    @property
    def names(self) -> list[str] | None:
        """Each frame's file name (label files, a COCO file's images, the frames a store was made
        from), or None where the source has no names (an array, a store made from a video)."""
        return getattr(self.raw_source, "names", None)

    def labelled(self, t: int) -> bool:
        """Whether frame t holds any labelled pixel after decoding (from the validation pass): a
        frame that is unlabelled everywhere (255) has no ground truth to score."""
        values = self.scan.frame_values[t]
        if self._lut is not None:
            return any(self._lut[v] != UNLABELLED for v in values)
        return any(v != UNLABELLED for v in values)

    def __getitem__(self, t):
        if not isinstance(t, (int, np.integer)):
            raise TypeError("a LabelStack is indexed one frame at a time: stack[t]")
        n = self.shape[0]
        t = int(t)
        if not -n <= t < n:
            raise IndexError(f"frame {t} out of range for {n} label frames")
        a = self.raw_source.raw(t % n)
        if self._lut is not None:
            return self._lut[a]
        return a if a.dtype == np.uint8 else a.astype(np.uint8)

    def fingerprint(self) -> str:
        """A hash of every frame's content (from the validation pass)."""
        return self.scan.fingerprint()

    def describe(self) -> dict:
        return {"source": self.desc, "encoding": self.encoding, "fingerprint": self.fingerprint()}

    def __repr__(self) -> str:
        return f"LabelStack({self.desc!r}, shape={self.shape}, encoding={self.encoding!r})"


def open_labels(
    source: Any,
    classes: ClassTable | None,
    encoding: str = "auto",
    *,
    array: str = "labels",
    progress: Callable[[int, int], None] | None = None,
    check_shape: Callable[[tuple[int, int, int]], None] | None = None,
) -> LabelStack:
    """Open and validate a label source as class ids of ``classes``.

    Args:
        source: a folder of label images, a ``.npy``, a zarr array or store, or a (T, H, W) array.
        classes: the class table; None only for our stores, which bring their own.
        encoding: ``auto`` (decide from the files and log it), ``class-ids`` or ``source``.
        array: which array of one of our stores (``labels`` or ``overseer``).
        progress: ``progress(done, total)`` during the validation pass.
        check_shape: called with (T, H, W) before the pass (a caller's own size checks).

    Raises:
        LabelEncodingError: the values fit no encoding (the message lists them), or colour masks.
        CorruptFrameError, FrameSizeError, EmptyInputError: unreadable, odd-sized or no files.
    """
    raw, store_table = open_raw(source, array)
    if store_table is not None:
        if classes is not None and classes.ids != store_table.ids:
            raise InputError(
                f"{raw.desc} is a SASVi store of the {store_table.name!r} classes, not {classes.name!r}.\n"
                "  Leave the class table out (a store brings its own) or give the matching one."
            )
        classes = store_table
        encoding = "class-ids"
    if classes is None:
        raise InputError(
            f"{raw.desc}: say which classes these labels hold (the class table: a preset or a file); label files do not say."
        )
    skipped = getattr(raw, "skipped", "")
    if check_shape is not None:
        try:
            check_shape(tuple(raw.shape))
        except InputError as e:
            if skipped:  # a count that differs because files were left out: say which
                raise type(e)(f"{e}\n  In {raw.desc}: {skipped}.") from None
            raise
    if skipped:
        log.warning("labels %s: %s", raw.desc, skipped)
    scan = scan_labels(raw, progress)
    chosen, reason = decide_encoding(scan, classes, encoding, raw)
    if store_table is not None:
        reason = "a SASVi store holds class ids"
    log.info("labels %s: encoding %s (%s)", raw.desc, chosen, reason)
    stack = LabelStack(raw, classes, chosen, scan)
    stack.reason = reason
    return stack


__all__ = ["ENCODINGS", "UNLABELLED", "LabelScan", "LabelStack", "decide_encoding", "open_labels", "scan_labels"]
