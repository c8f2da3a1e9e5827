from __future__ import annotations

import copy
import os

import numpy as np
import pytest

# One torch (OpenMP) thread per test process, unless the environment says otherwise. On this
# project's 2-core machines the models under test are small (SAM2 at 64 px: thousands of tiny ops a
# frame), and two OpenMP threads spin while they wait: alone they win little (a 30-frame SAM2 run:
# 7.0 s with 2 threads, 7.4 s with 1), beside any other busy process they lose badly (33 s against
# 8.4 s: the spinning thread takes the core the other needs). Big convolutions (Mask R-CNN at 299 px)
# are about 1.8x slower with one thread; the whole suite, alone, 4 % slower. A GUI test's render
# thread gets the other core. Set before torch loads (nothing imports it before this file).
os.environ.setdefault("OMP_NUM_THREADS", "1")

#: SAM2's input size in tests (a multiple of 32; the tiny model, random weights)
SAM2_SIZE = 64
#: the transformers trackers in tests: random weights, small inputs (SAM2/EdgeTAM: a multiple of 64;
#: SAM3: of 28) and small configs (every module the families' code runs, fewer and narrower layers:
#: 7-8 M parameters instead of 14-39 M)
HF_SIZES = {"sam2": 64, "edgetam": 64, "sam3": 112}
_SMALL_MEMORY = {
    "memory_attention_num_layers": 1,
    "memory_attention_feed_forward_hidden_size": 256,
    "memory_fuser_num_layers": 1,
}
_SMALL_HIERA = {
    "backbone_channel_list": [256, 128, 64, 32],
    "backbone_config": {
        "model_type": "sam2_hiera_det_model",
        "hidden_size": 32,
        "embed_dim_per_stage": [32, 64, 128, 256],
        "num_attention_heads_per_stage": [1, 1, 2, 2],
        "blocks_per_stage": [1, 1, 2, 1],
        "global_attention_blocks": [3],  # not a stage's first block (transformers cannot pool those)
    },
}
HF_CONFIG = {
    "sam2": {**_SMALL_MEMORY, "vision_config": _SMALL_HIERA},
    # EdgeTAM's perceiver defaults assume 256 px (a 16 x 16 grid of 2D latents): 4 x 4 at 64 px
    "edgetam": {
        **_SMALL_MEMORY,
        "vision_config": _SMALL_HIERA,
        "perceiver_resampler_num_latents_2d": 16,
        "perceiver_resampler_num_latents": 64,
        "memory_attention_rope_k_sizes": [4, 4],
    },
    "sam3": _SMALL_MEMORY,  # its ViT is already shrunk for small inputs (trackers/hf.py)
}


def _checker_frames(n: int, h: int = 48, w: int = 64) -> np.ndarray:
    """Frames whose content identifies their index: a moving bar plus the index in channel 0."""
    frames = np.zeros((n, h, w, 3), np.uint8)
    for t in range(n):
        frames[t, ..., 0] = (t * 7) % 256
        frames[t, :, (t * 3) % w, 1] = 255
        frames[t, (t * 2) % h, :, 2] = 255
    return frames


@pytest.fixture
def small_frames() -> np.ndarray:
    return _checker_frames(12)


@pytest.fixture
def frame_folder(tmp_path, small_frames):
    from PIL import Image

    folder = tmp_path / "video01"
    folder.mkdir()
    for t, f in enumerate(small_frames):
        Image.fromarray(f).save(folder / f"frame_{t:04d}.png")
    return folder


# -- models built once per session -------------------------------------------------------------------
# A tracker keeps its per-run state in what bind() makes anew (SAM2: the inference state and the
# image cache; transformers: the session and pending prompts), so tests share one instance each.


@pytest.fixture(scope="session")
def sam2_tracker():
    """``sam2_tracker(legacy=False)``: SAM2.1 tiny, random weights (seeded), SAM2_SIZE input, CPU."""
    cache = {}

    def get(legacy: bool = False):
        if legacy not in cache:
            from napari_sasvi.core.trackers.sam2 import SAM2Tracker

            cache[legacy] = SAM2Tracker(config="sam2.1_hiera_t", device="cpu", image_size=SAM2_SIZE, legacy=legacy)
        return cache[legacy]

    return get


@pytest.fixture(scope="session")
def hf_tracker(tmp_path_factory):
    """``hf_tracker(family)``: (tracker, folder) for a transformers tracker with random weights
    (seed 0, HF_SIZES and HF_CONFIG) and the folder it was saved to with ``save_pretrained``."""
    cache = {}

    def get(family: str):
        if family not in cache:
            from napari_sasvi.core.trackers.hf import HFVideoTracker, save_pretrained

            config = copy.deepcopy(HF_CONFIG[family])
            tracker = HFVideoTracker.random(family, image_size=HF_SIZES[family], **config)
            folder = save_pretrained(tracker, tmp_path_factory.mktemp(f"hf_{family}"))
            cache[family] = (tracker, folder)
        return cache[family]

    return get


