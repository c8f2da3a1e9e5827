"""The optical-flow tracker: it follows a moving textured shape, turns points into masks by its
rule, adds objects mid-segment, and runs SASVi end to end (both modes, resumable, CLI)."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from conftest import check_a_broken_frame_read_ahead
from napari_sasvi.cli import main
from napari_sasvi.core.engine import run_sasvi
from napari_sasvi.core.inputs.frames import open_frames
from napari_sasvi.core.metrics.accuracy import macro, overlap_counts
from napari_sasvi.core.overseers.replay import ReplayOverseer
from napari_sasvi.core.policy import PolicyParams
from napari_sasvi.core.store.sasvi_store import SasviStore
from napari_sasvi.core.synthetic import SyntheticVideo
from napari_sasvi.core.trackers.flow import FlowTracker, points_to_mask


def _texture(h, w, seed):
    rng = np.random.default_rng(seed)
    coarse = cv2.resize(rng.random((h // 8, w // 8, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    fine = cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), 1.5)
    return (np.clip(0.7 * coarse + 0.3 * fine, 0, 1) * 255).astype(np.uint8)


def moving_shape(n=31, h=240, w=320, seed=0, deg_per_frame=1.5, px_per_frame=(4.0, 1.5)):
    """A textured ellipse-with-a-handle translating and rotating over a static textured
    background; returns frames (n, h, w, 3) and its true masks (n, h, w)."""
    bg, tex = _texture(h, w, seed), _texture(h, w, seed + 1)
    shape = np.zeros((h, w), np.uint8)
    cv2.ellipse(shape, (w // 2, h // 2), (50, 28), 0, 0, 360, 1, -1)
    cv2.rectangle(shape, (w // 2 - 10, h // 2 - 60), (w // 2 + 10, h // 2), 1, -1)
    frames, masks = [], []
    for t in range(n):
        m_aff = cv2.getRotationMatrix2D((w / 2, h / 2), deg_per_frame * t, 1.0)
        m_aff[:, 2] += (-60 + px_per_frame[0] * t, -20 + px_per_frame[1] * t)
        m = cv2.warpAffine(shape, m_aff, (w, h), flags=cv2.INTER_NEAREST).astype(bool)
        f = bg.copy()
        f[m] = cv2.warpAffine(tex, m_aff, (w, h))[m]
        frames.append(f)
        masks.append(m)
    return np.stack(frames), np.stack(masks)


def _iou(a, b):
    return (a & b).sum() / max(1, (a | b).sum())


@pytest.mark.parametrize("method,minimum", [("dis", 0.9), ("dis-fast", 0.9), ("farneback", 0.7)])
def test_follows_a_translating_rotating_shape(method, minimum):
    frames, masks = moving_shape()
    tracker = FlowTracker(method)
    tracker.bind(open_frames(frames))
    tracker.add_mask(0, 1, masks[0])
    ious = {t: _iou(logits[1] > 0, masks[t]) for t, logits in tracker.propagate(0)}
    assert len(ious) == 31 and ious[0] == 1.0
    assert ious[30] > minimum, ious


def test_area_is_kept_over_the_segment():
    """The anchor is warped once, not re-thresholded every frame: no erosion or growth."""
    frames, masks = moving_shape(n=41, deg_per_frame=0.5)
    tracker = FlowTracker()
    tracker.bind(open_frames(frames))
    tracker.add_mask(0, 1, masks[0])
    areas = [int((lg[1] > 0).sum()) for _, lg in tracker.propagate(0)]
    assert max(areas) / min(areas) < 1.05


def test_point_prompt_rule():
    m = points_to_mask((100, 100), np.array([[20, 20], [80, 20], [50, 80]]), np.array([1, 1, 1]), radius=3)
    assert m[40, 50] and not m[95, 5]  # inside the hull, outside it
    assert m[20, 17]  # grown by the radius
    carved = points_to_mask(
        (100, 100), np.array([[20, 20], [80, 20], [50, 80], [50, 40]]), np.array([1, 1, 1, 0]), radius=5
    )
    assert not carved[40, 50] and carved[30, 50]
    disc = points_to_mask((50, 50), np.array([[25, 25]]), np.array([1]), radius=4)
    assert disc.sum() == pytest.approx(np.pi * 16, rel=0.3)
    tracker = FlowTracker()
    frames, masks = moving_shape(n=3)
    tracker.bind(open_frames(frames))
    tracker.add_points(0, 2, np.array([[160, 120]]), np.array([1]))
    (t, logits), *_ = tracker.propagate(0)
    assert (logits[2] > 0)[120, 160] and (logits[2] > 0).sum() < 0.05 * 240 * 320


def test_objects_join_a_running_segment():
    frames, masks = moving_shape(n=21)
    tracker = FlowTracker()
    tracker.bind(open_frames(frames))
    tracker.add_mask(0, 1, masks[0])
    before = None
    for t, logits in tracker.propagate(0):
        if t == 10:
            before = logits[1] > 0
            break
    tracker.add_mask(10, 2, masks[10])  # a second object joins at 10, the first keeps its path
    out = dict(tracker.propagate(10))
    assert set(out[10]) == {1, 2}
    np.testing.assert_array_equal(out[10][1] > 0, before)
    assert _iou(out[20][2] > 0, masks[20]) > 0.9 and _iou(out[20][1] > 0, masks[20]) > 0.85
    tracker.remove_objects([1])
    assert set(dict(tracker.propagate(20))[20]) == {2}
    tracker.reset()
    assert dict(tracker.propagate(20))[20] == {}


@pytest.mark.parametrize("mode", ["default", "reference"])
def test_sasvi_end_to_end_with_flow(tmp_path, mode):
    video = SyntheticVideo(n_frames=30, height=128, width=160, seed=0)
    frames, noisy = video.arrays(noisy=True)
    overseer = ReplayOverseer(noisy, video.classes)
    out = tmp_path / f"{mode}.zarr"
    summary = run_sasvi(frames, overseer, FlowTracker(), str(out), video.classes, PolicyParams(mode=mode))
    store = SasviStore.read(out)
    assert store.complete and store.signature["tracker"]["type"] == "flow"
    gt = [video.labels(t) for t in range(30)]
    dice = overlap_counts((store.labels[t] for t in range(30)), iter(gt), video.classes.ids).dice()
    assert macro(dice, [1, 2, 3, 4]) > 0.75, dice  # the tissue, carried by the flow between re-seeds
    assert summary.restarts[0]["frame"] == 0
    # kill after 17 frames, resume: the same labels as the uninterrupted run
    out2 = tmp_path / f"{mode}_resumed.zarr"
    run_sasvi(frames, overseer, FlowTracker(), str(out2), video.classes, PolicyParams(mode=mode), stop_after=17)
    assert SasviStore.read(out2).frames_done == 17
    run_sasvi(frames, overseer, FlowTracker(), str(out2), video.classes, PolicyParams(mode=mode))
    np.testing.assert_array_equal(np.asarray(SasviStore.read(out2).labels[:]), np.asarray(store.labels[:]))


def test_cli_tracker_flow(tmp_path, capsys):
    from PIL import Image

    video = SyntheticVideo(n_frames=8, height=64, width=80, seed=3)
    (tmp_path / "v").mkdir()
    (tmp_path / "m").mkdir()
    for t in range(8):
        Image.fromarray(video.frame(t)).save(tmp_path / "v" / f"{t:04d}.png")
        Image.fromarray(video.noisy_labels(t)).save(tmp_path / "m" / f"{t:04d}.png")
    base = ["segment", str(tmp_path / "v"), "--overseer-masks", str(tmp_path / "m"), "--dataset", "synthetic"]
    assert main([*base, "--out", str(tmp_path / "o.zarr"), "--tracker", "flow", "--tracker-model", "farneback"]) == 0
    desc = SasviStore.read(tmp_path / "o.zarr").signature["tracker"]
    assert desc["type"] == "flow" and desc["method"] == "farneback"
    assert main([*base, "--out", str(tmp_path / "f.zarr"), "--tracker", "flow", "--tracker-model", "dis-fast"]) == 0
    desc = SasviStore.read(tmp_path / "f.zarr").signature["tracker"]
    assert desc["method"] == "dis-fast" and desc["max_side"] == 320  # the fast preset's frame size
    rc = main([*base, "--out", str(tmp_path / "p.zarr"), "--tracker", "flow", "--sam2-model", "sam2.1_hiera_tiny"])
    assert rc == 2 and "for --tracker sam2" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "q.zarr")]) == 0  # no --tracker: flow, the default (no weights)
    assert SasviStore.read(tmp_path / "q.zarr").signature["tracker"]["type"] == "flow"
    assert main([*base, "--out", str(tmp_path / "r.zarr"), "--tracker", "sam2"]) == 2  # sam2 without a model
    assert "--tracker flow" in capsys.readouterr().err


def _ahead_threads():
    return [th for th in threading.enumerate() if th.name.startswith("sasvi-flow-ahead")]


@pytest.mark.parametrize("mode", ["default", "reference"])
def test_reading_ahead_gives_the_same_labels_and_leaves_no_worker(tmp_path, mode):
    video = SyntheticVideo(n_frames=24, height=128, width=160, seed=1)
    frames, noisy = video.arrays(noisy=True)
    runs = {}
    for ahead in (False, True):
        tracker = FlowTracker(ahead=ahead)
        out = tmp_path / f"{ahead}.zarr"
        stack, readers = open_frames(frames), []
        read = stack.source.read
        stack.source.read = lambda t, read=read, readers=readers: (
            readers.append(threading.current_thread().name) or read(t)
        )
        ov = ReplayOverseer(noisy, video.classes)
        s = run_sasvi(stack, ov, tracker, str(out), video.classes, PolicyParams(mode=mode))
        assert any(r.startswith("sasvi-flow-ahead") for r in readers) == ahead
        starts = [(e["kind"], e["frame"]) for e in s.events if e["kind"] in ("restart", "add_objects")]
        runs[ahead] = (np.asarray(SasviStore.read(out).labels[:]), starts, s.encodes)
        assert not _ahead_threads()  # the worker ends with the propagation that started it
    (lab0, restarts0, enc0), (lab1, restarts1, enc1) = runs[False], runs[True]
    assert len(restarts1) > 1  # propagation stops and starts again: reads ahead are dropped and redone
    np.testing.assert_array_equal(lab1, lab0)
    assert restarts1 == restarts0 and enc1 == enc0  # a frame read ahead and not used is not counted


def test_a_broken_frame_read_ahead_but_never_needed_stops_nothing(tmp_path):
    check_a_broken_frame_read_ahead(tmp_path, FlowTracker(), _ahead_threads, n=10, bad=6, seed=2)


@pytest.mark.parametrize("extend", [False, True])
def test_an_object_kept_in_its_box_is_the_whole_frame_warp(extend):
    from napari_sasvi.core.trackers.flow_object import LOGIT_GAIN, TrackedObject

    h, w = 120, 160
    anchor = np.zeros((h, w), bool)
    cv2.ellipse(anchor.view(np.uint8), (50, 40), (22, 12), 20, 0, 360, 1, -1)
    obj = TrackedObject(anchor, extend)
    start = obj.transform.copy()
    for deg, dx, dy in [(0, 0, 0), (15, 30.4, 9.7), (-40, 95.2, -20.5), (5, 140.0, 70.0), (0, 400.0, 0.0)]:
        step = np.vstack([cv2.getRotationMatrix2D((50, 40), deg, 1.0), [0, 0, 1]])
        step[:2, 2] += (dx, dy)
        obj.transform = step @ start
        obj._warp()
        whole = cv2.warpAffine(obj.anchor, obj.transform[:2], (w, h), flags=cv2.INTER_LINEAR)
        x0, y0, x1, y1 = obj.box
        outside = whole.copy()
        outside[y0:y1, x0:x1] = 0
        assert not outside.any()  # nothing of the object lies outside its box
        np.testing.assert_allclose(obj.soft, whole, atol=1 / 16)  # OpenCV's fixed-point sampling apart
        np.testing.assert_allclose(obj.logits((h, w)), (whole - 0.5) * LOGIT_GAIN, atol=LOGIT_GAIN / 16)
    if not extend:  # 400 px to the right: carried out of the frame, an empty box
        assert obj.box[2] <= obj.box[0] and not obj.soft.any()
