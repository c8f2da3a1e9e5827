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
        """Attach the video (a :class:`~napari_sasvi.core.frames.FrameStack`)."""

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
) -> np.ndarray:
    """Label map (H, W) uint8 from per-object logits: a pixel belongs to the object with the
    highest logit if that logit is above ``threshold``; objects are painted in descending id order
    (on a tie the lower id wins, as in the reference); ids not in ``class_ids`` (the dummy) are
    not painted."""
    out = np.full(shape, no_label, np.uint8)
    wanted = set(class_ids)
    ids = sorted((i for i in logits if i in wanted), reverse=True)
    if not ids:
        return out
    stack = np.stack([logits[i] for i in ids])
    best = stack.max(0)
    for k, i in enumerate(ids):
        out[(stack[k] > threshold) & (stack[k] >= best)] = i
    return out
