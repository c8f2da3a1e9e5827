"""Instance mode end to end: identity across frames (IdentityCache), the run on track ids with the
flow tracker and the real SAM2 (random weights), the store's tracks and track table, resuming."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sasvi.core.datasets import SYNTHETIC
from napari_sasvi.core.engine import run_sasvi
from napari_sasvi.core.errors import InputError
from napari_sasvi.core.instances.identity import IdentityCache, IdentityParams, mask_iou, shift_mask
from napari_sasvi.core.instances.types import Instance, rle_decode, rle_encode
from napari_sasvi.core.overseers.replay import ReplayOverseer
from napari_sasvi.core.policy import PolicyParams
from napari_sasvi.core.store.sasvi_store import SasviStore
from napari_sasvi.core.store.tracks import class_lut
from napari_sasvi.core.trackers.flow import FlowTracker

GRASPER = 5
H, W = 96, 128


def _square(y: int, x: int, r: int = 8) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[max(0, y - r) : y + r, max(0, x - r) : x + r] = True
    return m


class Detections:
    """An instance overseer replaying a schedule: frame -> list of (class, (y, x), score); the
    detections carry no identity (source_id None), as a model's."""

    needs_frames = False
    name = "scheduled detections"

    def __init__(self, schedule):
        self.schedule = schedule
        self.calls = 0

    def predict_instances(self, frames, indices):
        self.calls += 1
        return [[Instance(c, _square(*yx), s) for c, yx, s in self.schedule(t)] for t in indices]

    def describe(self):
        return {"type": "scheduled"}


def crossing(t: int):
    """Two graspers moving towards each other along nearly the same row: they overlap (cross)
    around frame 17; the right one is missed on frame 7."""
    out = [(GRASPER, (40, 10 + 3 * t), 0.9)]
    if t != 7:
        out.append((GRASPER, (46, 110 - 3 * t), 0.8))
    return out


def _frames(schedule, n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 40, (n, H, W, 3), dtype=np.uint8)
    for t in range(n):
        for k, (_, (y, x), _) in enumerate(schedule(t)):
            frames[t][_square(y, x)] = (200, 60, 60) if k == 0 else (60, 200, 60)
    return frames


def _centre_x(tracks: np.ndarray, k: int) -> float:
    return float(np.nonzero(tracks == k)[1].mean())


# -- identity ---------------------------------------------------------------------------------------
def test_rle_round_trips_and_shift_moves_a_mask():
    m = np.random.default_rng(1).random((7, 9)) > 0.5
    np.testing.assert_array_equal(rle_decode(rle_encode(m)), m)
    s = shift_mask(_square(40, 40), 3, -5)
    assert mask_iou(s, _square(43, 35)) == 1.0 and mask_iou(s, _square(40, 40)) < 1.0
    assert mask_iou(_square(10, 10), _square(80, 100)) == 0.0


def test_crossing_objects_keep_their_ids_and_a_missed_frame_keeps_the_track():
    cache = IdentityCache(Detections(crossing), 30)
    ids = []
    for t in range(30):
        masks = cache.masks(t)
        ids.append({k: float(np.nonzero(m)[1].mean()) for k, m in masks.items()})
    assert cache.class_of == {1: GRASPER, 2: GRASPER}
    # track 1 moves right all along, track 2 left: no swap at the crossing
    assert all(np.diff([ids[t][1] for t in range(30)]) > 0)
    assert all(np.diff([ids[t][2] for t in range(30) if 2 in ids[t]]) < 0)
    assert 2 not in ids[7] and 2 in ids[8]  # the missed frame has no mask, the track goes on


def test_a_one_frame_detection_starts_no_track_and_a_lasting_one_does():
    def sched(t):
        out = [(GRASPER, (20, 20), 1.0)]
        if t == 3:
            out.append((GRASPER, (70, 100), 0.4))  # a one-frame false positive
        if t >= 10:
            out.append((GRASPER, (70, 60), 0.9))  # a new object that stays
        return out

    cache = IdentityCache(Detections(sched), 20, params=IdentityParams(persistence=3))
    seen = [set(cache.masks(t)) for t in range(20)]
    assert seen[3] == {1}
    assert seen[10] == {1, 2} and seen[19] == {1, 2}
    assert cache.scores(10)[2] == pytest.approx(0.9)


