"""Clicks and boxes in napari (issue 30, items 1 and 5): in a real viewer, points added through the
clicks layer's mouse callback, the frame's mask shown at once, committed, propagated, undone with
the corrections panel's Undo edit; bad input shown and nothing written. With the flow tracker
(the classical segmenter) and with SAM2 (random weights, its image path)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sasvi.core.datasets import SYNTHETIC
from napari_sasvi.core.prompts import GrowSegmenter, ObjectPrompt
from napari_sasvi.core.store.edit_log import read_edits
from napari_sasvi.core.store.sasvi_store import SasviStore
from napari_sasvi.core.synthetic import SyntheticVideo

pytestmark = pytest.mark.gui
N = 10


class _Mouse:
    """What napari's canvas hands the active layer's drag callbacks: world position, canvas pos,
    modifiers, button, type."""

    def __init__(self, position, modifiers=(), button=1):
        self.type, self.position, self.pos = "mouse_press", tuple(position), (100.0, 100.0)
        self.modifiers, self.button, self.handled = tuple(modifiers), button, False
        self.view_direction, self.dims_displayed = None, [1, 2]


def click(layer, t, x, y, modifiers=(), button=1):
    """A click on the canvas at pixel (x, y) of frame t, through napari's own callback machinery."""
    from napari.utils._proxies import ReadOnlyWrapper
    from napari.utils.interactions import mouse_press_callbacks, mouse_release_callbacks

    event = _Mouse((t, float(y), float(x)), modifiers, button)
    mouse_press_callbacks(layer, ReadOnlyWrapper(event, exceptions=("handled",)))
    event.type = "mouse_release"
    mouse_release_callbacks(layer, ReadOnlyWrapper(event, exceptions=("handled",)))


def _open_store(make_napari_viewer_proxy, qtbot, tmp_path, tracker: str, n=N):
    viewer = make_napari_viewer_proxy()
    video = SyntheticVideo(n_frames=n, height=64, width=80, seed=4)
    frames, noisy = video.arrays(noisy=True)
    truth = video.arrays()[1]
    viewer.add_image(frames, name="clip", rgb=True)
    viewer.add_labels(noisy, name="frame-wise")
    _, widget = viewer.window.add_plugin_dock_widget("napari-sasvi", "SASVi segment video")
    widget._dataset.value = "synthetic"
    if tracker == "flow":
        widget._sam2.value = next(c for c in widget._sam2.choices if str(c).startswith("optical flow (DIS"))
    else:
        widget._sam2.value = "config + checkpoint"
        widget._sam2_config.value = "sam2.1_hiera_t"
        widget._random.value = True
        widget._image_size.value = 64
        widget._device.value = "cpu"
    widget._out.value = tmp_path / "s.zarr"
    widget.run()
    qtbot.waitUntil(lambda: widget._worker is None, timeout=120_000)
    assert SasviStore.read(tmp_path / "s.zarr").complete
    return viewer, widget, frames, truth


def _an_object(labels, t):
    """The largest class on frame t whose box covers less than half the frame, and its mask."""
    keep = []
    for i in np.unique(labels[t]):
        m = labels[t] == i
        ys, xs = np.nonzero(m)
        if i != SYNTHETIC.no_label and m.sum() > 60 and np.ptp(xs) * np.ptp(ys) < 0.5 * m.size:
            keep.append((int(m.sum()), int(i)))
    cls = max(keep)[1]
    return cls, labels[t] == cls


def _inside(mask):
    """A pixel (x, y) well inside the mask (the farthest from its edge)."""
    import cv2

    d = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    y, x = np.unravel_index(int(np.argmax(d)), d.shape)
    return int(x), int(y)


def _settled(qtbot, panel, timeout=60_000):
    qtbot.waitUntil(lambda: panel._lane is None and panel._waiting is None, timeout=timeout)


def _errors(monkeypatch):
    shown = []
    monkeypatch.setattr("napari.utils.notifications.show_error", lambda msg: shown.append(msg))
    return shown


