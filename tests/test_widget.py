"""The "SASVi segment video" widget in a real napari viewer (Xvfb), with the real SAM2."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sasvi.core.errors import SasviError
from napari_sasvi.core.store.sasvi_store import SasviStore
from napari_sasvi.core.synthetic import SyntheticVideo

pytestmark = pytest.mark.gui


def _viewer_with_clip(make_napari_viewer_proxy, n_frames=12):
    viewer = make_napari_viewer_proxy()
    video = SyntheticVideo(n_frames=n_frames, height=64, width=80, seed=1)
    frames, noisy = video.arrays(noisy=True)
    viewer.add_image(frames, name="clip", rgb=True)
    viewer.add_labels(noisy, name="frame-wise")
    _, widget = viewer.window.add_plugin_dock_widget("napari-sasvi", "SASVi segment video")
    widget._dataset.value = "synthetic"
    widget._sam2.value = "config + checkpoint"
    widget._sam2_config.value = "sam2.1_hiera_t"
    widget._random.value = True
    widget._image_size.value = 64
    widget._device.value = "cpu"
    return viewer, widget, frames, noisy


@pytest.fixture
def viewer_with_clip(make_napari_viewer_proxy):
    return _viewer_with_clip(make_napari_viewer_proxy)


def _wait(qtbot, widget, timeout=180_000):
    qtbot.waitUntil(lambda: widget._worker is None, timeout=timeout)


def test_run_fills_a_zarr_labels_layer(viewer_with_clip, qtbot, tmp_path):
    viewer, widget, frames, noisy = viewer_with_clip
    assert widget._frames.value.name == "clip" and widget._overseer_layer.value.name == "frame-wise"
    widget._out.value = tmp_path / "run.zarr"
    worker = widget.run()
    assert worker is not None
    # Run returns at once: models, masks and the store are the worker's business
    assert widget._status.value.startswith("starting")
    qtbot.waitUntil(lambda: "run SASVi" in viewer.layers, timeout=120_000)  # the layer appears while it runs
    _wait(qtbot, widget)
    store = SasviStore.read(tmp_path / "run.zarr")
    assert store.complete
    layer = viewer.layers["run SASVi"]
    assert layer.data.shape == noisy.shape
    assert type(layer.data.base).__module__.startswith("zarr")  # the store's array, paintable (PaintOverlay)
    assert (np.asarray(layer.data) != store.classes.no_label).any()
    assert "run overseer" in viewer.layers
    np.testing.assert_array_equal(np.asarray(viewer.layers["run overseer"].data), noisy)
    assert widget._table.data[0][:2] == [0, "restart"]
    assert 0 in widget._strip.frames()
    assert widget._status.value.startswith(f"done: {len(frames)}/{len(frames)} frames")
    # a click on a row moves the time slider there
    rows = [r[0] for r in widget._table.data]
    widget._row_clicked(len(rows) - 1, 0)
    assert viewer.dims.current_step[0] == rows[-1]
    shot = viewer.screenshot(canvas_only=False, flash=False)
    assert shot.std() > 0


@pytest.mark.slow  # three runs
def test_cancel_keeps_frames_and_run_resumes(viewer_with_clip, qtbot, tmp_path):
    viewer, widget, frames, noisy = viewer_with_clip
    widget._out.value = tmp_path / "a.zarr"
    worker = widget.run()
    from napari_sasvi.core.engine import FrameDone

    worker.yielded.connect(lambda item: widget.cancel() if isinstance(item, FrameDone) and item.done >= 4 else None)
    _wait(qtbot, widget)
    store = SasviStore.read(tmp_path / "a.zarr")
    done = store.frames_done
    assert 4 <= done < len(frames)
    assert widget._status.value.startswith("cancelled")
    widget.run()
    _wait(qtbot, widget)
    assert SasviStore.read(tmp_path / "a.zarr").complete
    # the same run without interruption gives the same labels
    widget._out.value = tmp_path / "b.zarr"
    widget.run()
    _wait(qtbot, widget)
    a = np.asarray(SasviStore.read(tmp_path / "a.zarr").labels)
    b = np.asarray(SasviStore.read(tmp_path / "b.zarr").labels)
    np.testing.assert_array_equal(a, b)


def test_errors_are_notifications_and_lose_nothing(viewer_with_clip, qtbot, tmp_path):
    viewer, widget, frames, noisy = viewer_with_clip
    widget._out.value = tmp_path / "r.zarr"
    widget.run()
    _wait(qtbot, widget)
    before = (tmp_path / "r.zarr" / "sasvi_progress.json").read_bytes()
    viewer.layers["frame-wise"].data = noisy[::-1].copy()  # other overseer masks, same store
    widget.run()
    _wait(qtbot, widget)
    assert "error" in widget._status.value and "other inputs" in widget._status.value
    assert (tmp_path / "r.zarr" / "sasvi_progress.json").read_bytes() == before
    widget._sam2.value = "config + checkpoint"
    widget._random.value = False
    widget._sam2_ckpt.value = tmp_path / "missing.pt"
    widget._out.value = tmp_path / "s.zarr"
    widget.run()
    _wait(qtbot, widget)
    assert "does not exist" in widget._status.value and not (tmp_path / "s.zarr").exists()
    viewer.layers.remove("clip")
    assert widget.run() is None and "No frames layer" in widget._status.value


@pytest.mark.slow  # Mask R-CNN at 299 px
def test_trained_overseer_from_a_checkpoint(make_napari_viewer_proxy, qtbot, tmp_path, maskrcnn_checkpoint):
    """Pick Mask R-CNN and a checkpoint: the model predicts every frame, SAM2 propagates, the
    overseer's own labels appear beside; a checkpoint of the wrong model is a notification."""
    # 2 frames: Mask R-CNN at its 299 px input takes over a second a frame on a CPU
    viewer, widget, frames, noisy = _viewer_with_clip(make_napari_viewer_proxy, n_frames=2)
    ckpt = maskrcnn_checkpoint
    widget._overseer.value = "Mask R-CNN"
    assert not widget._overseer_ckpt.native.isHidden() and widget._overseer_layer.native.isHidden()
    assert (widget._score_thr.value, widget._mask_thr.value) == (0.05, 0.5)  # the reference's
    widget._overseer.value = "Mask2Former"
    assert (widget._score_thr.value, widget._mask_thr.value) == (0.0, 0.0)
    widget._overseer.value = "DETR"
    widget._overseer_ckpt.value = ckpt
    widget._out.value = tmp_path / "wrong.zarr"
    widget.run()
    _wait(qtbot, widget)
    assert "no DETR classifier" in widget._status.value
    assert not (tmp_path / "wrong.zarr").exists()
    widget._overseer.value = "Mask R-CNN"
    widget._score_thr.value = 0.01
    widget._out.value = tmp_path / "mrcnn.zarr"
    assert widget.run() is not None
    _wait(qtbot, widget)
    store = SasviStore.read(tmp_path / "mrcnn.zarr")
    assert store.complete and store.signature["overseer"]["type"] == "maskrcnn"
    predicted = np.asarray(viewer.layers["mrcnn overseer"].data)
    assert predicted.shape == noisy.shape and (predicted != 255).any()
    assert not np.array_equal(predicted, noisy)  # the model's own predictions, not the replayed layer