def test_an_object_back_within_the_reid_window_keeps_its_id_and_later_gets_a_new_one():
    def sched(t):
        gone = 5 <= t < 20 or 30 <= t < 50
        return [] if gone else [(GRASPER, (40, 40), 1.0)]

    cache = IdentityCache(Detections(sched), 60, params=IdentityParams(grace=3, reid_frames=20))
    ids = [set(cache.masks(t)) for t in range(60)]
    assert ids[4] == {1} and ids[20] == {1}  # 16 frames away: re-identified
    assert ids[50] == {2}  # 21 frames away: past the window, a new track


def test_a_split_records_its_parent():
    def sched(t):
        if t < 5:
            return [(GRASPER, (40, 40), 1.0)]
        return [(GRASPER, (40, 36), 1.0), (GRASPER, (40, 44), 1.0)]  # one blob becomes two

    cache = IdentityCache(Detections(sched), 12, params=IdentityParams(split_overlap=0.3))
    for t in range(12):
        cache.masks(t)
    assert set(cache.class_of) == {1, 2} and cache.parent == {2: 1}


def test_identity_state_restores_to_the_same_ids():
    a = IdentityCache(Detections(crossing), 30)
    for t in range(30):
        a.masks(t)
    state = a.export_state(12)
    b = IdentityCache(Detections(crossing), 30)
    b.restore_state(state)
    for t in range(12, 30):
        assert {k: m.tobytes() for k, m in b.masks(t).items()} == {k: m.tobytes() for k, m in a.masks(t).items()}


# -- the run --------------------------------------------------------------------------------------
def _run(out, overseer, frames, tracker=None, **kw):
    tracker = tracker or FlowTracker()
    return run_sasvi(
        frames, overseer, tracker, str(out), SYNTHETIC, PolicyParams(buffer=12), instances=IdentityParams(), **kw
    )


def test_instance_run_writes_class_ids_track_ids_and_a_track_table(tmp_path):
    frames = _frames(crossing, 30)
    _run(tmp_path / "i.zarr", Detections(crossing), frames)
    store = SasviStore.read(tmp_path / "i.zarr")
    tracks, labels = np.asarray(store.tracks), np.asarray(store.labels)
    table = store.track_table
    assert set(table) == {1, 2} and {i.class_id for i in table.values()} == {GRASPER}
    assert table[1].first == 0 and table[1].last == 29 and table[1].mean_score == pytest.approx(0.9)
    assert table[2].n_detected == 29 and table[2].mean_score == pytest.approx(0.8)
    # class ids are the tracks' classes, pixel for pixel
    np.testing.assert_array_equal(labels, class_lut(table, SYNTHETIC.no_label)[tracks])
    # identity through the crossing: track 1 goes right, track 2 left, on every frame
    assert _centre_x(tracks[0], 1) < 30 < 90 < _centre_x(tracks[29], 1)
    assert _centre_x(tracks[0], 2) > 90 > 30 > _centre_x(tracks[29], 2)
    xs1 = [_centre_x(tracks[t], 1) for t in range(30)]
    assert all(np.diff(xs1) > 0)
    # the overseer's own (class) labels are stored beside
    assert set(np.unique(np.asarray(store.overseer))) == {GRASPER, SYNTHETIC.no_label}


