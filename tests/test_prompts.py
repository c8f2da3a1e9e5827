"""Prompts without a trained overseer (issue 30): clicks and boxes on a frame committed as edits of
a store (items 1 and 4), prompt files exported and replayed byte for byte (items 2 and 5), the
real SAM2 image path."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from napari_sasvi.core.datasets import SYNTHETIC
from napari_sasvi.core.engine import run_sasvi, undo_edit
from napari_sasvi.core.errors import InputChangedError, InputError
from napari_sasvi.core.overseers.replay import ReplayOverseer
from napari_sasvi.core.policy import PolicyParams
from napari_sasvi.core.progress import drain
from napari_sasvi.core.prompts import (
    GrowSegmenter,
    ObjectPrompt,
    Sam2ImageSegmenter,
    check_prompt,
    export_prompts,
    iter_prompt,
    iter_replay,
    read_prompt_file,
    write_prompt_file,
)
from napari_sasvi.core.store.edit_log import read_edits, reprompts
from napari_sasvi.core.store.sasvi_store import SasviStore
from napari_sasvi.core.synthetic import SyntheticVideo
from napari_sasvi.core.trackers.flow import FlowTracker

N = 16


@pytest.fixture(scope="module")
def clip():
    video = SyntheticVideo(n_frames=N, height=64, width=80, seed=3)
    frames, labels = video.arrays()
    _, noisy = video.arrays(noisy=True)
    return frames, labels, noisy


def _store(path, clip, tracker=None, **kw):
    frames, _, noisy = clip
    run_sasvi(
        frames, ReplayOverseer(noisy, SYNTHETIC), tracker or FlowTracker(), str(path), SYNTHETIC, PolicyParams(), **kw
    )
    return SasviStore.read(path)


def _box_of(mask):
    ys, xs = np.nonzero(mask)
    return (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))


def _an_object(labels, t):
    """The largest class on frame t of the truth whose box covers less than half the frame, and its mask."""
    keep = []
    for i in np.unique(labels[t]):
        m = labels[t] == i
        x0, y0, x1, y1 = _box_of(m)
        if i != SYNTHETIC.no_label and m.sum() > 60 and (x1 - x0) * (y1 - y0) < 0.5 * m.size:
            keep.append((int(m.sum()), int(i)))
    cls = max(keep)[1]
    return cls, labels[t] == cls


def _labels_bytes(root):
    """The store's label and overseer chunks: relative path -> bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).parts[0] in ("labels", "overseer", "tracks")
    }


def test_check_prompt_refuses_what_cannot_be_segmented():
    ok = ObjectPrompt(0, 1, 1, points=((5.0, 5.0),), labels=(1,))
    check_prompt(ok, (64, 80), 10)
    bad = {
        "outside frame 0": ObjectPrompt(0, 1, 1, points=((80.5, 5.0),), labels=(1,)),
        "has no area": ObjectPrompt(0, 1, 1, box=(10.0, 10.0, 10.0, 30.0)),
        "Nothing says where": ObjectPrompt(0, 1, 1, points=((5.0, 5.0),), labels=(0,)),
        "one label a click": ObjectPrompt(0, 1, 1, points=((5.0, 5.0),), labels=()),
        "not in the video": ObjectPrompt(12, 1, 1, points=((5.0, 5.0),), labels=(1,)),
        "is outside frame": ObjectPrompt(0, 1, 1, box=(90.0, 10.0, 120.0, 30.0)),
    }
    for words, p in bad.items():
        with pytest.raises(InputError, match=words):
            check_prompt(p, (64, 80), 10)
    # the dict form round-trips, a mask included
    m = np.zeros((64, 80), bool)
    m[3:9, 4:20] = True
    p = ObjectPrompt(2, 3, 3, ((1.5, 2.0), (7.0, 8.0)), (1, 0), (0.0, 0.0, 10.0, 10.0), m)
    q = ObjectPrompt.from_dict(json.loads(json.dumps(p.to_dict())))
    assert q == p and np.array_equal(q.mask, m)
    with pytest.raises(InputError, match="cannot be read"):
        ObjectPrompt.from_dict({"frame": 1, "points": [[1, 2]]})


