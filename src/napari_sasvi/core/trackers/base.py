"""The tracker interface the policy drives, and how per-object logits become a label map."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol

import numpy as np


class Tracker(Protocol):
    """A promptable video tracker, one object per class id.

    Attributes:
        incremental: True when objects can be added to a running segment without a reset.
        encodes: frame index -> how many times the image encoder ran on it.
    """

    incremental: bool
    encodes: dict[int, int]

    def bind(self, frames) -> None:
        """Attach the video (a :class:`~napari_sasvi.core.inputs.frames.FrameStack`)."""

    def reset(self) -> None:
        """Forget every object, prompt and memory."""

    def add_mask(self, frame: int, obj_id: int, mask: np.ndarray | None) -> None:
        """Prompt ``obj_id`` at ``frame`` with a bool mask (H, W); None means an empty mask."""

    def add_points(self, frame: int, obj_id: int, points_xy: np.ndarray, labels: np.ndarray) -> None:
        """Prompt ``obj_id`` at ``frame`` with points (N, 2) in (x, y) pixels and labels (1 = inside)."""

    def remove_objects(self, obj_ids: Iterable[int]) -> None:
        """Stop tracking these objects (incremental trackers only)."""

    def propagate(self, start: int) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        """From ``start`` to the end: (t, {obj_id: logits (H, W) float32}) per frame."""

    def describe(self) -> dict:
        """What to record about the tracker (type, model, checkpoint hash, image size)."""


def compose_labels(
    logits: Mapping[int, np.ndarray],
    shape: tuple[int, int],
    no_label: int,
    class_ids: Iterable[int],
    threshold: float = 0.0,
    dtype=np.uint8,
) -> np.ndarray:
    """Label map (H, W) ``dtype`` (uint8; instance mode's track ids: uint16) from per-object logits: a pixel belongs to the object with the
    highest logit if that logit is above ``threshold``; on a tie the lower id wins (as in the
    reference, which paints objects in descending id order); a pixel where any object's logit is
    NaN is not painted; ids not in ``class_ids`` (the dummy) are not painted."""
    wanted = class_ids if isinstance(class_ids, (set, frozenset)) else set(class_ids)
    ids = sorted(i for i in logits if i in wanted)
    if not ids:
        return np.full(shape, no_label, dtype)
    # one pass per object, ascending ids: an object takes a pixel where it is strictly above the
    # best so far, so a tie stays with the lower id; NaN wins the maximum and paints nothing
    best = np.array(logits[ids[0]], dtype=np.result_type(*(logits[i] for i in ids)), copy=True)
    out = np.full(shape, ids[0], dtype)
    for i in ids[1:]:
        v = logits[i]
        out[v > best] = i
        np.maximum(best, v, out=best)
    out[~(best > threshold)] = no_label
    return out
