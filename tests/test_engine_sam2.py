"""The engine end to end with the real SAM2 (random weights, 64 px input) on the synthetic clip."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from conftest import SAM2_SIZE as SIZE
from conftest import check_a_broken_frame_read_ahead
from napari_sasvi.core.datasets import SYNTHETIC
from napari_sasvi.core.engine import run_sasvi
from napari_sasvi.core.errors import CheckpointError, InputError, StoreMismatchError
from napari_sasvi.core.inputs.frames import open_frames
from napari_sasvi.core.overseers.replay import ReplayOverseer
from napari_sasvi.core.policy import PolicyParams
from napari_sasvi.core.store.sasvi_store import SasviStore
from napari_sasvi.core.synthetic import SyntheticVideo
from napari_sasvi.core.trackers.sam2 import SAM2Tracker, build_sam2_predictor


@pytest.fixture(scope="module")
def clip():
    video = SyntheticVideo(n_frames=30, height=96, width=128, seed=2)
    frames, noisy = video.arrays(noisy=True)
    return frames, noisy


@pytest.fixture
def tracker_default(sam2_tracker):
    return sam2_tracker(legacy=False)


@pytest.fixture
def tracker_reference(sam2_tracker):
    return sam2_tracker(legacy=True)


def _run(frames, noisy, tracker, out, mode, **kw):
    overseer = ReplayOverseer(noisy, SYNTHETIC, frame_count=len(frames), frame_size=frames.shape[1:3])
    return run_sasvi(frames, overseer, tracker, str(out), SYNTHETIC, PolicyParams(mode=mode), **kw)


@pytest.mark.slow
def test_default_mode_end_to_end(tmp_path, clip, tracker_default):
    frames, noisy = clip
    summary = _run(frames, noisy, tracker_default, tmp_path / "d.zarr", "default")
    store = SasviStore.read(tmp_path / "d.zarr")
    assert store.complete and summary.frames_written == len(frames)
    labels = np.asarray(store.labels)
    assert set(np.unique(labels)) <= set(SYNTHETIC.ids) | {SYNTHETIC.no_label}
    # the overseer's labels are stored beside, untouched in default mode
    np.testing.assert_array_equal(np.asarray(store.overseer), noisy)
    # the first frame is seeded with the overseer's masks: SAM2 returns them at the prompt frame
    assert (labels[0] == noisy[0]).mean() > 0.8
    sig = store.group.attrs["sasvi"]
    assert sig["signature"]["tracker"]["predictor"] == "current"
    assert sig["classes"]["name"] == "synthetic"
    assert summary.events[0]["kind"] == "restart" and summary.events[0]["frame"] == 0
    # the buffer forces a re-seed with a reset at frame 25
    assert [e["frame"] for e in summary.restarts] == [0, 25]
    # each frame is encoded once, frames where objects were added or segments restarted at most twice
    assert max(summary.encodes.values()) <= 2 and sum(summary.encodes.values()) < 2 * len(frames)


@pytest.mark.slow
def test_reference_mode_resets_and_resumes_to_the_same_labels(tmp_path, clip, tracker_reference):
    frames, noisy = clip
    full = _run(frames, noisy, tracker_reference, tmp_path / "full.zarr", "reference")
    starts = [e["frame"] for e in full.restarts]
    assert starts[0] == 0 and len(starts) >= 3  # the noisy overseer makes new classes appear
    stop = starts[-2] + 2  # interrupt inside a later segment: resuming replays it from its start
    part = _run(frames, noisy, tracker_reference, tmp_path / "part.zarr", "reference", stop_after=stop)
    assert part.cancelled and SasviStore.read(tmp_path / "part.zarr").frames_done == stop
    rest = _run(frames, noisy, tracker_reference, tmp_path / "part.zarr", "reference")
    assert rest.resumed_from == stop and rest.frames_written == len(frames) - stop
    a = np.asarray(SasviStore.read(tmp_path / "full.zarr").labels)
    b = np.asarray(SasviStore.read(tmp_path / "part.zarr").labels)
    np.testing.assert_array_equal(a, b)
    assert full.events == rest.events


@pytest.mark.slow
def test_killed_process_resumes_to_the_same_labels(tmp_path, clip):
    """Kill the CLI mid-video (SIGKILL: no cleanup), resume it, compare with an uninterrupted run."""
    frames, noisy = clip
    from PIL import Image

    fdir, mdir = tmp_path / "frames", tmp_path / "masks"
    fdir.mkdir()
    mdir.mkdir()
    for t in range(len(frames)):
        Image.fromarray(frames[t]).save(fdir / f"{t:04d}.png")
        Image.fromarray(noisy[t]).save(mdir / f"{t:04d}.png")
    base = [
        sys.executable,
        "-m",
        "napari_sasvi.cli",
        "segment",
        str(fdir),
        "--overseer-masks",
        str(mdir),
        "--dataset",
        "synthetic",
        "--sam2-config",
        "sam2.1_hiera_t",
        "--sam2-random-weights",
        "--image-size",
        str(SIZE),
        "--device",
        "cpu",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    # one thread each: the uninterrupted run and the one to kill run side by side
    whole = subprocess.Popen([*base, "--out", str(tmp_path / "whole.zarr")], env=env, **quiet)
    proc = subprocess.Popen([*base, "--out", str(tmp_path / "killed.zarr")], env=env, **quiet)
    progress = tmp_path / "killed.zarr" / "sasvi_progress.json"
    deadline = time.time() + 240
    while time.time() < deadline:
        if progress.exists() and 12 <= json.loads(progress.read_text())["frames_done"] < len(frames):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = json.loads(progress.read_text())["frames_done"]
    assert 0 < done < len(frames)
    out = subprocess.run([*base, "--out", str(tmp_path / "killed.zarr")], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert f"resumed at frame {done}" in out.stdout
    assert whole.wait(timeout=240) == 0
    a = np.asarray(SasviStore.read(tmp_path / "whole.zarr").labels)
    b = np.asarray(SasviStore.read(tmp_path / "killed.zarr").labels)
    np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_tracker_memory_stays_bounded(clip, tracker_default):
    from napari_sasvi.core.inputs.frames import open_frames

    video = SyntheticVideo(n_frames=60, height=64, width=96, seed=5)
    stack = open_frames(video.frames_dask())
    tracker_default.bind(stack)
    lab = video.labels(0)
    for c in (1, 2):
        tracker_default.add_mask(0, c, lab == c)
    sizes = {}
    for t, _ in tracker_default.propagate(0):
        sizes[t] = tracker_default.memory_frames()
    assert sizes[59] == sizes[30] <= 2 * (tracker_default.keep + 1) + 2


def test_store_refuses_other_inputs_and_files(tmp_path, tracker_default):
    short, noisy = SyntheticVideo(n_frames=4, height=96, width=128, seed=2).arrays(noisy=True)
    _run(short, noisy, tracker_default, tmp_path / "s.zarr", "default")
    before = (tmp_path / "s.zarr" / "sasvi_progress.json").read_bytes()
    # one pixel of any one frame, not only of frames a sample would pick: the store is refused
    # (content is checked frame by frame), and left as it was
    for t in range(len(short)):
        other = short.copy()
        other[t, 7, 9] ^= 0x01
        with pytest.raises(StoreMismatchError, match=f"frame {t} differs"):
            _run(other, noisy, tracker_default, tmp_path / "s.zarr", "default")
        assert (tmp_path / "s.zarr" / "sasvi_progress.json").read_bytes() == before
    assert _run(short, noisy, tracker_default, tmp_path / "s.zarr", "default").frames_written == 0
    a_file = tmp_path / "f.zarr"
    a_file.write_text("x")
    with pytest.raises(InputError, match="is a file"):
        _run(short, noisy, tracker_default, a_file, "default")
    (tmp_path / "notastore").mkdir()
    (tmp_path / "notastore" / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not a SASVi store"):
        _run(short, noisy, tracker_default, tmp_path / "notastore", "default")
    assert (tmp_path / "notastore" / "keep.txt").read_text() == "mine"


def test_overseer_masks_must_fit_the_video():
    frames, noisy = SyntheticVideo(n_frames=12, height=96, width=128, seed=2).arrays(noisy=True)
    with pytest.raises(InputError, match="frames but the video has"):
        ReplayOverseer(noisy[:10], SYNTHETIC, frame_count=len(frames), frame_size=frames.shape[1:3])
    with pytest.raises(InputError, match="pixels but the frames are"):
        ReplayOverseer(noisy[:, :50], SYNTHETIC, frame_count=len(frames), frame_size=frames.shape[1:3])


def test_checkpoint_round_trip_and_errors(tmp_path):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        model = build_sam2_predictor("sam2.1_hiera_t", None, "cpu", SIZE)
    ckpt = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save({"model": model.state_dict()}, ckpt)
    tr = SAM2Tracker(config="sam2.1_hiera_t", checkpoint=ckpt, device="cpu", image_size=SIZE)
    key = "image_encoder.trunk.patch_embed.proj.weight"
    assert torch.equal(tr.predictor.state_dict()[key], model.state_dict()[key])
    assert tr.describe()["checkpoint_sha256"] and len(tr.describe()["checkpoint_sha256"]) == 64
    with pytest.raises(CheckpointError, match="does not exist"):
        SAM2Tracker(config="sam2.1_hiera_t", checkpoint=tmp_path / "missing.pt", device="cpu", image_size=SIZE)
    # a checkpoint of another config: tests/test_run_inputs.py (the same loader, the message named)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(ckpt.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="Cannot read"):
        SAM2Tracker(config="sam2.1_hiera_t", checkpoint=truncated, device="cpu", image_size=SIZE)
    with pytest.raises(InputError, match="Unknown SAM2 config"):
        SAM2Tracker(config="sam3_hiera_q", device="cpu", image_size=SIZE)
    with pytest.raises(InputError, match="Unknown SAM2 model"):
        SAM2Tracker(model="sam2.1_hiera_huge", device="cpu")


def test_checkpoint_with_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    bad = tmp_path / "evil.pt"
    torch.save({"model": {"x": Evil()}}, bad)
    with pytest.raises(CheckpointError, match="Cannot read"):
        SAM2Tracker(config="sam2.1_hiera_t", checkpoint=bad, device="cpu", image_size=SIZE)


def test_offline_download_says_where_to_put_the_file(tmp_path, monkeypatch):
    from napari_sasvi.core.weights import RegisteredFile, fetch

    monkeypatch.setenv("NAPARI_SASVI_CACHE", str(tmp_path / "cache"))
    entry = RegisteredFile("sam2.1_hiera_tiny", "http://127.0.0.1:9/sam2.1_hiera_tiny.pt", "sam2.1_hiera_tiny.pt")
    with pytest.raises(CheckpointError, match=str(tmp_path / "cache" / "sam2.1_hiera_tiny.pt")):
        fetch(entry, timeout=2)
    assert not list((tmp_path / "cache").glob("*.partial"))
    # a file put there by hand is used; its hash is recorded and checked from then on
    (tmp_path / "cache" / "sam2.1_hiera_tiny.pt").write_bytes(b"weights")
    assert fetch(entry) == tmp_path / "cache" / "sam2.1_hiera_tiny.pt"
    (tmp_path / "cache" / "sam2.1_hiera_tiny.pt").write_bytes(b"tampered")
    with pytest.raises(CheckpointError, match="checksum"):
        fetch(entry)


def test_device_errors():
    from napari_sasvi.core.devices import resolve_device
    from napari_sasvi.core.errors import DeviceError

    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA"):
            resolve_device("cuda")


@pytest.mark.slow
def test_objects_batched_per_frame_match_one_object_at_a_time(tmp_path, clip, tracker_default):
    """Issue 16, item 1: in default mode the objects prompted together go through SAM2's memory
    attention, mask decoder and memory encoder as one batch per frame. Same decisions, the same
    labels within SAM2's numerical noise, one image encode per frame."""
    frames, noisy = clip
    assert tracker_default.batch_objects
    one = SAM2Tracker(config="sam2.1_hiera_t", device="cpu", image_size=SIZE, batch_objects=False)
    tracker_default.batches.clear()
    a = _run(frames, noisy, tracker_default, tmp_path / "batched.zarr", "default")
    b = _run(frames, noisy, one, tmp_path / "one.zarr", "default")
    assert max(tracker_default.batches) > 1 and not one.batches
    assert [(e["kind"], e["frame"]) for e in a.events] == [(e["kind"], e["frame"]) for e in b.events]
    la = np.asarray(SasviStore.read(tmp_path / "batched.zarr").labels)
    lb = np.asarray(SasviStore.read(tmp_path / "one.zarr").labels)
    assert (la == lb).mean() > 0.999
    assert a.encodes == b.encodes


