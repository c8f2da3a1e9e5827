"""The replay overseer: frame-wise predictions that already exist act as the overseer.

Sources: anything :func:`napari_sasvi.core.inputs.labels.open_labels` reads (a folder of label PNGs in
class ids or a dataset's source values, a ``.npy`` stack, a zarr array or an output store of ours,
a (T, H, W) array such as a napari labels layer's data). Every frame is read and validated when
the overseer is built, before any output exists.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..datasets import ClassTable
from ..errors import InputError
from ..inputs.labels import open_labels
from .base import OverseerResult, label_map_to_result


def open_label_stack(source: Any, classes: ClassTable | None = None, encoding: str = "auto"):
    """The masks as a validated (T, H, W) stack of class ids (see :func:`..labels.open_labels`)."""
    return open_labels(source, classes, encoding, array="overseer")


class ReplayOverseer:
    """Existing frame-wise label maps as the overseer (see the module docstring)."""

    needs_frames = False

    def __init__(
        self,
        source: Any,
        classes: ClassTable,
        frame_count: int | None = None,
        frame_size: tuple[int, int] | None = None,
        encoding: str = "auto",
    ):
        self.source_desc = str(source) if isinstance(source, (str, os.PathLike)) else type(source).__name__

        def check(shape: tuple[int, int, int]) -> None:
            if frame_count is not None and shape[0] != frame_count:
                raise InputError(
                    f"The overseer masks hold {shape[0]} frames but the video has {frame_count}.\n"
                    f"  Masks: {self.source_desc}. They must be this video's frame-wise predictions, one per frame."
                )
            if frame_size is not None and shape[1:] != tuple(frame_size):
                raise InputError(
                    f"The overseer masks are {shape[2]}x{shape[1]} pixels but the frames are "
                    f"{frame_size[1]}x{frame_size[0]}.\n  Masks: {self.source_desc}. Resize them (nearest "
                    "neighbour) to the frame size."
                )

        self.labels = open_labels(source, classes, encoding, array="overseer", check_shape=check)
        self.classes = classes
        self.name = "replay"

    def label_map(self, t: int) -> np.ndarray:
        from ..inputs.lazy import read_frame

        return read_frame(self.labels, t)

    def predict(self, frames: Sequence[np.ndarray] | None, indices: Sequence[int]) -> list[OverseerResult]:
        ids = self.classes.ids
        return [
            label_map_to_result(
                self.label_map(t), ids, self.classes.no_label if self.classes.no_label not in ids else None
            )
            for t in indices
        ]

    def fingerprint(self) -> str:
        """A hash of every mask's content (read once when the overseer was built)."""
        return self.labels.fingerprint()

    def describe(self) -> dict:
        return {
            "type": "replay",
            "source": self.source_desc,
            "encoding": self.labels.encoding,
            "fingerprint": self.fingerprint(),
        }