def test_resumed_instance_run_is_byte_identical(tmp_path):
    frames = _frames(crossing, 30)
    _run(tmp_path / "whole.zarr", Detections(crossing), frames, background_writes=False)
    _run(tmp_path / "part.zarr", Detections(crossing), frames, stop_after=20, background_writes=False)
    part = SasviStore.read(tmp_path / "part.zarr")
    assert 20 <= part.frames_done < 30 and part.snapshot["frame"] > 0  # resumes from a later segment start
    assert "identity" in part.snapshot["state"]
    _run(tmp_path / "part.zarr", Detections(crossing), frames, background_writes=False)
    a, b = SasviStore.read(tmp_path / "whole.zarr"), SasviStore.read(tmp_path / "part.zarr")
    np.testing.assert_array_equal(np.asarray(a.tracks), np.asarray(b.tracks))
    np.testing.assert_array_equal(np.asarray(a.labels), np.asarray(b.labels))
    assert a.track_table == b.track_table and a.events == b.events


def test_instances_need_an_instance_overseer_and_refuse_anchors(tmp_path):
    frames = _frames(crossing, 6)
    labels = np.full((6, H, W), 255, np.uint8)
    replay = ReplayOverseer(labels, SYNTHETIC, frame_count=6, frame_size=(H, W))
    with pytest.raises(InputError, match="gives class masks only"):
        _run(tmp_path / "a.zarr", replay, frames)
    with pytest.raises(InputError, match="reference mode"):
        run_sasvi(
            frames, Detections(crossing), FlowTracker(), str(tmp_path / "b.zarr"), SYNTHETIC,
            PolicyParams(mode="reference"), instances=IdentityParams(),
        )  # fmt: skip
    assert not (tmp_path / "a.zarr").exists() and not (tmp_path / "b.zarr").exists()


@pytest.mark.slow
def test_sam2_tracks_several_objects_of_one_class(tmp_path, sam2_tracker):
    """The real SAM2 path (random weights): three graspers, one per track, ids kept in the store."""

    def three(t):
        return [(GRASPER, (20, 20 + t), 1.0), (GRASPER, (50, 60), 1.0), (GRASPER, (75, 100 - t), 1.0)]

    frames = _frames(three, 10)
    _run(tmp_path / "s.zarr", Detections(three), frames, tracker=sam2_tracker(legacy=False))
    store = SasviStore.read(tmp_path / "s.zarr")
    tracks = np.asarray(store.tracks)
    assert set(store.track_table) == {1, 2, 3}
    # on the prompted frame each track is its own square (random weights: SAM2's propagated masks
    # are rough, so later frames are checked for ids only)
    for k, (_, (y, x), _) in zip((1, 2, 3), three(0), strict=True):
        ious = [mask_iou(tracks[0] == j, _square(y, x)) for j in (1, 2, 3)]
        assert int(np.argmax(ious)) + 1 == k and ious[k - 1] > 0.5
    assert set(np.unique(tracks)) <= {0, 1, 2, 3}
    np.testing.assert_array_equal(np.asarray(store.labels), class_lut(store.track_table, SYNTHETIC.no_label)[tracks])


# -- edits ------------------------------------------------------------------------------------------
def test_correcting_one_instance_re_propagates_it_and_undo_restores_the_tracks(tmp_path):
    from napari_sasvi.core.engine import EditRequest, run_edit, undo_edit

    frames = _frames(crossing, 30)
    out = tmp_path / "e.zarr"
    _run(out, Detections(crossing), frames)
    store = SasviStore.read(out)
    before_tracks, before_table = np.asarray(store.tracks), store.track_table
    # the user says track 2 is another object: paints it with a new id, 3 (a grasper)
    fix = before_tracks[5].copy()
    fix[fix == 2] = 3
    summary = run_edit(out, frames, FlowTracker(), EditRequest("correction", 5, fix, new_tracks={3: GRASPER}))
    store = SasviStore.read(out)
    tracks, table = np.asarray(store.tracks), store.track_table
    np.testing.assert_array_equal(tracks[5], fix)
    span = range(summary.start, summary.stop + 1)
    assert 3 in np.unique(tracks[summary.stop]) and all(2 not in np.unique(tracks[t]) for t in span)
    np.testing.assert_array_equal(tracks[:5], before_tracks[:5])  # nothing before the edit changes
    assert table[3].class_id == GRASPER and table[3].first == 5 and table[3].last == summary.stop
    np.testing.assert_array_equal(np.asarray(store.labels), class_lut(table, SYNTHETIC.no_label)[tracks])
    undo_edit(out)
    store = SasviStore.read(out)
    np.testing.assert_array_equal(np.asarray(store.tracks), before_tracks)
    assert store.track_table == before_table