def test_a_box_is_committed_propagated_recorded_and_undone(tmp_path, clip):
    frames, labels, _ = clip
    store = _store(tmp_path / "s.zarr", clip)
    before = np.asarray(store.labels)
    t = 4
    cls, truth = _an_object(labels, t)
    prompt = ObjectPrompt(t, cls, cls, box=_box_of(truth))
    summary = drain(iter_prompt(store.path, frames, FlowTracker(), prompt, segmenter=GrowSegmenter()))
    after = np.asarray(SasviStore.read(store.path).labels)
    rec = read_edits(store.path)[-1]
    mask = ObjectPrompt.from_dict(rec["prompt"]).mask
    # the frame holds the class exactly where the committed mask is; the rest as it was
    assert np.array_equal(after[t] == cls, mask)
    keep = ~mask & (before[t] != cls)
    assert np.array_equal(after[t][keep], before[t][keep])
    inter = np.logical_and(mask, truth).sum()
    assert 2 * inter / (mask.sum() + truth.sum()) > 0.8  # GrabCut from the box found the object
    # only the span was recomputed; the record says what the prompt was and what made the mask
    outside = [f for f in range(N) if not summary.start <= f <= summary.stop]
    assert summary.start == t and np.array_equal(after[outside], before[outside])
    assert rec["kind"] == "correction" and rec["prompt"]["box"] == list(prompt.box)
    assert rec["prompt"]["segmenter"]["type"] == "grow"
    assert any("prompt for object" in r["reason"] for r in reprompts(store))
    undo_edit(store.path)
    assert np.array_equal(np.asarray(SasviStore.read(store.path).labels), before)


def test_bad_prompts_write_nothing(tmp_path, clip):
    frames, labels, _ = clip
    store = _store(tmp_path / "s.zarr", clip, stop_after=8)  # frames 8.. not computed
    files = _labels_bytes(store.path)
    cls, truth = _an_object(labels, 3)
    cases = {
        "not computed yet": ObjectPrompt(10, cls, cls, box=_box_of(truth)),
        "outside frame 3": ObjectPrompt(3, cls, cls, points=((-1.0, 4.0),), labels=(1,)),
        "no area": ObjectPrompt(3, cls, cls, box=(5.0, 5.0, 40.0, 5.0)),
        "not a class of": ObjectPrompt(3, 77, 77, box=_box_of(truth)),
        "prompt a class, not a track": ObjectPrompt(3, cls, cls, box=_box_of(truth), new_track=True),
    }
    for words, p in cases.items():
        with pytest.raises(InputError, match=words):
            drain(iter_prompt(store.path, frames, FlowTracker(), p, segmenter=GrowSegmenter()))
    # a mask that selects nothing
    empty = ObjectPrompt(3, cls, cls, mask=np.zeros(truth.shape, bool))
    with pytest.raises(InputError, match="selects no pixel"):
        drain(iter_prompt(store.path, frames, FlowTracker(), empty, segmenter=None))
    # other frames than the store's (same shape and names, other pixels): refused before any write
    other = frames.copy()
    other[3] = 255 - other[3]
    with pytest.raises(InputChangedError):
        drain(iter_prompt(store.path, other, FlowTracker(), ObjectPrompt(3, cls, cls, box=_box_of(truth)),
                          segmenter=GrowSegmenter()))  # fmt: skip
    assert _labels_bytes(store.path) == files and read_edits(store.path) == []


def _prompt_session(store, frames, labels):
    """Two prompts of a user: a box, then clicks (one negative) on another frame and class."""
    tr = FlowTracker()
    c1, m1 = _an_object(labels, 4)
    drain(iter_prompt(store.path, frames, tr, ObjectPrompt(4, c1, c1, box=_box_of(m1)), segmenter=GrowSegmenter()))
    c2, m2 = _an_object(labels, 9)
    ys, xs = np.nonzero(m2)
    i = len(ys) // 2
    clicks = ((float(xs[i]), float(ys[i])), (2.0, 2.0))
    drain(iter_prompt(store.path, frames, tr, ObjectPrompt(9, c2, c2, clicks, (1, 0)), segmenter=GrowSegmenter()))


