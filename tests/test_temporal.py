"""T and F against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sasvi.core.temporal import assd, pool_results, temporal_consistency


def _textured_translation(n=4, h=120, w=160, shift=5, side=10):
    """A textured scene and a small square label moving +shift px in x per frame."""
    import cv2

    rng = np.random.default_rng(0)
    big = cv2.resize(
        rng.integers(0, 255, (h // 4, (w + n * shift) // 4 + 1), dtype=np.uint8).astype(np.float32),
        (w + n * shift + 4, h),
        interpolation=cv2.INTER_CUBIC,
    )
    frames = np.zeros((n, h, w, 3), np.uint8)
    labels = np.zeros((n, h, w), np.uint8)  # 0 = background
    for t in range(n):
        x0 = n * shift - t * shift  # the camera pans: the scene moves +shift px per frame
        frames[t] = np.clip(big[:, x0 : x0 + w], 0, 255).astype(np.uint8)[..., None]
        labels[t, 50 : 50 + side, 60 + t * shift : 60 + t * shift + side] = 1
    return frames, labels


def test_identical_frames_are_perfectly_consistent():
    lab = np.zeros((3, 40, 50), np.uint8)
    lab[:, 10:20, 10:30] = 1
    r = temporal_consistency(lab, ignore={0})
    assert r.t_iou[1] == 1.0 and r.t_assd[1] == 0.0
    assert r.macro["t_iou"] == 1.0 and r.labels_scored == [1]
    assert np.isnan(r.macro["f_iou"])  # no frames: no F


def test_t_iou_of_a_shifted_square():
    lab = np.zeros((2, 40, 50), np.uint8)
    lab[0, 10:20, 10:20] = 1
    lab[1, 10:20, 12:22] = 1
    r = temporal_consistency(lab, ignore={0})
    assert r.t_iou[1] == pytest.approx(80 / 120)
    assert 0.5 < r.t_assd[1] < 2.0  # left/right edges moved 2 px, top/bottom partly 0 px
    assert assd(lab[0] == 1, lab[0] == 1) == 0.0


def test_translation_default_f_near_one_reference_near_zero():
    frames, labels = _textured_translation()
    d = temporal_consistency(labels, frames, convention="default", ignore={0})
    assert d.f_iou[1] > 0.8
    r = temporal_consistency(labels, frames, convention="reference")
    assert r.f_iou[1] < 0.1  # D1: masks move against the motion, vectors not rescaled


def test_label_handling_background_and_no_label():
    lab = np.full((3, 30, 30), 255, np.uint8)
    lab[:, :15] = 0  # background
    lab[0, 20:25, 20:25] = 2
    lab[1, 20:25, 21:26] = 2
    lab[2, 20:25, 22:27] = 2
    d = temporal_consistency(lab, convention="default", ignore={0})
    assert d.labels_scored == [2] and 255 not in d.t_iou
    r = temporal_consistency(lab, convention="reference")
    # the reference averages background and the unlabelled value with the real class (D6)
    assert set(r.labels_scored) == {0, 2, 255}
    assert r.macro["t_iou"] > d.macro["t_iou"]


def test_empty_frames_and_size_errors():
    empty = np.full((3, 20, 20), 255, np.uint8)
    r = temporal_consistency(empty, ignore={0})
    assert r.labels_scored == [] and np.isnan(r.macro["t_iou"])
    with pytest.raises(ValueError, match="same size"):
        temporal_consistency(np.zeros((3, 20, 20), np.uint8), np.zeros((3, 10, 10, 3), np.uint8))
    with pytest.raises(ValueError, match="one to one"):
        temporal_consistency(np.zeros((3, 20, 20), np.uint8), np.zeros((4, 20, 20, 3), np.uint8))


def test_long_stack_is_streamed():
    class Counting:
        """A (T, H, W) stack that counts reads and refuses to be loaded whole."""

        def __init__(self, n):
            self.shape, self.ndim, self.reads = (n, 24, 24), 3, 0

        def __getitem__(self, t):
            assert isinstance(t, int), "read one frame at a time"
            self.reads += 1
            a = np.zeros((24, 24), np.uint8)
            a[5:10, (t % 10) : (t % 10) + 5] = 1
            return a

        def __array__(self, *a, **k):
            raise AssertionError("the whole stack was loaded")

    stack = Counting(2000)
    r = temporal_consistency(stack, ignore={0})
    assert stack.reads == 2000 and len(r.series["t_iou"]) == 1999


def test_pooling_over_videos():
    a = np.zeros((2, 20, 20), np.uint8)
    a[:, 5:10, 5:10] = 1
    b = a.copy()
    b[1, 5:10, 6:11] = 1
    b[1, 5:10, 5] = 0
    ra, rb = temporal_consistency(a, ignore={0}), temporal_consistency(b, ignore={0})
    pooled = pool_results([ra, rb], ignore={0})
    assert pooled.t_iou[1] == pytest.approx((ra.t_iou[1] + rb.t_iou[1]) / 2)


RAFT_CHECK = """
import sys
import numpy as np, torch
from torchvision.models.optical_flow import raft_small
from napari_sasvi.core.errors import CheckpointError
from napari_sasvi.core.temporal import raft_flow
torch.manual_seed(0)
torch.save(raft_small(weights=None).state_dict(), sys.argv[1] + "/raft.pth")
flow = raft_flow(sys.argv[1] + "/raft.pth")
a = np.random.default_rng(0).integers(0, 255, (128, 136, 3), dtype=np.uint8)
f = flow(a, np.roll(a, 3, axis=1))
assert f.shape == (128, 136, 2) and np.isfinite(f).all()
open(sys.argv[1] + "/bad.pth", "wb").write(b"junk")
try:
    raft_flow(sys.argv[1] + "/bad.pth")
