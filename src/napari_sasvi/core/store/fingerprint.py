"""What a store remembers of its input frames, so that a resumed run trusts content, not names.

The run signature holds a cheap *structural* fingerprint of the frames (kind, shape, frame file
names), which refuses another video at once. Content is checked frame by frame: every frame the
run reads is hashed as it is read (16-byte blake2b of its RGB pixels) and the hash is kept in the
store (``input_hashes``, (T, 16) uint8, zeros = not read yet). A frame read again, in this run or
a resumed one, must hash the same, else :class:`~.errors.InputChangedError` stops the run with
the store as it was. For frame folders the store also keeps each file's (size, mtime); on resume,
every finished frame whose file changed on disk is decoded and checked, so a changed frame is
noticed even where the resumed run would not read it again.

The hashes are kept in memory as frames are read and written to the store in batches (every
:data:`FLUSH_FRAMES` frames or :data:`FLUSH_SECONDS` seconds, and when the run ends, however it
ends): a zarr write costs about as much CPU as decoding a third of a frame, and a fast run reads
tens of frames a second. A process killed outright (SIGKILL, power loss) can lose the hashes of
the frames read in its last seconds; those frames are then hashed afresh when they are read
again, and not compared on resume.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..errors import InputChangedError

log = logging.getLogger(__name__)

HASHES, STATS = "input_hashes", "input_stats"
_CHUNK = 4096  # frames per chunk of the hash arrays: a write rewrites 64 KiB at most
#: frames whose hashes are kept in memory before they are written to the store, at most; and the
#: seconds the first of them waits at most (a slow run writes about as often as it reads)
FLUSH_FRAMES, FLUSH_SECONDS = 32, 2.0


def same_video(stack, recorded: dict) -> bool:
    """Whether ``stack`` is the video a store's signature recorded (its ``input`` block): the same
    shape and structure (file names, or the video file). Content is checked frame by frame by
    :class:`InputLedger`."""
    return list(stack.shape) == list(recorded.get("shape", [])) and structural_fingerprint(stack) == recorded.get(
        "fingerprint"
    )


def frame_digest(frame: np.ndarray) -> np.ndarray:
    """16-byte blake2b of a frame's pixels (shape and dtype included), as uint8."""
    a = np.ascontiguousarray(frame)
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{a.shape}{a.dtype}".encode())
    h.update(a.tobytes())
    return np.frombuffer(h.digest(), np.uint8)


def recorded_digest(group, t: int) -> np.ndarray | None:
    """The content hash a store's zarr ``group`` recorded for frame t (as :func:`frame_digest`),
    or None where none was recorded (the frame was never read, or a store written before hashes)."""
    if HASHES not in group:
        return None
    h = np.asarray(group[HASHES][t])
    return h if h.any() else None


def structural_fingerprint(stack) -> dict:
    """Kind, shape and (folders) the ordered file names: what refuses another video at once."""
    src = stack.source
    files = getattr(src, "files", None)
    out = {"kind": type(src).__name__, "shape": list(stack.shape)}
    if files is not None:
        out["names"] = hashlib.sha256("\n".join(p.name for p in files).encode()).hexdigest()
    return out


