"""The "SASVi train overseer" widget in a real napari viewer (Xvfb): paint, train, segment with it."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sasvi.core.store.sasvi_store import SasviStore
from napari_sasvi.core.synthetic import SyntheticVideo

pytestmark = pytest.mark.gui


def _wait(qtbot, widget, timeout=180_000):
    qtbot.waitUntil(lambda: widget._worker is None, timeout=timeout)


@pytest.fixture
def painted(make_napari_viewer_proxy):
    viewer = make_napari_viewer_proxy()
    video = SyntheticVideo(n_frames=10, height=64, width=80, seed=1)
    frames, truth = video.arrays()
    viewer.add_image(frames, name="clip", rgb=True)
    _, widget = viewer.window.add_plugin_dock_widget("napari-sasvi", "SASVi train overseer")
    widget._dataset.value = "synthetic"
    layer = widget.new_annotation_layer()
    assert layer.data.shape == truth.shape and not layer.data.any()  # nothing painted yet
    assert widget._unpainted.native.isHidden()  # our annotation layers say what "unpainted" is
    data = layer.data.copy()
    for t in (0, 4, 8):  # "paint" three frames: value = class id + 1 (class 0 is a class too)
        data[t] = truth[t] + 1
    layer.data = data
    return viewer, widget, frames, truth


def test_pixel_training_plots_and_hands_the_model_to_the_segment_widget(painted, qtbot, tmp_path):
    viewer, widget, frames, truth = painted
    _, seg = viewer.window.add_plugin_dock_widget("napari-sasvi", "SASVi segment video")
    widget._out.value = tmp_path / "model"
    worker = widget.train()
    assert worker is not None
    _wait(qtbot, widget)
    r = widget.last_result
    assert r is not None and r.checkpoint == tmp_path / "model" / "overseer.skops" and r.checkpoint.is_file()
    assert widget.losses and widget.validations  # 3 painted frames: 2 train, 1 validates
    assert widget.validations[-1][1] > 0.4
    assert widget._ax_val.lines and widget._ax.lines  # the plot shows both
    assert widget._use.enabled and widget._status.value.startswith("done:")
    # the segment widget already docked has the new overseer selected
    assert seg._overseer.value == "Pixel classifier" and seg._overseer_ckpt.value == r.checkpoint
    assert seg._dataset.value == "synthetic" and seg._published.native.isHidden()
    seg._frames.value = viewer.layers["clip"]
    seg._sam2.value = "optical flow (DIS, no weights)"
    seg._out.value = tmp_path / "s.zarr"
    seg.run()
    qtbot.waitUntil(lambda: seg._worker is None, timeout=120_000)
    store = SasviStore.read(tmp_path / "s.zarr")
    assert store.complete and store.signature["overseer"]["type"] == "pixel"
    agree = (np.asarray(store.labels[:]) == truth).mean()
    assert agree > 0.5, agree


def test_bad_paint_is_a_clear_error_and_nothing_is_written(painted, qtbot, tmp_path):
    viewer, widget, frames, truth = painted
    viewer.layers["clip annotations"].data = np.zeros_like(truth)  # nothing painted
    widget._out.value = tmp_path / "model"
    widget.train()
    _wait(qtbot, widget)
    assert widget._status.value.startswith("error:") and "no annotated frames" in widget._status.value
    assert not (tmp_path / "model").exists()
    assert widget.last_result is None


@pytest.mark.slow
def test_mask_rcnn_training_cancel_keeps_the_checkpoint(painted, qtbot, tmp_path):
    viewer, widget, frames, truth = painted
    widget._kind.value = "Mask R-CNN"
    assert not widget._steps.native.isHidden() and widget._trees.native.isHidden()
    widget._steps.value = 40
    widget._device.value = "cpu"
    widget._out.value = tmp_path / "mr"
    worker = widget.train()
    from napari_sasvi.core.training.events import TrainStep

    worker.yielded.connect(lambda ev: widget.cancel() if isinstance(ev, TrainStep) and ev.step >= 1 else None)
    _wait(qtbot, widget, timeout=300_000)
    r = widget.last_result
    assert r is not None and r.cancelled and 1 <= r.steps < 40
    assert (tmp_path / "mr" / "overseer.pth").is_file() and widget._status.value.startswith("cancelled at")
