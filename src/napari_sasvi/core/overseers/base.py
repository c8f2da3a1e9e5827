"""The overseer interface and the look-ahead cache that calls it in batches, once per frame."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import NamedTuple, Protocol

import numpy as np

from ..inputs.labels import present_values
from ..instances.types import Instance


class ClassMask(NamedTuple):
    """One class on one frame: a bool mask (H, W) and the overseer's confidence in [0, 1]."""

    mask: np.ndarray
    score: float


#: One frame's overseer result: class id -> (mask, score), only classes with at least one pixel.
OverseerResult = dict[int, ClassMask]


class Overseer(Protocol):
    """A frame-wise model: a batch of frames in, for each frame a map class id -> (mask, score).

    Attributes:
        needs_frames: False for overseers that do not look at pixels (replay): the cache then
            decodes no frame for them.
        name: short description recorded in the output store.
    """

    needs_frames: bool
    name: str

    def predict(self, frames: Sequence[np.ndarray] | None, indices: Sequence[int]) -> list[OverseerResult]:
        """Results for ``indices``; ``frames`` are their (H, W, 3) uint8 RGB images (or None)."""
        ...

    def describe(self) -> dict:
        """What to record about this overseer (type, checkpoint and its hash, thresholds)."""
        ...


def merge_instances(found: Iterable[Instance]) -> OverseerResult:
    """One frame's objects as class masks: each class the union of its objects, scored by the best."""
    res: OverseerResult = {}
    for d in found:
        if d.class_id in res:
            old = res[d.class_id]
            res[d.class_id] = ClassMask(old.mask | d.mask, max(old.score, float(d.score)))
        else:
            res[d.class_id] = ClassMask(np.asarray(d.mask, bool), float(d.score))
    return {c: cm for c, cm in res.items() if cm.mask.any()}


def label_map_to_result(labels: np.ndarray, class_ids: Iterable[int], no_label: int | None = None) -> OverseerResult:
    """Split a label map (H, W) into per-class masks for the ids in ``class_ids`` (score 1)."""
    wanted = set(int(c) for c in class_ids)
    return {c: ClassMask(labels == c, 1.0) for c in present_values(labels) if c in wanted and c != no_label}


def result_to_label_map(
    result: Mapping[int, np.ndarray | ClassMask], shape: tuple[int, int], no_label: int
) -> np.ndarray:
    """Paint per-class masks into a uint8 label map in descending id order (the lower id wins an
    overlap, as in the reference); pixels of no class get ``no_label``."""
    out = np.full(shape, no_label, np.uint8)
    for c in sorted(result, reverse=True):
        m = result[c]
        out[m.mask if isinstance(m, ClassMask) else m] = c
    return out


class OverseerCache:
    """Overseer results over a look-ahead window, computed in batches, each frame exactly once.

    ``masks(t)`` returns the class id -> bool mask dict of frame t (the same dict object on every
    call, which the reference policy relies on), computing frames t .. t+batch-1 that are missing
    in one ``predict`` call. ``release_before(t)`` forgets frames before t, so memory stays flat.

    Attributes:
        computed: frame index -> how many times the overseer computed it (should be 1).
    """

    def __init__(
        self,
        overseer: Overseer,
        n_frames: int,
        read_frame: Callable[[int], np.ndarray] | None = None,
        batch_size: int = 8,
    ):
        self.overseer = overseer
        self.n_frames = n_frames
        self.read_frame = read_frame
        self.batch_size = max(1, batch_size)
        self._results: dict[int, OverseerResult] = {}
        self._masks: dict[int, dict[int, np.ndarray]] = {}
        self.computed: dict[int, int] = {}

    def _fill(self, t: int) -> None:
        idx = [i for i in range(t, min(t + self.batch_size, self.n_frames)) if i not in self._results]
        frames = [self.read_frame(i) for i in idx] if self.overseer.needs_frames and self.read_frame else None
        for i, res in zip(idx, self.overseer.predict(frames, idx), strict=True):
            self._results[i] = res
            self._masks[i] = {c: cm.mask for c, cm in res.items() if cm.mask.any()}
            self.computed[i] = self.computed.get(i, 0) + 1

    def masks(self, t: int) -> dict[int, np.ndarray] | None:
        """class id -> bool mask at t (only classes with pixels), or None outside the video."""
        if not 0 <= t < self.n_frames:
            return None
        if t not in self._masks:
            self._fill(t)
        return self._masks[t]

    __call__ = masks

    def scores(self, t: int) -> dict[int, float]:
        """class id -> the overseer's confidence at t (only classes with pixels; {} outside)."""
        if self.masks(t) is None:
            return {}
        return {c: float(cm.score) for c, cm in self._results[t].items() if c in self._masks[t]}

    def release_before(self, t: int) -> None:
        for i in [i for i in self._results if i < t]:
            del self._results[i]
            self._masks.pop(i, None)

    def __len__(self) -> int:
        return len(self._results)
