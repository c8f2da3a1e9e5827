"""A behavioural review of the span engine (issue 27) against the three loops it replaced: what a
run, an anchors run and an edit record when they are refused, stopped or fail half-way."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import drive, flow_store
from napari_sasvi.core.config import RunConfig
from napari_sasvi.core.datasets import SYNTHETIC
from napari_sasvi.core.engine import EditRequest, iter_edit, iter_from_anchors, run_edit, run_sasvi, undo_edit
from napari_sasvi.core.errors import StoreBusyError
from napari_sasvi.core.inputs.anchors import Anchors
from napari_sasvi.core.overseers.replay import ReplayOverseer
from napari_sasvi.core.policy import PolicyParams
from napari_sasvi.core.records import FrameDone
from napari_sasvi.core.store.edit_log import boundaries, read_edits
from napari_sasvi.core.store.sasvi_store import SasviStore
from napari_sasvi.core.trackers.flow import FlowTracker

N = 16


@pytest.fixture
def clip(engine_clip):
    return engine_clip


class _FailingFlow(FlowTracker):
    """The flow tracker, raising ``exc`` when it is about to give its ``after``-th distinct frame
    (counted over every span it propagates; a frame given again after a re-prompt counts once);
    its description is the flow tracker's."""

    def __init__(self, after: int, exc: BaseException):
        super().__init__()
        self.after, self.exc, self.given = after, exc, set()

    def propagate(self, start):
        for item in super().propagate(start):
            key = (id(self.frames), item[0])  # the view (a part of an anchors run) and its frame
            if key not in self.given and len(self.given) == self.after:
                raise self.exc
            self.given.add(key)
            yield item


def _config(batch_size: int) -> dict:
    cfg = RunConfig().to_dict()
    cfg["overseer"]["batch_size"] = batch_size
    return cfg


def test_a_run_refused_as_busy_leaves_the_stores_config_as_it_was(tmp_path, clip):
    """A second run on a store being written was refused by the lock only after it had recorded
    its own config in the store: "nothing was changed" was not true, and an edit rebuilding from
    the store's config got the refused run's settings."""
    frames, _, noisy = clip
    out = tmp_path / "s.zarr"

    def go(config):
        ov = ReplayOverseer(noisy, SYNTHETIC)
        return run_sasvi(frames, ov, FlowTracker(), str(out), SYNTHETIC, PolicyParams(), stop_after=3, config=config)

    go(_config(8))
    recorded = SasviStore.read(out).config
    assert recorded["overseer"]["batch_size"] == 8
    with SasviStore.read(out, writable=True).session():  # another writer holds the store
        with pytest.raises(StoreBusyError):
            go(_config(2))
    assert SasviStore.read(out).config == recorded


def test_an_anchors_run_busy_refused_keeps_its_stores_config(tmp_path, clip):
    frames, labels, _ = clip
    anchors = Anchors({0: labels[0]}, "frame 0", "class-ids")
    out = tmp_path / "a.zarr"
    drive(iter_from_anchors(frames, anchors, FlowTracker(), str(out), SYNTHETIC, stop_after=3, config=_config(8)))
    recorded = SasviStore.read(out).config
    with SasviStore.read(out, writable=True).session():
        with pytest.raises(StoreBusyError):
            drive(iter_from_anchors(frames, anchors, FlowTracker(), str(out), SYNTHETIC, config=_config(2)))
    assert SasviStore.read(out).config == recorded


def test_an_anchors_run_stopped_in_a_backward_part_counts_only_the_frames_it_recorded(tmp_path, clip):
    """A backward part is recorded only when whole; frames written in one that was cancelled are
    redone on resume, so they are not part of ``frames_written`` (the loop before the engine
    counted them the same way)."""
    frames, labels, _ = clip
    anchors = Anchors({0: labels[0], 10: labels[10]}, "mem", "class-ids")  # 0..5 forward, 9..6 backward
    out = tmp_path / "a.zarr"
    calls = [0]

    def cancel():  # polled after each frame: 6 of anchor 0's forward part, then 10, 9, 8 backward
        calls[0] += 1
        return calls[0] >= 9

    summary, items = drive(iter_from_anchors(frames, anchors, FlowTracker(), str(out), SYNTHETIC, cancel=cancel))
    store = SasviStore.read(out)
    assert summary.cancelled and store.frames_done == 6
    assert (np.asarray(store.labels[8:10]) != SYNTHETIC.no_label).any()  # the backward part had begun
    assert summary.frames_written == store.frames_done - summary.resumed_from == 6
    assert [i.done for i in items if isinstance(i, FrameDone)] == [1, 2, 3, 4, 5, 6]

    summary, _ = drive(iter_from_anchors(frames, anchors, FlowTracker(), str(out), SYNTHETIC))
    assert summary.resumed_from == 6 and summary.frames_written == N - 6 and not summary.cancelled


