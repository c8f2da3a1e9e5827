from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from napari_sasvi.core.instances.types import Instance
from napari_sasvi.core.synthetic import CLIPPER, GRASPER, HOOK, SyntheticVideo
from napari_sasvi.core.synthetic_instances import (
    BLOB_SCORE,
    DETECTION_ID_STRIDE,
    MERGED_SCORE,
    _save_ids,
    detection_ids,
    write_instance_pngs,
)

INSTRUMENTS = (GRASPER, HOOK, CLIPPER)


@pytest.fixture(scope="module")
def video():
    return SyntheticVideo(n_frames=60)  # the demo's clip


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return (a & b).sum() / max(1, (a | b).sum())


@pytest.mark.parametrize("n", [60, 120])
def test_the_two_graspers_enter_cross_and_leave(n):
    video = SyntheticVideo(n_frames=n)
    assert video.instance_classes == {1: GRASPER, 2: HOOK, 3: CLIPPER, 4: GRASPER}
    assert video.crossing_pair == (1, 4)
    first, second = video.instruments[0], video.instruments[3]
    crossing = video.crossing_frames()
    # several consecutive frames, after the second grasper entered apart from the first and
    # before it leaves apart from it again
    assert len(crossing) >= 4 and crossing == list(range(crossing[0], crossing[-1] + 1)), crossing
    before = [t for t in range(second.enter, crossing[0]) if (video.instance_labels(t) == 4).any()]
    after = [t for t in range(crossing[-1] + 1, second.leave + 1) if (video.instance_labels(t) == 4).any()]
    assert len(before) >= 5 and len(after) >= 5, (before, after)
    assert not (video.instance_labels(min(n - 1, second.leave + 1)) == 4).any()
    peak = max(video.crossing_overlap.values())
    assert peak > 500  # pixels of the first grasper the second hides at the crossing's peak
    for t in crossing:
        ids = video.instance_labels(t)
        whole_first = video._draw_instrument(first, t)[0]
        whole_second = video._draw_instrument(second, t)[0]
        in_front = [video._draw_instrument(ins, t) for ins in video.instruments[1:]]
        hidden = np.logical_or.reduce([d[0] for d in in_front if d is not None])
        # the second grasper is in front: all of it shows, the first loses the overlap (and
        # whatever the hook or clipper, also drawn later, covers)
        np.testing.assert_array_equal(ids == 4, whole_second)
        np.testing.assert_array_equal(ids == 1, whole_first & ~hidden)
        assert (ids == 1).any() and not (ids[whole_first & whole_second] == 1).any()


def test_instance_labels_agree_with_labels(video):
    for t in range(video.n_frames):
        ids, labels = video.instance_labels(t), video.labels(t)
        assert ids.dtype == np.uint16 and ids.shape == labels.shape
        # an instrument pixel has an id of its class, and every id sits on its class
        np.testing.assert_array_equal(ids != 0, np.isin(labels, INSTRUMENTS))
        for k, cls in video.instance_classes.items():
            assert (labels[ids == k] == cls).all()
    # ids 1 and 4 are both graspers, apart, on a frame before the crossing
    t = video.crossing_frames()[0] - 3
    ids = video.instance_labels(t)
    assert (ids == 1).any() and (ids == 4).any()
    assert set(np.unique(video.labels(t)[ids > 0]).tolist()) >= {GRASPER}


def test_noisy_instances_are_deterministic(video):
    other = SyntheticVideo(n_frames=60)
    for t in (10, 36, 45):
        a, b = video.noisy_instances(t), other.noisy_instances(t)
        assert [(i.class_id, i.score) for i in a] == [(i.class_id, i.score) for i in b]
        for i, j in zip(a, b, strict=True):
            np.testing.assert_array_equal(i.mask, j.mask)
        assert all(isinstance(i, Instance) and i.source_id is None and 0 <= i.score <= 1 for i in a)
        assert all(i.mask.dtype == bool and i.mask.any() for i in a)
    c = SyntheticVideo(n_frames=60, seed=1).noisy_instances(45)
    assert not all(np.array_equal(i.mask, j.mask) for i, j in zip(c, video.noisy_instances(45), strict=False))


def match(video, t):
    """GT id -> the best-matching detection's IoU, and the detections matched to no GT id."""
    ids = video.instance_labels(t)
    dets = video.noisy_instances(t)
    best = {}
    matched = set()
    for k in map(int, np.unique(ids[ids > 0])):
        scores = [iou(d.mask, ids == k) for d in dets]
        best[k] = max(scores, default=0.0)
        if best[k] >= 0.5:
            matched.add(int(np.argmax(scores)))
    return best, [d for j, d in enumerate(dets) if j not in matched], dets


