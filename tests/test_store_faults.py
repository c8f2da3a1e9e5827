"""Store faults said plainly: a full disk is a StoreFullError naming the store and what to do, with
the finished frames kept and a rerun completing exactly like an uninterrupted run; a damaged store
(array metadata, progress file, snapshot file or group attributes missing or unreadable) is a
StoreDamagedError naming the file, on resuming and on reading, and nothing in it is changed."""

from __future__ import annotations

import asyncio
import errno
import json
import shutil

import numpy as np
import pytest
from zarr.storage import LocalStore

from conftest import drive
from napari_sasvi.cli import main
from napari_sasvi.core.datasets import SYNTHETIC
from napari_sasvi.core.engine import FrameDone, iter_sasvi
from napari_sasvi.core.errors import StoreDamagedError, StoreFullError
from napari_sasvi.core.overseers.replay import ReplayOverseer
from napari_sasvi.core.policy import PolicyParams
from napari_sasvi.core.store import sasvi_store
from napari_sasvi.core.store.sasvi_store import PROGRESS, RESUME_ARRAYS, SasviStore
from napari_sasvi.core.synthetic import SyntheticVideo
from napari_sasvi.core.trackers.flow import FlowTracker

N = 16
ENOSPC = OSError(errno.ENOSPC, "No space left on device")
SHORT = OSError("307200 requested and 278400 written")  # numpy's tofile when the disk fills mid-array


@pytest.fixture(scope="module")
def clip():
    video = SyntheticVideo(n_frames=N, height=64, width=80, seed=5)
    frames, noisy = video.arrays(noisy=True)
    return video, frames, noisy


def _go(clip, out, **kw):  # buffer=4: a segment start (a snapshot with its previous output) every 3 frames
    video, frames, noisy = clip
    return iter_sasvi(frames, ReplayOverseer(noisy, video.classes), FlowTracker(), str(out), video.classes,
                      PolicyParams(buffer=4), **kw)  # fmt: skip


@pytest.fixture(scope="module")
def uninterrupted(clip, tmp_path_factory):
    out = tmp_path_factory.mktemp("fresh") / "fresh.zarr"
    drive(_go(clip, out))
    return SasviStore.read(out)


def _same(out, ref):
    got = SasviStore.read(out)
    assert got.complete
    np.testing.assert_array_equal(np.asarray(got.labels[:]), np.asarray(ref.labels[:]))
    np.testing.assert_array_equal(np.asarray(got.overseer[:]), np.asarray(ref.overseer[:]))
    assert got.events == ref.events


def _full_message(out, kept="finished frames are kept"):
    return f"no space left on {out}: free some and run the same command again; {kept}."


def _run_until_full(clip, out):
    done = []
    with pytest.raises(StoreFullError) as e:
        for item in _go(clip, out):
            if isinstance(item, FrameDone):
                done.append(item.frame)
    return str(e.value), done


@pytest.mark.parametrize("array", ["labels", "overseer"])
def test_a_full_disk_on_a_frame_keeps_the_finished_frames_and_the_rerun_completes_the_same(
    tmp_path, clip, uninterrupted, monkeypatch, array
):
    out = tmp_path / "o.zarr"
    put = LocalStore.set

    async def full_at_frame_9(self, key, value):  # zarr's chunk write on the store's own thread
        if key.startswith(f"{array}/c/9/"):
            raise ENOSPC
        return await put(self, key, value)

    monkeypatch.setattr(LocalStore, "set", full_at_frame_9)
    msg, done = _run_until_full(clip, out)
    assert msg == _full_message(out) and "\n" not in msg
    assert done == list(range(9)) and SasviStore.read(out).frames_done == 9
    monkeypatch.setattr(LocalStore, "set", put)  # room again
    summary, _ = drive(_go(clip, out))
    assert summary.resumed_from == 9
    _same(out, uninterrupted)