def test_objects_joining_a_batched_segment(clip, tracker_default):
    """Objects added to a running segment (no reset) form a batch of their own; both batches'
    logits equal the one-at-a-time predictor's within float noise (the argmax flips on ties only)."""
    frames, _ = clip
    video = SyntheticVideo(n_frames=30, height=96, width=128, seed=2)
    stack = open_frames(frames, name="clip")
    one = SAM2Tracker(config="sam2.1_hiera_t", device="cpu", image_size=SIZE, batch_objects=False)
    results = []
    for tr in (tracker_default, one):
        tr.bind(stack)
        tr.batches.clear()
        lab0, lab4 = video.labels(0), video.labels(4)
        ids = [int(c) for c in np.unique(lab0) if c != SYNTHETIC.no_label]
        for c in ids[:-2]:
            tr.add_mask(0, c, lab0 == c)
        out = []
        for t, logits in tr.propagate(0):
            out.append(logits)
            if t == 3:
                break
        for c in ids[-2:]:
            tr.add_mask(4, c, lab4 == c)
        out += [lg for _, (_t, lg) in zip(range(4), tr.propagate(4), strict=False)]
        results.append((out, dict(tr.batches), dict(tr.encodes)))
    (batched, sizes, enc_b), (single, none, enc_s) = results
    assert set(sizes) == {len(ids) - 2, 2} and not none  # the first objects together, the two late ones together
    assert enc_b == enc_s and max(enc_b.values()) <= 2
    for x, y in zip(batched, single, strict=True):
        assert x.keys() == y.keys()
        for k in x:
            assert np.quantile(np.abs(x[k] - y[k]), 0.999) < 1e-3
            assert ((x[k] > 0) == (y[k] > 0)).mean() > 0.999


