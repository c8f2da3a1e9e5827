"""How tests/data/stores_4ed02d2.tar.gz was made: run with the code of commit 4ed02d2 (before the one
engine), e.g. `git worktree add /tmp/old 4ed02d2 && cd /tmp/old && PYTHONPATH=src python THIS`; then
`tar czf stores_4ed02d2.tar.gz frames masks complete.zarr partial.zarr` in /tmp/oldstores."""

import os
import pathlib

from napari_sasvi.core.segment import segment_video
from PIL import Image

from napari_sasvi.core.config import RunConfig
from napari_sasvi.core.synthetic import SyntheticVideo

root = pathlib.Path("/tmp/oldstores")
v = SyntheticVideo(n_frames=12, height=32, width=40, seed=4)
frames, noisy = v.arrays(noisy=True)
(root / "frames").mkdir()
(root / "masks").mkdir()
for t in range(12):
    Image.fromarray(frames[t]).save(root / "frames" / f"{t:04d}.png")
    Image.fromarray(noisy[t]).save(root / "masks" / f"{t:04d}.png")
cfg = RunConfig(dataset="synthetic", mode="reference")
os.chdir(root)  # relative paths: the stores record them, and the test runs in its own folder
segment_video("frames", "complete.zarr", cfg, masks="masks")
n = {"k": 0}
segment_video(
    "frames", "partial.zarr", cfg, masks="masks", cancel=lambda: n.__setitem__("k", n["k"] + 1) or n["k"] >= 5
)
print("made")