def test_click_box_preview_commit_undo_with_the_flow_tracker(make_napari_viewer_proxy, qtbot, tmp_path, monkeypatch):
    viewer, widget, frames, truth = _open_store(make_napari_viewer_proxy, qtbot, tmp_path, "flow")
    panel, path = widget._prompts, tmp_path / "s.zarr"
    errors = _errors(monkeypatch)
    assert not widget._prompts_box.isExpanded()  # collapsed until opened: the dock stays narrow
    before = np.asarray(SasviStore.read(path).labels).copy()
    t = 3
    viewer.dims.set_current_step(0, t)
    assert panel.start()
    for name in ("SASVi clicks", "SASVi box", "SASVi prompt"):
        assert name in viewer.layers
    clicks, box = viewer.layers["SASVi clicks"], viewer.layers["SASVi box"]
    assert clicks.ndim == 2 and viewer.layers.selection.active.name == "SASVi clicks"
    assert box.mode == "add_rectangle", (box.mode, box.editable)
    assert panel._object.native.isHidden()  # a class store: no track to choose
    cls, obj = _an_object(truth, t)
    panel._class.value = cls
    x, y = _inside(obj)

    # a click: a positive point, its mask on the preview layer, the latency recorded
    click(clicks, t, x, y)
    _settled(qtbot, panel)
    assert list(clicks.features["sign"]) == ["positive"] and panel.latencies
    expected = GrowSegmenter().segment(frames[t], ObjectPrompt(t, cls, cls, ((float(x), float(y)),), (1,))).mask
    shown = np.asarray(viewer.layers["SASVi prompt"].data)
    assert shown.shape == obj.shape and shown.any()
    np.testing.assert_array_equal(shown.astype(bool), expected)
    # a drag pans the view: no point
    from napari.utils._proxies import ReadOnlyWrapper
    from napari.utils.interactions import mouse_press_callbacks, mouse_release_callbacks

    drag = _Mouse((t, 5.0, 5.0))
    mouse_press_callbacks(clicks, ReadOnlyWrapper(drag, exceptions=("handled",)))
    drag.type, drag.pos = "mouse_release", (160.0, 120.0)
    mouse_release_callbacks(clicks, ReadOnlyWrapper(drag, exceptions=("handled",)))
    assert len(clicks.data) == 1
    # shift+click and right click: negative points (far from the object); then a box around it
    click(clicks, t, 1, 1, modifiers=("Shift",))
    click(clicks, t, 78, 62, button=2)
    ys, xs = np.nonzero(obj)
    box.add_rectangles(np.array([[ys.min() - 0.5, xs.min() - 0.5], [ys.max() + 0.5, xs.max() + 0.5]]))
    _settled(qtbot, panel)
    prompt = panel.prompt()
    assert prompt.labels == (1, 0, 0) and prompt.points[1] == (1.0, 1.0)
    assert prompt.box == (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
    expected = GrowSegmenter().segment(frames[t], prompt).mask
    np.testing.assert_array_equal(np.asarray(viewer.layers["SASVi prompt"].data).astype(bool), expected)
    assert len(panel.latencies) >= 2 and "score" in panel._info.value
    # a second box replaces the first (only the last counts)
    box.add_rectangles(np.array([[ys.min() - 0.5, xs.min() - 0.5], [ys.max() + 0.5, xs.max() + 0.5]]))
    assert len(box.data) == 1
    _settled(qtbot, panel)
    assert not errors

    # commit: the frame holds the class where the mask is; the edit records the prompt; propagated
    worker = panel.commit()
    assert worker is not None
    qtbot.waitUntil(lambda: panel._commit_worker is None, timeout=60_000)
    after = np.asarray(SasviStore.read(path).labels)
    summary = panel.last_summary
    assert summary.start == t and summary.written >= 1 and not summary.cancelled
    np.testing.assert_array_equal(after[t] == cls, expected)
    [rec] = read_edits(path)
    assert rec["kind"] == "correction" and rec["prompt"]["labels"] == [1, 0, 0]
    assert rec["prompt"]["box"] == list(prompt.box) and rec["prompt"]["segmenter"]["type"] == "grow"
    outside = [f for f in range(N) if not summary.start <= f <= summary.stop]
    np.testing.assert_array_equal(after[outside], before[outside])
    assert len(clicks.data) == 0 and len(box.data) == 0 and not viewer.layers["SASVi prompt"].data.any()
    assert "corrected" in [row[1] for row in widget._table.data]
    assert "committed" in panel._info.value

    # Undo edit of the corrections panel takes it back, byte for byte
    widget._corrections.undo()
    np.testing.assert_array_equal(np.asarray(SasviStore.read(path).labels), before)

    # bad input: shown, nothing written
    click(clicks, t, -3, 10)  # left of the image
    _settled(qtbot, panel)
    assert "outside frame" in panel._info.value and errors and "outside frame" in errors[-1]
    assert panel.commit() is None and "outside frame" in errors[-1]
    panel.clear()
    box.add_rectangles(np.array([[10.0, 5.0], [10.0, 40.0]]))  # no height
    _settled(qtbot, panel)
    assert "no area" in errors[-1]
    assert panel.commit() is None and "no area" in errors[-1]
    panel.clear()
    assert panel.commit() is None and "Nothing to commit" in errors[-1]
    assert [e["state"] for e in read_edits(path)] == ["undone"]
    np.testing.assert_array_equal(np.asarray(SasviStore.read(path).labels), before)

    # the clicks are for the frame shown: another frame clears them
    click(clicks, t, x, y)
    viewer.dims.set_current_step(0, t + 1)
    assert len(clicks.data) == 0 and panel.prompt() is None
    _settled(qtbot, panel)
    panel.stop()
    assert "SASVi clicks" not in viewer.layers and panel._keys == {}


def test_sam2_image_path_preview_and_commit(make_napari_viewer_proxy, qtbot, tmp_path, monkeypatch):
    viewer, widget, frames, truth = _open_store(make_napari_viewer_proxy, qtbot, tmp_path, "sam2", n=6)
    panel, path = widget._prompts, tmp_path / "s.zarr"
    errors = _errors(monkeypatch)
    before = np.asarray(SasviStore.read(path).labels).copy()
    t = 2
    viewer.dims.set_current_step(0, t)
    panel.start()
    _settled(qtbot, panel)  # the frame's features, fetched when prompting starts
    store = SasviStore.read(path)
    segmenter = panel.segmenter(store, widget.models, widget.run_config(), "auto")
    assert segmenter.kind == "sam2" and segmenter.has_features(t)
    cls, obj = _an_object(truth, t)
    panel._class.value = cls
    x, y = _inside(obj)
    clicks = viewer.layers["SASVi clicks"]
    click(clicks, t, x, y)
    _settled(qtbot, panel)
    ys, xs = np.nonzero(obj)
    viewer.layers["SASVi box"].add_rectangles(
        np.array([[ys.min() - 0.5, xs.min() - 0.5], [ys.max() + 0.5, xs.max() + 0.5]])
    )
    _settled(qtbot, panel)
    prompt = panel.prompt()
    pm = segmenter.segment(frames[t], prompt)
    assert pm.feature_seconds == 0.0  # kept from the prefetch: a click costs the decoder only
    np.testing.assert_array_equal(np.asarray(viewer.layers["SASVi prompt"].data).astype(bool), pm.mask)
    assert panel.last_mask is not None and len(panel.latencies) == 2
    assert not errors

    worker = panel.commit()
    assert worker is not None
    qtbot.waitUntil(lambda: panel._commit_worker is None, timeout=60_000)
    if pm.mask.any():
        after = np.asarray(SasviStore.read(path).labels)
        np.testing.assert_array_equal(after[t] == cls, pm.mask)
        [rec] = read_edits(path)
        assert rec["prompt"]["segmenter"]["type"] == "sam2-image" and panel.last_summary.start == t
        widget._corrections.undo()
    else:  # random weights may select nothing: the commit says so and writes nothing
        assert "selects no pixel" in errors[-1] and read_edits(path) == []
    np.testing.assert_array_equal(np.asarray(SasviStore.read(path).labels), before)


def _press(layer, key):
    """A key press on ``layer`` as napari dispatches it: the layer's own binding for ``key``."""
    from napari.utils.key_bindings import KeyBinding

    layer.keymap[KeyBinding.from_str(key)](layer)


def test_new_object_in_an_instance_store_with_the_keys(make_napari_viewer_proxy, qtbot, tmp_path, monkeypatch):
    from napari_sasvi._napari._form import REPLAY_FOLDER
    from napari_sasvi.core.synthetic_instances import write_instance_pngs

    viewer = make_napari_viewer_proxy()
    video = SyntheticVideo(n_frames=8, height=64, width=80, seed=1)
    frames, truth = video.arrays()
    viewer.add_image(frames, name="clip", rgb=True)
    folder = write_instance_pngs(video, tmp_path / "instances", noisy=False)
    _, widget = viewer.window.add_plugin_dock_widget("napari-sasvi", "SASVi segment video")
    widget._dataset.value = "synthetic"
    widget._sam2.value = "optical flow (DIS, no weights)"
    widget._overseer.value = REPLAY_FOLDER
    widget._overseer_path.value = folder
    widget._device.value = "cpu"
    widget._instances.value = True
    widget._out.value = path = tmp_path / "run.zarr"
    widget.run()
    qtbot.waitUntil(lambda: widget._worker is None, timeout=120_000)
    store = SasviStore.read(path)
    assert store.complete and store.tracks is not None
    before, table = np.asarray(store.tracks).copy(), store.track_table
    errors = _errors(monkeypatch)
    panel, t = widget._prompts, 2
    viewer.dims.set_current_step(0, t)
    panel.start()
    assert not panel._object.native.isHidden() and panel._object.choices[0] == 0  # "new object", then the tracks
    assert set(panel._object.choices[1:]) == set(table)
    k = max(table)
    panel._object.value = k  # an existing track: its class
    assert panel._class.value == table[k].class_id
    clicks, box = viewer.layers["SASVi clicks"], viewer.layers["SASVi box"]
    _press(clicks, "N")  # a new object
    assert panel._object.value == 0
    cls, obj = _an_object(truth, t)
    panel._class.value = cls
    ys, xs = np.nonzero(obj)
    box.add_rectangles(np.array([[ys.min() - 0.5, xs.min() - 0.5], [ys.max() + 0.5, xs.max() + 0.5]]))
    _settled(qtbot, panel)
    prompt = panel.prompt()
    assert prompt.new_track and prompt.object == k + 1 and prompt.class_id == cls
    preview = viewer.layers["SASVi prompt"]
    assert preview.data.any()
    np.testing.assert_allclose(preview.colormap.map(1)[..., :3].ravel(), np.array(SYNTHETIC.by_id(cls).color) / 255)
    _press(box, "Escape")
    assert panel.prompt() is None and not preview.data.any()
    box.add_rectangles(np.array([[ys.min() - 0.5, xs.min() - 0.5], [ys.max() + 0.5, xs.max() + 0.5]]))
    _settled(qtbot, panel)
    mask = np.asarray(preview.data).astype(bool)
    _press(clicks, "Enter")  # commits
    qtbot.waitUntil(lambda: panel.last_summary is not None and panel._commit_worker is None, timeout=60_000)
    now = SasviStore.read(path)
    np.testing.assert_array_equal(np.asarray(now.tracks[t]) == k + 1, mask)
    assert now.track_table[k + 1].class_id == cls and not errors
    assert k + 1 in panel._object.choices and panel._object.value == 0  # the next prompt: a new object again
    widget._corrections.undo()
    np.testing.assert_array_equal(np.asarray(SasviStore.read(path).tracks), before)
    assert k + 1 not in panel._object.choices  # the undone track left the list
    # the centroids are computed again in a worker: let it end before the viewer closes
    qtbot.waitUntil(lambda: getattr(widget._shown_tracks, "worker", None) is None, timeout=60_000)


def test_nothing_to_prompt_before_a_run(make_napari_viewer_proxy, monkeypatch):
    viewer = make_napari_viewer_proxy()
    viewer.add_image(SyntheticVideo(n_frames=3, height=32, width=40, seed=0).arrays()[0], name="clip", rgb=True)
    _, widget = viewer.window.add_plugin_dock_widget("napari-sasvi", "SASVi segment video")
    errors = _errors(monkeypatch)
    panel = widget._prompts
    assert panel.start() is False and "Run first" in errors[-1] and "SASVi clicks" not in viewer.layers
    assert panel.commit() is None and "Run first" in errors[-1]


def test_a_prompt_and_re_propagate_wait_for_each_other(make_napari_viewer_proxy, qtbot, tmp_path, monkeypatch):
    """While one edit goes (Cancel is live), the other panel refuses to start one: nothing written."""
    viewer, widget, frames, truth = _open_store(make_napari_viewer_proxy, qtbot, tmp_path, "flow", n=6)
    errors, path = _errors(monkeypatch), tmp_path / "s.zarr"
    panel, t = widget._prompts, 2
    viewer.dims.set_current_step(0, t)
    assert panel.start()
    cls, obj = _an_object(truth, t)
    panel._class.value = cls
    x, y = _inside(obj)
    click(viewer.layers["SASVi clicks"], t, x, y)
    _settled(qtbot, panel)
    widget.start_work()  # as Re-propagate (or a run) does when its worker starts
    assert widget.busy
    assert panel.commit() is None and "is going" in errors[-1]
    widget._corrections.pin_at(4)
    assert widget._corrections.repropagate() is None and "is going" in errors[-1]
    widget.work_finished()
    assert not widget.busy and read_edits(path) == []
    worker = panel.commit()  # now it may
    assert worker is not None
    qtbot.waitUntil(lambda: panel._commit_worker is None, timeout=60_000)
    assert [e["kind"] for e in read_edits(path)] == ["correction"]


def test_a_prompt_on_a_painted_frame_waits_for_re_propagate(make_napari_viewer_proxy, qtbot, tmp_path, monkeypatch):
    viewer, widget, frames, truth = _open_store(make_napari_viewer_proxy, qtbot, tmp_path, "flow", n=6)
    errors, path = _errors(monkeypatch), tmp_path / "s.zarr"
    panel, t = widget._prompts, 2
    layer = widget.labels_layer
    painted = np.asarray(layer.data[t]).copy()
    painted[:5, :5] = 1
    layer.data[t] = painted  # paint, not re-propagated
    viewer.dims.set_current_step(0, t)
    assert panel.start()
    cls, obj = _an_object(truth, t)
    panel._class.value = cls
    click(viewer.layers["SASVi clicks"], t, *_inside(obj))
    _settled(qtbot, panel)
    assert panel.commit() is None and "Re-propagate first" in errors[-1]
    assert read_edits(path) == [] and t in layer.data.changed()  # the paint is kept


def test_enter_during_a_preview_commits_after_it_and_a_new_run_stops_prompting(
    make_napari_viewer_proxy, qtbot, tmp_path, monkeypatch
):
    viewer, widget, frames, truth = _open_store(make_napari_viewer_proxy, qtbot, tmp_path, "flow", n=6)
    errors, path = _errors(monkeypatch), tmp_path / "s.zarr"
    panel, t = widget._prompts, 2
    viewer.dims.set_current_step(0, t)
    assert panel.start()
    _settled(qtbot, panel)
    cls, obj = _an_object(truth, t)
    panel._class.value = cls
    click(viewer.layers["SASVi clicks"], t, *_inside(obj))
    assert panel._lane is not None  # the preview is being computed (its end is a Qt signal)
    assert panel.commit() is None and "once the preview" in str(panel._info.value)
    qtbot.waitUntil(lambda: len(read_edits(path)) == 1 and panel._commit_worker is None, timeout=60_000)
    assert read_edits(path)[0]["prompt"]["class"] == cls and not errors
    # the status said what a commit clears of the class elsewhere on the frame (one mask a class)
    click(viewer.layers["SASVi clicks"], t, 1, 1)  # a click far from the object, on frame t
    _settled(qtbot, panel)
    gone = int(((np.asarray(widget.labels_layer.data[t]) == cls) & ~panel.last_mask.mask).sum())
    assert gone > 0 and f"clears {gone} px of" in str(panel._info.value)
    # a new Run opens another store: prompting on the old one stops at the next action
    widget._out.value = tmp_path / "other.zarr"
    widget.run()
    qtbot.waitUntil(lambda: widget._worker is None, timeout=120_000)
    assert panel.commit() is None and "another store" in errors[-1] and not panel.prompting
    assert len(read_edits(path)) == 1 and read_edits(tmp_path / "other.zarr") == []
