from __future__ import annotations

import pickle

import numpy as np
import pytest

from napari_sasvi.core.errors import CorruptFrameError, InputError
from napari_sasvi.core.inputs.frames import open_frames
from napari_sasvi.core.inputs.video import VideoSource, write_video


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(1)
    base = np.kron(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8), np.ones((8, 8, 1), np.uint8))
    return np.stack([np.roll(base, 2 * t, axis=1) for t in range(40)])


@pytest.mark.parametrize(
    ("ext", "codec"), [(".mp4", "libx264"), (".avi", "mpeg4"), (".mkv", "libx264"), (".mov", "mpeg4")]
)
def test_random_access_equals_sequential(tmp_path, frames, ext, codec):
    path = write_video(tmp_path / f"clip{ext}", frames, codec=codec, gop=8)
    seq_src = VideoSource(path)
    assert seq_src.decoded == 0  # opening demuxes, it does not decode
    assert seq_src.shape == (len(frames), 48, 64, 3)
    sequential = [seq_src.read(t) for t in range(len(frames))]
    assert seq_src.decoded == len(frames)  # reading in order decodes each frame once
    # the decoded video is close to what was encoded, frame for frame (lossy codec)
    err = [np.abs(sequential[t].astype(int) - frames[t].astype(int)).mean() for t in range(len(frames))]
    assert max(err) < 25
    rnd = VideoSource(path, cache_size=2)
    order = np.random.default_rng(0).permutation(len(frames))
    for t in order:
        np.testing.assert_array_equal(rnd.read(int(t)), sequential[t])
    # a random read decodes at most one GOP, not the video up to t
    assert rnd.decoded <= len(frames) * 8


def test_video_as_dask_layer_data(tmp_path, frames):
    path = write_video(tmp_path / "v.mp4", frames, gop=10)
    stack = open_frames(path)
    assert stack.name == "v"
    assert stack.data.shape == (len(frames), 48, 64, 3)
    assert stack.source.decoded == 0
    np.testing.assert_array_equal(stack.data[25].compute(), stack.frame(25))
    clone = pickle.loads(pickle.dumps(stack.source))
    np.testing.assert_array_equal(clone.read(33), stack.frame(33))


def test_truncated_video(tmp_path, frames):
    path = write_video(tmp_path / "v.mp4", frames, gop=10)
    data = path.read_bytes()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises((CorruptFrameError, InputError), match="bad.mp4"):
        stack = open_frames(bad)
        for t in range(len(stack)):
            stack.frame(t)


def test_not_a_video(tmp_path):
    bad = tmp_path / "junk.mp4"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(CorruptFrameError, match="junk.mp4"):
        open_frames(bad)
