"""The instance replay overseer: instance label files (instance PNGs, COCO, LabelMe, palette PNGs;
see :mod:`..inputs.instance_labels`) act as the overseer, object by object or merged per class.

Sparse ground truth is replayed as it is: a frame without an annotation gives no object (and an
empty class result), exactly like an overseer that saw nothing there.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ..datasets import ClassTable
from ..inputs.instance_labels import InstanceSource, open_instance_labels
from ..instances.types import Instance
from .base import OverseerResult, merge_instances


class InstanceReplayOverseer:
    """Instance label files as the overseer (an :class:`..instances.types.InstanceOverseer` and a
    class :class:`.base.Overseer` at once).

    Args:
        source: an :class:`InstanceSource`, or a path that :func:`open_instance_labels` reads
            with ``classes`` and the frame arguments (every file is read and checked here,
            before any output exists).
        classes: the class table (None: the one the files give; see ``classes`` then).

    Attributes:
        source: the instance source replayed.
        classes: its class table, which the ids of every result refer to.
    """

    needs_frames = False

    def __init__(
        self,
        source: InstanceSource | str | os.PathLike,
        classes: ClassTable | None = None,
        *,
        frame_count: int | None = None,
        frame_size: tuple[int, int] | None = None,
        frame_names: Sequence[str] | None = None,
    ):
        if not isinstance(source, InstanceSource):
            source = open_instance_labels(
                source, classes, frame_count=frame_count, frame_size=frame_size, frame_names=frame_names
            )
        self.source = source
        self.classes = source.class_table
        self.name = f"replay_instances ({source.kind})"

    def predict_instances(self, frames: Sequence[np.ndarray] | None, indices: Sequence[int]) -> list[list[Instance]]:
        """For each of ``indices``: its annotated objects ([] for a frame without annotation)."""
        return [self.source.instances(int(t)) for t in indices]

    def predict(self, frames: Sequence[np.ndarray] | None, indices: Sequence[int]) -> list[OverseerResult]:
        """For each of ``indices``: its objects merged per class ({} for a frame without annotation)."""
        return [merge_instances(objs) for objs in self.predict_instances(frames, indices)]

    def fingerprint(self) -> str:
        """A hash of the files' content, their frames and the class table (see :meth:`InstanceSource.fingerprint`)."""
        return self.source.fingerprint()

    def describe(self) -> dict:
        return {
            "type": "replay_instances",
            "kind": self.source.kind,
            "source": self.source.desc,
            "annotated": len(self.source.annotated),
            "fingerprint": self.fingerprint(),
        }


class AnchoredInstances:
    """An instance overseer with annotated frames (``--anchors`` with ``--instances``): on each
    annotated frame the annotation's objects, with the identities the files give, replace the
    overseer's detections, and SASVi re-prompts there (``anchor_frames``); the detector's
    detections of an annotated object elsewhere continue its track (:mod:`..instances.identity`)."""

    def __init__(self, overseer, annotations: InstanceSource):
        self.overseer, self.annotations = overseer, annotations
        self.needs_frames = overseer.needs_frames
        self.name = f"{overseer.name} + annotated frames ({annotations.kind})"
        self.anchor_frames = frozenset(int(t) for t in annotations.annotated)

    def predict_instances(self, frames: Sequence[np.ndarray] | None, indices: Sequence[int]) -> list[list[Instance]]:
        found = self.overseer.predict_instances(frames, indices)
        pairs = zip(indices, found, strict=True)
        return [self.annotations.instances(int(t)) if t in self.anchor_frames else f for t, f in pairs]

    def predict(self, frames: Sequence[np.ndarray] | None, indices: Sequence[int]) -> list[OverseerResult]:
        return [merge_instances(objs) for objs in self.predict_instances(frames, indices)]

    def describe(self) -> dict:
        return {
            "type": "anchored_instances",
            "overseer": self.overseer.describe(),
            "anchors": self.annotations.describe(),
        }


__all__ = ["AnchoredInstances", "InstanceReplayOverseer", "merge_instances"]
