"""Corrections in napari (issue 13, items 2-3): paint a frame of the SASVi layer, Re-propagate
(only its span changes), Undo; pin and skip re-prompts from the events table; Cancel."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sasvi.core.store.edit_log import boundaries, read_edits
from napari_sasvi.core.store.sasvi_store import SasviStore
from napari_sasvi.core.synthetic import SyntheticVideo

pytestmark = pytest.mark.gui
N = 16


def _finished_run(make_napari_viewer_proxy, qtbot, tmp_path, mode="default"):
    viewer = make_napari_viewer_proxy()
    video = SyntheticVideo(n_frames=N, height=64, width=80, seed=2)
    frames, noisy = video.arrays(noisy=True)
    truth = video.arrays()[1]
    viewer.add_image(frames, name="clip", rgb=True)
    viewer.add_labels(noisy, name="frame-wise")
    _, widget = viewer.window.add_plugin_dock_widget("napari-sasvi", "SASVi segment video")
    widget._dataset.value = "synthetic"
    widget._sam2.value = next(c for c in widget._sam2.choices if str(c).startswith("optical flow (DIS"))
    widget._mode.value = mode
    widget._out.value = tmp_path / "s.zarr"
    widget.run()
    qtbot.waitUntil(lambda: widget._worker is None, timeout=120_000)
    assert SasviStore.read(tmp_path / "s.zarr").complete
    return viewer, widget, truth


def _wait(qtbot, panel, timeout=120_000):
    qtbot.waitUntil(lambda: panel._worker is None, timeout=timeout)


def test_paint_repropagate_undo(make_napari_viewer_proxy, qtbot, tmp_path):
    viewer, widget, truth = _finished_run(make_napari_viewer_proxy, qtbot, tmp_path)
    panel, path = widget._corrections, tmp_path / "s.zarr"
    before = np.asarray(SasviStore.read(path).labels)
    layer = viewer.layers["s SASVi"]
    t = 6
    viewer.dims.set_current_step(0, t)
    # the user paints frame t with napari's own painting (data_setitem is what the brush calls)
    yy, xx = np.nonzero(truth[t] != before[t])
    assert yy.size, "the run differs from the truth at that frame"
    layer.data_setitem((np.full(yy.shape, t), yy, xx), truth[t][yy, xx])
    np.testing.assert_array_equal(np.asarray(layer.data[t]), truth[t])
    np.testing.assert_array_equal(np.asarray(SasviStore.read(path).labels[t]), before[t])  # not written yet
    assert [r["kind"] for r in panel.timeline()] == ["corrected (pending)"]

    worker = panel.repropagate()
    assert worker is not None
    _wait(qtbot, panel)
    store = SasviStore.read(path)
    after = np.asarray(store.labels)
    [summary] = panel.last_summaries
    span = range(summary.start, summary.stop + 1)
    assert summary.start == t and summary.written == len(span)
    np.testing.assert_array_equal(after[t], truth[t])
    outside = [f for f in range(N) if f not in span]
    np.testing.assert_array_equal(after[outside], before[outside])
    assert t in boundaries(store) and store.group.attrs["sasvi"]["edited"] is True
    assert "corrected" in [row[1] for row in widget._table.data]
    assert "recomputed" in panel._info.value and not layer.data.pending

    panel.undo()
    np.testing.assert_array_equal(np.asarray(SasviStore.read(path).labels), before)
    assert "undone" in panel._info.value
    assert "corrected" not in [row[1] for row in widget._table.data]
    panel.undo()
    assert "Nothing to undo" in panel._info.value


def test_pin_skip_from_the_table_and_cancel(make_napari_viewer_proxy, qtbot, tmp_path):
    viewer, widget, _ = _finished_run(make_napari_viewer_proxy, qtbot, tmp_path, mode="reference")
    panel, path = widget._corrections, tmp_path / "s.zarr"
    store = SasviStore.read(path)
    before = np.asarray(store.labels)
    b = boundaries(store)
    restarts = [x for x in b if x > 0]
    assert restarts
    # skip: select the first restart's row in the events table
    rows = [row[:2] for row in widget._table.data]
    r = restarts[0]
    widget._table.native.setCurrentCell(rows.index([r, "restart"]), 0)
    panel.skip_selected()
    # pin: at the current frame (one that is no re-prompt)
    f = next(x for x in range(1, N) if x not in b and x != r)
    viewer.dims.set_current_step(0, f)
    panel.pin_here()
    assert sorted(r2["kind"] for r2 in panel.timeline()) == ["pinned (pending)", "skipped (pending)"]
    # the strip's right-click menu offers the same: pin at the frame under the cursor, skip the
    # re-prompt there
    strip = widget._strip
    actions = dict(strip.menu_actions(strip._x(r)))
    assert f"Skip the restart at frame {r}" in actions and any(k.startswith("Pin re-prompt at frame") for k in actions)
    panel._queue.clear()
    actions[f"Skip the restart at frame {r}"]()
    panel.pin_at(f)
    # a row that is no re-prompt cannot be skipped: told so, nothing queued
    widget._table.native.setCurrentCell(0, 0)  # frame 0: the start
    panel.skip_selected()
    assert "only a restart" in panel._info.value or "starts the video" in panel._info.value

    panel.repropagate()
    _wait(qtbot, panel)
    kinds = sorted(e["kind"] for e in read_edits(path))
    assert kinds == ["pin", "skip"] and not panel._queue
    new = SasviStore.read(path)
    assert r not in boundaries(new) and f in boundaries(new)
    assert "skipped" in [row[1] for row in widget._table.data]
    assert "pinned" in [row[1] for row in widget._table.data]

    # cancel: a long re-propagation stopped between frames keeps what it wrote, Undo restores it
    panel.undo()
    panel.undo()
    np.testing.assert_array_equal(np.asarray(SasviStore.read(path).labels), before)
    layer = viewer.layers["s SASVi"]
    layer.data_setitem((np.array([1]), np.array([0]), np.array([0])), 3)
    widget._cancel.set()  # as if Cancel were pressed before the first frame finished
    panel.repropagate()  # clears the flag at start, so press it again once the edit started
    qtbot.waitUntil(lambda: panel._progress is not None or panel._worker is None, timeout=60_000)
    widget.cancel()
    _wait(qtbot, panel)
    [rec] = [e for e in read_edits(path) if e["state"] != "undone"]
    assert rec["state"] in ("cancelled", "done") and rec["written"] >= 1
    if rec["state"] == "cancelled":
        assert rec["written"] < rec["span"][1] - rec["span"][0] + 1
    panel.undo()
    np.testing.assert_array_equal(np.asarray(SasviStore.read(path).labels), before)


def test_repropagate_uses_the_stores_tracker_not_the_forms(make_napari_viewer_proxy, qtbot, tmp_path):
    """Issue 27: Re-propagate built its tracker from the form, so a store made with one tracker got
    spans recomputed by another, silently. It now rebuilds the store's own from its record."""
    viewer, widget, truth = _finished_run(make_napari_viewer_proxy, qtbot, tmp_path)
    panel, path = widget._corrections, tmp_path / "s.zarr"
    made_with = SasviStore.read(path).signature["tracker"]
    assert made_with["method"] == "dis"
    # the user has since picked another tracker in the form
    widget._sam2.value = next(c for c in widget._sam2.choices if str(c).startswith("optical flow (Farneback"))
    layer = viewer.layers["s SASVi"]
    t = 5
    yy, xx = np.nonzero(np.ones_like(truth[t], bool))
    layer.data_setitem((np.full(yy.shape, t), yy, xx), truth[t][yy, xx])
    panel.repropagate()
    _wait(qtbot, panel)
    [edit] = read_edits(path)
    assert edit["state"] == "done" and edit["tracker"]["method"] == "dis" and "other_tracker" not in edit
