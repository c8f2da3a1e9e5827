from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui


def test_open_folder_through_reader(make_napari_viewer_proxy, frame_folder, small_frames):
    import dask.array as da

    viewer = make_napari_viewer_proxy()
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


def test_open_video_through_reader(make_napari_viewer_proxy, tmp_path, small_frames):
    from napari_sasvi.core.inputs.video import write_video

    path = write_video(tmp_path / "case_07.mp4", np.repeat(np.repeat(small_frames, 2, 1), 2, 2))
    viewer = make_napari_viewer_proxy()
    (layer,) = viewer.open(str(path), plugin="napari-sasvi")
    assert layer.name == "case_07"
    assert layer.data.shape[0] == len(small_frames)


def test_reader_declines_other_paths(tmp_path):
    from napari_sasvi._napari.reader import get_reader

    (tmp_path / "a.txt").write_text("x")
    assert get_reader(str(tmp_path)) is None
    assert get_reader(str(tmp_path / "a.txt")) is None


def test_sample_data_layers(make_napari_viewer_proxy):
    viewer = make_napari_viewer_proxy()
    layers = viewer.open_sample("napari-sasvi", "synthetic_noisy")
    names = [layer.name for layer in layers]
    assert names == ["Synthetic surgical video", "Ground truth", "Noisy overseer"]
    frames, gt, noisy = layers
    assert frames.data.shape == (120, 256, 320, 3)
    assert gt.data.shape == noisy.data.shape == (120, 256, 320)
    assert gt.colormap.map(np.array([5]))[0][1] == pytest.approx(1.0)  # grasper is green


def _store_of(tmp_path, frames_source, lab):
    from napari_sasvi.core.datasets import SYNTHETIC
    from napari_sasvi.core.engine import run_sasvi
    from napari_sasvi.core.overseers.replay import ReplayOverseer
    from napari_sasvi.core.policy import PolicyParams
    from napari_sasvi.core.trackers.flow import FlowTracker

    out = tmp_path / "case.zarr"
    run_sasvi(frames_source, ReplayOverseer(lab, SYNTHETIC), FlowTracker(), str(out), SYNTHETIC, PolicyParams())
    return out


def test_open_a_store_gives_frames_labels_and_overseer(
    make_napari_viewer_proxy, tmp_path, frame_folder, small_frames, monkeypatch
):
    """File > Open / drag-and-drop of a store: its two labels layers in class colours and names,
    and the frames from where the store says they are."""
    lab = np.zeros(small_frames.shape[:3], np.uint8)
    lab[:, 10:30, 10:30] = 5
    out = _store_of(tmp_path, frame_folder, lab)
    viewer = make_napari_viewer_proxy()
    # drag-and-drop asks napari with no plugin: ours is offered (napari's own zarr reader too, so
    # napari shows its reader chooser, with "remember my choice")
    from napari.errors import MultipleReaderError

    with pytest.raises(MultipleReaderError) as e:
        viewer.open(str(out), plugin=None)
    assert "napari-sasvi" in e.value.available_plugins
    layers = viewer.open(str(out), plugin="napari-sasvi")  # what the chooser then does
    # a plugin cannot make napari prefer it; the user's saved preference does (docs/usage.md)
    from napari.settings import get_settings

    plugins = get_settings().plugins
    prefs = {**plugins.extension2reader, "*_sasvi.zarr/": "napari-sasvi"}  # a folder: napari matches "path/"
    monkeypatch.setattr(plugins, "extension2reader", prefs)
    named = out.rename(out.with_name("case_sasvi.zarr"))
    opened = viewer.open(str(named), plugin=None)
    assert [la.name for la in opened][1:] == ["case_sasvi SASVi", "case_sasvi overseer"]
    named.rename(out)
    for la in opened:
        viewer.layers.remove(la)
    assert [la.name for la in layers] == ["video01", "case SASVi", "case overseer"]
    frames, sasvi, overseer = layers
    assert frames.rgb and frames.data.shape == small_frames.shape
    assert type(sasvi.data).__module__.startswith("zarr") and sasvi.visible and not overseer.visible
    np.testing.assert_array_equal(np.asarray(overseer.data), lab)
    assert sasvi.colormap.map(np.array([5]))[0][1] == pytest.approx(1.0)  # grasper green
    assert "Grasper" in list(sasvi.features["class"])
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert shot.std() > 0


def test_open_a_store_whose_frames_are_gone(make_napari_viewer_proxy, tmp_path, small_frames):
    import shutil

    folder = tmp_path / "moved"
    folder.mkdir()
    from PIL import Image

    for t, f in enumerate(small_frames):
        Image.fromarray(f).save(folder / f"{t:04d}.png")
    lab = np.zeros(small_frames.shape[:3], np.uint8)
    lab[:, 5:20, 5:20] = 2
    out = _store_of(tmp_path, folder, lab)
    shutil.rmtree(folder)
    viewer = make_napari_viewer_proxy()
    layers = viewer.open(str(out), plugin="napari-sasvi")
    assert [la.name for la in layers] == ["case SASVi", "case overseer"]