except CheckpointError as e:
    assert "RAFT" in str(e)
else:
    raise SystemExit("junk weights were accepted")
print("ok")
"""


def test_raft_loads_local_weights_and_runs(tmp_path):
    # In a fresh process: torchvision.models imports triton, whose bundled LLVM crashes a process
    # in which Mesa's LLVM is already loaded (any napari GUI test before this one).
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", RAFT_CHECK, str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_evaluate_temporal_cli(tmp_path, capsys):
    import json

    from PIL import Image

    from napari_sasvi.cli import main

    frames, labels = _textured_translation(n=4)
    for name in ("a", "b"):
        (tmp_path / "pred" / name).mkdir(parents=True)
        (tmp_path / "frames" / name).mkdir(parents=True)
        for t in range(4):
            Image.fromarray(labels[t]).save(tmp_path / "pred" / name / f"{t:04d}.png")
            Image.fromarray(frames[t]).save(tmp_path / "frames" / name / f"{t:04d}.png")
    out = tmp_path / "t.json"
    rc = main(
        [
            "evaluate",
            "temporal",
            str(tmp_path / "pred"),
            "--frames",
            str(tmp_path / "frames"),
            "--classes",
            str(_table(tmp_path)),
            "--json",
            str(out),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    assert "macro" in text and "labels scored: [1]" in text
    report = json.loads(out.read_text())
    assert set(report["videos"]) == {"a", "b"}
    assert report["pooled"]["per_label"]["f_iou"]["1"] > 0.8
    assert len(report["videos"]["a"]["series"]["t_iou"]) == 3
    ref = tmp_path / "r.json"
    assert (
        main(
            [
                "evaluate",
                "temporal",
                str(tmp_path / "pred" / "a"),
                "--frames",
                str(tmp_path / "frames" / "a"),
                "--convention",
                "reference",
                "--json",
                str(ref),
            ]
        )
        == 0
    )
    assert json.loads(ref.read_text())["pooled"]["per_label"]["f_iou"]["1"] < 0.1


def _table(tmp_path):
    p = tmp_path / "classes.yaml"
    p.write_text(
        "ignore_ids: [0]\nclasses:\n  - {id: 0, name: bg, color: [0, 0, 0]}\n  - {id: 1, name: tool, color: [0, 255, 0]}\n"
    )
    return p