def test_prompt_file_round_trip_is_byte_identical(tmp_path, clip, capsys):
    from PIL import Image

    from napari_sasvi.cli import main

    frames, labels, _ = clip
    folder = tmp_path / "frames"
    folder.mkdir()
    for t in range(N):
        Image.fromarray(frames[t]).save(folder / f"{t:04d}.png")
    a = _store(tmp_path / "a.zarr", (folder, labels, clip[2]))
    b = tmp_path / "b.zarr"
    shutil.copytree(a.path, b)
    _prompt_session(a, str(folder), labels)
    out = tmp_path / "prompts.json"
    assert main(["edit", str(a.path), "--export-prompts", str(out)]) == 0
    assert "2 prompts written" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["format"] == "napari-sasvi prompts" and len(data["prompts"]) == 2
    assert data["video"]["frame_hashes"].keys() == {"4", "9"}
    assert data["prompts"][1]["labels"] == [1, 0] and data["prompts"][0]["box"] is not None
    from napari_sasvi.core.prompts.files import not_replayed

    assert not_replayed(a) == []
    # replayed on the store as it was before the prompts: the same labels, byte for byte
    assert main(["edit", str(b), "--prompts", str(out), "--segmenter", "grow"]) == 0
    said = capsys.readouterr()
    assert "2 prompts replayed" in said.out and "prompt 2/2" in said.err
    assert _labels_bytes(b) == _labels_bytes(a.path)
    strip = ("time", "seconds", "tracker")
    ea = [{k: v for k, v in e.items() if k not in strip} for e in read_edits(a.path)]
    eb = [{k: v for k, v in e.items() if k not in strip} for e in read_edits(b)]
    assert ea == eb
    # with the saved masks: the same again, without segmenting
    c = tmp_path / "c.zarr"
    shutil.copytree(b, c)
    for _ in range(2):
        undo_edit(c)
    assert main(["edit", str(c), "--prompts", str(out), "--saved-masks"]) == 0
    assert _labels_bytes(c) == _labels_bytes(a.path)


def test_a_replay_whose_prompt_selects_nothing_writes_nothing(tmp_path, clip):
    frames, labels, _ = clip
    a = _store(tmp_path / "a.zarr", clip)
    b = tmp_path / "b.zarr"
    shutil.copytree(a.path, b)
    _prompt_session(a, frames, labels)
    data = export_prompts(a)
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))

    class Nothing(GrowSegmenter):  # another model, say, for which the second prompt selects nothing
        def segment(self, image, prompt, key=None):
            out = super().segment(image, prompt, key)
            return type(out)(out.mask & (prompt.frame != 9), out.score, 0.0, 0.0)

    before = _labels_bytes(b)
    with pytest.raises(InputError, match="prompt 2 .* selects no pixel.*Nothing was written"):
        drain(iter_replay(b, frames, FlowTracker(), path, segmenter=Nothing()))
    assert _labels_bytes(b) == before and read_edits(b) == []  # the first prompt was not committed either


def test_prompt_files_for_another_video_or_table_are_refused(tmp_path, clip):
    frames, labels, _ = clip
    a = _store(tmp_path / "a.zarr", clip)
    _prompt_session(a, frames, labels)
    data = export_prompts(a)
    other_video = SyntheticVideo(n_frames=N, height=64, width=80, seed=11).arrays()
    o = _store(tmp_path / "o.zarr", (other_video[0], other_video[1], other_video[1]))
    before = _labels_bytes(o.path)
    path = tmp_path / "p.json"
    assert write_prompt_file(a, path) == 2
    with pytest.raises(InputError, match="another video"):
        drain(iter_replay(o.path, other_video[0], FlowTracker(), path, segmenter="grow"))
    wrong = json.loads(json.dumps(data))
    wrong["classes"]["classes"][1]["name"] = "something else"
    (tmp_path / "w.json").write_text(json.dumps(wrong))
    with pytest.raises(InputError, match="class table"):
        read_prompt_file(tmp_path / "w.json", a)
    late = json.loads(json.dumps(data))
    late["prompts"][1]["points"][0] = [500.0, 3.0]
    (tmp_path / "l.json").write_text(json.dumps(late))
    with pytest.raises(InputError, match="prompt 2: The click .* outside"):
        read_prompt_file(tmp_path / "l.json", a)
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(InputError, match="cannot be read"):
        read_prompt_file(tmp_path / "x.json", a)
    # fields of the wrong kind: an InputError each, never a traceback
    odd = {
        "version": lambda d: d.update(version="1.0"),
        "video": lambda d: d.update(video=[1]),
        "hashes": lambda d: d["video"].update(frame_hashes=["a"]),
        "hash key": lambda d: d["video"]["frame_hashes"].update(first="00"),
        "classes": lambda d: d.update(classes=[1]),
        "entry": lambda d: d["prompts"].__setitem__(0, [1, 2]),
        "label": lambda d: d["prompts"][1]["labels"].__setitem__(0, 0.7),
        "frame": lambda d: d["prompts"][0].update(frame=1.9),
        "huge mask": lambda d: d["prompts"][0].update(mask={"size": [50000, 50000], "runs": [2500000000]}),
    }
    for name, change in odd.items():
        bad = json.loads(json.dumps(data))
        change(bad)
        (tmp_path / "odd.json").write_text(json.dumps(bad))
        with pytest.raises(InputError):
            read_prompt_file(tmp_path / "odd.json", a)
            pytest.fail(f"{name}: accepted")
    assert _labels_bytes(o.path) == before and read_edits(o.path) == []
    empty = _store(tmp_path / "e.zarr", clip)
    with pytest.raises(InputError, match="no prompts in effect"):
        write_prompt_file(empty, tmp_path / "none.json")
    assert not (tmp_path / "none.json").exists()


