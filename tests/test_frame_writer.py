"""Finished frames are written on a thread of their own (store_writer.FrameWriter) while the next frame is
computed: the store is the same as with writes on the calling thread, FrameDone comes only once its
frame is on disk, and a run that stops (an error, a failed write, the generator closed) keeps the
frame it was writing and resumes after it."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from conftest import drive
from napari_sasvi.core.engine import FrameDone, iter_sasvi, run_sasvi
from napari_sasvi.core.overseers.replay import ReplayOverseer
from napari_sasvi.core.policy import PolicyParams
from napari_sasvi.core.progress import drain
from napari_sasvi.core.store.sasvi_store import SasviStore
from napari_sasvi.core.synthetic import SyntheticVideo
from napari_sasvi.core.trackers.flow import FlowTracker

N = 20


@pytest.fixture(scope="module")
def clip():
    video = SyntheticVideo(n_frames=N, height=96, width=128, seed=4)
    frames, noisy = video.arrays(noisy=True)
    return video, frames, noisy


def _store_threads():
    return [th for th in threading.enumerate() if th.name.startswith("sasvi-store")]


def _go(clip, out, **kw):
    video, frames, noisy = clip
    return iter_sasvi(frames, ReplayOverseer(noisy, video.classes), FlowTracker(), str(out), video.classes,
                      PolicyParams(), **kw)  # fmt: skip


@pytest.mark.parametrize("mode", ["default", "reference"])
def test_background_writes_give_the_same_store_and_frame_done_follows_the_write(tmp_path, clip, monkeypatch, mode):
    video, frames, noisy = clip
    writers = []
    write = SasviStore.write_frame
    monkeypatch.setattr(SasviStore, "write_frame",
                        lambda self, *a: writers.append(threading.current_thread().name) or write(self, *a))  # fmt: skip
    results = {}
    for background in (False, True):
        out = tmp_path / f"{mode}-{background}.zarr"
        writers.clear()
        gen = iter_sasvi(frames, ReplayOverseer(noisy, video.classes), FlowTracker(), str(out), video.classes,
                         PolicyParams(mode=mode), background_writes=background)  # fmt: skip
        seen = []

        def on_item(item, out=out, seen=seen):
            if isinstance(item, FrameDone):
                on_disk = SasviStore.read(out)  # what a napari layer reading the store sees now
                assert on_disk.frames_done >= item.done == item.frame + 1
                assert np.count_nonzero(np.asarray(on_disk.labels[item.frame]) != video.classes.no_label)
                seen.append(item.frame)

        summary = drain(gen, on_item)
        assert seen == list(range(N))  # every frame once, in order
        assert len(writers) == N and all(w.startswith("sasvi-store") for w in writers) == background
        assert not any(w.startswith("sasvi-store") for w in writers) or background
        assert not _store_threads()
        store = SasviStore.read(out)
        results[background] = (np.asarray(store.labels[:]), np.asarray(store.overseer[:]), store.events,
                               summary.events)  # fmt: skip
    (lab0, ov0, ev0, sev0), (lab1, ov1, ev1, sev1) = results[False], results[True]
    np.testing.assert_array_equal(lab1, lab0)
    np.testing.assert_array_equal(ov1, ov0)
    assert ev1 == ev0 == sev1 == sev0 and len(ev1) > 1


def test_closing_the_run_keeps_the_frame_being_written(tmp_path, clip):
    out = tmp_path / "o.zarr"
    gen = _go(clip, out)
    for item in gen:
        if isinstance(item, FrameDone) and item.frame == 6:
            break
    gen.close()  # the GUI's cancel by closing the generator: frame 7 was in flight
    assert not _store_threads()
    kept = SasviStore.read(out).frames_done
    assert kept == 8
    summary, items = drive(_go(clip, out))
    assert summary.resumed_from == kept and [i.frame for i in items if isinstance(i, FrameDone)] == list(range(kept, N))
    drive(_go(clip, tmp_path / "fresh.zarr"))
    np.testing.assert_array_equal(np.asarray(SasviStore.read(out).labels[:]),
                                  np.asarray(SasviStore.read(tmp_path / "fresh.zarr").labels[:]))  # fmt: skip


def test_a_failed_write_stops_the_run_with_its_error_and_nothing_after_it_is_recorded(tmp_path, clip, monkeypatch):
    out = tmp_path / "o.zarr"
    write = SasviStore.write_frame

    def failing(self, t, *a):
        if t == 7:
            raise OSError(28, "No space left on device")
        return write(self, t, *a)

    monkeypatch.setattr(SasviStore, "write_frame", failing)
    done = []
    with pytest.raises(OSError, match="No space left"):
        for item in _go(clip, out):
            if isinstance(item, FrameDone):
                done.append(item.frame)
    assert done == list(range(7)) and not _store_threads()
    assert SasviStore.read(out).frames_done == 7
    monkeypatch.setattr(SasviStore, "write_frame", write)
    summary, _ = drive(_go(clip, out))
    assert summary.resumed_from == 7 and SasviStore.read(out).complete
    run_sasvi(clip[1], ReplayOverseer(clip[2], clip[0].classes), FlowTracker(), str(tmp_path / "fresh.zarr"),
              clip[0].classes, PolicyParams())  # fmt: skip
    np.testing.assert_array_equal(np.asarray(SasviStore.read(out).labels[:]),
                                  np.asarray(SasviStore.read(tmp_path / "fresh.zarr").labels[:]))  # fmt: skip


def test_an_interrupt_while_the_last_frame_lands_leaves_the_store_unlocked(tmp_path, clip, monkeypatch):
    from napari_sasvi.core.store.writer import FrameWriter

    close = FrameWriter.close

    def interrupted(self):  # Ctrl-C arriving while the frame in flight is waited for
        close(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(FrameWriter, "close", interrupted)
    out = tmp_path / "o.zarr"
    gen = _go(clip, out)
    for item in gen:
        if isinstance(item, FrameDone) and item.frame == 3:
            break
    with pytest.raises(KeyboardInterrupt) as kept:  # the traceback stays alive, as in IPython's
        gen.close()
    assert kept.value is not None and SasviStore.read(out).frames_done == 5
    monkeypatch.setattr(FrameWriter, "close", close)
    summary, _ = drive(_go(clip, out))  # the same process runs on: the store's lock was released
    assert summary.resumed_from == 5 and SasviStore.read(out).complete
