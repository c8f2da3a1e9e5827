"""CUDA paths, run where a CUDA GPU is there (benchmarks/gpu_check.sh runs `pytest -m cuda`);
skipped elsewhere. The same engine on the GPU must make the CPU's decisions."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_device_resolves_to_cuda():
    from napari_sasvi.core.devices import resolve_device

    assert resolve_device("auto").type == "cuda" and resolve_device("cuda").type == "cuda"


def test_sam2_on_cuda_follows_the_cpu_run(tmp_path):
    from napari_sasvi.core.datasets import SYNTHETIC
    from napari_sasvi.core.engine import run_sasvi
    from napari_sasvi.core.overseers.replay import ReplayOverseer
    from napari_sasvi.core.policy import PolicyParams
    from napari_sasvi.core.store.sasvi_store import SasviStore
    from napari_sasvi.core.synthetic import SyntheticVideo
    from napari_sasvi.core.trackers.sam2 import SAM2Tracker

    video = SyntheticVideo(n_frames=20, height=96, width=128, seed=3)
    frames, noisy = video.arrays(noisy=True)
    out, weights = {}, {}
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        tracker = SAM2Tracker(config="sam2.1_hiera_t", device=device, image_size=256, legacy=False)
        if weights:  # the same random weights on both devices
            tracker.predictor.load_state_dict(weights)
        else:
            weights.update({k: v.detach().clone() for k, v in tracker.predictor.state_dict().items()})
        summary = run_sasvi(frames, ReplayOverseer(noisy, SYNTHETIC), tracker, str(tmp_path / f"{device}.zarr"),
                            SYNTHETIC, PolicyParams())  # fmt: skip
        out[device] = (summary, np.asarray(SasviStore.read(tmp_path / f"{device}.zarr").labels))
    (cs, cl), (gs, gl) = out["cpu"], out["cuda"]
    assert [e["frame"] for e in cs.restarts] == [e["frame"] for e in gs.restarts]
    assert (cl == gl).mean() > 0.9  # bf16 autocast on CUDA: within SAM2's numerical noise


def test_trained_overseer_on_cuda_matches_cpu():
    from napari_sasvi.core.datasets import CHOLECSEG8K
    from napari_sasvi.core.overseers.models import REFERENCE_SPECS, build_model
    from napari_sasvi.core.overseers.trained import TrainedOverseer

    spec = REFERENCE_SPECS[("cholecseg8k", "maskrcnn")]
    torch.manual_seed(0)
    model = build_model(spec).eval()
    frames = [np.random.default_rng(t).integers(0, 255, (240, 320, 3), dtype=np.uint8) for t in range(2)]
    results = {}
    for device in ("cpu", "cuda"):
        ov = TrainedOverseer(model, spec, CHOLECSEG8K, device=device)
        results[device] = ov.predict(frames, [0, 1])
    for a, b in zip(results["cpu"], results["cuda"], strict=True):
        assert set(a) == set(b)
        for c in a:
            assert (a[c].mask == b[c].mask).mean() > 0.99
