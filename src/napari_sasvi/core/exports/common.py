"""What every export shares: the progress and summary it yields and returns, the stores it reads
(found in folders, opened together under one class table, their finished frames only), and the
frames it pairs with them, checked against the hashes the run recorded."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..datasets import ClassTable
from ..errors import InputError
from ..store.integrity import has_sasvi_attrs

WRITTEN_BY = "napari-sasvi"


@dataclass(frozen=True)
class ExportProgress:
    """``done`` of ``total`` frames exported (all stores together); ``video`` is being written."""

    done: int
    total: int
    video: str


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote: its main path, frames per video, and notes for the user (partial
    stores, dropped labels, ...)."""

    format: str
    path: Path
    frames: dict[str, int]
    notes: list[str] = field(default_factory=list)


@dataclass
class Source:
    """One store opened for export: its name, the array exported, its finished frames, and where
    its frames are when they moved (``frames_arg``)."""

    name: str
    store: Any  # SasviStore
    array: Any  # zarr array (T, H, W)
    n: int  # finished frames
    frames_arg: Any = None

    def stack(self):
        """The store's frames, checked against the run's recorded input (shape and file names),
        each frame read then checked against its recorded hash by :meth:`frame`."""
        from ..inputs.frames import open_frames
        from ..store.fingerprint import InputLedger, same_video

        if getattr(self, "_stack", None) is not None:
            return self._stack
        where = self.frames_arg if self.frames_arg is not None else self.store.frames_path
        if where is None:
            raise InputError(
                f"{self.store.path} records no frames (it was made from an array); give the frames with --frames."
            )
        if isinstance(where, (str, os.PathLike)) and not Path(where).exists():
            raise InputError(
                f"The frames of {self.store.path} are not at {where} any more; give their new place with --frames."
            )
        stack = open_frames(where, name=self.name)
        want = self.store.signature.get("input", {})
        if want and not same_video(stack, want):
            raise InputError(
                f"The frames at {where} ({stack.shape[0]} frames) are not the video {self.store.path} was made "
                f"from ({want.get('name')}, {want.get('shape', ['?'])[0]} frames); give the right ones with --frames."
            )
        # every frame read is compared with the hash the run recorded (read-only: nothing is written)
        stack.on_read = InputLedger(self.store.group, stack, str(self.store.path), read_only=True).check
        self._stack = stack
        return stack

    def frame(self, t: int) -> np.ndarray:
        return self.stack().frame(t)

    def labels(self, t: int) -> np.ndarray:
        """Frame t's labels; a value that is neither a class of the store's table nor its no-label
        value is an error (an export never guesses what it means)."""
        lab = np.asarray(self.array[t])
        if getattr(self, "_valid", None) is None:
            classes = self.store.classes
            self._valid = np.zeros(256, bool)
            self._valid[list(classes.ids)] = True
            self._valid[classes.no_label] = True
        if not self._valid[lab].all():
            bad = sorted(int(v) for v in np.unique(lab[~self._valid[lab]]))
            raise InputError(
                f"{self.name}: frame {t} holds label values {bad} that are not classes of the store's table "
                f"{self.store.classes.name!r}; nothing more is exported. Fix the store (napari-sasvi edit) first."
            )
        return lab


def find_stores(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Stores named directly, or every store inside a folder (a batch run's output)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if (p / "zarr.json").exists():
            out.append(p)
        elif p.is_dir():
            # the stores of a batch, not other zarr groups beside them (an OME-Zarr export, say)
            found = sorted(q for q in p.iterdir() if (q / "zarr.json").exists() and has_sasvi_attrs(q))
            if not found:
                raise InputError(f"{p} is neither a SASVi store nor a folder of stores (no zarr.json inside).")
            out.extend(found)
        else:
            raise InputError(f"{p} does not exist; give a store (.zarr folder) or a folder of stores.")
    if not out:
        raise InputError("No store given to export.")
    return out


def open_sources(stores, array: str, frames: Sequence | None) -> tuple[list[Source], ClassTable, list[str]]:
    from ..store.sasvi_store import SasviStore

    paths = find_stores(stores) if not isinstance(stores, (str, os.PathLike)) else find_stores([stores])
    if frames is not None and len(frames) != len(paths):
        raise InputError(f"{len(frames)} frame paths for {len(paths)} stores; give one --frames per store.")
    if array not in ("labels", "overseer"):
        raise InputError(f"array must be labels or overseer, got {array!r}.")
    sources, notes, table = [], [], None
    for i, p in enumerate(paths):
        store = SasviStore.read(p)
        classes = store.classes
        if table is None:
            table = classes
        elif classes.to_dict() != table.to_dict():
            raise InputError(
                f"{p} uses the class table {classes.name!r}, the other stores {table.name!r}; "
                "export stores of one class table together."
            )
        base = p.resolve().name  # "." or ".." name the folder they stand for
        name = base[: -len(".zarr")] if base.endswith(".zarr") else base
        n = min(store.frames_done, store.n_frames)
        if n == 0:
            raise InputError(f"{p} holds no finished frame yet; run (or resume) it first.")
        if n < store.n_frames:
            notes.append(f"{name}: only {n} of {store.n_frames} frames are finished; those are exported.")
        sources.append(Source(name, store, store.group[array], n, frames[i] if frames is not None else None))
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise InputError(f"Two stores share a name ({', '.join(sorted(names))}); rename one.")
    return sources, table, notes


def frame_range(src: Source, every: int) -> range:
    return range(0, src.n, every)


def check_every(every: int) -> None:
    if every < 1:
        raise InputError(f"every must be 1 or more, got {every}.")


def written_by_us(marker: Path) -> bool:
    try:
        return json.loads(marker.read_text(encoding="utf-8")).get("written_by", "").startswith(WRITTEN_BY)
    except (OSError, ValueError, AttributeError):
        return False
