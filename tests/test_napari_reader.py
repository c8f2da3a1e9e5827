from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui


def test_open_folder_through_reader(make_napari_viewer, frame_folder, small_frames):
    import dask.array as da

    viewer = make_napari_viewer()
    layers = viewer.open(str(frame_folder), plugin="napari-sasvi")
    assert len(layers) == 1
    layer = layers[0]
    assert layer.name == "video01"
    assert layer.rgb
    assert isinstance(layer.data, da.Array)
    assert layer.data.shape == small_frames.shape
    viewer.dims.set_current_step(0, 6)
    np.testing.assert_array_equal(np.asarray(layer.data[6]), small_frames[6])
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert shot.ndim == 3 and shot.std() > 0


def test_open_video_through_reader(make_napari_viewer, tmp_path, small_frames):
    from napari_sasvi.core.video import write_video

    path = write_video(tmp_path / "case_07.mp4", np.repeat(np.repeat(small_frames, 2, 1), 2, 2))
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(path), plugin="napari-sasvi")
    assert layer.name == "case_07"
    assert layer.data.shape[0] == len(small_frames)


def test_reader_declines_other_paths(tmp_path):
    from napari_sasvi._napari.reader import get_reader

    (tmp_path / "a.txt").write_text("x")
    assert get_reader(str(tmp_path)) is None
    assert get_reader(str(tmp_path / "a.txt")) is None


def test_sample_data_layers(make_napari_viewer):
    viewer = make_napari_viewer()
    layers = viewer.open_sample("napari-sasvi", "synthetic_noisy")
    names = [layer.name for layer in layers]
    assert names == ["Synthetic surgical video", "Ground truth", "Noisy overseer"]
    frames, gt, noisy = layers
    assert frames.data.shape == (120, 256, 320, 3)
    assert gt.data.shape == noisy.data.shape == (120, 256, 320)
    assert gt.colormap.map(np.array([5]))[0][1] == pytest.approx(1.0)  # grasper is green
