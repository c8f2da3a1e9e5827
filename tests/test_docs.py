"""The runnable example of docs/python.md runs as written."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "python.md"


def test_python_api_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    example = next(b for b in blocks if "SyntheticVideo" in b)
    scope = {"__name__": "docs_example"}
    exec(compile(example, str(DOC), "exec"), scope)
    assert "frames;" in capsys.readouterr().out
    corrections = next(b for b in blocks if "run_edit" in b)  # continues the example
    exec(compile(corrections, str(DOC), "exec"), scope)
    assert "recomputed" in capsys.readouterr().out
    exports = next(b for b in blocks if "from napari_sasvi import export" in b)  # continues it too
    exec(compile(exports, str(DOC), "exec"), scope)
    assert "Dataset007_SASVi {'clip': 10}" in capsys.readouterr().out


def test_config_round_trip_and_names(tmp_path):
    import pytest

    from napari_sasvi import RunConfig
    from napari_sasvi.core.errors import InputError

    cfg = RunConfig(dataset="cadis", mode="reference").replace(
        **{"tracker.kind": "sam2", "tracker.model": "sam2.1_hiera_tiny", "policy.buffer": 30}
    )
    for name in ("run.yaml", "run.json"):
        assert RunConfig.load(cfg.save(tmp_path / name)) == cfg
    assert cfg.policy_params().buffer == 30 and cfg.policy_params().mode == "reference"
    with pytest.raises(InputError, match="tracker.modle"):
        cfg.replace(**{"tracker.modle": "x"})
    with pytest.raises(InputError, match="tracker.kind 'sam3'"):
        RunConfig().replace(**{"tracker.kind": "sam3"})
    with pytest.raises(InputError, match="policy"):
        RunConfig().replace(**{"policy.buffer": 1})


def test_cli_runs_from_a_saved_config(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from napari_sasvi.cli import main
    from napari_sasvi.core.synthetic import SyntheticVideo

    video = SyntheticVideo(n_frames=6, height=48, width=64, seed=1)
    frames, noisy = video.arrays(noisy=True)
    for sub, stack in (("f", frames), ("m", noisy)):
        (tmp_path / sub).mkdir()
        for t, a in enumerate(stack):
            Image.fromarray(a).save(tmp_path / sub / f"{t:04d}.png")
    argv = ["segment", str(tmp_path / "f"), "--out", str(tmp_path / "a.zarr"), "--dataset", "synthetic",
            "--tracker", "flow", "--overseer-masks", str(tmp_path / "m"), "--save-config", str(tmp_path / "r.yaml")]  # fmt: skip
    assert main(argv) == 0
    assert (
        main(["segment", str(tmp_path / "f"), "--out", str(tmp_path / "b.zarr"), "--config", str(tmp_path / "r.yaml")])
        == 0
    )
    import zarr

    a = zarr.open_group(str(tmp_path / "a.zarr"), mode="r")["labels"][:]
    b = zarr.open_group(str(tmp_path / "b.zarr"), mode="r")["labels"][:]
    np.testing.assert_array_equal(a, b)
