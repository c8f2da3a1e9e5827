"""What instance mode passes around: one object on one frame (:class:`Instance`), an overseer that
gives them (:class:`InstanceOverseer`), a track of the result (:class:`TrackInfo`), and a small
run-length code for masks kept in JSON (a resumable run's identity state)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

#: the value of pixels of no track in a track-id map (track ids start at 1)
NO_TRACK = 0
#: dtype of track-id maps: up to 65535 tracks in one video
TRACK_DTYPE = np.uint16


@dataclass(frozen=True)
class Instance:
    """One object on one frame.

    Attributes:
        class_id: its class (an id of the run's class table).
        mask: bool (H, W).
        score: the overseer's confidence in [0, 1] (1 for annotations).
        source_id: the object's id in the file it was read from (an instance label file's id,
            a COCO annotation's track or instance id, a LabelMe group id), or None (a model's
            detection): ground truth keeps its identity across frames through it.
    """

    class_id: int
    mask: np.ndarray
    score: float = 1.0
    source_id: int | None = None


@runtime_checkable
class InstanceOverseer(Protocol):
    """An overseer that gives objects, not merged class masks (Mask R-CNN, DETR, Mask2Former, an
    instance label source replayed)."""

    needs_frames: bool
    name: str

    def predict_instances(self, frames: Sequence[np.ndarray] | None, indices: Sequence[int]) -> list[list[Instance]]:
        """For each of ``indices``: its objects (only those with pixels), any order."""
        ...

    def describe(self) -> dict: ...


@dataclass(frozen=True)
class TrackInfo:
    """One track of a result: its id, class, the first and last frame it has pixels on, the
    overseer's mean score over the frames it detected it, and the track it split from (or None);
    ``n_detected`` and ``score_sum``: the frames the overseer detected it on and their scores'
    sum (a resumed run goes on counting from them)."""

    id: int
    class_id: int
    first: int
    last: int
    mean_score: float = 1.0
    parent: int | None = None
    n_detected: int = 0
    score_sum: float = 0.0

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "class_id": self.class_id,
            "first": self.first,
            "last": self.last,
            "mean_score": round(float(self.mean_score), 6),
            "parent": self.parent,
            "n_detected": self.n_detected,
            "score_sum": float(self.score_sum),
        }

    @classmethod
    def from_dict(cls, d: dict) -> TrackInfo:
        parent = d.get("parent")
        return cls(
            int(d["id"]),
            int(d["class_id"]),
            int(d["first"]),
            int(d["last"]),
            float(d.get("mean_score", 1.0)),
            None if parent is None else int(parent),
            int(d.get("n_detected", 0)),
            float(d.get("score_sum", 0.0)),
        )


def rle_encode(mask: np.ndarray) -> dict:
    """A bool mask (H, W) as ``{"size": [H, W], "runs": [...]}``: lengths of alternating runs in
    row-major order, starting with a run of False (possibly 0)."""
    flat = np.asarray(mask, bool).ravel()
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        runs = [0, *runs]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "runs": [int(r) for r in runs]}


def rle_decode(rle: dict) -> np.ndarray:
    """The inverse of :func:`rle_encode`."""
    h, w = (int(v) for v in rle["size"])
    runs = np.asarray(rle["runs"], np.int64)
    if runs.sum() != h * w:
        raise ValueError(f"run lengths sum to {int(runs.sum())}, not {h} x {w}")
    values = np.zeros(len(runs), bool)
    values[1::2] = True
    return np.repeat(values, runs).reshape(h, w)


__all__ = ["NO_TRACK", "TRACK_DTYPE", "Instance", "InstanceOverseer", "TrackInfo", "rle_decode", "rle_encode"]
