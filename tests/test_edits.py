"""Edits of a finished store (issue 13, items 2-4): a correction recomputes its span only (byte for
byte elsewhere), becomes an anchor, is undone; pinned and skipped re-prompts; cancel; resume after
an edit stays exact; the real SAM2 path."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import drive
from napari_sasvi.core.datasets import SYNTHETIC
from napari_sasvi.core.engine import EditRequest, FrameDone, iter_edit, plan_edit, run_edit, run_sasvi, undo_edit
from napari_sasvi.core.errors import InputError
from napari_sasvi.core.inputs.anchors import read_anchors
from napari_sasvi.core.inputs.frames import open_frames
from napari_sasvi.core.overseers.replay import ReplayOverseer
from napari_sasvi.core.policy import PolicyParams
from napari_sasvi.core.store.edit_log import boundaries, read_edits, reprompts, store_anchor_frames
from napari_sasvi.core.store.sasvi_store import SasviStore
from napari_sasvi.core.synthetic import SyntheticVideo
from napari_sasvi.core.trackers.flow import FlowTracker

N = 24


@pytest.fixture(scope="module")
def clip():
    video = SyntheticVideo(n_frames=N, height=64, width=80, seed=3)
    frames, labels = video.arrays()
    _, noisy = video.arrays(noisy=True)
    return frames, labels, noisy


def _store(path, clip, mode="default", **kw):
    frames, _, noisy = clip
    params = PolicyParams(mode=mode)
    run_sasvi(frames, ReplayOverseer(noisy, SYNTHETIC), FlowTracker(), str(path), SYNTHETIC, params, **kw)
    return SasviStore.read(path)


def _files(root):
    """Every file of the store but the edit log and undo data: relative path -> bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "sasvi_undo" not in p.parts and p.name != "sasvi_edits.json"
    }


def _frame_bytes(files, t):
    return {k: v for k, v in files.items() if k.startswith(f"labels/c/{t}/")}


def _a_free_frame(store, lo_gap=3):
    """A frame inside a segment, with at least ``lo_gap`` frames to the next boundary."""
    b = [*boundaries(store), store.n_frames]
    for s, e in zip(b, b[1:], strict=False):
        if e - s > lo_gap + 1:
            return s + 1, e
    raise AssertionError(f"no segment long enough in {b}")


def test_correction_recomputes_its_span_only_becomes_an_anchor_and_undoes(tmp_path, clip):
    frames, labels, _ = clip
    path = tmp_path / "s.zarr"
    store = _store(path, clip)
    t, nxt = _a_free_frame(store)
    plan = plan_edit(store, EditRequest("correction", t))
    adds = [e["frame"] for e in store.events if e["kind"] == "add_objects" and t < e["frame"] < nxt]
    assert adds and [f for f, _ in plan.adds] == adds  # objects the run added later are added again
    before = _files(path)
    assert json.loads((path / "zarr.json").read_text())["attributes"]["sasvi"].get("edited") is None

    summary, items = drive(iter_edit(path, frames, FlowTracker(), EditRequest("correction", t, labels[t])))
    assert (summary.start, summary.stop, summary.written) == (t, nxt - 1, nxt - t)
    done = [i for i in items if isinstance(i, FrameDone)]
    assert [d.frame for d in done] == list(range(t, nxt)) and done[-1].done == done[-1].total == nxt - t

    after = _files(path)
    edited = SasviStore.read(path)
    np.testing.assert_array_equal(np.asarray(edited.labels[t]), labels[t])  # written as corrected
    for k in before:  # byte for byte outside the span: other frames, overseer, progress, events
        in_span = any(k.startswith(f"labels/c/{f}/") for f in range(t, nxt))
        if not in_span and k != "zarr.json":
            assert after[k] == before[k], k
    assert any(_frame_bytes(after, f) != _frame_bytes(before, f) for f in range(t, nxt))
    # recorded: an anchor, a boundary, an edited store
    assert t in store_anchor_frames(edited) and t in boundaries(edited)
    assert edited.group.attrs["sasvi"]["edited"] is True
    [rec] = read_edits(path)
    assert rec["kind"] == "correction" and rec["span"] == [t, nxt - 1] and rec["state"] == "done"
    assert any(r["kind"] == "corrected" and r["frame"] == t for r in reprompts(edited))
    anchors = read_anchors(path, open_frames(frames), SYNTHETIC)  # a store as the anchors source
    assert t in anchors.frames
    np.testing.assert_array_equal(anchors.masks[t], labels[t])

    # undo: the store as it was, byte for byte (attributes back to not edited)
    rec = undo_edit(path)
    assert rec["state"] == "undone"
    restored = _files(path)
    assert {k: v for k, v in restored.items() if k != "zarr.json"} == {
        k: v for k, v in before.items() if k != "zarr.json"
    }
    assert SasviStore.read(path).group.attrs["sasvi"]["edited"] is False
    assert t not in store_anchor_frames(SasviStore.read(path))
    assert undo_edit(path) is None  # nothing left to undo