def test_a_store_being_written_is_refused_and_kept(tmp_path, clip):
    """The same run started twice: the second is refused while the first holds the store's lock,
    nothing is changed, and it runs once the lock is free (a killed process frees it by itself)."""
    import fcntl

    from napari_sasvi.core.errors import StoreBusyError
    from napari_sasvi.core.trackers.flow import FlowTracker

    frames, noisy = clip
    out = tmp_path / "s.zarr"
    _run(frames[:6], noisy[:6], FlowTracker(), out, "default", stop_after=3)
    before = SasviStore.read(out).frames_done
    with open(out / ".sasvi_lock", "a+") as held:  # another writer
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(StoreBusyError, match="is being written by"):
            _run(frames[:6], noisy[:6], FlowTracker(), out, "default")
        assert SasviStore.read(out).frames_done == before
    summary = _run(frames[:6], noisy[:6], FlowTracker(), out, "default")
    assert summary.resumed_from == before and SasviStore.read(out).complete


def _sam2_ahead_threads():
    import threading

    return [th for th in threading.enumerate() if th.name.startswith("sasvi-sam2-ahead")]


@pytest.mark.slow  # 2.5-3.6 s each here; the flow tracker's read-ahead test stays in the quick suite
@pytest.mark.parametrize("legacy", [False, True])
def test_sam2_reading_ahead_gives_the_same_labels_and_leaves_no_worker(tmp_path, legacy):
    import threading

    video = SyntheticVideo(n_frames=12, height=64, width=80, seed=5)
    frames, noisy = video.arrays(noisy=True)
    runs = {}
    for ahead in (False, True):
        tracker = SAM2Tracker(config="sam2.1_hiera_t", device="cpu", image_size=SIZE, legacy=legacy, ahead=ahead)
        stack, readers = open_frames(frames), []
        read = stack.source.read
        stack.source.read = lambda t, read=read, readers=readers: (
            readers.append(threading.current_thread().name) or read(t)
        )
        mode = "reference" if legacy else "default"
        s = _run(stack, noisy, tracker, tmp_path / f"{legacy}-{ahead}.zarr", mode)
        assert any(r.startswith("sasvi-sam2-ahead") for r in readers) == ahead
        assert not _sam2_ahead_threads()  # the worker ends with the propagation that started it
        runs[ahead] = (np.asarray(SasviStore.read(tmp_path / f"{legacy}-{ahead}.zarr").labels[:]), s.events, s.encodes)
    (lab0, ev0, enc0), (lab1, ev1, enc1) = runs[False], runs[True]
    np.testing.assert_array_equal(lab1, lab0)  # the same tensors: the same labels, bit for bit
    assert ev1 == ev0 and enc1 == enc0  # a frame read ahead is not an encode


def test_sam2_a_broken_frame_read_ahead_but_never_needed_stops_nothing(tmp_path, sam2_tracker):
    tracker = sam2_tracker(legacy=False)
    check_a_broken_frame_read_ahead(tmp_path, tracker, _sam2_ahead_threads, n=8, bad=5, seed=6)
