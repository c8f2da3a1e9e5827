"""Progress: one mechanism, long work as generators of typed events.

Every long task of the core is a generator (house style, rule 2): it yields small frozen
dataclasses as it goes (a finished frame with ``done``/``total``, e.g. :class:`~.engine.FrameDone`,
:class:`~.evaluate.Progress`, :class:`~.exports.common.ExportProgress`, training's ``Stage`` and
``TrainStep``; notes; policy events) and *returns* its summary. Nothing in the core draws progress
or prints.

Whoever drives a generator decides how to show it:

* :func:`drain` runs it to its end, handing each item to ``on_item``, and returns the summary;
  :class:`Returning` is the same as a ``for`` loop with ``.value`` afterwards. They are the only
  way the package drives a generator (no hand-written ``next()``/``StopIteration`` loops).
* The CLI has one display (``napari_sasvi._cli_progress.Progress``): a bar when standard error is
  a terminal, plain log lines (every 10 % or 10 s) when it is not.
* The napari shell drives the same generators in a ``thread_worker`` and shows the items in its
  own progress bar.

One convenience for Python callers is built on these and adds nothing else: a ``progress``
callback ``progress(done, total, fps)`` (``segment_video``, ``run_sasvi``: ``drain`` with an
``on_item`` that calls it per finished frame).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


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