def test_instance_edits_refuse_unknown_ids_and_pins(tmp_path):
    from napari_sasvi.core.engine import EditRequest, run_edit

    frames = _frames(crossing, 12)
    out = tmp_path / "r.zarr"
    _run(out, Detections(crossing), frames)
    fix = np.asarray(SasviStore.read(out).tracks[4]).copy()
    fix[:4, :4] = 9
    with pytest.raises(InputError, match="track id"):
        run_edit(out, frames, FlowTracker(), EditRequest("correction", 4, fix))
    with pytest.raises(InputError, match="pin"):
        run_edit(out, frames, FlowTracker(), EditRequest("pin", 4))
    assert SasviStore.read(out).track_table[1].last == 11


def test_file_identities_are_kept_without_matching_or_persistence():
    """Instance label files name their objects: one track per (class, source id) from its first
    frame, however far it moved (sparse annotations one frame in 30)."""

    def sched(t):
        return [Instance(GRASPER, _square(20 + 30 * (t % 2), 20 + 40 * t), 1.0, source_id=1)] if t != 2 else []

    class Files(Detections):
        def predict_instances(self, frames, indices):
            return [sched(t) for t in indices]

    cache = IdentityCache(Files(None), 3)
    assert [set(cache.masks(t)) for t in range(3)] == [{1}, {1}, set()]
    b = IdentityCache(Files(None), 3)
    b.restore_state(cache.export_state(1))
    assert set(b.masks(1)) == {1} and b.class_of == {1: GRASPER}


