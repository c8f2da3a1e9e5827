"""The output store: a zarr group holding SASVi's labels and the overseer's, self-describing and
resumable.

Layout (zarr v3)::

    video.zarr/
      zarr.json              group attributes: "sasvi" (version, class table, parameters, models with
                             checksums, input fingerprint) and "multiscales"-free OME-style label metadata
      labels/                (T, H, W) uint8, one chunk per frame: SASVi's class ids
      overseer/              (T, H, W) uint8, one chunk per frame: the overseer's frame-wise labels
      tracks/                instance mode only: (T, H, W) uint16, one chunk per frame: track ids
                             (0 = none); the track table is in the progress file (see tracks.py)
      sasvi_progress.json    frames finished, the event log, the last resumable segment start;
                             rewritten atomically after every finished frame
      sasvi_resume.npy       the previous output at that segment start (CaDIS merge only; the
                             snapshot names this file or sasvi_resume.1.npy, the two alternate)
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

from ... import __version__
from ..datasets import ClassTable
from ..errors import InputError, StoreBusyError, StoreDamagedError, StoreMismatchError
from ..fsutil import atomic_path, atomic_write_text, check_output_path, disk_full_as_error
from .integrity import check_files, damaged, has_sasvi_attrs, open_arrays, read_progress
from .session import StoreSession
from .tracks import create_tracks_array, open_tracks_array, table_from_progress, table_to_json

log = logging.getLogger(__name__)

PROGRESS = "sasvi_progress.json"
RESUME_ARRAY = "sasvi_resume.npy"
#: the snapshot's previous output alternates between two files, so that the one the recorded
#: snapshot names is never overwritten before the new snapshot is recorded (a write that fails
#: between the two, e.g. on a full disk, leaves the old pair intact)
RESUME_ARRAYS = (RESUME_ARRAY, "sasvi_resume.1.npy")
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


def _open_checked(path: Path, mode: str):
    """The store's zarr group, once its metadata and arrays are whole (:mod:`.integrity`)."""
    import zarr

    check_files(path)
    try:
        group = zarr.open_group(str(path), mode=mode)
    except Exception as e:  # noqa: BLE001 - zarr's errors for metadata it cannot parse vary
        raise damaged(path, f"zarr cannot open it ({e})") from None
    open_arrays(path, group)
    return group


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
        self.tracks = open_tracks_array(group)  # instance mode: track ids beside the class ids
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
        instances: bool = False,
    ) -> SasviStore:
        """Create the store, or reopen it to resume when its signature matches.

        A store of ours with no finished frame is replaced by a run with another signature
        (nothing is lost: a run that failed on its first frame does not block its corrected re-run).

        Args:
            signature: everything that decides the result (input fingerprint, parameters, models);
                compared as JSON with the stored one.
            frames_path: where the frames are (recorded, so that opening the store in napari shows them).
            instances: keep a track id per pixel beside the class id (a ``tracks`` array).
        """
        path = check_output_path(path, "output store")
        signature = _normalise(signature)
        if path.is_dir() and any(path.iterdir()):
            store = cls._reopen(path, signature)
            if store is not None:
                return store
        with disk_full_as_error(path, "no frame was finished yet"):
            return cls._create(path, n_frames, frame_size, classes, signature, frames_path, instances)

    @classmethod
    def _reopen(cls, path: Path, signature: dict) -> SasviStore | None:
        """The store at ``path`` to resume, or None where it may be replaced (no finished frame)."""
        if not (path / "zarr.json").exists():
            raise InputError(f"{path} exists and is not a SASVi store; choose a new output path (nothing was written).")
        try:
            group = _open_checked(path, "r+")
        except StoreDamagedError:
            # a store is made attributes first and progress file last: with the one and without
            # the other, its making stopped half-way (e.g. on a full disk) and it holds no frame
            if (path / PROGRESS).exists() or not has_sasvi_attrs(path):
                raise
            log.info("replacing %s: it was not made to the end", path)
            return None
        stored = group.attrs.get("sasvi", {}).get("signature")
        if stored is None:
            raise StoreMismatchError(
                f"{path} is a zarr store but not one napari-sasvi wrote; choose a new output path."
            )
        if _normalise(stored) != signature:
            diff = sorted(k for k in set(stored) | set(signature) if stored.get(k) != signature.get(k))
            old_p, new_p = stored.get("params") or {}, signature.get("params") or {}
            if "params" in diff and isinstance(old_p, dict) and isinstance(new_p, dict):
                keys = sorted(k for k in set(old_p) | set(new_p) if old_p.get(k) != new_p.get(k))
                shown = ", ".join(
                    f"{k} {old_p.get(k, 'absent')} in the store, {new_p.get(k, 'absent')} now" for k in keys
                )
                diff[diff.index("params")] = f"params: {shown}"
            if cls(path, group, stored).frames_done > 0:
                raise StoreMismatchError(
                    f"{path} was made from other inputs or settings (differs in: {', '.join(diff)}).\n"
                    "  It is kept as it is: choose a new output path, or delete that store to start over."
                )
            log.info("replacing %s: it holds no finished frame (differs in: %s)", path, ", ".join(diff))
            return None
        store = cls(path, group, signature)
        store._check_resumable()
        return store

    @classmethod
    def _create(cls, path, n_frames, frame_size, classes, signature, frames_path, instances=False) -> SasviStore:
        import zarr

        path.mkdir(parents=True, exist_ok=True)
        sasvi = {
            "version": __version__,
            "classes": classes.to_dict(),
            "signature": signature,
            "frames": str(Path(frames_path).resolve()) if frames_path is not None else None,
            "description": "labels: SASVi class ids; overseer: the overseer's frame-wise class ids; "
            f"{classes.no_label} = no label",
        }
        group = zarr.open_group(str(path), mode="w", attributes={"sasvi": sasvi})  # first: see _reopen
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
        if instances:
            create_tracks_array(group, n_frames, frame_size)
        store = cls(path, group, signature)
        store._write_progress({"frames_done": 0, "events": [], "snapshot": None})
        return store

    @classmethod
    def read(cls, path: str | os.PathLike, *, writable: bool = False) -> SasviStore:
        """Open an existing store read-only (viewing, exporting, evaluating), or ``writable`` for
        :mod:`~.edits` (which writes the labels of finished frames only). A store whose files are
        missing or unreadable is a :class:`StoreDamagedError` naming the file."""
        path = Path(path)
        if not (path / "zarr.json").exists():
            raise InputError(f"{path} is not a SASVi store (no zarr.json).")
        group = _open_checked(path, "r+" if writable else "r")
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
        return read_progress(self.path, PROGRESS, self.n_frames)

    def _write_progress(self, progress: dict) -> None:
        with disk_full_as_error(self.path):
            atomic_write_text(self.path / PROGRESS, self._progress_json(progress))
        self._progress = progress  # only once on disk: a failed write records nothing

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
    def write_frame(
        self, t: int, labels: np.ndarray, overseer: np.ndarray, events: list[dict], tracks: tuple | None = None
    ) -> None:
        """Write frame t's labels, then record it as done (frames must finish in order).

        Args:
            tracks: instance mode: (track-id map (H, W) uint16, the track table up to frame t as
                id -> :class:`~..instances.types.TrackInfo`).
        """
        if t != self.frames_done:
            raise RuntimeError(f"frame {t} written out of order (next expected {self.frames_done})")
        progress = {**self._progress, "frames_done": t + 1, "events": events}
        with disk_full_as_error(self.path):
            self.labels[t] = labels
            self.overseer[t] = overseer
            if tracks is not None:
                if self.tracks is None:
                    raise RuntimeError(f"{self.path} has no tracks array (a class-only store)")
                self.tracks[t] = tracks[0]
                progress["tracks"] = table_to_json(tracks[1])
        self._write_progress(progress)

    @property
    def track_table(self) -> dict:
        """Instance mode: the tracks of the frames done, id -> :class:`~..instances.types.TrackInfo`
        ({} for a class-only store)."""
        return table_from_progress(self._progress)

    def save_track_table(self, table: dict) -> None:
        """Record the track table (an edit changed the tracks of finished frames)."""
        self._write_progress({**self._progress, "tracks": table_to_json(table)})

    def write_unfinished(self, t: int, labels: np.ndarray, overseer: np.ndarray) -> None:
        """Write frame t (at or after the next frame due) without recording it as done: a span
        computed backwards, recorded with :meth:`mark_done` once all of it is written."""
        if t < self.frames_done:
            raise RuntimeError(f"frame {t} is already done (frames done: {self.frames_done})")
        with disk_full_as_error(self.path):
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
        old = self._resume_file()
        name = None
        if previous_output is not None:
            name = RESUME_ARRAYS[1] if old == RESUME_ARRAYS[0] else RESUME_ARRAYS[0]
            with disk_full_as_error(self.path), atomic_path(self.path / name) as tmp:
                np.save(tmp, previous_output)
        snap = {**snapshot, "has_previous": name is not None}
        if name is not None:
            snap["previous"] = name
        self._write_progress({**self._progress, "snapshot": snap})
        if old is not None and old != name:
            (self.path / old).unlink(missing_ok=True)

    def _resume_file(self) -> str | None:
        """The file holding the recorded snapshot's previous output (None: it has none)."""
        snap = self.snapshot
        if not snap or not snap.get("has_previous"):
            return None
        name = snap.get("previous", RESUME_ARRAY)  # stores before RESUME_ARRAYS name none
        return name if name in RESUME_ARRAYS else RESUME_ARRAY

    def _check_resumable(self) -> None:
        """A store to resume: the snapshot it resumes from finds its previous output."""
        name = self._resume_file()
        if 0 < self.frames_done < self.n_frames and name is not None and not (self.path / name).is_file():
            raise damaged(self.path, f"{name}, which its last snapshot needs to resume, is missing")

    def load_previous_output(self) -> np.ndarray | None:
        name = self._resume_file()
        if name is None:
            return None
        try:
            return np.load(self.path / name, allow_pickle=False)
        except FileNotFoundError:
            raise damaged(self.path, f"{name}, which its last snapshot needs to resume, is missing") from None
        except (OSError, ValueError) as e:
            raise damaged(self.path, f"{name} cannot be read ({e})") from None

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
            with disk_full_as_error(self.path):
                self.group.attrs["sasvi"] = attrs

    @property
    def frames_path(self) -> Path | None:
        """Where the frames were when the store was made (None for frames from an array)."""
        p = self.group.attrs["sasvi"].get("frames")
        return Path(p) if p else None