def test_flow_tracker_choice(viewer_with_clip, qtbot, tmp_path):
    viewer, widget, frames, noisy = viewer_with_clip
    widget._sam2.value = "optical flow (DIS, no weights)"
    assert widget._image_size.native.isHidden() and widget._sam2_config.native.isHidden()
    widget._out.value = tmp_path / "flow.zarr"
    assert widget.run() is not None
    _wait(qtbot, widget)
    store = SasviStore.read(tmp_path / "flow.zarr")
    assert store.complete and store.signature["tracker"] == {
        **store.signature["tracker"],
        "type": "flow",
        "method": "dis",
    }
    labels = np.asarray(viewer.layers["flow SASVi"].data)
    assert (labels[0] == noisy[0]).mean() > 0.95  # the prompt frame is the overseer's labels
    # the layer a new user paints on is selected, not the hidden overseer's added after it
    assert viewer.layers.selection.active.name == "flow SASVi" and not viewer.layers["flow overseer"].visible


def test_the_dataset_comes_from_the_input_or_the_user(make_napari_viewer_proxy, tmp_path):
    """No silent "synthetic": a labels layer napari-sasvi made names its classes (a preset by name,
    another table written beside the store); an existing store's table wins (a resume)."""
    from napari_sasvi._napari.sample import labels_layer_kwargs
    from napari_sasvi.core.datasets import SYNTHETIC, ClassTable

    viewer = make_napari_viewer_proxy()
    video = SyntheticVideo(n_frames=3, height=32, width=48)
    frames, labels = video.arrays()
    viewer.add_image(frames, name="clip", rgb=True)
    viewer.add_labels(labels, **labels_layer_kwargs(SYNTHETIC, "gt"))
    _, widget = viewer.window.add_plugin_dock_widget("napari-sasvi", "SASVi segment video")
    widget._overseer_layer.value = viewer.layers["gt"]
    widget._out.value = tmp_path / "a.zarr"
    assert widget._dataset.value == "choose..." and widget.run_config().dataset == "synthetic"
    mine = ClassTable.from_dict({**SYNTHETIC.to_dict(), "name": "my tools"})
    viewer.add_labels(labels, **labels_layer_kwargs(mine, "mine"))
    widget._overseer_layer.value = viewer.layers["mine"]
    written = widget.run_config().dataset
    assert written == str(tmp_path / "a_classes.json")
    assert ClassTable.from_dict(__import__("json").loads((tmp_path / "a_classes.json").read_text())).name == "my tools"
    viewer.layers["mine"].metadata = {}
    with pytest.raises(SasviError, match="Choose the dataset"):
        widget.run_config()
    widget._dataset.value = "cadis"  # the user's choice is taken as it is
    assert widget.run_config().dataset == "cadis"


