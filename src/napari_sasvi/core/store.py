"""The output store: a zarr group holding SASVi's labels and the overseer's, self-describing and
resumable.

Layout (zarr v3)::

    video.zarr/
      zarr.json              group attributes: "sasvi" (version, class table, parameters, models with
                             checksums, input fingerprint) and "multiscales"-free OME-style label metadata
      labels/                (T, H, W) uint8, one chunk per frame: SASVi's class ids
      overseer/              (T, H, W) uint8, one chunk per frame: the overseer's frame-wise labels
      sasvi_progress.json    frames finished, the event log, the last resumable segment start;
                             rewritten atomically after every finished frame
      sasvi_resume.npy       the previous output at that segment start (CaDIS merge only)
      sasvi_edits.json       corrections and pinned/skipped re-prompts made afterwards (see edits.py);
      sasvi_undo/            the labels each edit replaced; the attribute "edited" says there are some
      .sasvi_lock            held (flock) by the process running SASVi into the store: one writer at a time

Reopening a store made from the same inputs and parameters continues after the last finished frame;
a store made from anything else is refused (:class:`StoreMismatchError`), never overwritten.
"""

from __future__ import annotations

import copy
import json
import logging
import operator
import os
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from .datasets import ClassTable
from .errors import InputError, StoreBusyError, StoreMismatchError
from .fsutil import atomic_path, atomic_write_text, check_output_path
from .session import StoreSession

log = logging.getLogger(__name__)

PROGRESS = "sasvi_progress.json"
RESUME_ARRAY = "sasvi_resume.npy"
LOCK = ".sasvi_lock"


def _normalise(obj: Any) -> Any:
    """JSON round trip, so signatures compare the same whether fresh or read back."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def ome_label_metadata(classes: ClassTable) -> dict:
    """OME-Zarr's ``image-label`` block: colours and class names per label value."""
    return {
        "version": "0.5",
        "colors": [{"label-value": c.id, "rgba": [*c.color, 255]} for c in classes],
        "properties": [{"label-value": c.id, "class": c.name} for c in classes],
    }


