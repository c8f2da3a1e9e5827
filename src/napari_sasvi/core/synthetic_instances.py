"""Instances in the synthetic clip: ground truth with one id per instrument, a noisy instance
overseer, and writers of the instance-PNG folder format.

:class:`InstanceTruth` is a mixin of :class:`~napari_sasvi.core.synthetic.SyntheticVideo` (it reads
the clip's ``instruments``, its renderer and its jitter; it imports nothing of it). Instrument k of
``video.instruments`` (0-based) has instance id k + 1 on every frame; in the default clip ids 1 and
4 are the two graspers that cross (:meth:`InstanceTruth.crossing_frames`).

The noisy overseer (:meth:`InstanceTruth.noisy_instances`) gives what a Mask R-CNN-like model
gives: unordered detections with scores and no identity. Its errors are listed in
:attr:`InstanceTruth.instance_noise_events` (120-frame schedule, scaled to the clip's length):

- ``jitter`` every frame: boundaries resampled through a smooth ~2 px displacement;
- ``dropout``: the second grasper missed for one frame (frame 50);
- ``blob``: a small spurious grasper (score 0.3) on tissue away from the instruments (frame 64);
- ``merge``: at the crossing, the two graspers detected as one instance (score 0.6) on the frame
  where their unoccluded masks overlap most and the next one (frames 72-73 of 120, 36-37 of 60).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from .instances.types import TRACK_DTYPE, Instance

#: detections of class c get ids c * DETECTION_ID_STRIDE + 1, + 2, ... in a detections folder
DETECTION_ID_STRIDE = 16
#: scores of the noisy overseer: true detections, a merged one, the spurious blob
_SCORE_RANGE, MERGED_SCORE, BLOB_SCORE = (0.8, 0.97), 0.6, 0.3


@dataclass(frozen=True)
class InstanceNoiseEvent:
    """A scheduled error of the noisy instance overseer: ``kind`` in jitter, dropout, blob, merge;
    the instance ids it concerns (the blob's: none), the class of what it adds or removes (-1 for
    jitter), the frames it spans and the score of an added detection (None if it adds none)."""

    kind: str
    ids: tuple[int, ...]
    class_id: int
    first: int
    last: int
    score: float | None = None


class InstanceTruth:
    """Instance ground truth and a noisy instance overseer for a clip with ``instruments``,
    ``n_frames``, ``seed``, ``_render_all(t)``, ``_draw_instrument(ins, t)``, ``_jitter(ids, rng)``,
    ``_fov``, ``_grid`` and ``_lazy`` (:class:`~napari_sasvi.core.synthetic.SyntheticVideo`)."""

    @property
    def instance_classes(self) -> dict[int, int]:
        """Instance id -> class id, one entry per instrument (ids from 1, in the instruments' order)."""
        return {k + 1: ins.class_id for k, ins in enumerate(self.instruments)}

    def instance_labels(self, t: int) -> np.ndarray:
        """(H, W) uint16 instance ids of frame t (0 = no instrument); where instruments overlap,
        the one later in ``instruments`` (in front) has the pixels, as in :meth:`labels`."""
        return self._render_all(t)[2]

    def instance_labels_dask(self):
        """(T, H, W) uint16 dask array of :meth:`instance_labels`, one frame per chunk."""
        return self._lazy(self.instance_labels, (self.n_frames, self.height, self.width), TRACK_DTYPE)

    @cached_property
    def crossing_pair(self) -> tuple[int, int] | None:
        """Ids of the first two instruments of one class (the crossing graspers), or None."""
        seen: dict[int, int] = {}
        for k, ins in enumerate(self.instruments):
            if ins.class_id in seen:
                return seen[ins.class_id], k + 1
            seen[ins.class_id] = k + 1
        return None

    @cached_property
    def crossing_overlap(self) -> dict[int, int]:
        """Frame -> pixels where the unoccluded masks of the crossing pair overlap (frames with
        overlap only): there the front one hides that part of the other."""
        if self.crossing_pair is None:
            return {}
        a, b = (self.instruments[i - 1] for i in self.crossing_pair)
        out = {}
        for t in range(max(a.enter, b.enter) - 8, min(a.leave, b.leave) + 9):
            if not 0 <= t < self.n_frames:
                continue
            da, db = self._draw_instrument(a, t), self._draw_instrument(b, t)
            if da is not None and db is not None and (n := int((da[0] & db[0]).sum())):
                out[t] = n
        return out

    def crossing_frames(self) -> list[int]:
        """Frames where the two graspers' unoccluded masks overlap (the crossing), in order."""
        return sorted(self.crossing_overlap)

    @cached_property
    def instance_noise_events(self) -> tuple[InstanceNoiseEvent, ...]:
        """The noisy instance overseer's errors (see the module docstring)."""
        s = self.n_frames / 120.0
        ids = tuple(self.instance_classes)
        events = [InstanceNoiseEvent("jitter", ids, -1, 0, self.n_frames - 1)]
        pair = self.crossing_pair
        if pair is None:
            return tuple(events)
        cls = self.instance_classes[pair[0]]
        dropout = min(round(50 * s), self.n_frames - 1)
        blob = min(round(64 * s), self.n_frames - 1)
        events.append(InstanceNoiseEvent("dropout", (pair[1],), cls, dropout, dropout))
        events.append(InstanceNoiseEvent("blob", (), cls, blob, blob, BLOB_SCORE))
        if self.crossing_overlap:
            peak = max(self.crossing_overlap, key=lambda t: (self.crossing_overlap[t], -t))
            last = peak + 1 if peak + 1 in self.crossing_overlap else peak
            events.append(InstanceNoiseEvent("merge", pair, cls, peak, last, MERGED_SCORE))
        return tuple(events)

    def noisy_instances(self, t: int) -> list[Instance]:
        """The noisy instance overseer's detections on frame t, in a random order, each with
        ``source_id=None`` and a score in [0, 1] (deterministic in seed and t)."""
        rng = np.random.default_rng((self.seed, t, 11))
        jittered = self._jitter(self.instance_labels(t), rng)
        active = [ev for ev in self.instance_noise_events if ev.first <= t <= ev.last]
        dropped = {i for ev in active if ev.kind == "dropout" for i in ev.ids}
        merges = [ev for ev in active if ev.kind == "merge"]
        merged = {i for ev in merges for i in ev.ids}
        out = []
        for i, cls in self.instance_classes.items():
            mask = jittered == i
            if i not in dropped and i not in merged and mask.any():
                out.append(Instance(cls, mask, float(rng.uniform(*_SCORE_RANGE))))
        for ev in merges:
            mask = np.isin(jittered, ev.ids)
            if mask.any():
                out.append(Instance(ev.class_id, mask, ev.score))
        for ev in active:
            if ev.kind == "blob":
                out.append(Instance(ev.class_id, self._blob(rng, jittered), ev.score))
        return [out[k] for k in rng.permutation(len(out))]

    def _blob(self, rng: np.random.Generator, ids: np.ndarray) -> np.ndarray:
        """A small disc in the view's central part, away from every instrument of ``ids`` (an
        instance map) where one fits."""
        import cv2

        h, w = self._fov.shape
        r = max(3, min(h, w) // 25)
        y, x = self._grid
        busy = cv2.dilate((ids > 0).astype(np.uint8), np.ones((5, 5), np.uint8))
        disc = None
        for _ in range(20):
            cy, cx = rng.integers(h // 4, 3 * h // 4 + 1), rng.integers(w // 4, 3 * w // 4 + 1)
            disc = ((y - cy) ** 2 + (x - cx) ** 2 <= r * r) & self._fov
            if disc.any() and not busy[disc].any():
                break
        return disc


def _save_ids(ids: np.ndarray, path: Path) -> None:
    """One PNG of object ids: mode L (uint8) where they fit, else I;16 (uint16)."""
    from PIL import Image

    if int(ids.max(initial=0)) <= 255:
        Image.fromarray(ids.astype(np.uint8)).save(path)  # mode L
    else:
        Image.fromarray(ids.astype(np.uint16)).save(path)  # mode I;16


def detection_ids(instances: list[Instance], rng: np.random.Generator) -> tuple[np.ndarray, dict[int, int]]:
    """Detections of one frame as an id map with ids that are not identities: the k detections of
    class c get ids c * DETECTION_ID_STRIDE + 1 .. + k in a random order (from ``rng``), so an id
    always names one class but not one object. Later detections win overlapping pixels. Returns
    (id map (H, W) uint16, {id: class id})."""
    if not instances:
        raise ValueError("no detections to number")
    ids = np.zeros(instances[0].mask.shape, TRACK_DTYPE)
    classes: dict[int, int] = {}
    by_class: dict[int, list[Instance]] = {}
    for ins in instances:
        by_class.setdefault(ins.class_id, []).append(ins)
    for cls, group in by_class.items():
        if len(group) >= DETECTION_ID_STRIDE:
            raise ValueError(f"{len(group)} detections of class {cls} on one frame; at most {DETECTION_ID_STRIDE - 1}")
        for ins, j in zip(group, rng.permutation(len(group)) + 1, strict=True):
            oid = cls * DETECTION_ID_STRIDE + int(j)
            ids[ins.mask] = oid
            classes[oid] = cls
    return ids, classes


def write_instance_pngs(video, folder: str | os.PathLike, noisy: bool = True) -> Path:
    """Write ``video``'s instances as an instance-PNG folder: ``folder/NNNNNNNNNN.png`` (frame t,
    10 digits, as the demo's overseer masks) of object ids (0 = none), plus ``instances.json``
    ``{"classes": {"<id>": <class id>}}``.

    Without ``noisy`` the ids are the ground truth's (:meth:`InstanceTruth.instance_labels`: one id
    = one instrument on every frame). With ``noisy`` (the default) it is a *detections* folder of
    :meth:`InstanceTruth.noisy_instances`: its ids are NOT identities. Each id keeps one class for
    the folder (see :func:`detection_ids`), but which object of that class it names is drawn
    anew on every frame (seeded by seed and t), so the two graspers swap ids at random; a reader
    must match objects across frames itself (``instances.json`` says ``"identities": false``, which
    the instance label reader honours). Scores are not written (PNG has no place for them).
    Returns the folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    classes: dict[int, int] = {} if noisy else dict(video.instance_classes)
    for t in range(video.n_frames):
        if noisy:
            detections = video.noisy_instances(t)
            if detections:
                ids, used = detection_ids(detections, np.random.default_rng((video.seed, t, 13)))
                classes.update(used)
            else:
                ids = np.zeros((video.height, video.width), TRACK_DTYPE)
        else:
            ids = video.instance_labels(t)
        _save_ids(ids, folder / f"{t:010d}.png")
    payload: dict = {"classes": {str(k): int(v) for k, v in sorted(classes.items())}}
    if noisy:
        payload["identities"] = False  # a detector's ids: the reader must not take them as objects
    (folder / "instances.json").write_text(json.dumps(payload, indent=1) + "\n")
    return folder


__all__ = [
    "BLOB_SCORE",
    "DETECTION_ID_STRIDE",
    "MERGED_SCORE",
    "InstanceNoiseEvent",
    "InstanceTruth",
    "detection_ids",
    "write_instance_pngs",
]
