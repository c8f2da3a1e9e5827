"""What the policy decides: prompts, segment starts and the event log."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class Prompt:
    """One prompt for one object at one frame: a mask, or points (N, 2) as (x, y) with labels."""

    obj_id: int
    kind: Literal["mask", "points"]
    mask: np.ndarray | None = None
    points: np.ndarray | None = None
    point_labels: np.ndarray | None = None


@dataclass(frozen=True)
class SegmentStart:
    """What the tracker must do at frame ``frame``: reset (or not), drop objects, add prompts."""

    frame: int
    reset: bool
    prompts: tuple[Prompt, ...]
    remove: tuple[int, ...] = ()


@dataclass(frozen=True)
class Event:
    """A decision of the policy. ``kind``: restart, trigger_deferred, duplicate, partial_duplicate,
    tie, dropout_ignored, no_prompt (D4), dummy, add_objects."""

    frame: int
    kind: str
    reason: str = ""
    mask_labels: tuple[int, ...] = ()
    point_labels: tuple[int, ...] = ()
    labels: tuple[int, ...] = ()

    def to_dict(self) -> dict:
        d = {"frame": self.frame, "kind": self.kind, "reason": self.reason}
        if self.kind in ("restart", "add_objects"):
            d["mask_labels"] = list(self.mask_labels)
            d["point_labels"] = list(self.point_labels)
        if self.labels:
            d["labels"] = list(self.labels)
        return d


def event_from_dict(d: dict) -> Event:
    return Event(
        frame=int(d["frame"]),
        kind=d["kind"],
        reason=d.get("reason", ""),
        mask_labels=tuple(d.get("mask_labels", ())),
        point_labels=tuple(d.get("point_labels", ())),
        labels=tuple(d.get("labels", ())),
    )