def test_cli_instance_run_names_tracks(tmp_path, capsys):
    """segment --instances replays an instance PNG folder + instances.json and names the tracks."""
    import json

    from PIL import Image

    from napari_sasvi.cli import main

    frames = _frames(crossing, 8)
    (tmp_path / "f").mkdir()
    (tmp_path / "m").mkdir()
    for t in range(8):
        Image.fromarray(frames[t]).save(tmp_path / "f" / f"{t:04d}.png")
        ids = np.zeros((H, W), np.uint8)
        for k, (_, (y, x), _) in enumerate(crossing(t), start=1):
            ids[_square(y, x) & (ids == 0)] = k
        Image.fromarray(ids).save(tmp_path / "m" / f"{t:04d}.png")
    (tmp_path / "m" / "instances.json").write_text(json.dumps({"classes": {"1": GRASPER, "2": GRASPER}}))
    rc = main(
        ["segment", str(tmp_path / "f"), "--overseer-masks", str(tmp_path / "m"), "--dataset", "synthetic",
         "--instances", "--out", str(tmp_path / "o.zarr")]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0 and "tracks: 2 (Grasper ×2)" in out
    store = SasviStore.read(tmp_path / "o.zarr")
    assert set(store.track_table) == {1, 2} and store.config["instances"] is True


def test_sparse_annotations_re_prompt_each_annotated_frame_and_keep_ids_between(tmp_path):
    """Annotations on some frames only (Endoscapes: 4 of 120): each annotated frame re-prompts,
    the tracker carries the tracks between them (no fade), and an object annotated again where
    the tracker has it keeps its id (no identity in the file)."""

    def sched(t):
        return [(GRASPER, (30, 20 + t), 1.0), (GRASPER, (70, 100 - t), 1.0)] if t % 10 == 0 else []

    class Sparse(Detections):
        class source:  # what InstanceReplayOverseer has: the annotated frames of its files
            annotated = (0, 10, 20)

    frames = _frames(lambda t: [(GRASPER, (30, 20 + t), 1.0), (GRASPER, (70, 100 - t), 1.0)], 25)
    _run(tmp_path / "s.zarr", Sparse(sched), frames)
    store = SasviStore.read(tmp_path / "s.zarr")
    tracks = np.asarray(store.tracks)
    assert set(store.track_table) == {1, 2}
    for t in (0, 5, 10, 15, 20, 24):  # carried between annotations, both ids on every frame
        assert set(np.unique(tracks[t])) == {0, 1, 2}, t
    restarts = [e["frame"] for e in store.events if e["kind"] == "restart"]
    assert {0, 10, 20} <= set(restarts)
    assert not any(e["kind"] in ("fade", "reprompt_class") for e in store.events)


def test_the_only_object_of_its_class_keeps_its_id_however_far_it_jumps():
    """An instrument tip sweeping across the view overlaps nothing of itself between two frames:
    the class's only live track takes the class's only detection (unique_class); off, it is lost."""

    def sched(t):
        return [(GRASPER, (40, 20 if t % 2 == 0 else 100), 1.0)]

    on = IdentityCache(Detections(sched), 10)
    assert all(set(on.masks(t)) == {1} for t in range(10))
    off = IdentityCache(Detections(sched), 10, params=IdentityParams(unique_class=False))
    assert all(not off.masks(t) for t in range(9))  # never continued: no track (but on the last frame)


def test_a_merged_detection_of_two_crossing_objects_continues_neither():
    """On frames 5 and 6 the detector sees two graspers as one blob: it goes to neither track (the
    tracker carries both), and both tracks take their own detections again on frame 7."""

    class Merge(Detections):
        def predict_instances(self, frames, indices):
            out = []
            for t in indices:
                if t in (5, 6):
                    out.append([Instance(GRASPER, _square(40, 44) | _square(40, 60), 0.6)])
                else:
                    out.append([Instance(GRASPER, _square(40, 44), 1.0), Instance(GRASPER, _square(40, 60), 1.0)])
            return out

    cache = IdentityCache(Merge(None), 10)
    got = [set(cache.masks(t)) for t in range(10)]
    assert got[4] == {1, 2} and got[5] == got[6] == set() and got[7] == {1, 2}
    off = IdentityCache(Merge(None), 10, params=IdentityParams(merge_cover=1.0))
    assert len([set(off.masks(t)) for t in range(10)][5]) == 1


def test_demo_instances_runs_offline_and_scores_identity(tmp_path, capsys):
    from napari_sasvi.cli import main

    assert main(["demo", "--instances", "--frames", "40", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "ID switches" in out and "IDF1" in out and "instrument 1 (Grasper): track #" in out
    store = SasviStore.read(next(tmp_path.glob("*_instances.zarr")))
    assert store.complete and len(store.track_table) >= 3


def test_cli_corrects_an_instance_store_with_a_track_id_png(tmp_path, capsys):
    from PIL import Image

    from napari_sasvi.cli import main

    frames = _frames(crossing, 12)
    (tmp_path / "f").mkdir()
    for t in range(12):
        Image.fromarray(frames[t]).save(tmp_path / "f" / f"{t:04d}.png")
    out = tmp_path / "c.zarr"
    _run(out, Detections(crossing), str(tmp_path / "f"))
    fix = np.asarray(SasviStore.read(out).tracks[4]).copy()
    fix[fix == 2] = 7
    Image.fromarray(fix.astype(np.uint16)).save(tmp_path / "fix.png")
    args = ["edit", str(out), "--correct", "4", "--labels", str(tmp_path / "fix.png"), "--tracker", "flow"]
    assert main(args) == 2  # track 7 has no class yet
    assert "track id" in capsys.readouterr().err
    assert main([*args, "--new-track", "7=Grasper"]) == 0
    store = SasviStore.read(out)
    np.testing.assert_array_equal(np.asarray(store.tracks[4]), fix)
    assert store.track_table[7].class_id == GRASPER


def test_palette_object_ids_need_no_class_table(tmp_path, capsys):
    """DAVIS 2017 style: palette PNGs of object ids, --dataset from-labels: each id an object class
    "object k" in the palette's colour, one track each."""
    from PIL import Image

    from napari_sasvi.cli import main
    from napari_sasvi.core.config import RunConfig

    frames = _frames(crossing, 8)
    (tmp_path / "f").mkdir()
    (tmp_path / "a").mkdir()
    palette = [0, 0, 0, 200, 10, 10, 10, 200, 10] + [0] * (3 * 253)
    for t in range(8):
        Image.fromarray(frames[t]).save(tmp_path / "f" / f"{t:05d}.jpg")
        ids = np.zeros((H, W), np.uint8)
        for k, (_, (y, x), _) in enumerate(crossing(t), start=1):
            ids[_square(y, x) & (ids == 0)] = k
        im = Image.fromarray(ids, mode="P")
        im.putpalette(palette)
        im.save(tmp_path / "a" / f"{t:05d}.png")
    rc = main(
        ["segment", str(tmp_path / "f"), "--overseer-masks", str(tmp_path / "a"), "--dataset", "from-labels",
         "--instances", "--out", str(tmp_path / "o.zarr")]
    )  # fmt: skip
    assert rc == 0 and "tracks: 2 (object 1 ×1, object 2 ×1)" in capsys.readouterr().out
    store = SasviStore.read(tmp_path / "o.zarr")
    assert store.classes.by_id(2).color == (10, 200, 10) and set(store.track_table) == {1, 2}
    with pytest.raises(InputError, match="from-labels"):
        RunConfig(dataset="from-labels")


def test_annotated_frames_with_a_detector_take_over_its_tracks(tmp_path):
    """--anchors with --instances: an annotated frame's objects replace the detector's there and
    re-prompt; the annotated grasper takes over the track the detector had for it (no new id), and
    a track bound to a file's object is continued by the detector's detections after it."""
    import json

    from PIL import Image

    from napari_sasvi.core.config import RunConfig
    from napari_sasvi.core.engine.batch import segment_video

    frames = _frames(crossing, 20)
    (tmp_path / "f").mkdir()
    (tmp_path / "ann").mkdir()
    for t in range(20):
        Image.fromarray(frames[t]).save(tmp_path / "f" / f"{t:04d}.png")
    ids = np.zeros((H, W), np.uint8)
    for k, (_, (y, x), _) in enumerate(crossing(10), start=1):
        ids[_square(y, x) & (ids == 0)] = 10 + k
    Image.fromarray(ids).save(tmp_path / "ann" / "0010.png")  # frame 10 annotated, file ids 11 and 12
    (tmp_path / "ann" / "instances.json").write_text(json.dumps({"classes": {"11": GRASPER, "12": GRASPER}}))
    det = tmp_path / "det"
    det.mkdir()
    for t in range(20):
        m = np.zeros((H, W), np.uint8)
        for k, (_, (y, x), _) in enumerate(crossing(t), start=1):
            m[_square(y, x) & (m == 0)] = k
        Image.fromarray(m).save(det / f"{t:04d}.png")
    (det / "instances.json").write_text(json.dumps({"classes": {"1": GRASPER, "2": GRASPER}, "identities": False}))
    config = RunConfig(dataset="synthetic", instances=True, overseer={"anchors": str(tmp_path / "ann")})
    segment_video(tmp_path / "f", tmp_path / "o.zarr", config, masks=str(det))
    store = SasviStore.read(tmp_path / "o.zarr")
    assert set(store.track_table) == {1, 2}  # the annotation took over the detector's two tracks
    assert any(e["kind"] == "restart" and e["frame"] == 10 and e["reason"] == "anchor" for e in store.events)
    tracks = np.asarray(store.tracks)
    assert _centre_x(tracks[19], 1) > _centre_x(tracks[0], 1) and _centre_x(tracks[19], 2) < _centre_x(tracks[0], 2)
