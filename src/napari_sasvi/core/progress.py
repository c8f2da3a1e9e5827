"""Progress reporting is injected, never imported: long work takes a ``progress`` factory.

A factory is any callable ``progress(iterable, total=..., desc=...) -> iterable`` that yields the
items of ``iterable`` and reports them: ``tqdm.tqdm`` in the CLI, a napari progress bar in the
shell, :func:`no_progress` (the default) in tests and the library.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class ProgressFactory(Protocol):
    def __call__(self, iterable: Iterable[T], *, total: int | None = ..., desc: str | None = ...) -> Iterable[T]: ...


def no_progress(iterable: Iterable[T], *, total: int | None = None, desc: str | None = None, **_: Any) -> Iterator[T]:
    """The default progress factory: reports nothing."""
    yield from iterable