class SasviStore:
    """A SASVi output store (see the module docstring). Use :meth:`open` to create or resume."""

    def __init__(self, path: Path, group, signature: dict):
        self.path = path
        self.group = group
        self.signature = signature
        # a frame is written whole, so zarr's test of each chunk against the fill value (to leave
        # an all-"no label" frame unwritten) only costs: about 1 ms of CPU a frame and array at
        # 854 x 480. The values read back are the same either way.
        self.labels = group["labels"].with_config({"write_empty_chunks": True})
        self.overseer = group["overseer"].with_config({"write_empty_chunks": True})
        self._progress = self._read_progress()
        # the event log as last written: the dicts and their JSON, so a log that only grew is
        # serialized only in its new events (the progress file is rewritten with every frame)
        self._logged: list[dict] = []
        self._logged_json: list[str] = []

    # -- opening ------------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | os.PathLike,
        *,
        n_frames: int,
        frame_size: tuple[int, int],
        classes: ClassTable,
        signature: dict,
        frames_path: str | os.PathLike | None = None,
    ) -> SasviStore:
        """Create the store, or reopen it to resume when its signature matches.

        A store of ours with no finished frame is replaced by a run with another signature
        (nothing is lost: a run that failed on its first frame does not block its corrected re-run).

        Args:
            signature: everything that decides the result (input fingerprint, parameters, models);
                compared as JSON with the stored one.
            frames_path: where the frames are (recorded, so that opening the store in napari shows them).
        """
        import zarr

        path = check_output_path(path, "output store")
        signature = _normalise(signature)
        if path.is_dir() and any(path.iterdir()):
            if not (path / "zarr.json").exists():
                raise InputError(
                    f"{path} exists and is not a SASVi store; choose a new output path (nothing was written)."
                )
            group = zarr.open_group(str(path), mode="r+")
            stored = group.attrs.get("sasvi", {}).get("signature")
            if stored is None:
                raise StoreMismatchError(
                    f"{path} is a zarr store but not one napari-sasvi wrote; choose a new output path."
                )
            if _normalise(stored) != signature:
                diff = sorted(k for k in set(stored) | set(signature) if stored.get(k) != signature.get(k))
                if cls(path, group, stored).frames_done > 0:
                    raise StoreMismatchError(
                        f"{path} was made from other inputs or settings (differs in: {', '.join(diff)}).\n"
                        "  It is kept as it is: choose a new output path, or delete that store to start over."
                    )
                log.info("replacing %s: it holds no finished frame (differs in: %s)", path, ", ".join(diff))
            else:
                return cls(path, group, signature)
        path.mkdir(parents=True, exist_ok=True)
        group = zarr.open_group(str(path), mode="w")
        h, w = frame_size
        for name in ("labels", "overseer"):
            arr = group.create_array(
                name,
                shape=(n_frames, h, w),
                chunks=(1, h, w),
                dtype="uint8",
                fill_value=classes.no_label,
                dimension_names=("t", "y", "x"),
            )
            arr.attrs["image-label"] = ome_label_metadata(classes)
        group.attrs["sasvi"] = {
            "version": __version__,
            "classes": classes.to_dict(),
            "signature": signature,
            "frames": str(Path(frames_path).resolve()) if frames_path is not None else None,
            "description": "labels: SASVi class ids; overseer: the overseer's frame-wise class ids; "
            f"{classes.no_label} = no label",
        }
        store = cls(path, group, signature)
        store._write_progress({"frames_done": 0, "events": [], "snapshot": None})
        return store

    @classmethod
    def read(cls, path: str | os.PathLike, *, writable: bool = False) -> SasviStore:
        """Open an existing store read-only (viewing, exporting, evaluating), or ``writable`` for
        :mod:`~.edits` (which writes the labels of finished frames only)."""
        import zarr

        path = Path(path)
        if not (path / "zarr.json").exists():
            raise InputError(f"{path} is not a SASVi store (no zarr.json).")
        group = zarr.open_group(str(path), mode="r+" if writable else "r")
        if "sasvi" not in group.attrs:
            raise InputError(f"{path} is a zarr store but not one napari-sasvi wrote.")
        return cls(path, group, group.attrs["sasvi"]["signature"])

    # -- metadata -----------------------------------------------------------------------------------
    @property
    def classes(self) -> ClassTable:
        return ClassTable.from_dict(self.group.attrs["sasvi"]["classes"])

    @property
    def n_frames(self) -> int:
        return int(self.labels.shape[0])

    @property
    def frames_done(self) -> int:
        return int(self._progress["frames_done"])

    @property
    def complete(self) -> bool:
        return self.frames_done >= self.n_frames

    @property
    def events(self) -> list[dict]:
        """The event log (copies: changing them changes nothing stored)."""
        return copy.deepcopy(self._progress["events"])

    @property
    def snapshot(self) -> dict | None:
        return self._progress.get("snapshot")

    def _read_progress(self) -> dict:
        p = self.path / PROGRESS
        if not p.exists():
            return {"frames_done": 0, "events": [], "snapshot": None}
        return json.loads(p.read_text(encoding="utf-8"))

    def _write_progress(self, progress: dict) -> None:
        self._progress = progress
        atomic_write_text(self.path / PROGRESS, self._progress_json(progress))

    def _progress_json(self, progress: dict) -> str:
        """``json.dumps(progress)``, reusing the JSON of the events already written when the log
        starts with the very same event objects (the pipeline's log only grows; any other log is
        serialized whole)."""
        events = progress.get("events")
        if not isinstance(events, list):
            return json.dumps(progress)
        k = len(self._logged)
        if not (k <= len(events) and all(map(operator.is_, self._logged, events))):
            self._logged, self._logged_json, k = [], [], 0
        self._logged.extend(events[k:])
        self._logged_json.extend(json.dumps(e) for e in events[k:])
        rest = json.dumps({key: v for key, v in progress.items() if key != "events"})
        return rest[:-1] + (", " if len(rest) > 2 else "") + '"events": [' + ", ".join(self._logged_json) + "]}"

    # -- writing ------------------------------------------------------------------------------------
    def write_frame(self, t: int, labels: np.ndarray, overseer: np.ndarray, events: list[dict]) -> None:
        """Write frame t's labels, then record it as done (frames must finish in order)."""
        if t != self.frames_done:
            raise RuntimeError(f"frame {t} written out of order (next expected {self.frames_done})")
        self.labels[t] = labels
        self.overseer[t] = overseer
        self._write_progress({**self._progress, "frames_done": t + 1, "events": events})

    def write_unfinished(self, t: int, labels: np.ndarray, overseer: np.ndarray) -> None:
        """Write frame t (at or after the next frame due) without recording it as done: a span
        computed backwards, recorded with :meth:`mark_done` once all of it is written."""
        if t < self.frames_done:
            raise RuntimeError(f"frame {t} is already done (frames done: {self.frames_done})")
        self.labels[t] = labels
        self.overseer[t] = overseer

    def mark_done(self, n: int, events: list[dict]) -> None:
        """Record frames up to ``n`` (exclusive) as done; the caller wrote them all."""
        if not self.frames_done <= n <= self.n_frames:
            raise RuntimeError(f"cannot mark {n} frames done (done: {self.frames_done}, frames: {self.n_frames})")
        self._write_progress({**self._progress, "frames_done": n, "events": events})

    def save_events(self, events: list[dict]) -> None:
        """Record the event log (the run's last decisions come after its last frame)."""
        self._write_progress({**self._progress, "events": events})

    def save_snapshot(self, snapshot: dict, previous_output: np.ndarray | None) -> None:
        """Record a resumable segment start (the policy's state before it, and the previous output)."""
        if previous_output is not None:
            with atomic_path(self.path / RESUME_ARRAY) as tmp:
                np.save(tmp, previous_output)
        self._write_progress({**self._progress, "snapshot": {**snapshot, "has_previous": previous_output is not None}})

    def load_previous_output(self) -> np.ndarray | None:
        snap = self.snapshot
        if not snap or not snap.get("has_previous"):
            return None
        return np.load(self.path / RESUME_ARRAY, allow_pickle=False)

    # -- one writer at a time ---------------------------------------------------------------------
    def lock(self) -> None:
        """Take the store's writer lock (an advisory ``flock`` on ``.sasvi_lock`` inside it, which the
        operating system releases when the process ends, so a killed run never leaves it held).
        Raises :class:`StoreBusyError` when another process (or another run in this one) holds it."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no advisory locks; runs are not guarded
            return
        if getattr(self, "_lock_file", None) is not None:
            return
        f = open(self.path / LOCK, "a+", encoding="utf-8")  # noqa: SIM115 - held for the run
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise StoreBusyError(
                f"{self.path} is being written by {holder}: the same run is going on elsewhere.\n"
                "  Wait for it (or stop it) and run again; nothing was changed."
            ) from None
        import socket

        f.seek(0)
        f.truncate()
        f.write(f"process {os.getpid()} on {socket.gethostname()}\n")
        f.flush()
        self._lock_file = f

    def unlock(self) -> None:
        f = getattr(self, "_lock_file", None)
        if f is not None:
            import fcntl

            fcntl.flock(f, fcntl.LOCK_UN)
            f.close()
            self._lock_file = None

    def session(self, stack=None, *, check: str = "spot") -> StoreSession:
        """Open a writing session on the store (:class:`~.session.StoreSession`): it takes the
        writer lock (:class:`StoreBusyError` when another run or edit holds it), hashes and checks
        every frame of ``stack`` read while it is open, hands out the sinks the engine writes
        frames into and keeps the edit log. Use it as a context manager: leaving it waits for the
        frame in flight, writes the frame hashes and always releases the lock.

        Args:
            stack: the store's frames (:class:`~.frames.FrameStack`), None when nothing is read.
            check: ``"resume"``, ``"spot"`` or ``"none"``: what is checked of the finished frames now.
        """
        return StoreSession(self, stack, check=check)

    @property
    def config(self) -> dict | None:
        """The :class:`~.config.RunConfig` (as a dict) the store's run used; None for stores
        written before napari-sasvi recorded it."""
        return self.group.attrs["sasvi"].get("config")

    def record_config(self, config: dict) -> None:
        """Record the run's :class:`~.config.RunConfig` (``to_dict()``) in the store's attributes."""
        attrs = dict(self.group.attrs["sasvi"])
        if attrs.get("config") != config:
            attrs["config"] = _normalise(config)
            self.group.attrs["sasvi"] = attrs

    @property
    def frames_path(self) -> Path | None:
        """Where the frames were when the store was made (None for frames from an array)."""
        p = self.group.attrs["sasvi"].get("frames")
        return Path(p) if p else None