def test_real_sam2_image_path(tmp_path, sam2_tracker):
    video = SyntheticVideo(n_frames=6, height=64, width=80, seed=5)
    frames, labels = video.arrays()
    _, noisy = video.arrays(noisy=True)
    tracker = sam2_tracker()
    path = tmp_path / "s.zarr"
    run_sasvi(frames, ReplayOverseer(noisy, SYNTHETIC), tracker, str(path), SYNTHETIC, PolicyParams())
    seg = Sam2ImageSegmenter(tracker.predictor, tracker.describe())
    cls, truth = _an_object(labels, 2)
    ys, xs = np.nonzero(truth)
    p1 = ObjectPrompt(2, cls, cls, ((float(xs[0]), float(ys[0])),), (1,))
    first = seg.segment(frames[2], p1)
    assert first.mask.shape == (64, 80) and first.mask.dtype == bool and first.feature_seconds > 0
    p2 = ObjectPrompt(2, cls, cls, ((float(xs[0]), float(ys[0])), (1.0, 1.0)), (1, 0), _box_of(truth))
    again = seg.segment(frames[2], p2)
    assert again.feature_seconds == 0.0  # the frame's features are kept: a click costs the decoder only
    assert np.array_equal(seg.segment(frames[2], p2).mask, again.mask)  # the prompt alone decides the mask
    # frame 2 of another video (same index): its own features, not the kept ones of this video
    other = 255 - frames[2]
    theirs = seg.segment(other, p2)
    assert theirs.feature_seconds > 0 and seg.has_features(2, other) and not seg.has_features(2, frames[2])
    fresh = Sam2ImageSegmenter(tracker.predictor).segment(other, p2)
    assert np.array_equal(theirs.mask, fresh.mask) and theirs.score == fresh.score
    if not again.mask.any():  # random weights may select nothing: then the commit says so
        with pytest.raises(InputError, match="selects no pixel"):
            drain(iter_prompt(path, frames, tracker, p2, segmenter=seg))
        return
    drain(iter_prompt(path, frames, tracker, p2, segmenter=seg))
    rec = read_edits(path)[-1]
    assert rec["prompt"]["segmenter"]["type"] == "sam2-image"
    np.testing.assert_array_equal(np.asarray(SasviStore.read(path).labels[2]) == cls, again.mask)


def test_a_new_instance_from_a_box_and_its_replay(tmp_path):
    from test_instances_engine import GRASPER, Detections, _frames, _run, _square, crossing

    frames = _frames(crossing, 20)
    frames[:, _square(75, 64, 7)] = (60, 60, 220)  # an object the overseer never detects
    a = tmp_path / "a.zarr"
    _run(a, Detections(crossing), frames)
    b = tmp_path / "b.zarr"
    shutil.copytree(a, b)
    store = SasviStore.read(a)
    new_id = max(store.track_table) + 1
    box = _box_of(_square(75, 64, 7))
    for words, p in {
        "exists already": ObjectPrompt(5, 1, GRASPER, box=box, new_track=True),
        "has no track 9": ObjectPrompt(5, 9, GRASPER, box=box),
        "Track id 0 means no track": ObjectPrompt(5, 0, GRASPER, box=box, new_track=True),
    }.items():
        with pytest.raises(InputError, match=words):
            drain(iter_prompt(a, frames, FlowTracker(), p, segmenter=GrowSegmenter()))
    s = drain(iter_prompt(a, frames, FlowTracker(), ObjectPrompt(5, new_id, GRASPER, box=box, new_track=True),
                          segmenter=GrowSegmenter()))  # fmt: skip
    store = SasviStore.read(a)
    tracks = np.asarray(store.tracks)
    truth = _square(75, 64, 7)
    got = tracks[5] == new_id
    assert 2 * (got & truth).sum() / (got.sum() + truth.sum()) > 0.9
    assert store.track_table[new_id].class_id == GRASPER and store.track_table[new_id].first == 5
    assert (tracks[s.stop] == new_id).any()  # propagated to the end of its span
    path = tmp_path / "p.json"
    write_prompt_file(store, path)
    assert json.loads(path.read_text())["prompts"][0]["new_track"] is True
    with pytest.raises(InputError, match="instance store"):
        read_prompt_file(path, _store(tmp_path / "c.zarr", (frames, None, np.zeros(frames.shape[:3], np.uint8))))
    drain(iter_replay(b, frames, FlowTracker(), path, segmenter="grow"))
    assert _labels_bytes(b) == _labels_bytes(a)