@pytest.fixture(scope="session")
def overseer_model():
    """``overseer_model(dataset, arch)``: the published architecture, random weights (seed 0).
    Shared: a test that changes a model's weights sets all it relies on itself."""
    cache = {}

    def get(dataset: str, arch: str):
        if (dataset, arch) not in cache:
            import torch

            from napari_sasvi.core.overseers.models import REFERENCE_SPECS, build_model

            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                cache[(dataset, arch)] = build_model(REFERENCE_SPECS[(dataset, arch)])
        return cache[(dataset, arch)]

    return get


@pytest.fixture(scope="session")
def maskrcnn_checkpoint(tmp_path_factory):
    """A small Mask R-CNN checkpoint (ResNet18-FPN, 8 labels, random weights, seed 0) in the
    layout ``--overseer-checkpoint`` reads."""
    import torch

    from napari_sasvi.core.overseers.models import ArchSpec, build_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model(ArchSpec("maskrcnn", 8, 0, backbone="resnet18_fpn", dim_reduced=32))
    path = tmp_path_factory.mktemp("maskrcnn") / "best_val_maskrcnn.pth"
    torch.save(model.state_dict(), path)
    return path


def write_video_dirs(root, names, n=6, seed=0, size=(64, 80)):
    """Frame folders and noisy overseer mask folders of synthetic videos: root/videos/<name>, root/masks/<name>."""
    from napari_sasvi.core.synthetic import write_synthetic_videos

    return write_synthetic_videos(root, names, n_frames=n, size=size, seed=seed)


def drive(gen):
    """Run a generator (iter_sasvi, iter_from_anchors) to its end: (its return value, the items it yielded)."""
    from napari_sasvi.core.progress import drain

    items = []
    return drain(gen, items.append), items


def check_a_broken_frame_read_ahead(tmp_path, tracker, workers_left, *, n: int, bad: int, seed: int) -> None:
    """A tracker reading ahead over a folder whose frame ``bad`` is truncated: the run stopped just
    before it raises nothing; needed, the error names the file and the finished frames are kept;
    fixed, the run resumes to the end. ``workers_left()`` lists reading-ahead threads still alive."""
    from PIL import Image

    from napari_sasvi.core.engine import run_sasvi
    from napari_sasvi.core.errors import SasviError
    from napari_sasvi.core.overseers.replay import ReplayOverseer
    from napari_sasvi.core.policy import PolicyParams
    from napari_sasvi.core.store.sasvi_store import SasviStore
    from napari_sasvi.core.synthetic import SyntheticVideo

    video = SyntheticVideo(n_frames=n, height=64, width=80, seed=seed)
    folder = tmp_path / "v"
    folder.mkdir()
    for t in range(n):
        Image.fromarray(video.frame(t)).save(folder / f"{t:04d}.bmp")
    name = f"{bad:04d}.bmp"
    good = (folder / name).read_bytes()
    (folder / name).write_bytes(good[: len(good) // 3])  # header intact: found only when decoded
    noisy = np.stack([video.noisy_labels(t) for t in range(n)])
    out = tmp_path / "o.zarr"

    def go(**kw):
        ov = ReplayOverseer(noisy, video.classes)
        # consensus off: its frames are written a few frames late, so stopping with `bad` frames on
        # disk would need frames past `bad`; the read-ahead is what is tested here
        return run_sasvi(str(folder), ov, tracker, str(out), video.classes, PolicyParams(consensus=False), **kw)

    go(stop_after=bad)  # frame `bad` was read ahead while the one before it was worked on, and failed
    assert SasviStore.read(out).frames_done == bad and not workers_left()
    with pytest.raises(SasviError, match=name):
        go()  # needed now: the same error as without reading ahead, finished frames kept
    assert SasviStore.read(out).frames_done == bad and not workers_left()
    (folder / name).write_bytes(good)
    go()
    assert SasviStore.read(out).complete


@pytest.fixture(scope="session")
def engine_clip():
    """(frames, ground truth, noisy overseer labels) of a 16-frame 64 x 48 synthetic clip (seed 5):
    the engine's tests run the flow tracker over it."""
    from napari_sasvi.core.synthetic import SyntheticVideo

    video = SyntheticVideo(n_frames=16, height=48, width=64, seed=5)
    frames, labels = video.arrays()
    _, noisy = video.arrays(noisy=True)
    return frames, labels, noisy


def flow_store(path, clip, method: str = "dis"):
    """A finished default-mode store of ``clip`` (:func:`engine_clip`) made with the flow tracker."""
    from napari_sasvi.core.datasets import SYNTHETIC
    from napari_sasvi.core.engine import run_sasvi
    from napari_sasvi.core.overseers.replay import ReplayOverseer
    from napari_sasvi.core.policy import PolicyParams
    from napari_sasvi.core.store.sasvi_store import SasviStore
    from napari_sasvi.core.trackers.flow import FlowTracker

    frames, _, noisy = clip
    run_sasvi(
        frames, ReplayOverseer(noisy, SYNTHETIC), FlowTracker(method=method), str(path), SYNTHETIC, PolicyParams()
    )
    return SasviStore.read(path)
