"""What the exports that keep object identity share: which stores have track ids (instance mode),
their track table checked against the class table, and each frame's track-id map checked against
that table (an export never guesses what an unknown id means)."""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..datasets import ClassTable
from ..errors import InputError
from ..instances.types import NO_TRACK, TrackInfo
from .common import Source

#: what the pixels of an export name: the class (one mask per class) or the track (one per object)
Ids = Literal["class", "track"]
IDS = ("class", "track")


def check_ids(ids: str | None) -> None:
    if ids is not None and ids not in IDS:
        raise InputError(f"ids must be class or track, got {ids!r}.")


def require_tracks(src: Source, array: str, classes: ClassTable, what: str) -> dict[int, TrackInfo]:
    """The track table of ``src``, or an :class:`InputError` saying why ``what`` cannot have one:
    a class-only store, or the overseer's array (class ids only)."""
    if src.store.tracks is None:
        raise InputError(
            f"{src.name} is a class-only store (no track ids); {what} needs a store segmented with --instances."
        )
    if array != "labels":
        raise InputError(f"Track ids belong to SASVi's labels, not the {array} array; {what} needs --array labels.")
    table = src.store.track_table
    unknown = sorted({info.class_id for info in table.values()} - set(classes.ids))
    if unknown:
        raise InputError(
            f"{src.name}: its track table names class ids {unknown} that are not classes of the store's table "
            f"{classes.name!r}; fix the store (napari-sasvi edit) first."
        )
    return table


def table_for(src: Source, array: str, classes: ClassTable, ids: str | None, what: str) -> dict[int, TrackInfo] | None:
    """The track table to export ``src`` by (None: export it by class). ``ids`` None exports by track
    where the store has track ids and the array is SASVi's labels, by class otherwise."""
    if ids == "class":
        return None
    if ids is None and (src.store.tracks is None or array != "labels"):
        return None
    return require_tracks(src, array, classes, what)


def track_map(src: Source, t: int, table: dict[int, TrackInfo]) -> np.ndarray:
    """Frame t's track ids (H, W) uint16, each 0 or an id of ``table``."""
    tm = np.asarray(src.store.tracks[t])
    present = np.unique(tm)
    bad = [int(v) for v in present if v != NO_TRACK and int(v) not in table]
    if bad:
        raise InputError(
            f"{src.name}: frame {t} holds track ids {bad} that are not in the store's track table; nothing more "
            "is exported. Fix the store (napari-sasvi edit) first."
        )
    return tm


__all__ = ["IDS", "Ids", "check_ids", "require_tracks", "table_for", "track_map"]