def test_transformers_tracker_choice(viewer_with_clip, qtbot, tmp_path, hf_tracker):
    from napari_sasvi._napari._form import HF_CHOICE

    viewer, widget, frames, noisy = viewer_with_clip
    _, saved = hf_tracker("sam2")  # random weights, saved with save_pretrained
    widget._sam2.value = HF_CHOICE
    assert not widget._hf_model.native.isHidden() and widget._image_size.native.isHidden()
    widget._hf_model.value = str(tmp_path / "nowhere")
    widget._out.value = tmp_path / "hf.zarr"
    widget.run()
    _wait(qtbot, widget)
    assert "save_pretrained" in widget._status.value
    widget._hf_model.value = str(saved)
    assert widget.run() is not None
    _wait(qtbot, widget)
    store = SasviStore.read(tmp_path / "hf.zarr")
    assert store.complete and store.signature["tracker"]["model_class"] == "Sam2VideoModel"


def test_writers(make_napari_viewer_proxy, tmp_path):
    from PIL import Image

    from napari_sasvi._napari.sample import labels_layer_kwargs
    from napari_sasvi.core.datasets import SYNTHETIC

    viewer = make_napari_viewer_proxy()
    video = SyntheticVideo(n_frames=3, height=32, width=48)
    layer = viewer.add_labels(np.stack([video.labels(t) for t in range(3)]), **labels_layer_kwargs(SYNTHETIC, "gt"))
    viewer.layers.save(str(tmp_path / "gt.zarr"), selected=False, plugin="napari-sasvi")
    store = SasviStore.read(tmp_path / "gt.zarr")
    np.testing.assert_array_equal(np.asarray(store.labels), layer.data)
    assert store.classes.name == "synthetic"
    from napari_sasvi._napari.writer import write_labels_pngs

    write_labels_pngs(str(tmp_path / "pngs"), layer.data, {"metadata": layer.metadata})
    im = Image.open(tmp_path / "pngs" / "0000000001_rgb_mask.png")
    assert im.mode == "P" and np.array_equal(np.asarray(im), layer.data[1])
    # COCO-video JSON through napari's own save (the .json writer), RLE decoded by pycocotools
    import json

    from pycocotools import mask as mask_utils

    viewer.layers.save(str(tmp_path / "gt.json"), selected=False, plugin="napari-sasvi")
    doc = json.loads((tmp_path / "gt.json").read_text())
    assert doc["videos"][0]["length"] == 3
    for a in doc["annotations"]:
        for t, seg in enumerate(a["segmentations"]):
            want = layer.data[t] == a["category_id"]
            assert np.array_equal(mask_utils.decode(seg).astype(bool), want) if seg else not want.any()
    assert {a["category_id"] for a in doc["annotations"]} == {int(c) for c in np.unique(layer.data) if c != 255}


