"""Output paths: checked before anything is written, and files written atomically."""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import InputError, StoreFullError

#: errnos of a full disk or an exhausted quota (EDQUOT is missing on some platforms)
_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
#: numpy's ``ndarray.tofile`` (so ``np.save``) on a short write: an OSError without an errno
#: ("307200 requested and 278400 written" when the disk fills in the middle of a frame)
_SHORT_WRITE = re.compile(r"\b\d+ requested and \d+ written\b")


def check_output_path(path: str | os.PathLike, what: str = "output", *, folder: bool = True) -> Path:
    """Refuse an output path that cannot be created, before any work starts.

    A path whose parent (or any ancestor) is a file, or (``folder``) that is itself a file, is an
    :class:`InputError` naming the offending part; nothing is created.
    """
    path = Path(path)
    if folder and path.is_file():
        raise InputError(f"The {what} {path} is a file; give a folder path (e.g. {path.with_suffix('.zarr')}).")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(
                    f"The {what} {path} lies inside {parent}, which is a file.\n"
                    "  Choose a path inside a folder (nothing was written)."
                )
            break
    return path


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` is a write that failed for want of space (ENOSPC, EDQUOT or numpy's short write)."""
    return isinstance(exc, OSError) and (exc.errno in _FULL or bool(_SHORT_WRITE.search(str(exc))))


@contextmanager
def disk_full_as_error(path: str | os.PathLike, kept: str = "finished frames are kept") -> Iterator[None]:
    """Turn a write that failed for want of space inside the block into a :class:`StoreFullError`
    naming ``path`` and what to do; any other error passes through unchanged."""
    try:
        yield
    except OSError as e:
        if not is_disk_full(e):
            raise
        raise StoreFullError(f"no space left on {path}: free some and run the same command again; {kept}.") from e


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A hidden temporary path beside ``path`` (same suffix, so writers that go by it still do) to
    write to; renamed to ``path`` when the block ends, removed if it raises. A crash never leaves a
    half-written file under the final name."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through :func:`atomic_path`, synced to disk before the rename."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
