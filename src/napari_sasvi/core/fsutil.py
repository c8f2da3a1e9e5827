"""Output paths: checked before anything is written, and files written atomically."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import InputError


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
