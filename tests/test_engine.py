"""The one engine (issue 27): a run, an anchors run and an edit all write through a store session,
which owns the writer lock; an edit uses the store's own tracker, rebuilt from the run config the
store records. Each of the three bugs the issue reproduced has a test here that fails on the code
before the engine."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from conftest import drive, flow_store
from napari_sasvi.cli import main
from napari_sasvi.core.config import RunConfig
from napari_sasvi.core.datasets import SYNTHETIC
from napari_sasvi.core.engine import EditRequest, iter_from_anchors, run_edit, undo_edit
from napari_sasvi.core.engine.batch import segment_video
from napari_sasvi.core.engine.rebuild import edit_tracker, store_tracker_config
from napari_sasvi.core.errors import CorruptFrameError, InputError, StoreBusyError
from napari_sasvi.core.inputs.anchors import Anchors
from napari_sasvi.core.store.edit_log import read_edits
from napari_sasvi.core.store.sasvi_store import SasviStore
from napari_sasvi.core.trackers.flow import FlowTracker

N = 16


@pytest.fixture
def clip(engine_clip):
    return engine_clip


def _labels_bytes(path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted((path / "labels").rglob("*")) if p.is_file()}


def test_a_failed_anchors_run_releases_the_store_for_the_next_run_in_the_same_process(tmp_path, clip):
    """Bug 1: an anchors run that raised kept the writer lock, so the corrected re-run in the same
    process (napari) was refused as "being written by process <its own pid>"."""
    frames, labels, _ = clip
    folder = tmp_path / "video"
    folder.mkdir()
    for t, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"{t:04d}.png")
    good = (folder / "0009.png").read_bytes()
    (folder / "0009.png").write_bytes(good[: len(good) // 2])  # truncated: decoding it fails mid-run
    anchors = Anchors({0: labels[0]}, "frame 0", "class-ids")
    out = tmp_path / "anchored.zarr"
    with pytest.raises(CorruptFrameError, match="0009.png"):
        drive(iter_from_anchors(str(folder), anchors, FlowTracker(), str(out), SYNTHETIC))
    done = SasviStore.read(out).frames_done
    assert 0 < done <= 9  # the frames before the broken one are kept

    (folder / "0009.png").write_bytes(good)
    summary, _ = drive(iter_from_anchors(str(folder), anchors, FlowTracker(), str(out), SYNTHETIC))
    assert summary.resumed_from == done and not summary.cancelled and SasviStore.read(out).complete
    fresh = tmp_path / "fresh.zarr"
    drive(iter_from_anchors(str(folder), anchors, FlowTracker(), str(fresh), SYNTHETIC))
    np.testing.assert_array_equal(SasviStore.read(out).labels[:], SasviStore.read(fresh).labels[:])


def test_an_edit_with_another_tracker_than_the_stores_is_refused_unless_asked_for(tmp_path, clip):
    """Bug 2: an edit recomputed a span with whatever tracker it was given (the widget's form:
    optical flow for a SAM2 store), silently."""
    store = flow_store(tmp_path / "s.zarr", clip, method="dis")
    frames, labels, _ = clip
    before = _labels_bytes(store.path)
    request = EditRequest("correction", 5, labels[5])
    with pytest.raises(InputError, match=r"made with the tracker flow \(dis.*would use flow \(dis-fast"):
        run_edit(store.path, frames, FlowTracker(method="dis-fast"), request)
    assert _labels_bytes(store.path) == before and read_edits(store.path) == []  # nothing written

    summary = run_edit(store.path, frames, FlowTracker(method="dis-fast"), request, other_tracker=True)
    assert summary.written > 0
    rec = read_edits(store.path)[-1]
    assert rec["other_tracker"] is True and rec["tracker"]["method"] == "dis-fast"
    # the store's own tracker needs no flag, and is not recorded as another
    undo_edit(store.path)
    run_edit(store.path, frames, edit_tracker(SasviStore.read(store.path)), request)
    assert "other_tracker" not in read_edits(store.path)[-1]


def test_the_store_records_its_run_config_and_edits_rebuild_the_tracker_from_it(tmp_path, clip):
    frames, labels, noisy = clip
    config = RunConfig().replace(**{"tracker.kind": "flow", "tracker.model": "dis-fast"})
    out = tmp_path / "run.zarr"
    folder = _folder(tmp_path, frames)
    segment_video(folder, out, config, masks=noisy)
    store = SasviStore.read(out)
    assert RunConfig.from_dict(store.config) == config
    assert store_tracker_config(store).model == "dis-fast"
    assert edit_tracker(store).describe() == store.signature["tracker"]

    # a store written before the config was recorded: the tracker's own record still rebuilds it
    attrs = dict(store.group.attrs["sasvi"])
    del attrs["config"]
    SasviStore.read(out, writable=True).group.attrs["sasvi"] = attrs
    old = SasviStore.read(out)
    assert old.config is None and store_tracker_config(old).model == "dis-fast"

    # the CLI edits with the store's tracker by default, refuses another one without --other-tracker
    np.save(tmp_path / "fix.npy", labels[6])
    args = ["edit", str(out), "--correct", "6", "--labels", str(tmp_path / "fix.npy")]
    assert main(args) == 0  # the frames: where the store says they are
    assert main(["edit", str(out), "--undo"]) == 0
    other = ["--tracker", "flow", "--tracker-model", "dis"]
    assert main([*args, *other]) == 2
    assert main([*args, *other, "--other-tracker"]) == 0
    assert read_edits(out)[-1]["other_tracker"] is True


def _folder(tmp_path, frames):
    folder = tmp_path / "frames"
    if not folder.exists():
        folder.mkdir()
        for t, f in enumerate(frames):
            Image.fromarray(f).save(folder / f"{t:04d}.png")
    return folder


def test_edits_and_undo_take_the_writer_lock(tmp_path, clip):
    """Bug 3: edits wrote ``store.labels[t]`` without the writer lock, beside a run or another edit."""
    store = flow_store(tmp_path / "s.zarr", clip)
    frames, labels, _ = clip
    before = _labels_bytes(store.path)
    request = EditRequest("correction", 5, labels[5])
    with SasviStore.read(store.path, writable=True).session():  # another writer holds the store
        with pytest.raises(StoreBusyError, match="being written by process"):
            run_edit(store.path, frames, FlowTracker(), request)
        assert _labels_bytes(store.path) == before and read_edits(store.path) == []
    run_edit(store.path, frames, FlowTracker(), request)  # released: the edit goes through
    assert _labels_bytes(store.path) != before
    with SasviStore.read(store.path, writable=True).session():
        with pytest.raises(StoreBusyError):
            undo_edit(store.path)
    assert undo_edit(store.path)["state"] == "undone"
    assert _labels_bytes(store.path) == before


def test_a_session_releases_the_lock_whatever_ends_it(tmp_path, clip):
    store = flow_store(tmp_path / "s.zarr", clip)
    writable = SasviStore.read(store.path, writable=True)
    with pytest.raises(RuntimeError), writable.session():
        raise RuntimeError("boom")
    with writable.session():  # taken again: the error released it
        pass
    # an edit stopped half-way (its generator closed) releases it too, and its record says so
    frames, labels, _ = clip
    from napari_sasvi.core.engine import iter_edit

    gen = iter_edit(store.path, frames, FlowTracker(), EditRequest("correction", 2, labels[2]))
    next(gen), next(gen)  # EditStarted, the first frame
    gen.close()
    with writable.session():
        pass
    assert json.loads((store.path / "sasvi_edits.json").read_text())["edits"][-1]["state"] == "cancelled"


def test_an_edit_stopped_before_its_first_frame_is_not_in_effect(tmp_path, clip):
    from napari_sasvi.core.engine import iter_edit
    from napari_sasvi.core.store.edit_log import boundaries, store_anchor_frames

    store = flow_store(tmp_path / "s.zarr", clip)
    frames, labels, _ = clip
    bounds = boundaries(store)
    gen = iter_edit(store.path, frames, FlowTracker(), EditRequest("correction", 5, labels[5]))
    next(gen)  # EditStarted: planned, undo data saved, recorded; no frame written yet
    gen.close()
    [rec] = read_edits(store.path)
    assert rec["state"] == "cancelled" and rec["written"] == 0
    assert boundaries(store) == bounds and 5 not in store_anchor_frames(store)  # no anchor, no re-prompt
    assert undo_edit(store.path) is None  # nothing in effect to undo


def test_resume_continues_a_stopped_run_from_the_store_alone(tmp_path, capsys):
    """`napari-sasvi resume STORE`: the run config and frames the store records, the video's own
    masks even when the run was a batch (whose config names the masks' root)."""
    from conftest import write_video_dirs

    videos, masks = write_video_dirs(tmp_path / "data", ["a", "b"], n=10)
    broken = sorted((videos / "b").iterdir())[6]
    good = broken.read_bytes()
    broken.write_bytes(good[: len(good) // 2])
    out = tmp_path / "stores"
    base = ["segment", str(videos), "--out", str(out), "--dataset", "synthetic", "--overseer-masks", str(masks)]
    assert main([*base, "--tracker", "flow", "--mode", "reference"]) == 2  # b fails at its frame 6
    assert "frame" in capsys.readouterr().err
    b = out / "b.zarr"
    assert 0 < SasviStore.read(b).frames_done < 10 and SasviStore.read(out / "a.zarr").complete
    assert RunConfig.from_dict(SasviStore.read(b).config).overseer.masks == str(masks / "b")

    broken.write_bytes(good)
    assert main(["resume", str(b)]) == 0
    assert "resuming" in capsys.readouterr().out and SasviStore.read(b).complete
    fresh = tmp_path / "fresh.zarr"
    assert main([*base[:1], str(videos / "b"), "--out", str(fresh), *base[4:6], "--overseer-masks", str(masks / "b"),
                 "--tracker", "flow", "--mode", "reference"]) == 0  # fmt: skip
    np.testing.assert_array_equal(SasviStore.read(b).labels[:], SasviStore.read(fresh).labels[:])
    assert SasviStore.read(b).events == SasviStore.read(fresh).events
    assert main(["resume", str(b)]) == 0 and "nothing to resume" in capsys.readouterr().out

    # a store that records no config (an earlier version) says how to resume it instead
    attrs = dict(SasviStore.read(fresh).group.attrs["sasvi"])
    del attrs["config"]
    SasviStore.read(fresh, writable=True).group.attrs["sasvi"] = attrs
    assert main(["resume", str(fresh)]) == 2
    assert "same `napari-sasvi segment` command" in capsys.readouterr().err


def test_an_edit_on_a_full_disk_is_said_and_undone_cleanly(tmp_path, clip, monkeypatch):
    import errno

    from zarr.storage import LocalStore

    from napari_sasvi.core.errors import StoreFullError

    store = flow_store(tmp_path / "s.zarr", clip)
    frames, labels, _ = clip
    before = np.asarray(store.labels[:])
    put = LocalStore.set

    async def full_at_frame_7(self, key, value):
        if key.startswith("labels/c/7/"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return await put(self, key, value)

    monkeypatch.setattr(LocalStore, "set", full_at_frame_7)
    with pytest.raises(StoreFullError, match=r"^no space left on .*s\.zarr: free some .* Undo restores them\.$"):
        run_edit(store.path, frames, FlowTracker(), EditRequest("correction", 5, labels[5]))
    monkeypatch.setattr(LocalStore, "set", put)
    [rec] = read_edits(store.path)
    assert rec["state"] == "failed" and rec["written"] == 3  # frames 5, 6 and the one that failed
    assert undo_edit(store.path)["state"] == "undone"
    np.testing.assert_array_equal(SasviStore.read(store.path).labels[:], before)


def test_stores_written_before_the_engine_resume_edit_and_export(tmp_path, capsys, monkeypatch):
    """tests/data/stores_4ed02d2.tar.gz: a complete store and one stopped after 5 of 12 frames
    (reference mode, snapshot at frame 4), written by the code before this change (4ed02d2), with
    their frames and masks. The new code resumes the stopped one to the other, byte for byte, and
    edits, undoes and exports the old ones."""
    import tarfile
    from pathlib import Path

    with tarfile.open(Path(__file__).parent / "data" / "stores_4ed02d2.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    monkeypatch.chdir(tmp_path)  # the run was given relative paths ("frames", "masks"), which its store records
    old, stopped = tmp_path / "complete.zarr", tmp_path / "partial.zarr"
    assert SasviStore.read(stopped).frames_done == 5 and SasviStore.read(stopped).config is None
    args = ["--dataset", "synthetic", "--overseer-masks", "masks", "--mode", "reference"]
    assert main(["segment", "frames", "--out", str(stopped), *args]) == 0
    a, b = SasviStore.read(stopped), SasviStore.read(old)
    np.testing.assert_array_equal(a.labels[:], b.labels[:])
    np.testing.assert_array_equal(a.overseer[:], b.overseer[:])
    assert a.events == b.events

    np.save(tmp_path / "fix.npy", np.asarray(b.labels[3]))
    edit = ["edit", str(old), "--correct", "3", "--labels", str(tmp_path / "fix.npy"), "--frames"]
    assert main([*edit, str(tmp_path / "frames")]) == 0  # the tracker from the old store's record
    assert main(["edit", str(old), "--undo"]) == 0
    np.testing.assert_array_equal(SasviStore.read(old).labels[:], a.labels[:])
    assert main(["export", str(old), "--to", "png", "--out", str(tmp_path / "png")]) == 0
    assert main(["resume", str(old)]) == 2 and "same `napari-sasvi segment` command" in capsys.readouterr().err
