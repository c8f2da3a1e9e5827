"""The CLI's one progress display: a tqdm bar on a terminal, plain log lines otherwise.

Every command drives a core generator (see :mod:`napari_sasvi.core.progress`) and shows its
``done``/``total`` items through a :class:`Progress`. When standard error is not a terminal (a
log file, a CI job, a cluster's output capture) a bar would write a carriage-return line per
update; there a line is written when another 10 % is done or 10 s passed, and at the end.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, TextIO

from .core.progress import drain

#: a log line when this share of the total is newly done, or this many seconds passed
LOG_EVERY_FRACTION = 0.10
LOG_EVERY_SECONDS = 10.0


class Progress:
    """Show ``done`` of ``total`` items of one task (``desc``).

    Args:
        total: the number of items (None: unknown, then lines say only how many are done).
        desc: the task's name, at the start of every line.
        unit: what an item is.
        leave: keep the bar on screen when closed (terminal only).
        stream: where to write (default: standard error); a bar is drawn only when it is a terminal.
    """

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str = "frame",
        *,
        initial: int = 0,
        leave: bool = True,
        stream: TextIO | None = None,
    ):
        self.total, self.desc, self.unit = total, desc, unit
        self.stream = stream if stream is not None else sys.stderr
        self.n = initial
        self.postfix = ""
        self._bar = None
        self._closed = False
        isatty = getattr(self.stream, "isatty", None)
        if isatty is not None and isatty():
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=total, desc=desc, unit=unit, initial=initial, leave=leave, dynamic_ncols=True, file=self.stream
            )
        self._logged_n = initial
        self._logged_t = time.monotonic()

    def update_to(self, done: int, postfix: str = "") -> None:
        """``done`` items are finished (``postfix``: e.g. the rate, shown beside the count)."""
        self.postfix = postfix or self.postfix
        if self._bar is not None:
            self._bar.update(done - self._bar.n)
            if postfix:
                self._bar.set_postfix_str(postfix, refresh=False)
            self.n = done
            return
        self.n = done
        now = time.monotonic()
        step = max(1, math.ceil((self.total or 0) * LOG_EVERY_FRACTION))
        if self.total and done >= self.total:
            return  # the closing line says it
        if done - self._logged_n >= step or now - self._logged_t >= LOG_EVERY_SECONDS:
            self._line()
            self._logged_n, self._logged_t = done, now

    def write(self, message: str) -> None:
        """A message line that does not break the bar (to standard output, as ``print``)."""
        if self._bar is not None:
            self._bar.write(message)
        else:
            print(message)

    def _line(self) -> None:
        if self.total:
            text = f"{self.desc}: {self.n}/{self.total} {self.unit}s ({100 * self.n // self.total}%)"
        else:
            text = f"{self.desc}: {self.n} {self.unit}s"
        if self.postfix:
            text += f", {self.postfix}"
        print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif self.n != self._logged_n or (self.total and self.n >= self.total):
            self._line()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Bars:
    """At most one :class:`Progress` open at a time, keyed by task: ``show(key, done, total)``
    opens a new one when the key changes (the previous one is closed); ``close()`` at the end."""

    def __init__(self, unit: str = "frame"):
        self.unit = unit
        self.key: Any = None
        self.current: Progress | None = None

    def show(self, key: Any, done: int, total: int | None, desc: str | None = None, postfix: str = "") -> Progress:
        if self.current is None or key != self.key:
            self.close()
            self.key, self.current = key, Progress(total, desc or str(key), self.unit)
        self.current.update_to(done, postfix)
        return self.current

    def write(self, message: str) -> None:
        if self.current is not None:
            self.current.write(message)
        else:
            print(message)

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
        self.current, self.key = None, None


def drive_evaluation(gen):
    """Run an evaluation generator: its notes printed, a progress display per video; returns its result."""
    from .core.metrics.evaluate import Progress as Evaluated
    from .core.metrics.evaluate import Reading

    bars = Bars()

    def on_item(item) -> None:
        if isinstance(item, Reading):
            bars.write(item.message)
        elif isinstance(item, Evaluated):
            bars.show(item.name, item.done, item.total)

    try:
        return drain(gen, on_item)
    finally:
        bars.close()
