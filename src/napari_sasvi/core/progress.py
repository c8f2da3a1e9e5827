"""Progress reporting is injected, never imported: long work takes a ``progress`` factory.

A factory is any callable ``progress(iterable, total=..., desc=...) -> iterable`` that yields the
items of ``iterable`` and reports them: ``tqdm.tqdm`` in the CLI, a napari progress bar in the
shell, :func:`no_progress` (the default) in tests and the library.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")


class ProgressFactory(Protocol):
    def __call__(self, iterable: Iterable[T], *, total: int | None = ..., desc: str | None = ...) -> Iterable[T]: ...


def no_progress(iterable: Iterable[T], *, total: int | None = None, desc: str | None = None, **_: Any) -> Iterator[T]:
    """The default progress factory: reports nothing."""
    yield from iterable


R = TypeVar("R")


class Returning(Generic[T, R]):
    """Iterate a long-work generator's items; afterwards ``.value`` is what it returned (its
    summary). ``for item in (run := Returning(gen)): ...`` then ``run.value``."""

    def __init__(self, gen: Generator[T, Any, R]):
        self.gen = gen
        self.value: R | None = None

    def __iter__(self) -> Iterator[T]:
        self.value = yield from self.gen


def drain(gen: Generator[T, Any, R], on_item: Callable[[T], Any] | None = None) -> R:
    """Run a long-work generator to its end (``on_item`` sees each item); returns its return value."""
    run = Returning(gen)
    for item in run:
        if on_item is not None:
            on_item(item)
    return run.value