def test_an_anchors_run_failing_in_a_backward_part_keeps_the_frames_before_it_and_resumes_exactly(tmp_path, clip):
    frames, labels, _ = clip
    anchors = Anchors({0: labels[0], 10: labels[10]}, "mem", "class-ids")
    fresh = tmp_path / "fresh.zarr"
    drive(iter_from_anchors(frames, anchors, FlowTracker(), str(fresh), SYNTHETIC))
    for k, exc in enumerate((RuntimeError("tracker failed"), KeyboardInterrupt())):
        out = tmp_path / f"a{k}.zarr"
        # 6 frames of anchor 0's forward part, the anchor 10 and 9, 8 backward: fails at 7
        with pytest.raises(type(exc)):
            drive(iter_from_anchors(frames, anchors, _FailingFlow(9, exc), str(out), SYNTHETIC))
        assert SasviStore.read(out).frames_done == 6  # the unfinished backward part is not recorded
        summary, _ = drive(iter_from_anchors(frames, anchors, FlowTracker(), str(out), SYNTHETIC))  # not locked
        assert summary.resumed_from == 6
        np.testing.assert_array_equal(SasviStore.read(out).labels[:], SasviStore.read(fresh).labels[:])


def test_an_edit_closed_before_its_first_frame_is_recorded_as_cancelled(tmp_path, clip):
    """Its record said ``running`` for ever (and the lock was released under it)."""
    store = flow_store(tmp_path / "s.zarr", clip)
    frames, labels, _ = clip
    before = np.asarray(store.labels[:])
    gen = iter_edit(store.path, frames, FlowTracker(), EditRequest("correction", 2, labels[2]))
    next(gen)  # EditStarted
    gen.close()
    (rec,) = read_edits(store.path)
    assert rec["state"] == "cancelled" and rec["written"] == 0
    np.testing.assert_array_equal(SasviStore.read(store.path).labels[:], before)
    with SasviStore.read(store.path, writable=True).session():  # the lock was released
        pass
    assert undo_edit(store.path) is None  # nothing written: not in effect, nothing to undo


@pytest.mark.parametrize("exc", [RuntimeError("tracker failed"), KeyboardInterrupt()], ids=["error", "interrupt"])
def test_an_edit_failing_half_way_is_recorded_as_failed_and_undoes(tmp_path, clip, exc):
    store = flow_store(tmp_path / "s.zarr", clip)
    frames, labels, _ = clip
    before = np.asarray(store.labels[:])
    with pytest.raises(type(exc)):
        run_edit(store.path, frames, _FailingFlow(3, exc), EditRequest("correction", 1, labels[1]))
    (rec,) = read_edits(store.path)
    assert rec["state"] == "failed" and rec["written"] == 3  # frames 1, 2, 3 landed before the failure
    assert undo_edit(store.path)["state"] == "undone"  # the lock was released
    np.testing.assert_array_equal(SasviStore.read(store.path).labels[:], before)


@pytest.mark.parametrize("exc", [RuntimeError("tracker failed"), KeyboardInterrupt()], ids=["error", "interrupt"])
def test_a_run_failing_in_the_tracker_keeps_the_frame_in_flight_and_resumes_exactly(tmp_path, clip, exc):
    frames, _, noisy = clip
    full = tmp_path / "full.zarr"
    flow_store(full, clip)
    out = tmp_path / "s.zarr"
    items = []
    with pytest.raises(type(exc)):
        run_sasvi(
            frames, ReplayOverseer(noisy, SYNTHETIC), _FailingFlow(7, exc), str(out), SYNTHETIC, PolicyParams(),
            progress=lambda done, total, fps: items.append(done),
        )  # fmt: skip
    store = SasviStore.read(out)
    assert 0 < store.frames_done <= 7 and items == list(range(1, store.frames_done))  # the last one landed too
    summary = run_sasvi(frames, ReplayOverseer(noisy, SYNTHETIC), FlowTracker(), str(out), SYNTHETIC, PolicyParams())
    assert summary.resumed_from == store.frames_done and summary.frames_written == N - store.frames_done
    np.testing.assert_array_equal(SasviStore.read(out).labels[:], SasviStore.read(full).labels[:])
    assert SasviStore.read(out).events == SasviStore.read(full).events


def test_a_skip_cancelled_before_its_first_written_frame_still_writes_that_frame(tmp_path, clip):
    """A skip recomputes the frames from the boundary before it without writing them. Cancel was
    polled there too, so a cancelled skip could end with nothing written yet recorded (and in
    effect: its re-prompt gone from the boundaries). As before the engine, cancel stops an edit
    after a written frame: an edit that is in effect wrote at least its first frame."""
    frames, _, noisy = clip
    path = tmp_path / "s.zarr"
    run_sasvi(frames, ReplayOverseer(noisy, SYNTHETIC), FlowTracker(), str(path), SYNTHETIC, PolicyParams("reference"))
    before = np.asarray(SasviStore.read(path).labels[:])
    restarts = [b for b in boundaries(SasviStore.read(path)) if b > 0]
    assert restarts, "the noisy overseer makes SASVi restart"
    r = restarts[0]
    summary = run_edit(path, frames, FlowTracker(), EditRequest("skip", r), cancel=lambda: True)
    (rec,) = read_edits(path)
    assert summary.cancelled and rec["state"] == "cancelled"
    assert summary.written == rec["written"] == 1 and r not in boundaries(SasviStore.read(path))
    undo_edit(path)
    np.testing.assert_array_equal(SasviStore.read(path).labels[:], before)
