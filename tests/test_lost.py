"""Lost objects (issue 28, item 3): the flow tracker's confidence per object, and an anchors-only
run that re-seeds an object from its anchor when that confidence collapses, with a ``lost`` event
in the store's log and the CLI's summary."""

from __future__ import annotations

import numpy as np
import pytest

import napari_sasvi.core.engine.anchored as anchored
from conftest import drive
from napari_sasvi._cli_segment import lost_lines
from napari_sasvi.core.datasets import SYNTHETIC
from napari_sasvi.core.engine import iter_from_anchors
from napari_sasvi.core.inputs.anchors import Anchors
from napari_sasvi.core.inputs.frames import open_frames
from napari_sasvi.core.policy import Event
from napari_sasvi.core.store.sasvi_store import SasviStore
from napari_sasvi.core.trackers.confidence import ObjectConfidence
from napari_sasvi.core.trackers.flow import FlowTracker

H, W = 96, 128


def _texture(rng, shape) -> np.ndarray:
    """Smooth random texture (uint8), which DIS follows well."""
    import cv2

    coarse = rng.uniform(0, 255, (shape[0] // 6, shape[1] // 6)).astype(np.float32)
    return cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8)


def _clip(n: int, *, dx: int, noise: range = range(0), seed: int = 0):
    """An object (its own texture, 30 x 30) moving ``dx`` px a frame over a static textured
    background; on the frames of ``noise``, smoke covers the object and around it: half a texture
    sliding right 3 px a frame, half fresh noise (the flow drags the mask along, and nothing in
    the frame pair matches; the ground truth keeps the object where it is). Frames (n, H, W, 3),
    labels (n, H, W) uint8: 1 the object, 0 the background."""
    rng = np.random.default_rng(seed)
    bg, obj, smoke = _texture(rng, (H, W)), _texture(rng, (30, 30)), _texture(rng, (60, 160)).astype(np.float32)
    frames, labels = np.empty((n, H, W, 3), np.uint8), np.zeros((n, H, W), np.uint8)
    for t in range(n):
        g = bg.copy()
        x0 = 20 + dx * t
        g[33:63, x0 : x0 + 30] = obj
        labels[t, 33:63, x0 : x0 + 30] = 1
        if t in noise:
            k = 3 * (t - noise.start)
            fresh = rng.uniform(0, 255, (60, 60))
            g[18:78, x0 - 15 : x0 + 45] = (0.5 * smoke[:, 60 - k : 120 - k] + 0.5 * fresh).astype(np.uint8)
        frames[t] = g[..., None]
    return frames, labels


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(1, a.sum() + b.sum()))


def test_confidence_is_high_for_a_clean_translation_and_in_0_1():
    frames, labels = _clip(12, dx=2)
    tracker = FlowTracker()
    tracker.bind(open_frames(frames))
    tracker.add_mask(0, 1, labels[0] == 1)
    tracker.add_mask(0, 0, labels[0] == 0)
    seen = []
    for _t, _ in tracker.propagate(0):
        c = tracker.confidence()
        assert set(c) == {0, 1} and set(tracker.confidence_reasons().values()) <= {"area", "fit", "residual"}
        seen.append(c[1])
    assert all(0.0 <= v <= 1.0 for v in seen)
    assert min(seen) > 0.8, seen


def test_confidence_signals_collapse():
    c = ObjectConfidence(area0=100.0)
    c.update_area(100.0)
    assert c.value == 1.0
    c.update_area(10.0)  # 10 % of the mask left in view
    assert c.value == pytest.approx(0.1) and c.reason == "area"
    c = ObjectConfidence(area0=100.0)
    for _ in range(10):
        c.update_fit(0.05)  # RANSAC explains 5 % of the samples, frame after frame
    assert c.value < 0.1 and c.reason == "fit"
    c = ObjectConfidence(area0=100.0)
    for err in (3.0, 3.0, 3.0):  # the reference: the floor of 4 grey levels
        c.update_residual(err)
    assert c.residual == 1.0
    for _ in range(10):
        c.update_residual(80.0)
    assert c.value < 0.1 and c.reason == "residual"


def _anchors_run(tmp_path, frames, labels, name, *, threshold):
    old = anchored.LOST_BELOW
    anchored.LOST_BELOW = threshold
    try:
        summary, items = drive(
            iter_from_anchors(
                frames, Anchors({0: labels[0]}, "gt", "class-ids"), FlowTracker(), str(tmp_path / name), SYNTHETIC
            )
        )
    finally:
        anchored.LOST_BELOW = old
    return summary, items, np.asarray(SasviStore.read(tmp_path / name).labels[:])


def test_an_object_whose_flow_is_destroyed_is_reseeded_and_reported(tmp_path):
    frames, labels = _clip(24, dx=0, noise=range(5, 16))
    _, items, drifting = _anchors_run(tmp_path, frames, labels, "off.zarr", threshold=0.0)
    assert not [e for e in items if isinstance(e, Event) and e.kind == "lost"]
    summary, items, reseeded = _anchors_run(tmp_path, frames, labels, "on.zarr", threshold=anchored.LOST_BELOW)
    lost = [e for e in items if isinstance(e, Event) and e.kind == "lost"]
    assert 1 in {c for e in lost for c in e.labels}, lost
    assert all(5 <= e.frame < 24 for e in lost) and "re-seeded from anchor 0" in lost[0].reason
    # once per loss episode, not every frame
    assert len([e for e in lost if 1 in e.labels]) <= 3
    d_on, d_off = _dice(reseeded == 1, labels == 1), _dice(drifting == 1, labels == 1)
    assert d_on > d_off + 0.05, (d_on, d_off)
    # recorded in the store's event log and the run's summary, and said by the CLI
    logged = [e for e in SasviStore.read(tmp_path / "on.zarr").events if e["kind"] == "lost"]
    assert [e["frame"] for e in logged] == [e.frame for e in lost]
    lines = lost_lines(summary.events, SYNTHETIC)
    assert any(line.startswith("lost: class 1 (Abdominal Wall) at frames ") for line in lines), lines


def test_a_clean_clip_loses_nothing(tmp_path):
    frames, labels = _clip(16, dx=2)
    summary, items, out = _anchors_run(tmp_path, frames, labels, "clean.zarr", threshold=anchored.LOST_BELOW)
    assert not [e for e in summary.events if e["kind"] == "lost"]
    assert _dice(out == 1, labels == 1) > 0.9
