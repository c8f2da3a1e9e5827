"""Edits of an instance store (a run with ``--instances``): the edit works on track ids.

A correction is the frame's track-id map: the user paints an instance with its id (a new id needs
its class), the tracker propagates every track of the frame on, and each written frame gets its
track ids and, through each track's class, its class ids. The run's own additions inside the span
are added again at their frames with the track's mask as the store had it. A pin is refused (the
store keeps the overseer's classes, not its instances); a skip continues the run's tracks. After
the edit (and after its undo) the track table is recomputed from the tracks array.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..instances.types import NO_TRACK, TRACK_DTYPE, TrackInfo


class EditTrackSpace:
    """The span engine's id space for an instance edit: the store's tracks and the new ones."""

    no_label = NO_TRACK
    dtype = TRACK_DTYPE

    def __init__(self, ids):
        self.ids = set(int(i) for i in ids)


def check_track_mask(mask: np.ndarray, store, new_tracks: dict[int, int]) -> np.ndarray:
    """A correction's track-id map (H, W), checked: every id a track of the store or one of
    ``new_tracks`` (id -> class id) with a class of the table."""
    h, w = store.labels.shape[1:]
    mask = np.asarray(mask)
    if mask.shape != (h, w):
        raise InputError(f"The corrected frame is {mask.shape[1]}x{mask.shape[0]} pixels but the store's are {w}x{h}.")
    if mask.dtype.kind not in "ui" or (mask.size and (mask.min() < 0 or mask.max() > np.iinfo(TRACK_DTYPE).max)):
        raise InputError("A correction of an instance store is a map of track ids (0-65535): paint with track ids.")
    table, ids = store.track_table, set(store.classes.ids)
    for k, c in new_tracks.items():
        if k in table and table[k].class_id != c:
            raise InputError(f"Track {k} is a {store.classes.by_id(table[k].class_id).name}; give a new id for a {c}.")
        if c not in ids:
            raise InputError(f"Track {k}: class {c} is not a class of {store.classes.name}.")
    present = set(np.unique(mask).tolist()) - {NO_TRACK}
    unknown = sorted(present - set(table) - set(new_tracks))
    if unknown:
        raise InputError(
            f"The corrected frame holds track id(s) {', '.join(map(str, unknown[:8]))} that the store does not have: "
            "paint with an existing track's id, or give a new track's class."
        )
    return mask.astype(TRACK_DTYPE)


def class_lut(table: dict[int, TrackInfo], new_tracks: dict[int, int], no_label: int) -> np.ndarray:
    """uint8 lookup track id -> class id over the store's tracks and the new ones."""
    classes = {k: t.class_id for k, t in table.items()} | dict(new_tracks)
    lut = np.full(max(classes, default=0) + 1, no_label, np.uint8)
    for k, c in classes.items():
        lut[k] = c
    return lut


def rescan_track_table(store, new_tracks: dict[int, int] | None = None) -> dict[int, TrackInfo]:
    """The track table made again from the tracks array's finished frames: each track's first and
    last frame; its class, score and parent as recorded (a new track: its given class, no score);
    a track with no pixel left is dropped. Recorded in the store and returned."""
    old = store.track_table
    classes = {k: t.class_id for k, t in old.items()} | dict(new_tracks or {})
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for t in range(store.frames_done):
        for k in np.flatnonzero(np.bincount(np.asarray(store.tracks[t]).ravel())).tolist():
            if k != NO_TRACK:
                first.setdefault(k, t)
                last[k] = t
    table = {}
    for k in sorted(first):
        o = old.get(k)
        if o is not None:
            table[k] = TrackInfo(k, o.class_id, first[k], last[k], o.mean_score, o.parent, o.n_detected, o.score_sum)
        else:
            table[k] = TrackInfo(k, classes[k], first[k], last[k], 0.0, None)
    store.save_track_table(table)
    return table


__all__ = ["EditTrackSpace", "check_track_mask", "class_lut", "rescan_track_table"]
