"""Instance mode's part of the output store: the ``tracks`` array (track ids beside the class ids)
and the track table recorded with every finished frame (see :mod:`.sasvi_store`)."""

from __future__ import annotations

import numpy as np

from ..instances.types import NO_TRACK, TRACK_DTYPE, TrackInfo

TRACKS = "tracks"
DESCRIPTION = (
    "tracks: SASVi's track ids (0 = no track), one per object; the track table (id -> class, first and last "
    "frame, mean overseer score, parent) is in sasvi_progress.json under 'tracks'"
)


def create_tracks_array(group, n_frames: int, frame_size: tuple[int, int]):
    """The (T, H, W) uint16 array of track ids, one chunk per frame, 0 where no track is."""
    h, w = frame_size
    arr = group.create_array(
        TRACKS,
        shape=(n_frames, h, w),
        chunks=(1, h, w),
        dtype=np.dtype(TRACK_DTYPE).name,
        fill_value=NO_TRACK,
        dimension_names=("t", "y", "x"),
    )
    arr.attrs["description"] = "track ids; class of each id: the store's track table"
    return arr


def open_tracks_array(group):
    """The store's track-id array, or None (a class-only store)."""
    if TRACKS not in group:
        return None
    return group[TRACKS].with_config({"write_empty_chunks": True})


def table_from_progress(progress: dict) -> dict[int, TrackInfo]:
    """The recorded track table, id -> :class:`TrackInfo` ({} for class-only stores)."""
    return {int(d["id"]): TrackInfo.from_dict(d) for d in progress.get(TRACKS) or []}


def table_to_json(table: dict[int, TrackInfo]) -> list[dict]:
    return [table[k].to_dict() for k in sorted(table)]


def class_lut(table: dict[int, TrackInfo], no_label: int) -> np.ndarray:
    """uint8 lookup track id -> class id (``no_label`` for 0 and unknown ids)."""
    lut = np.full(max(table, default=0) + 1, no_label, np.uint8)
    for k, info in table.items():
        lut[k] = info.class_id
    return lut


__all__ = ["TRACKS", "class_lut", "create_tracks_array", "open_tracks_array", "table_from_progress", "table_to_json"]
