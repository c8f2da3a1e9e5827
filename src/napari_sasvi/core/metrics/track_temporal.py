"""Per-track temporal consistency: each track's T-IoU, the IoU of its masks on consecutive frames
where it has pixels on both (plain IoU, no warping: :mod:`.temporal`'s class-level T, per track).

Streaming: one frame's track map and the one before it are held, plus a few counters per track id
(65536 ids: about 2.5 MB), however long the video.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..instances.types import NO_TRACK

MAX_TRACK_ID = 65535  # track ids are uint16 (TRACK_DTYPE)


def check_track_map(track_map: np.ndarray) -> np.ndarray:
    """``track_map`` as a numpy (H, W) integer array of ids 0..65535, or an :class:`InputError`."""
    a = np.asarray(track_map)
    if a.ndim != 2 or a.dtype.kind not in "ui":
        raise InputError(f"A track-id map must be (H, W) integers, got {a.dtype} of shape {a.shape}.")
    if a.size and a.dtype.itemsize > 2 and (int(a.max()) > MAX_TRACK_ID or int(a.min()) < 0):
        raise InputError(f"Track ids must lie in 0..{MAX_TRACK_ID}; this map holds {int(a.min())}..{int(a.max())}.")
    return a


@dataclass(frozen=True)
class TrackTemporal:
    """One track's temporal consistency: ``t_iou`` = mean IoU of its masks over the ``pairs`` of
    consecutive frames it has pixels on both (None without such a pair)."""

    id: int
    class_id: int | None
    length: int
    first: int
    last: int
    pairs: int
    t_iou: float | None

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("id", "class_id", "length", "first", "last", "pairs", "t_iou")}


class TrackTemporalCounter:
    """Streams every prediction frame (:meth:`add`) into per-track T-IoU (:meth:`tracks`)."""

    def __init__(self) -> None:
        n = MAX_TRACK_ID + 1
        self.n_frames = 0
        self._length = np.zeros(n, np.int64)
        self._first = np.full(n, -1, np.int64)
        self._last = np.full(n, -1, np.int64)
        self._pairs = np.zeros(n, np.int64)
        self._iou_sum = np.zeros(n, np.float64)
        self._prev: np.ndarray | None = None
        self._prev_area: np.ndarray | None = None

    def add(self, track_map: np.ndarray) -> None:
        a = check_track_map(track_map)
        n = MAX_TRACK_ID + 1
        area = np.bincount(a.ravel(), minlength=n)
        area[NO_TRACK] = 0
        present = area > 0
        t = self.n_frames
        self._length += present
        self._first[present & (self._first < 0)] = t
        self._last[present] = t
        if self._prev is not None:
            if self._prev.shape != a.shape:
                raise InputError(
                    f"Track map {t} is {a.shape[::-1]} (W, H) pixels, the one before {self._prev.shape[::-1]}."
                )
            same = a == self._prev
            inter = np.bincount(a[same], minlength=n)
            both = present & (self._prev_area > 0)
            union = area + self._prev_area - inter
            self._pairs += both
            self._iou_sum[both] += inter[both] / union[both]
        self._prev, self._prev_area = a, area
        self.n_frames += 1

    def tracks(self, pred_classes: Mapping[int, int] | None = None) -> tuple[tuple[TrackTemporal, ...], float | None]:
        """(per-track rows by id, macro T-IoU over tracks with a pair of frames)."""
        rows = []
        for tid in np.flatnonzero(self._length):
            p = int(self._pairs[tid])
            v = float(self._iou_sum[tid] / p) if p else None
            cls = None if pred_classes is None else pred_classes.get(int(tid))
            rows.append(
                TrackTemporal(int(tid), cls, int(self._length[tid]), int(self._first[tid]), int(self._last[tid]), p, v)
            )
        values = [r.t_iou for r in rows if r.t_iou is not None]
        return tuple(rows), (float(np.mean(values)) if values else None)


__all__ = ["MAX_TRACK_ID", "TrackTemporal", "TrackTemporalCounter", "check_track_map"]
