"""Edits re-add the classes the overseer sees and the tracker lost (issue 28, item 3): a correction
whose frame lacks a class that the overseer shows again right after gets it back at the next frame
(not at the next re-seed); the classes the correction paints are not added again; ``readd=False``
propagates the correction alone, as before."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_sasvi.core.datasets import SYNTHETIC
from napari_sasvi.core.engine import EditRequest, run_edit, run_sasvi
from napari_sasvi.core.metrics.accuracy import macro, overlap_counts
from napari_sasvi.core.overseers.replay import ReplayOverseer
from napari_sasvi.core.policy import PolicyParams
from napari_sasvi.core.store.edit_log import boundaries, read_edits
from napari_sasvi.core.store.sasvi_store import SasviStore
from napari_sasvi.core.synthetic import SyntheticVideo
from napari_sasvi.core.trackers.flow import FlowTracker

N = 24
HIDDEN = 20  # the frame where a class is out of view for one frame


def _hide(labels: np.ndarray, c: int) -> np.ndarray:
    """``labels`` with class ``c`` gone: each of its pixels takes the nearest other label."""
    gone = labels == c
    _, (iy, ix) = ndimage.distance_transform_edt(gone, return_indices=True)
    return labels[iy, ix]


@pytest.fixture(scope="module")
def clip():
    """The synthetic clip with one class out of view at frame HIDDEN only (ground truth and overseer
    agree): a tissue class in view on every frame from HIDDEN - 1 to the end (Fat, 600-900 px)."""
    video = SyntheticVideo(n_frames=N, height=64, width=80, seed=3)
    frames, labels = video.arrays()
    _, noisy = video.arrays(noisy=True)
    c = 3
    assert all((labels[t] == c).sum() > 500 for t in range(HIDDEN - 1, N)), "the clip changed: pick another class"
    labels, noisy = labels.copy(), noisy.copy()
    labels[HIDDEN], noisy[HIDDEN] = _hide(labels[HIDDEN], c), _hide(noisy[HIDDEN], c)
    return frames, labels, noisy, c


@pytest.fixture(scope="module")
def store_path(tmp_path_factory, clip):
    frames, _, noisy, _ = clip
    path = tmp_path_factory.mktemp("readd") / "base.zarr"
    run_sasvi(frames, ReplayOverseer(noisy, SYNTHETIC), FlowTracker(), str(path), SYNTHETIC, PolicyParams())
    return path


def _copy(store_path, tmp_path, name):
    import shutil

    out = tmp_path / name
    shutil.copytree(store_path, out)
    return out


def _dice(labels: np.ndarray, gt: np.ndarray) -> float:
    ids = [c for c in SYNTHETIC.scored_ids() if (gt == c).any()]
    return macro(overlap_counts(labels, gt, ids).dice(), ids)


def test_a_class_the_correction_lacks_is_added_again_at_the_next_frame(store_path, tmp_path, clip):
    frames, gt, _, c = clip
    store = SasviStore.read(store_path)
    nxt = min([b for b in boundaries(store) if b > HIDDEN] + [N])
    assert nxt - HIDDEN >= 3, "the span after the hidden frame is too short for the test"
    assert not any(
        e["kind"] == "add_objects" and HIDDEN < e["frame"] < nxt and c in e.get("mask_labels", []) for e in store.events
    ), "the run added the class itself inside the span: nothing to re-add"

    old, new = _copy(store_path, tmp_path, "old.zarr"), _copy(store_path, tmp_path, "new.zarr")
    s_old = run_edit(old, frames, FlowTracker(), EditRequest("correction", HIDDEN, gt[HIDDEN]), readd=False)
    s_new = run_edit(new, frames, FlowTracker(), EditRequest("correction", HIDDEN, gt[HIDDEN]))

    assert s_old.readds == () and "readds" not in read_edits(old)[-1]
    assert (HIDDEN + 1, c) in s_new.readds  # at once: the frame after the correction
    assert {"frame": HIDDEN + 1, "class": c} in read_edits(new)[-1]["readds"]
    lab_old = np.asarray(SasviStore.read(old).labels[:])
    lab_new = np.asarray(SasviStore.read(new).labels[:])
    # without re-adds the class stays lost for the rest of the span; with them it is back
    assert (lab_old[HIDDEN + 1 : nxt] == c).sum() < 20
    span = slice(HIDDEN + 1, nxt)
    inter = np.count_nonzero((lab_new[span] == c) & (gt[span] == c))
    assert inter > 0.5 * np.count_nonzero(gt[span] == c)
    assert _dice(lab_new, gt) > _dice(lab_old, gt) + 0.005
    # the corrected frame is the user's, with or without re-adds; nothing outside the span changes
    assert np.array_equal(lab_new[HIDDEN], gt[HIDDEN]) and not (lab_new[HIDDEN] == c).any()
    assert np.array_equal(lab_new[:HIDDEN], lab_old[:HIDDEN]) and np.array_equal(lab_new[nxt:], lab_old[nxt:])


def test_the_classes_a_correction_paints_are_not_added_again(store_path, tmp_path, clip):
    frames, gt, _, _ = clip
    store = SasviStore.read(store_path)
    f = next(t for t in range(2, N - 4) if all(b <= t or b > t + 3 for b in boundaries(store)) and t != HIDDEN - 1)
    path = _copy(store_path, tmp_path, "painted.zarr")
    summary = run_edit(path, frames, FlowTracker(), EditRequest("correction", f, gt[f]))
    painted = {int(c) for c in np.unique(gt[f])}
    assert all(frame != f for frame, _ in summary.readds)  # nothing is added on the corrected frame
    # the tracker carries what the correction painted: none of it is prompted again just after
    assert not [(t, c) for t, c in summary.readds if c in painted and t <= f + 2]
    assert [tuple(r.values()) for r in read_edits(path)[-1]["readds"]] == list(summary.readds)


def test_readd_off_is_the_correction_alone_and_skips_never_readd(store_path, tmp_path, clip):
    frames, _, _, _ = clip
    store = SasviStore.read(store_path)
    f = max(b for b in boundaries(store) if b <= HIDDEN - 1) + 1
    a, b = _copy(store_path, tmp_path, "a.zarr"), _copy(store_path, tmp_path, "b.zarr")
    req = EditRequest("correction", f, np.asarray(store.labels[f]))
    sa = run_edit(a, frames, FlowTracker(), req, readd=False, consensus=False)
    sb = run_edit(b, frames, FlowTracker(), req, consensus=False)
    assert sa.readds == () and "readds" not in read_edits(a)[-1] and (sa.start, sa.stop) == (sb.start, sb.stop)
    # the flag switches the re-adds only: the two agree on every frame before the first re-add
    lab_a, lab_b = np.asarray(SasviStore.read(a).labels[:]), np.asarray(SasviStore.read(b).labels[:])
    first = min([t for t, _ in sb.readds] + [N])
    assert np.array_equal(lab_a[:first], lab_b[:first])
    if sb.readds:  # and the class re-added is in the frame it was added at
        t, c = sb.readds[0]
        assert (lab_b[t] == c).sum() > (lab_a[t] == c).sum()
    # a skip continues the run's segment as it was: it re-adds nothing
    added = next(int(e["frame"]) for e in store.events if e["kind"] == "add_objects")
    skip = run_edit(_copy(store_path, tmp_path, "skip.zarr"), frames, FlowTracker(), EditRequest("skip", added))
    assert skip.readds == () and "readds" not in read_edits(tmp_path / "skip.zarr")[-1]