def test_pin_and_skip_reprompts_recompute_their_spans(tmp_path, clip):
    frames, _, _ = clip
    path = tmp_path / "s.zarr"
    store = _store(path, clip, mode="reference")  # restarts rather than objects added
    b = boundaries(store)
    f, nxt = _a_free_frame(store)
    f += 1
    plan = plan_edit(store, EditRequest("pin", f))
    assert (plan.prompt_frame, plan.start, plan.stop) == (f, f, nxt - 1)
    before = _files(path)
    s = run_edit(path, frames, FlowTracker(), EditRequest("pin", f))
    assert s.written == nxt - f and f in boundaries(SasviStore.read(path))
    after = _files(path)
    for t in set(range(N)) - set(range(f, nxt)):
        assert _frame_bytes(after, t) == _frame_bytes(before, t)
    # skip the pin: refused (undo it instead); skip a restart of the run: continued from the one before
    with pytest.raises(InputError, match="undo that edit"):
        plan_edit(SasviStore.read(path), EditRequest("skip", f))
    restarts = [x for x in b if x > 0]
    assert restarts, "the noisy overseer makes SASVi restart"
    r = restarts[0]
    prev = max(x for x in boundaries(SasviStore.read(path)) if x < r)
    plan = plan_edit(SasviStore.read(path), EditRequest("skip", r))
    assert plan.prompt_frame == prev and plan.start == r
    run_edit(path, frames, FlowTracker(), EditRequest("skip", r))
    assert r not in boundaries(SasviStore.read(path))
    assert any(x["skipped"] and x["frame"] == r for x in reprompts(SasviStore.read(path)))
    # undo twice: back to the store as the run left it
    assert undo_edit(path)["kind"] == "skip"
    assert undo_edit(path)["kind"] == "pin"
    assert {k: v for k, v in _files(path).items() if k != "zarr.json"} == {
        k: v for k, v in before.items() if k != "zarr.json"
    }


def test_skip_objects_added_in_default_mode(tmp_path, clip):
    frames, _, _ = clip
    path = tmp_path / "s.zarr"
    store = _store(path, clip)
    adds = [e for e in store.events if e["kind"] == "add_objects"]
    f = adds[0]["frame"]
    plan = plan_edit(store, EditRequest("skip", f))
    assert plan.prompt_frame == 0 and plan.start == f and f not in [a for a, _ in plan.adds]
    before = np.asarray(store.labels)
    s = run_edit(path, frames, FlowTracker(), EditRequest("skip", f))
    after = np.asarray(SasviStore.read(path).labels)
    np.testing.assert_array_equal(after[:f], before[:f])
    assert s.written == plan.n_frames
    # the objects added at f are not added there any more: fewer of its labels right after it
    added = adds[0]["mask_labels"] + adds[0]["point_labels"]
    assert sum((after[f] == c).sum() for c in added) < sum((before[f] == c).sum() for c in added)


def test_unlabelled_pixels_of_a_correction_are_written_as_no_label(tmp_path, clip):
    frames, labels, _ = clip
    path = tmp_path / "s.zarr"
    store = _store(path, clip)
    t, _ = _a_free_frame(store)
    gt = labels[t].copy()
    gt[:8, :8] = 255  # a ground truth's ignore value
    run_edit(path, frames, FlowTracker(), EditRequest("correction", t, gt))
    out = np.asarray(SasviStore.read(path).labels[t])
    assert (out[:8, :8] == SYNTHETIC.no_label).all()
    np.testing.assert_array_equal(out[8:], labels[t][8:])


def test_edits_refuse_bad_requests_and_write_nothing(tmp_path, clip):
    frames, labels, _ = clip
    path = tmp_path / "s.zarr"
    _store(path, clip, stop_after=10)
    before = _files(path)
    bad = [
        (EditRequest("correction", 15, labels[15]), "not computed yet"),
        (EditRequest("correction", 3, labels[3] + 40), "not classes of"),
        (EditRequest("correction", 3, labels[3][:10]), "pixels but the store"),
        (EditRequest("skip", 0), "Frame 0 starts the video"),
        (EditRequest("skip", 3), "did not re-prompt at frame 3"),
        (EditRequest("pin", 0), "already re-prompts"),
        (EditRequest("wipe", 3), "Unknown edit"),
    ]
    for req, msg in bad:
        with pytest.raises(InputError, match=msg):
            run_edit(path, frames, FlowTracker(), req)
    with pytest.raises(InputError, match="not the video|differs from the frame"):  # other frames
        run_edit(path, frames[:, ::-1].copy(), FlowTracker(), EditRequest("correction", 3, labels[3]))
    assert _files(path) == before and read_edits(path) == []