def _stat(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


class InputLedger:
    """Per-frame content hashes of a run's frames, kept in the store's zarr group.

    Install it as the frame stack's read hook for the length of a run (``with
    ledger.reading(stack): ...``); every frame the tracker or the overseer reads then passes
    through :meth:`check`, and what it recorded is in the store once the block ends.
    """

    def __init__(self, group, stack, store_path: str, *, read_only: bool = False):
        """``read_only``: only compare (exports read a finished store; a frame with no recorded
        hash passes, nothing is written)."""
        self.stack = stack
        self.store_path = store_path
        self.read_only = read_only
        n = len(stack)
        if HASHES not in group and not read_only:
            group.create_array(HASHES, shape=(n, 16), chunks=(min(n, _CHUNK), 16), dtype="uint8", fill_value=0)
        self._hashes = group[HASHES] if HASHES in group else None
        self._known = np.asarray(self._hashes[:]) if self._hashes is not None else np.zeros((n, 16), np.uint8)
        self._files = getattr(stack.source, "files", None)
        self._stats = None
        if self._files is not None and not read_only:
            if STATS not in group:
                group.create_array(STATS, shape=(n, 2), chunks=(min(n, _CHUNK), 2), dtype="int64", fill_value=-1)
            self._stats = group[STATS]
        # file stats as stored, and the frames recorded here but not written to the store yet
        self._stat_known = np.asarray(self._stats[:]) if self._stats is not None else None
        self._unwritten: set[int] = set()
        self._since = 0.0  # when the oldest unwritten frame was recorded (perf_counter)
        self.writes = 0  # zarr writes of hashes (tests count them)
        self.checked = 0  # frames compared against a stored hash (tests count them)
        # frames are read from more than one thread (the flow tracker reads the next frame ahead),
        # and several frames' hashes share a zarr chunk: one check at a time
        self._lock = threading.Lock()

    def _name(self, t: int) -> str:
        return f"frame {t} ({self._files[t].name})" if self._files is not None else f"frame {t}"

    def _refuse(self, t: int) -> InputChangedError:
        return InputChangedError(
            f"{self._name(t)} differs from the frame the store {self.store_path} was made from.\n"
            "  The store is kept as it is. Restore the original frame to continue, or choose a new output "
            "path (or delete the store) to start over with the new frames."
        )

    @contextmanager
    def reading(self, stack) -> Iterator[InputLedger]:
        """Check every frame ``stack`` decodes while the block runs; the hashes recorded are
        written to the store when it ends, by an error or an interrupt too."""
        stack.on_read = self.check
        try:
            yield self
        finally:
            stack.on_read = None
            self.flush()

    def check(self, t: int, frame: np.ndarray) -> None:
        """Hash frame t; compare with the stored hash, or record it when t is read the first time
        (written to the store with the next batch)."""
        d = frame_digest(frame)
        with self._lock:
            self._record(t, d)
            if self._unwritten and (
                len(self._unwritten) >= FLUSH_FRAMES or time.perf_counter() - self._since >= FLUSH_SECONDS
            ):
                self._write()

    def flush(self) -> None:
        """Write the hashes (and file stats) recorded since the last write to the store."""
        with self._lock:
            self._write()

    def _write(self) -> None:
        if not self._unwritten:
            return
        ts = sorted(self._unwritten)
        cuts = [i + 1 for i in range(len(ts) - 1) if ts[i + 1] - ts[i] > FLUSH_FRAMES]
        for run in np.split(np.array(ts), cuts):
            # one write a span of nearby frames: the rows between hold what the store holds
            lo, hi = int(run[0]), int(run[-1]) + 1
            self._hashes[lo:hi] = self._known[lo:hi]
            if self._stats is not None:
                self._stats[lo:hi] = self._stat_known[lo:hi]
            self.writes += 1
        self._unwritten.clear()

    def _record(self, t: int, d: np.ndarray) -> None:
        known = self._known[t]
        if known.any():
            self.checked += 1
            if not np.array_equal(known, d):
                raise self._refuse(t)
            return
        if self.read_only:
            return
        self._known[t] = d
        if self._stats is not None:
            self._stat_known[t] = _stat(self._files[t])
        if not self._unwritten:
            self._since = time.perf_counter()
        self._unwritten.add(t)

    def spot_check(self, done: int, k: int = 8) -> None:
        """On reopening a store: decode up to ``k`` finished frames spread over the video and check
        them (another video of the same shape, or a complete store's input swapped, is refused
        even where nothing is read again)."""
        if done == 0:
            return
        for t in sorted(set(np.linspace(0, done - 1, min(done, k)).round().astype(int).tolist())):
            if self._known[t].any():
                self.check(t, self.stack.source.read(t))

    def verify_files(self, done: int) -> int:
        """On resume: decode and check every finished frame whose file changed on disk (size or
        modification time). Returns how many were checked."""
        if self._stats is None or done == 0:
            return 0
        stored = self._stat_known[:done]
        n = 0
        for t in range(done):
            if stored[t, 0] < 0:
                continue
            if tuple(int(x) for x in stored[t]) != _stat(self._files[t]):
                n += 1
                self.check(t, self.stack.source.read(t))
                st = _stat(self._files[t])  # same content, newer time: trust it next time
                with self._lock:
                    self._stat_known[t] = st
                self._stats[t] = st
        if n:
            log.info("%d finished frames changed on disk; their content is the same", n)
        return n


__all__ = ["InputLedger", "frame_digest", "recorded_digest", "same_video", "structural_fingerprint"]