def test_noisy_instances_carry_each_scheduled_error(video):
    events = {ev.kind: ev for ev in video.instance_noise_events}
    assert set(events) == {"jitter", "dropout", "blob", "merge"}
    assert events["jitter"].first == 0 and events["jitter"].last == video.n_frames - 1
    busy = {t for ev in events.values() if ev.kind != "jitter" for t in range(ev.first, ev.last + 1)}
    # away from the events: one detection per visible instrument, of its class, jittered boundaries
    t = 40
    assert t not in busy
    best, unmatched, dets = match(video, t)
    assert set(best) == {1, 2, 3, 4} and min(best.values()) > 0.7 and not unmatched
    assert all(d.score >= 0.8 for d in dets)
    ids = video.instance_labels(t)
    assert not any(np.array_equal(d.mask, ids == k) for d in dets for k in best)  # jittered
    # dropout: the second grasper is in the ground truth and missed for one frame only
    ev = events["dropout"]
    assert ev.ids == (4,) and ev.first == ev.last
    best, unmatched, _ = match(video, ev.first)
    assert best[4] < 0.1 and min(v for k, v in best.items() if k != 4) > 0.7 and not unmatched
    assert match(video, ev.first + 1)[0][4] > 0.7
    # blob: one small spurious grasper with a low score, on no instrument
    ev = events["blob"]
    _, unmatched, _ = match(video, ev.first)
    assert len(unmatched) == 1
    blob = unmatched[0]
    assert blob.class_id == GRASPER and blob.score == BLOB_SCORE < 0.5
    assert 0 < blob.mask.sum() < 400 and not (video.instance_labels(ev.first)[blob.mask] > 0).any()
    # merge: on one or two frames of the crossing, the two graspers are one detection
    ev = events["merge"]
    assert ev.ids == (1, 4) and 1 <= ev.last - ev.first + 1 <= 2
    assert set(range(ev.first, ev.last + 1)) <= set(video.crossing_frames())
    for t in range(ev.first, ev.last + 1):
        ids = video.instance_labels(t)
        graspers = [d for d in video.noisy_instances(t) if d.class_id == GRASPER]
        assert len(graspers) == 1 and graspers[0].score == MERGED_SCORE
        assert iou(graspers[0].mask, (ids == 1) | (ids == 4)) > 0.8
    # a crossing frame outside the merge: two grasper detections
    t = next(t for t in video.crossing_frames() if t > ev.last)
    assert sum(d.class_id == GRASPER for d in video.noisy_instances(t)) == 2


def read_png(path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.mode in ("L", "I;16")
        return np.array(im)


def test_the_ground_truth_folder_round_trips(tmp_path):
    video = SyntheticVideo(n_frames=12, height=64, width=80, seed=2)
    folder = write_instance_pngs(video, tmp_path / "gt", noisy=False)
    pngs = sorted(folder.glob("*.png"))
    assert [p.name for p in pngs] == [f"{t:010d}.png" for t in range(12)]
    for t, p in enumerate(pngs):
        np.testing.assert_array_equal(read_png(p), video.instance_labels(t))
    meta = json.loads((folder / "instances.json").read_text())
    assert meta == {"classes": {"1": GRASPER, "2": HOOK, "3": CLIPPER, "4": GRASPER}}


def test_the_detections_folder_round_trips_without_leaking_identity(video, tmp_path):
    folder = write_instance_pngs(video, tmp_path / "det")
    classes = {int(k): v for k, v in json.loads((folder / "instances.json").read_text())["classes"].items()}
    assert classes and all(k // DETECTION_ID_STRIDE == v for k, v in classes.items())
    on_first = set()  # the id on the first grasper, on frames with both graspers detected apart
    for t in range(video.n_frames):
        got = read_png(folder / f"{t:010d}.png")
        dets = video.noisy_instances(t)
        present = set(np.unique(got).tolist()) - {0}
        assert len(present) == len(dets) and present <= set(classes)
        for d in dets:  # each detection is one id of its class, on exactly its pixels
            (oid,) = np.unique(got[d.mask])
            assert classes[int(oid)] == d.class_id
            np.testing.assert_array_equal(got == oid, d.mask)
        ids = video.instance_labels(t)
        graspers = [k for k in present if classes[k] == GRASPER]
        if len(graspers) == 2 and (ids == 1).any() and (ids == 4).any():
            on_first.add(int(np.bincount(got[ids == 1]).argmax()))
    assert len(on_first) == 2  # which grasper an id names changes from frame to frame


def test_id_maps_are_uint16_where_they_must_be(tmp_path):
    ids = np.zeros((8, 9), np.uint16)
    ids[2:4, 3:5] = 300
    _save_ids(ids, tmp_path / "a.png")
    np.testing.assert_array_equal(read_png(tmp_path / "a.png"), ids)
    _save_ids(ids // 2, tmp_path / "b.png")
    with Image.open(tmp_path / "b.png") as im:
        assert im.mode == "L"
    with pytest.raises(ValueError, match="no detections"):
        detection_ids([], np.random.default_rng(0))


def test_without_crossing_the_clip_has_three_instruments():
    video = SyntheticVideo(n_frames=12, height=64, width=80, crossing=False)
    assert video.instance_classes == {1: GRASPER, 2: HOOK, 3: CLIPPER}
    assert video.crossing_pair is None and video.crossing_frames() == []
    assert [ev.kind for ev in video.instance_noise_events] == ["jitter"]
    assert {d.class_id for t in range(12) for d in video.noisy_instances(t)} <= set(INSTRUMENTS)
    crossing = SyntheticVideo(n_frames=12, height=64, width=80)
    assert video.name != crossing.name  # the lazy stacks' dask names differ
    assert not all(np.array_equal(video.labels(t), crossing.labels(t)) for t in range(12))