def test_cancel_keeps_written_frames_undo_restores_them(tmp_path, clip):
    frames, labels, _ = clip
    path = tmp_path / "s.zarr"
    store = _store(path, clip)
    t, nxt = _a_free_frame(store, lo_gap=4)
    before = _files(path)
    calls = []
    s = run_edit(
        path,
        frames,
        FlowTracker(),
        EditRequest("correction", t, labels[t]),
        cancel=lambda: calls.append(1) or len(calls) >= 2,
    )
    assert s.cancelled and s.written == 2 and read_edits(path)[0]["state"] == "cancelled"
    after = _files(path)
    for f in set(range(N)) - {t, t + 1}:
        assert _frame_bytes(after, f) == _frame_bytes(before, f)
    undo_edit(path)
    assert {k: v for k, v in _files(path).items() if k != "zarr.json"} == {
        k: v for k, v in before.items() if k != "zarr.json"
    }


def test_resume_after_an_edit_keeps_it_and_stays_exact(tmp_path, clip):
    frames, labels, _ = clip
    whole = _store(tmp_path / "whole.zarr", clip)
    path = tmp_path / "part.zarr"
    _store(path, clip, stop_after=14)
    s = run_edit(path, frames, FlowTracker(), EditRequest("correction", 4, labels[4]))
    corrected = np.asarray(SasviStore.read(path).labels[s.start : s.stop + 1])
    assert s.stop <= 13  # never past the finished frames
    _store(path, clip)  # resume: the same signature, the edits untouched
    done = SasviStore.read(path)
    assert done.complete
    np.testing.assert_array_equal(np.asarray(done.labels[s.start : s.stop + 1]), corrected)
    np.testing.assert_array_equal(np.asarray(done.labels[14:]), np.asarray(whole.labels[14:]))


def test_real_sam2_correction(tmp_path, sam2_tracker):
    video = SyntheticVideo(n_frames=6, height=64, width=80, seed=5)
    frames, labels = video.arrays()
    _, noisy = video.arrays(noisy=True)
    path = tmp_path / "s.zarr"
    tracker = sam2_tracker()
    run_sasvi(frames, ReplayOverseer(noisy, SYNTHETIC), tracker, str(path), SYNTHETIC, PolicyParams())
    store = SasviStore.read(path)
    t = 1 if 1 not in boundaries(store) else 2
    before = np.asarray(store.labels)
    s = run_edit(path, frames, tracker, EditRequest("correction", t, labels[t]))
    after = np.asarray(SasviStore.read(path).labels)
    np.testing.assert_array_equal(after[t], labels[t])
    outside = [f for f in range(6) if not s.start <= f <= s.stop]
    np.testing.assert_array_equal(after[outside], before[outside])
    assert read_edits(path)[0]["tracker"]["type"] == tracker.describe()["type"]


def test_cli_edit_correct_list_undo(tmp_path, clip, capsys):
    from PIL import Image

    from napari_sasvi.cli import main

    frames, labels, noisy = clip
    folder, masks = tmp_path / "frames", tmp_path / "masks"
    folder.mkdir()
    masks.mkdir()
    for t in range(N):
        Image.fromarray(frames[t]).save(folder / f"{t:04d}.png")
        Image.fromarray(noisy[t]).save(masks / f"{t:04d}.png")
    out = tmp_path / "out.zarr"
    assert main(["segment", str(folder), "--out", str(out), "--dataset", "synthetic", "--tracker", "flow",
                 "--overseer-masks", str(masks)]) == 0  # fmt: skip
    before = np.asarray(SasviStore.read(out).labels)
    Image.fromarray(labels[5]).save(tmp_path / "fix.png")
    capsys.readouterr()
    assert main(["edit", str(out), "--correct", "5"]) == 2  # no --labels: told what to give
    assert "--labels" in capsys.readouterr().err
    assert main(["edit", str(out), "--correct", "5", "--labels", str(tmp_path / "fix.png")]) == 0
    said = capsys.readouterr().out
    assert "correction at frame 5: frames 5-" in said and "--undo" in said
    np.testing.assert_array_equal(np.asarray(SasviStore.read(out).labels[5]), labels[5])  # the store's tracker
    assert main(["edit", str(out), "--list"]) == 0
    listed = capsys.readouterr().out
    assert "corrected" in listed and "edit 1: correction at 5" in listed
    assert main(["edit", str(out), "--skip", "3"]) == 2
    assert "did not re-prompt at frame 3" in capsys.readouterr().err
    # the edited store as the annotated frames of another run: its corrected frame is the anchor
    again = tmp_path / "again.zarr"
    assert main(["segment", str(folder), "--out", str(again), "--dataset", "synthetic", "--tracker", "flow",
                 "--overseer", "none", "--anchors", str(out)]) == 0  # fmt: skip
    assert SasviStore.read(again).signature["overseer"]["anchors"]["frames"] == [5]
    np.testing.assert_array_equal(np.asarray(SasviStore.read(again).labels[5]), labels[5])
    assert main(["edit", str(out), "--undo"]) == 0
    np.testing.assert_array_equal(np.asarray(SasviStore.read(out).labels), before)
