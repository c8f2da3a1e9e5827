"""Anchors (issue 13, item 1 with no overseer): annotated frames read by name, propagated forward
and backward with the flow tracker and the real SAM2 path, resumed exactly, recorded in the store."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import drive
from napari_sasvi.cli import main
from napari_sasvi.core.datasets import SYNTHETIC
from napari_sasvi.core.engine import FrameDone, iter_from_anchors, iter_sasvi
from napari_sasvi.core.errors import InputError, StoreMismatchError
from napari_sasvi.core.inputs.anchors import Anchors, read_anchors
from napari_sasvi.core.inputs.frames import open_frames
from napari_sasvi.core.overseers.replay import ReplayOverseer
from napari_sasvi.core.policy import PolicyParams
from napari_sasvi.core.store.sasvi_store import SasviStore
from napari_sasvi.core.synthetic import SyntheticVideo
from napari_sasvi.core.trackers.flow import FlowTracker


@pytest.fixture(scope="module")
def clip():
    frames, labels = SyntheticVideo(n_frames=12, height=96, width=128, seed=4).arrays()
    return frames, labels


def _write(folder, arrays, names, ext):
    folder.mkdir(parents=True, exist_ok=True)
    for a, name in zip(arrays, names, strict=True):
        Image.fromarray(a).save(folder / f"{name}.{ext}")
    return folder


def _run(frames, anchors, out, **kw):
    return drive(iter_from_anchors(frames, anchors, FlowTracker(), str(out), SYNTHETIC, **kw))


def test_segments_go_to_the_nearer_anchor_ties_forward():
    a = Anchors({2: None, 7: None}, "x", "class-ids")
    assert a.segments(10) == [(2, 0, 4), (7, 5, 9)]
    assert Anchors({0: None, 4: None}, "x", "class-ids").segments(5) == [(0, 0, 2), (4, 3, 4)]
    assert Anchors({5: None}, "x", "class-ids").segments(8) == [(5, 0, 7)]


def test_read_anchors_by_name_by_number_and_painted_layer(tmp_path, clip):
    frames, labels = clip
    folder = _write(tmp_path / "frames", frames, [f"img_{t:03d}" for t in range(len(frames))], "png")
    stack = open_frames(folder)
    ann = _write(tmp_path / "ann", labels[[3, 9]], ["img_003", "img_009"], "png")
    anchors = read_anchors(ann, stack, SYNTHETIC)
    assert anchors.frames == [3, 9] and anchors.encoding == "class-ids"
    np.testing.assert_array_equal(anchors.masks[9], labels[9])
    # a file named after no frame is named in the error
    Image.fromarray(labels[0]).save(ann / "img_999.png")
    with pytest.raises(InputError, match="img_999.png"):
        read_anchors(ann, stack, SYNTHETIC)
    # frames without names (an array): the number in the file name
    by_number = _write(tmp_path / "num", labels[[4]], ["0004"], "png")
    assert read_anchors(by_number, open_frames(frames), SYNTHETIC).frames == [4]
    # a napari labels layer: the painted planes
    layer = np.zeros_like(labels)
    layer[6] = labels[6]
    assert read_anchors(layer, open_frames(frames), SYNTHETIC).frames == [6]
    with pytest.raises(InputError, match="No annotated frame"):
        read_anchors(np.zeros_like(labels), open_frames(frames), SYNTHETIC)
    with pytest.raises(InputError, match="pixels but the frames are"):
        read_anchors(layer[:, :50], open_frames(frames), SYNTHETIC)


def test_backward_is_forward_over_the_reversed_video_and_anchors_are_kept(tmp_path, clip):
    frames, labels = clip
    n = len(frames)
    last = Anchors({n - 1: labels[n - 1]}, "mem", "class-ids")
    summary, items = _run(frames, last, tmp_path / "back.zarr")
    assert not summary.cancelled and summary.frames_written == n
    back = SasviStore.read(tmp_path / "back.zarr")
    first = Anchors({0: labels[n - 1]}, "mem", "class-ids")
    _run(frames[::-1].copy(), first, tmp_path / "fwd.zarr")
    fwd = SasviStore.read(tmp_path / "fwd.zarr")
    np.testing.assert_array_equal(np.asarray(back.labels), np.asarray(fwd.labels)[::-1])
    np.testing.assert_array_equal(np.asarray(back.labels[n - 1]), labels[n - 1])  # the annotation itself
    assert np.asarray(back.labels[0] != SYNTHETIC.no_label).any()  # backward reached frame 0
    assert [e.kind for e in items if type(e).__name__ == "Event"] == ["anchor"]
    assert back.signature["overseer"]["anchors"]["frames"] == [n - 1]


def test_two_anchors_split_the_video_and_beat_one(tmp_path, clip):
    frames, labels = clip
    two = Anchors({2: labels[2], 8: labels[8]}, "mem", "class-ids")
    _run(frames, two, tmp_path / "two.zarr")
    one = Anchors({2: labels[2]}, "mem", "class-ids")
    _run(frames, one, tmp_path / "one.zarr")
    out2 = np.asarray(SasviStore.read(tmp_path / "two.zarr").labels)
    out1 = np.asarray(SasviStore.read(tmp_path / "one.zarr").labels)
    np.testing.assert_array_equal(out2[:6], out1[:6])  # frames 0-5 follow anchor 2 in both
    np.testing.assert_array_equal(out2[8], labels[8])
    acc2, acc1 = (out2[6:] == labels[6:]).mean(), (out1[6:] == labels[6:]).mean()
    assert acc2 > acc1


@pytest.mark.parametrize("stop_in", ["backward", "forward"])
def test_resume_is_exact_and_other_anchors_are_refused(tmp_path, clip, stop_in):
    frames, labels = clip
    anchors = Anchors({5: labels[5], 10: labels[10]}, "mem", "class-ids")
    _run(frames, anchors, tmp_path / "full.zarr")
    calls = [0]

    def cancel():
        calls[0] += 1
        return calls[0] >= (2 if stop_in == "backward" else 8)

    summary, _ = _run(frames, anchors, tmp_path / "part.zarr", cancel=cancel)
    part = SasviStore.read(tmp_path / "part.zarr")
    assert summary.cancelled
    assert part.frames_done == 0 if stop_in == "backward" else 5 < part.frames_done < len(frames)
    if part.frames_done:  # (a store with no finished frame is replaced by the next run, by design)
        with pytest.raises(StoreMismatchError):
            _run(frames, Anchors({5: labels[5]}, "mem", "class-ids"), tmp_path / "part.zarr")
    summary, items = _run(frames, anchors, tmp_path / "part.zarr")
    assert not summary.cancelled and summary.resumed_from == part.frames_done
    assert [i.done for i in items if isinstance(i, FrameDone)][-1] == len(frames)
    a, b = SasviStore.read(tmp_path / "full.zarr"), SasviStore.read(tmp_path / "part.zarr")
    np.testing.assert_array_equal(np.asarray(a.labels), np.asarray(b.labels))
    np.testing.assert_array_equal(np.asarray(a.overseer), np.asarray(b.overseer))


def test_cli_overseer_none_with_anchors(tmp_path, clip, capsys):
    frames, labels = clip
    names = [f"{t:04d}" for t in range(len(frames))]
    folder = _write(tmp_path / "frames", frames, names, "png")
    ann = _write(tmp_path / "ann", labels[[4]], ["0004"], "png")
    out = tmp_path / "out.zarr"
    common = ["segment", str(folder), "--out", str(out), "--dataset", "synthetic", "--tracker", "flow"]
    assert main([*common, "--overseer", "none"]) == 2
    assert "--anchors" in capsys.readouterr().err and not out.exists()
    assert main([*common, "--overseer", "none", "--anchors", str(ann)]) == 0
    assert "1 annotated frame(s) [4]" in capsys.readouterr().out
    store = SasviStore.read(out)
    assert store.complete and store.events[0]["kind"] == "anchor"
    np.testing.assert_array_equal(np.asarray(store.labels[4]), labels[4])


def test_real_sam2_propagates_anchors_both_ways(tmp_path, sam2_tracker):
    frames, labels = SyntheticVideo(n_frames=6, height=64, width=80, seed=5).arrays()
    anchors = Anchors({3: labels[3]}, "mem", "class-ids")
    summary, _ = drive(iter_from_anchors(frames, anchors, sam2_tracker(), str(tmp_path / "s.zarr"), SYNTHETIC))
    store = SasviStore.read(tmp_path / "s.zarr")
    assert store.complete and summary.frames_written == 6
    out = np.asarray(store.labels)
    np.testing.assert_array_equal(out[3], labels[3])
    assert out.shape == labels.shape and out.dtype == np.uint8


class _Counting:
    """A replay overseer that remembers which frames it was asked for (bookkeeping only)."""

    def __init__(self, base):
        self.base, self.asked = base, []
        self.needs_frames, self.name = base.needs_frames, base.name

    def predict(self, frames, indices):
        self.asked += list(indices)
        return self.base.predict(frames, indices)

    def describe(self):
        return self.base.describe()


@pytest.mark.parametrize("mode", ["default", "reference"])
def test_anchors_override_the_overseer_and_reprompt_there(tmp_path, clip, mode, sam2_tracker):
    frames, labels = clip
    _, noisy = SyntheticVideo(n_frames=12, height=96, width=128, seed=4).arrays(noisy=True)
    anchors = Anchors({0: labels[0], 6: labels[6]}, "mem", "class-ids")
    base = _Counting(ReplayOverseer(noisy, SYNTHETIC))
    tracker = FlowTracker() if mode == "default" else sam2_tracker(legacy=True)
    params = PolicyParams(mode=mode)

    def go(out, **kw):
        gen = iter_sasvi(frames, base, tracker, str(out), SYNTHETIC, params, anchors=anchors, **kw)
        return drive(gen)

    summary, items = go(tmp_path / "a.zarr")
    assert 6 not in base.asked and 0 not in base.asked  # the model is not asked at annotated frames
    restarts = [(e["frame"], e["reason"]) for e in summary.restarts]
    assert (6, "anchor") in restarts
    store = SasviStore.read(tmp_path / "a.zarr")
    for t in (0, 6):
        np.testing.assert_array_equal(np.asarray(store.labels[t]), labels[t])  # exactly as annotated
        np.testing.assert_array_equal(np.asarray(store.overseer[t]), labels[t])
    assert store.signature["overseer"]["anchors"]["frames"] == [0, 6]
    # resume: stopped after 8 frames, run again: the same store as in one go
    if mode == "default":
        go(tmp_path / "b.zarr", stop_after=8)
        assert SasviStore.read(tmp_path / "b.zarr").frames_done == 8
        with pytest.raises(StoreMismatchError):  # the same overseer under other anchors: refused
            gen = iter_sasvi(
                frames, base, tracker, str(tmp_path / "b.zarr"), SYNTHETIC, params,
                anchors=Anchors({0: labels[0]}, "mem", "class-ids"),
            )  # fmt: skip
            drive(gen)
        go(tmp_path / "b.zarr")
        np.testing.assert_array_equal(np.asarray(SasviStore.read(tmp_path / "b.zarr").labels), np.asarray(store.labels))