@pytest.mark.slow  # software rendering shares the CPU with the run
def test_run_on_lazy_sample_layers_while_scrubbing(make_napari_viewer_proxy, qtbot, tmp_path):
    """dask-backed layers (the reader's and the samples') while napari slices them on the main thread."""
    from qtpy.QtCore import QTimer

    from napari_sasvi._napari.sample import synthetic_sample

    viewer = make_napari_viewer_proxy()
    for data, kwargs, kind in synthetic_sample(n_frames=8, noisy=True):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    _, widget = viewer.window.add_plugin_dock_widget("napari-sasvi", "SASVi segment video")
    widget._frames.value = viewer.layers["Synthetic surgical video"]
    widget._overseer_layer.value = viewer.layers["Noisy overseer"]
    widget._sam2.value = "config + checkpoint"
    widget._random.value = True
    widget._image_size.value = 64
    widget._device.value = "cpu"
    widget._out.value = tmp_path / "lazy.zarr"
    step = [0]

    def scrub():
        step[0] = (step[0] + 1) % 8
        viewer.dims.set_current_step(0, step[0])

    timer = QTimer()
    timer.timeout.connect(scrub)
    # a fast scrub (25 steps/s, ~200 slices during the run); at 15 ms Mesa's software rendering takes
    # the CPU from the run, and the test only gets slower (22 s against 9 s), not more searching
    timer.start(40)
    widget.run()
    _wait(qtbot, widget)
    timer.stop()
    assert SasviStore.read(tmp_path / "lazy.zarr").complete


def test_offline_defaults_and_closing(make_napari_viewer_proxy, tmp_path, frame_folder):
    """A new user's defaults run offline (the flow tracker) and write next to the input; a closed
    dock stops listening to the viewer."""
    viewer = make_napari_viewer_proxy()
    viewer.open(str(frame_folder), plugin="napari-sasvi")
    viewer.add_labels(np.zeros((12, 48, 64), np.uint8), name="masks")
    dock, widget = viewer.window.add_plugin_dock_widget("napari-sasvi", "SASVi segment video")
    # no silent dataset: a painted layer does not say its classes, so the form asks for them
    assert widget._dataset.value == "choose..."
    with pytest.raises(SasviError, match="Choose the dataset"):
        widget.run_config()
    widget._dataset.value = "synthetic"
    assert widget.run_config().tracker.kind == "flow"
    assert widget._out.value == frame_folder.parent / "video01_sasvi.zarr"
    widget._out.value = tmp_path / "mine.zarr"  # the user's choice sticks
    viewer.layers.selection.clear()
    widget._suggest_out()
    assert widget._out.value == tmp_path / "mine.zarr"

    def ours():
        return [cb for cb in viewer.layers.events.inserted.callbacks if "_refresh_choices" in str(cb)]

    assert ours()
    viewer.window.remove_dock_widget(dock)
    assert not widget._connected and not ours()


def test_no_overseer_propagates_a_painted_frame(make_napari_viewer_proxy, qtbot, tmp_path):
    from napari_sasvi._napari._form import ANCHOR_LAYER, NO_ANCHORS, NO_OVERSEER

    viewer, widget, frames, noisy = _viewer_with_clip(make_napari_viewer_proxy, n_frames=8)
    truth = SyntheticVideo(n_frames=8, height=64, width=80, seed=1).arrays()[1]
    painted = np.zeros_like(truth)
    painted[5] = truth[5]  # the user painted frame 5 only
    viewer.add_labels(painted, name="my annotations")
    widget._sam2.value = next(c for c in widget._sam2.choices if str(c).startswith("optical flow (DIS"))
    widget._overseer.value = NO_OVERSEER
    widget._anchor_src.value = NO_ANCHORS
    widget._out.value = tmp_path / "a.zarr"
    assert widget.run() is None and "annotated frames" in widget._status.value  # none chosen: told so
    widget._anchor_src.value = ANCHOR_LAYER
    assert not widget._anchor_layer.native.isHidden() and widget._anchor_path.native.isHidden()
    widget._anchor_layer.value = viewer.layers["my annotations"]
    assert widget.run() is not None
    _wait(qtbot, widget)
    store = SasviStore.read(tmp_path / "a.zarr")
    assert store.complete and store.events[0]["kind"] == "anchor"
    out = np.asarray(store.labels)
    np.testing.assert_array_equal(out[5], truth[5])
    assert (out[0] != store.classes.no_label).any()  # propagated backward to frame 0
    assert widget._table.data[0][:2] == [5, "anchor"]
