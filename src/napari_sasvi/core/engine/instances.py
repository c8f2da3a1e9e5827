"""Instance mode of the SASVi run: the policy and the tracker work on track ids, the store gets
class ids and track ids.

The overseer's detections get track ids from an :class:`~..instances.identity.IdentityCache`; the
policy reads that cache as it reads a class overseer's (track id -> mask), so every rule applies
per track; the tracker holds one object per track; the span engine composes track-id maps
(:class:`TrackSpace`: uint16, 0 = none). Each finished frame is written as its class ids (each
track's class), its track ids and the track table up to it (:meth:`InstancePlanner._put`).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import replace

import numpy as np

from ..errors import InputError
from ..instances.identity import IdentityCache, IdentityParams
from ..instances.types import NO_TRACK, TRACK_DTYPE, InstanceOverseer, TrackInfo
from ..overseers.base import result_to_label_map
from .run_planner import RunPlanner


class TrackSpace:
    """What the span engine needs of a class table, for track ids: the ids an object may have
    (every id the identity cache gave out), the value of no object and the maps' dtype."""

    no_label = NO_TRACK
    dtype = TRACK_DTYPE

    def __init__(self, cache: IdentityCache):
        self.cache = cache

    @property
    def ids(self) -> set[int]:
        return self.cache.known_ids


def check_instance_overseer(overseer) -> None:
    if not isinstance(overseer, InstanceOverseer):
        raise InputError(
            f"--instances needs an overseer that gives objects (Mask R-CNN, DETR, Mask2Former, or instance label "
            f"files replayed); {getattr(overseer, 'name', type(overseer).__name__)} gives class masks only. "
            "Run without --instances, or give instance labels (instance PNGs + instances.json, COCO JSON, LabelMe)."
        )


def sparse_frames(overseer, n_frames: int) -> frozenset[int] | None:
    """The annotated frames of an instance label source replayed that annotates some frames only
    (Endoscapes: 4 of 120), or None (a model, or annotations on every frame). Such a run re-prompts
    every annotated frame with its instances (each matched to the tracker's masks there, so a track
    keeps its id from one annotation to the next), and between them the tracker carries the
    tracks on alone: an unannotated frame is no overseer miss."""
    annotated = getattr(getattr(overseer, "source", None), "annotated", None)
    if annotated is None or len(annotated) >= n_frames:
        return None
    return frozenset(int(t) for t in annotated)


def prepare_instances(overseer, n_frames: int, params, identity: IdentityParams, anchors):
    """An instance run's checks and parameters: (policy parameters, identity parameters, the
    annotated frames of a sparse source or None). The persistence of a new track is the policy's;
    no CaDIS merge; the dummy is no track; sparse annotations re-prompt at each annotated frame
    with no consensus (an unannotated frame is no overseer miss) and no persistence."""
    check_instance_overseer(overseer)
    if anchors is not None or params.mode != "default":
        what = "annotated frames (--anchors)" if anchors is not None else f"{params.mode} mode"
        raise InputError(f"--instances does not work with {what} yet; run without one of them.")
    identity = replace(identity, persistence=params.persistence)
    params = replace(params, dummy_id=NO_TRACK, merge_unlabelled=False)
    sparse = sparse_frames(overseer, n_frames)
    if sparse is not None:
        params = replace(params, consensus=False)
        identity = replace(identity, persistence=0)
    return params, identity, sparse


def paint_tracks(masks: dict[int, np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Track-id map (H, W) uint16 of id -> mask; the lower id wins an overlap."""
    out = np.full(shape, NO_TRACK, TRACK_DTYPE)
    for k in sorted(masks, reverse=True):
        out[masks[k]] = k
    return out


class InstancePlanner(RunPlanner):
    """The run's planner (:class:`~.run_planner.RunPlanner`) over track ids."""

    def __init__(self, session, policy, cache: IdentityCache, classes, params, previous, background):
        super().__init__(session, policy, cache, TrackSpace(cache), params, None, previous, background)
        self.class_table = classes
        self.table: dict[int, TrackInfo] = dict(self.store.track_table)  # frames on disk

    def step(self, i: int, t: int, labels: np.ndarray, logits) -> Generator:
        self.cache.observe(t, labels)  # sparse annotations are matched to the tracker's masks at t
        return (yield from super().step(i, t, labels, logits))

    def _entry(self, t: int, labels: np.ndarray) -> list:
        dets = self.cache.detections(t)
        merged: dict[int, np.ndarray] = {}
        for d in dets:
            merged[d.class_id] = merged[d.class_id] | d.mask if d.class_id in merged else d.mask
        overseer_classes = result_to_label_map(merged, self.size, self.class_table.no_label)
        return [t, labels, paint_tracks(self.cache.masks(t) or {}, self.size), overseer_classes, self.cache.scores(t)]

    def _put(self, entry: list) -> Generator:
        t, tracks, _, overseer_classes, scores = entry
        present = np.flatnonzero(np.bincount(tracks.ravel()))
        for k in (int(k) for k in present if k != NO_TRACK):
            old = self.table.get(k)
            n, total = (old.n_detected, old.score_sum) if old is not None else (0, 0.0)
            if k in scores:
                n, total = n + 1, total + scores[k]
            self.table[k] = TrackInfo(
                k, self.cache.class_of[k], old.first if old is not None else t, t,
                total / n if n else 0.0, self.cache.parent.get(k), n, total,
            )  # fmt: skip
        lut = np.full(max(self.table, default=0) + 1, self.class_table.no_label, np.uint8)
        for k, info in self.table.items():
            lut[k] = info.class_id
        labels = lut[tracks]
        yield from self.sink.put(t, labels, overseer_classes, (tracks, dict(self.table)))

    def snapshot_state(self, s: int) -> dict:
        return {**self.policy.export_state(), "identity": self.cache.export_state(s)}


__all__ = [
    "InstancePlanner",
    "TrackSpace",
    "check_instance_overseer",
    "paint_tracks",
    "prepare_instances",
    "sparse_frames",
]
