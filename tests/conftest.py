from __future__ import annotations

import numpy as np
import pytest


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