def test_a_full_disk_on_the_progress_file_records_nothing_more(tmp_path, clip, uninterrupted, monkeypatch):
    out = tmp_path / "o.zarr"
    write = sasvi_store.atomic_write_text
    calls = []

    def full_on_the_sixth_record(path, text):
        calls.append(path)
        if len(calls) == 6:
            raise ENOSPC
        return write(path, text)

    monkeypatch.setattr(sasvi_store, "atomic_write_text", full_on_the_sixth_record)
    msg, done = _run_until_full(clip, out)
    assert msg == _full_message(out)
    kept = SasviStore.read(out).frames_done
    assert 0 < kept == len(done) < N  # every frame reported done is on disk, nothing after it
    assert not list(out.glob(".*partial*"))  # no half-written file left
    monkeypatch.setattr(sasvi_store, "atomic_write_text", write)
    summary, _ = drive(_go(clip, out))
    assert summary.resumed_from == kept
    _same(out, uninterrupted)


def test_a_short_write_of_the_snapshot_keeps_the_snapshot_before_it(tmp_path, clip, uninterrupted, monkeypatch):
    out = tmp_path / "o.zarr"
    save, saves = np.save, []

    def short_on_the_second(file, arr, *a, **kw):
        saves.append(file)
        if len(saves) == 2:
            raise SHORT
        return save(file, arr, *a, **kw)

    monkeypatch.setattr(sasvi_store.np, "save", short_on_the_second)
    msg, _ = _run_until_full(clip, out)
    assert msg == _full_message(out) and len(saves) == 2
    monkeypatch.setattr(sasvi_store.np, "save", save)
    kept = SasviStore.read(out)
    assert kept.snapshot["frame"] == 4 and kept.snapshot["has_previous"] and (out / kept.snapshot["previous"]).is_file()
    drive(_go(clip, out))
    _same(out, uninterrupted)


def test_a_snapshot_whose_record_fails_leaves_the_old_pair_intact(tmp_path, monkeypatch):
    path = tmp_path / "s.zarr"
    store = SasviStore.open(path, n_frames=6, frame_size=(4, 5), classes=SYNTHETIC, signature={"k": 1})
    frame = np.zeros((4, 5), np.uint8)
    for t in range(3):
        store.write_frame(t, frame, frame, [])
    first, second = np.full((4, 5), 1, np.uint8), np.full((4, 5), 2, np.uint8)
    store.save_snapshot({"frame": 1, "reason": "buffer", "state": {}}, first)
    monkeypatch.setattr(sasvi_store, "atomic_write_text", lambda *a: (_ for _ in ()).throw(ENOSPC))
    with pytest.raises(StoreFullError, match="no space left on"):
        store.save_snapshot({"frame": 2, "reason": "buffer", "state": {}}, second)
    monkeypatch.undo()
    back = SasviStore.read(path)
    assert back.snapshot["frame"] == 1 and back.frames_done == 3
    np.testing.assert_array_equal(back.load_previous_output(), first)
    back.save_snapshot({"frame": 2, "reason": "buffer", "state": {}}, second)  # room again
    np.testing.assert_array_equal(SasviStore.read(path).load_previous_output(), second)
    assert sorted(p.name for p in path.glob("sasvi_resume*")) == [RESUME_ARRAYS[1]]  # the old one removed


def test_a_full_disk_while_the_store_is_made_is_said_and_the_rerun_starts_afresh(
    tmp_path, clip, uninterrupted, monkeypatch
):
    out = tmp_path / "o.zarr"
    put = LocalStore.set
    writing = []

    async def full_on_arrays(self, key, value):
        if key.startswith("overseer/"):
            # zarr writes the array's metadata beside its parent's at once: fail once those landed,
            # as a disk filling up would, so that none is still being written when the rerun starts
            await asyncio.sleep(0.01)
            while writing:
                await asyncio.sleep(0.001)
            raise ENOSPC
        writing.append(key)
        try:
            return await put(self, key, value)
        finally:
            writing.remove(key)

    monkeypatch.setattr(LocalStore, "set", full_on_arrays)
    with pytest.raises(StoreFullError) as e:
        drive(_go(clip, out))
    assert str(e.value) == _full_message(out, "no frame was finished yet")
    monkeypatch.setattr(LocalStore, "set", put)
    drive(_go(clip, out))  # the half-made store (no progress file yet) is made again
    _same(out, uninterrupted)


# -- damaged stores ------------------------------------------------------------------------------------
def _files(path):
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _half_done(path):
    """A store of 6 frames with 3 done and a snapshot that needs its previous output."""
    store = SasviStore.open(path, n_frames=6, frame_size=(4, 5), classes=SYNTHETIC, signature={"k": 1})
    for t in range(3):
        store.write_frame(t, np.full((4, 5), t, np.uint8), np.zeros((4, 5), np.uint8), [])
    store.save_snapshot({"frame": 2, "reason": "buffer", "state": {}}, np.ones((4, 5), np.uint8))
    return store


