"""Writing a run's finished frames on a thread of the store's own (:class:`FrameWriter`)."""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

log = logging.getLogger(__name__)


class FrameWriter:
    """Writes a run's finished frames into its store on a thread of its own, one frame in flight.

    The zarr writes and the progress file (about 10 ms a frame at 854 x 480, longer on a slow or
    network disk) overlap the next frame's computation. Nothing changes on disk: a frame is recorded as done by the progress file
    only after its labels have landed, in order. :meth:`submit` hands frame t over (the arrays and
    the event log must not change afterwards); :meth:`wait` returns the frame in flight once it is
    on disk, raising the write's error if it failed; :meth:`close` waits for it and stops the
    thread. With ``background=False`` :meth:`submit` writes at once (the same calls, in order).
    """

    def __init__(self, store, *, background: bool = True):
        self.store = store
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="sasvi-store") if background else None
        self._pending: tuple[int, Future | None] | None = None

    def submit(self, t: int, labels: np.ndarray, overseer: np.ndarray, events: list[dict], tracks=None) -> None:
        if self._pending is not None:
            raise RuntimeError(f"frame {t} handed over while frame {self._pending[0]} is still being written")
        if self._pool is None:
            self.store.write_frame(t, labels, overseer, events, tracks)
            self._pending = (t, None)
        else:
            self._pending = (t, self._pool.submit(self.store.write_frame, t, labels, overseer, events, tracks))

    def wait(self) -> int | None:
        """The frame handed over last, once it is on disk (None if there is none)."""
        if self._pending is None:
            return None
        t, fut = self._pending
        if fut is not None:
            try:
                fut.result()
            except Exception:
                self._pending = None  # its error is reported here, once
                raise
        # an interrupt while waiting (KeyboardInterrupt) leaves it pending: close() waits again
        self._pending = None
        return t

    def close(self) -> None:
        """Wait for the frame in flight (a run that stops on an error or is closed keeps it) and
        stop the thread. Its write's error, if any, is logged, not raised: a run that ends normally
        has waited already, and any other is on its way out with an error of its own."""
        try:
            self.wait()
        except Exception:
            log.exception("writing the last frame into %s failed; it is not recorded as done", self.store.path)
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None


__all__ = ["FrameWriter"]
