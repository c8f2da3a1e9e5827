from __future__ import annotations

import numpy as np

from napari_sasvi.core.datasets import SYNTHETIC
from napari_sasvi.core.synthetic import CLIPPER, GRASPER, HOOK, LIVER, SyntheticVideo, synthetic_surgical_video


def test_deterministic_and_random_access():
    a = SyntheticVideo(n_frames=60, seed=3)
    b = SyntheticVideo(n_frames=60, seed=3)
    np.testing.assert_array_equal(a.frame(41), b.frame(41))
    np.testing.assert_array_equal(a.labels(7), b.labels(7))
    # rendering out of order gives the same frame
    _ = b.frame(59)
    np.testing.assert_array_equal(a.frame(12), b.frame(12))
    assert not np.array_equal(SyntheticVideo(n_frames=60, seed=4).frame(12), a.frame(12))


def test_shapes_classes_and_schedule():
    frames, labels, classes = synthetic_surgical_video()
    assert frames.shape == (120, 256, 320, 3) and frames.dtype == np.uint8
    assert labels.shape == (120, 256, 320) and labels.dtype == np.uint8
    assert classes is SYNTHETIC
    assert set(np.unique(labels)) <= set(classes.ids)
    video = SyntheticVideo()
    # per instrument (two graspers share a class): the frames its instance id is on
    shown = [set(np.unique(video.instance_labels(t)).tolist()) for t in range(video.n_frames)]
    for k, ins in enumerate(video.instruments, 1):
        frames_in = [t for t in range(video.n_frames) if k in shown[t]]
        assert frames_in, ins
        # the instrument enters within a few frames of its scheduled frame, and leaves
        assert abs(frames_in[0] - ins.enter) <= 3
        if ins.leave < video.n_frames:
            assert abs(frames_in[-1] - ins.leave) <= 3
        assert frames_in == list(range(frames_in[0], frames_in[-1] + 1))  # no gaps
    # instruments cross: at some frame two instrument masks overlap before painting
    crossings = 0
    for t in range(video.n_frames):
        masks = [video._draw_instrument(i, t) for i in video.instruments]
        masks = [m[0] for m in masks if m is not None]
        crossings += any((masks[i] & masks[j]).any() for i in range(len(masks)) for j in range(i + 1, len(masks)))
    assert crossings > 0
    # tissue looks like tissue: not flat, instruments greyish
    f = frames[60].astype(int)
    assert f.std() > 20
    grey = f[labels[60] == GRASPER]
    assert grey.size and np.abs(grey[:, 0] - grey[:, 2]).mean() < 20


def test_noisy_labels_follow_schedule():
    video = SyntheticVideo()
    no_label = video.classes.no_label
    for ev in video.noise_events:
        t = ev.first
        gt, noisy = video.labels(t), video.noisy_labels(t)
        if ev.kind == "dropout":
            assert (gt == ev.class_id).any() and not (noisy == ev.class_id).any()
            assert (noisy == no_label).any()
        elif ev.kind == "confusion":
            assert not (noisy == ev.class_id).any() and (noisy == ev.other_id).any()
    # away from events the noise only jitters boundaries: high agreement with the ground truth
    t = 100
    assert (video.noisy_labels(t) == video.labels(t)).mean() > 0.9
    assert {GRASPER, HOOK, CLIPPER, LIVER} <= set(range(8))


def test_lazy_dask_stacks():
    video = SyntheticVideo(n_frames=30)
    d = video.frames_dask()
    assert d.shape == (30, 256, 320, 3) and d.chunks[0] == (1,) * 30
    np.testing.assert_array_equal(d[17].compute(), video.frame(17))
    np.testing.assert_array_equal(video.labels_dask()[3:5].compute()[1], video.labels(4))
