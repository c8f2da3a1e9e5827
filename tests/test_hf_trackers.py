"""The transformers video trackers (SAM2/SAM2.1, EdgeTAM, SAM3 tracker): built from their configs
with random weights (64-112 px inputs so the CPU copes; tests/conftest.py), run through the policy on the synthetic
sample, saved in Hugging Face format and loaded back through the public path (also the CLI)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sasvi.cli import main
from napari_sasvi.core.config import TrackerConfig
from napari_sasvi.core.engine import run_sasvi
from napari_sasvi.core.engine.batch import build_tracker
from napari_sasvi.core.errors import CheckpointError, InputError
from napari_sasvi.core.inputs.frames import open_frames
from napari_sasvi.core.overseers.replay import ReplayOverseer
from napari_sasvi.core.policy import PolicyParams
from napari_sasvi.core.store.sasvi_store import SasviStore
from napari_sasvi.core.synthetic import SyntheticVideo
from napari_sasvi.core.trackers.hf import HFVideoTracker


@pytest.fixture(scope="module", params=["edgetam", "sam2", "sam3"])
def family(request):
    return request.param


@pytest.fixture
def saved(hf_tracker, family):
    """The family's tracker (built once per session, shared) and the folder it was saved to."""
    return hf_tracker(family)


def _clip(n=5):
    video = SyntheticVideo(n_frames=n, height=64, width=80, seed=2)
    frames, noisy = video.arrays(noisy=True)
    return video, frames, noisy


def test_runs_the_synthetic_sample_through_the_policy(tmp_path, saved, family):
    tracker, _ = saved
    video, frames, noisy = _clip(3)
    for mode in ("default", "reference"):
        out = tmp_path / f"{mode}.zarr"
        summary = run_sasvi(
            frames, ReplayOverseer(noisy, video.classes), tracker, str(out), video.classes, PolicyParams(mode=mode)
        )
        store = SasviStore.read(out)
        assert store.complete and summary.frames_written == len(frames)
        desc = store.signature["tracker"]
        assert desc["type"] == "hf" and desc["model_class"].lower().startswith(family.replace("sam3", "sam3tracker"))
        labels = np.asarray(store.labels[:])
        assert labels.shape == noisy.shape
        assert set(np.unique(labels)) <= set(video.classes.ids) | {video.classes.no_label}
    assert tracker.memory_frames() <= 2 * (tracker.keep + 1) * 8 + tracker.keep + 1  # bounded, not per frame


def test_saved_folder_loads_back_and_predicts_the_same(saved, family):
    tracker, folder = saved
    loaded = build_tracker(TrackerConfig(kind="hf", model=str(folder)), device="cpu")
    assert type(loaded.model) is type(tracker.model)
    assert loaded.processor.target_size == tracker.processor.target_size
    video, frames, _ = _clip(3)
    outs = []
    for tr in (tracker, loaded):
        tr.bind(open_frames(frames))
        lab = video.labels(0)
        tr.add_mask(0, 1, lab == 2)
        tr.add_points(0, 5, np.array([[40.0, 30.0], [45.0, 32.0]]), np.array([1, 0]))
        outs.append(dict(tr.propagate(0)))
    for t in range(3):
        assert outs[0][t].keys() == {1, 5}
        for o in (1, 5):
            np.testing.assert_allclose(outs[0][t][o], outs[1][t][o], atol=1e-4)


def test_cli_with_a_saved_folder(tmp_path, saved, family, capsys):
    from PIL import Image

    _, folder = saved
    video, frames, noisy = _clip(4)
    (tmp_path / "v").mkdir()
    (tmp_path / "m").mkdir()
    for t in range(4):
        Image.fromarray(frames[t]).save(tmp_path / "v" / f"{t:04d}.png")
        Image.fromarray(noisy[t]).save(tmp_path / "m" / f"{t:04d}.png")
    argv = ["segment", str(tmp_path / "v"), "--overseer-masks", str(tmp_path / "m"), "--dataset", "synthetic"]
    rc = main(
        [*argv, "--out", str(tmp_path / "o.zarr"), "--tracker", "hf", "--tracker-model", str(folder), "--device", "cpu"]
    )
    assert rc == 0, capsys.readouterr().err
    assert SasviStore.read(tmp_path / "o.zarr").signature["tracker"]["model"] == str(folder)


def test_clear_errors(tmp_path):
    with pytest.raises(InputError, match="needs tracker.model"):
        build_tracker(TrackerConfig(kind="hf"))
    with pytest.raises(CheckpointError, match="save_pretrained"):
        HFVideoTracker.load(str(tmp_path))  # an empty folder
    (tmp_path / "config.json").write_text('{"model_type": "detr"}')
    with pytest.raises(CheckpointError, match="'detr' model"):
        HFVideoTracker.load(str(tmp_path))
    with pytest.raises(InputError, match="Unknown tracker family"):
        HFVideoTracker.random("sam9")