def _edit_json(path, fn):
    data = json.loads(path.read_text(encoding="utf-8"))
    fn(data)
    path.write_text(json.dumps(data), encoding="utf-8")


DAMAGE = {
    "labels metadata missing": (lambda p: (p / "labels/zarr.json").unlink(), "labels/zarr.json is missing"),
    "overseer metadata missing": (lambda p: (p / "overseer/zarr.json").unlink(), "overseer/zarr.json is missing"),
    "labels metadata cut short": (
        lambda p: (p / "labels/zarr.json").write_text('{"shape": [6, 4', encoding="utf-8"),
        "labels/zarr.json cannot be read",
    ),
    "labels metadata invalid": (
        lambda p: _edit_json(p / "labels/zarr.json", lambda d: d.pop("shape")),
        "labels/zarr.json is not valid array metadata",
    ),
    "progress cut short": (
        lambda p: (p / PROGRESS).write_text('{"frames_done": 3, "ev', encoding="utf-8"),
        f"{PROGRESS} cannot be read",
    ),
    "progress out of range": (
        lambda p: _edit_json(p / PROGRESS, lambda d: d.update(frames_done=99)),
        f"{PROGRESS} says 99 frames are done",
    ),
    "attributes invalid": (
        lambda p: _edit_json(p / "zarr.json", lambda d: d["attributes"]["sasvi"].pop("signature")),
        "the group attribute 'sasvi' in zarr.json has no valid 'signature'",
    ),
    "class table invalid": (
        lambda p: _edit_json(p / "zarr.json", lambda d: d["attributes"]["sasvi"].update(classes="CaDIS")),
        "the class table in zarr.json's 'sasvi' attribute is invalid",
    ),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_store_is_named_on_resume_and_read_and_left_as_it_is(tmp_path, case):
    path = tmp_path / "s.zarr"
    _half_done(path)
    harm, what = DAMAGE[case]
    harm(path)
    before = _files(path)
    for attempt in (
        lambda: SasviStore.open(path, n_frames=6, frame_size=(4, 5), classes=SYNTHETIC, signature={"k": 1}),
        lambda: SasviStore.read(path),
        lambda: SasviStore.read(path, writable=True),
    ):
        with pytest.raises(StoreDamagedError) as e:
            attempt()
        assert str(e.value).startswith(f"{path} is a damaged SASVi store: {what}")
        assert "Nothing was changed;" in str(e.value) and "\n" not in str(e.value)
    assert _files(path) == before


def test_a_missing_snapshot_file_stops_a_resume_but_not_reading(tmp_path):
    path = tmp_path / "s.zarr"
    name = _half_done(path).snapshot["previous"]
    (path / name).unlink()
    before = _files(path)
    with pytest.raises(StoreDamagedError, match=f"damaged SASVi store: {name}, which its last snapshot needs"):
        SasviStore.open(path, n_frames=6, frame_size=(4, 5), classes=SYNTHETIC, signature={"k": 1})
    store = SasviStore.read(path)  # viewing and exporting need no snapshot
    assert store.frames_done == 3 and int(store.labels[2].max()) == 2
    with pytest.raises(StoreDamagedError, match=f"{name}, which its last snapshot needs"):
        store.load_previous_output()
    assert _files(path) == before


def test_a_damaged_store_is_one_line_from_the_cli_and_from_a_run(tmp_path, clip, capsys):
    out = tmp_path / "o.zarr"
    drive(_go(clip, out, stop_after=5))
    (out / "labels" / "zarr.json").unlink()
    before = _files(out)
    with pytest.raises(StoreDamagedError, match="labels/zarr.json is missing"):
        drive(_go(clip, out))
    assert main(["export", str(out), "--to", "png", "--out", str(tmp_path / "png")]) == 2
    err = capsys.readouterr().err
    assert "is a damaged SASVi store: labels/zarr.json is missing" in err and "Traceback" not in err
    assert _files(out) == before and not (tmp_path / "png").exists()
    shutil.rmtree(out)
