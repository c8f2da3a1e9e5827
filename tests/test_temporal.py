"""T and F against hand-computed cases, and the reference convention against a literal
re-implementation of the published scripts (tests/temporal_reference_impl.py)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sasvi.core.metrics.temporal import assd, pool_results, temporal_consistency


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
from napari_sasvi.core.metrics.temporal import raft_flow
torch.manual_seed(0)
torch.save(raft_small(weights=None).state_dict(), sys.argv[1] + "/raft.pth")
flow = raft_flow(sys.argv[1] + "/raft.pth")
a = np.random.default_rng(0).integers(0, 255, (128, 136, 3), dtype=np.uint8)
f = flow(a, np.roll(a, 3, axis=1))
assert f.shape == (128, 136, 2) and np.isfinite(f).all()
# the reference's frames: torchvision's ToTensor, Resize((512, 384)), Normalize(0.5, 0.5) of a PIL image
import torchvision.transforms as T
from PIL import Image
from napari_sasvi.core.metrics.temporal import reference_flow_frame
sys.path.insert(0, sys.argv[2])
from temporal_reference_impl import _transform
tv = T.Compose([T.ToTensor(), T.Resize((512, 384)), T.Normalize(0.5, 0.5)])
fa, fb = a[:91, :130], np.roll(a, 3, axis=1)[:91, :130]
ta, tb = tv(Image.fromarray(fa)), tv(Image.fromarray(fb))
assert torch.equal((torch.from_numpy(reference_flow_frame(fa)).permute(2, 0, 1) - 0.5) / 0.5, ta)
assert torch.equal(_transform(fa), ta)
# RAFT given those frames sees exactly the script's input
model = raft_small(weights=None)
model.load_state_dict(torch.load(sys.argv[1] + "/raft.pth", weights_only=True))
crop = (slice(None), slice(0, 128), slice(0, 128))  # a corner and 2 updates keep RAFT quick on a CPU
with torch.no_grad():
    want = model.eval()(ta[crop][None], tb[crop][None], num_flow_updates=2)[-1][0].permute(1, 2, 0).numpy()
got = raft_flow(sys.argv[1] + "/raft.pth", iterations=2)(reference_flow_frame(fa)[:128, :128], reference_flow_frame(fb)[:128, :128])
assert np.allclose(got, want, rtol=0, atol=1e-5), abs(got - want).max()
open(sys.argv[1] + "/bad.pth", "wb").write(b"junk")
try:
    raft_flow(sys.argv[1] + "/bad.pth")
except CheckpointError as e:
    assert "RAFT" in str(e)
else:
    raise SystemExit("junk weights were accepted")
print("ok")
"""


@pytest.mark.slow  # 5-7 s, nearly all of it a fresh process importing torch and torchvision
def test_raft_loads_local_weights_and_runs(tmp_path):
    # In a fresh process: torchvision.models imports triton, whose bundled LLVM crashes a process
    # in which Mesa's LLVM is already loaded (any napari GUI test before this one).
    import subprocess
    import sys
    from pathlib import Path

    here = str(Path(__file__).parent)
    out = subprocess.run([sys.executable, "-c", RAFT_CHECK, str(tmp_path), here], capture_output=True, text=True)
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
                "--classes",
                str(_table(tmp_path)),
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


# -- the reference convention against the published procedure -----------------------------------


def _moving_scene(rng, n, h, w, tiny_ids, keep_rows=None, keep_cols=None):
    """(n, h, w) uint8 labels: background 0, a moving block (1), a block touching the border (255)
    for the first frames, a label appearing in one frame only (7), a label filling a whole frame
    (9, last two frames: no contour), and 1-3 px labels (``tiny_ids``) flickering in and out; with
    ``keep_rows``/``keep_cols`` half of them sit on pixels the 299 x 299 resize keeps, half not."""
    lab = np.zeros((n, h, w), np.uint8)
    bh, bw = max(2, h // 4), max(2, w // 5)
    for t in range(n - 2):
        y, x = h // 5 + t * max(1, h // 40), w // 6 + t * max(1, w // 30)
        lab[t, y : y + bh, x : x + bw] = 1
        if t < 3:
            lab[t, : h // 3, w - w // 6 - t :] = 255
        if t == 2:
            lab[t, h - h // 4 : h - 2, 2 : 2 + w // 8] = 7
        for i, c in enumerate(tiny_ids):
            if rng.random() < 0.3:
                continue  # vanishes in this frame
            size = 1 + (i % 3)
            if keep_rows is not None and i % 2 == 0:
                r, q = rng.choice(keep_rows[keep_rows < h - size]), rng.choice(keep_cols[keep_cols < w - size])
            else:
                r, q = rng.integers(0, h - size), rng.integers(0, w - size)
            lab[t, r : r + (1 if i % 4 == 1 else size), q : q + size] = c
    lab[n - 2 :] = 9
    return lab


def _generated_videos():
    from napari_sasvi.core.metrics.temporal import nearest_indices

    rng = np.random.default_rng(11)
    small = _moving_scene(rng, 7, 37, 53, tiny_ids=[2, 3, 4])  # upscaled: tiny labels survive
    rows, cols = nearest_indices(480, 299), nearest_indices(854, 299)
    big = _moving_scene(rng, 5, 480, 854, tiny_ids=list(range(20, 36)), keep_rows=rows, keep_cols=cols)
    odd = _moving_scene(rng, 5, 65, 130, tiny_ids=[5, 6])  # sizes where float32 floor != exact floor
    return [small, big, odd]


def _assert_same(ours: dict, theirs: dict):
    assert sorted(ours) == sorted(theirs)
    for k, v in theirs.items():
        assert ours[k] == pytest.approx(v, abs=1e-9, rel=0), k


def test_reference_t_equals_the_published_procedure():
    from temporal_reference_impl import published_t

    videos = _generated_videos()
    results = []
    for v in videos:
        r = temporal_consistency(v, convention="reference", ignore={0})
        pub = published_t([v])
        _assert_same(r.t_iou, pub["t_iou"])
        _assert_same(r.t_assd, pub["t_assd"])
        assert r.macro["t_iou"] == pytest.approx(pub["macro_t_iou"], abs=1e-9)
        assert r.macro["t_assd"] == pytest.approx(pub["macro_t_assd"], abs=1e-9)
        results.append(r)
    # the cases the stacks are made of did occur
    big = results[1]
    assert 9 in big.t_iou and 9 not in big.t_assd  # fills the frame: no contour, IoU still counted
    assert 0.0 in big.raw["t_iou"][7] and 0.0 in big.raw["t_iou"][1]  # appears / vanishes: IoU 0
    tiny = set(range(20, 36))
    survived = tiny & set(big.t_iou)
    assert survived and survived != tiny  # some 1-3 px labels vanish in the resize, some survive
    pooled = pool_results(results)
    pub = published_t(videos)
    _assert_same(pooled.t_iou, pub["t_iou"])
    _assert_same(pooled.t_assd, pub["t_assd"])
    assert pooled.macro["t_iou"] == pytest.approx(pub["macro_t_iou"], abs=1e-9)
    assert pooled.macro["t_assd"] == pytest.approx(pub["macro_t_assd"], abs=1e-9)


class _SyntheticFlow:
    """Pre-made smooth (512, 384) flow fields, one per call, for our FlowFn and for the published
    procedure's RAFT call; records what each side was given."""

    def __init__(self, n, seed=0):
        import cv2

        rng = np.random.default_rng(seed)
        self.fields = []
        for i in range(n):
            coarse = rng.normal(0, 25, (6, 5, 2)).astype(np.float32)
            f = cv2.resize(coarse, (384, 512), interpolation=cv2.INTER_CUBIC)
            f[100:160] = (7.0, -3.0) if i % 2 else (-400.0, 600.0)  # whole pixels; out of the image
            self.fields.append(np.ascontiguousarray(f, dtype=np.float32))
        self.ours, self.theirs = [], []

    def fn(self, a, b):
        self.ours.append((a, b))
        return self.fields[len(self.ours) - 1]

    def model(self, img1, img2):
        import torch

        self.theirs.append((img1, img2))
        return torch.from_numpy(self.fields[len(self.theirs) - 1]).permute(2, 0, 1)


def test_reference_f_equals_the_published_procedure():
    import torch

    from temporal_reference_impl import published_f

    rng = np.random.default_rng(5)
    videos = _generated_videos()
    frame_videos = [rng.integers(0, 256, (*v.shape, 3), dtype=np.uint8) for v in videos]
    flow = _SyntheticFlow(sum(len(v) - 1 for v in videos))
    results = [
        temporal_consistency(v, fr, convention="reference", flow=flow.fn)
        for v, fr in zip(videos, frame_videos, strict=True)
    ]
    pub = published_f(videos, frame_videos, flow.model)
    pooled = pool_results(results)
    _assert_same(pooled.f_iou, pub["f_iou"])
    _assert_same(pooled.f_dice, pub["f_dice"])
    assert pooled.macro["f_iou"] == pytest.approx(pub["macro_f_iou"], abs=1e-9)
    assert pooled.macro["f_dice"] == pytest.approx(pub["macro_f_dice"], abs=1e-9)
    # the flow saw the same frames: portrait 512 x 384, [0, 1]; Normalize(0.5, 0.5) gives the script's
    assert len(flow.ours) == len(flow.theirs)
    for (a, b), (img1, img2) in zip(flow.ours, flow.theirs, strict=True):
        assert a.shape == (512, 384, 3) and a.dtype == np.float32
        for x, ref in ((a, img1), (b, img2)):
            assert torch.equal((torch.from_numpy(x).permute(2, 0, 1) - 0.5) / 0.5, ref[0])
    # and the per-video figures pool to the published ones video by video too
    first = published_f(videos[:1], frame_videos[:1], _SyntheticFlow(len(videos[0]) - 1).model)
    _assert_same(results[0].f_iou, first["f_iou"])


def test_reference_skip_rules_by_hand():
    lab = np.zeros((4, 40, 60), np.uint8)
    lab[0, 10:20, 10:20] = 5  # label 5 in frame 0 only
    lab[2:] = 9  # frames 2, 3: label 9 fills the frame
    r = temporal_consistency(lab, convention="reference")
    assert r.raw["t_iou"][5] == [0.0] and 5 not in r.t_assd  # vanishes: IoU 0, no distance
    # background: frame 0 has a hole (a contour), frame 1 fills the frame (none), then vanishes
    assert r.raw["t_iou"][0] == [pytest.approx(1 - _hole_fraction(lab[0])), 0.0]
    assert 0 not in r.t_assd
    assert r.raw["t_iou"][9] == [0.0, 1.0] and 9 not in r.t_assd  # appears, then stays
    assert r.labels_scored == [0, 5, 9] and r.macro["t_iou"] == pytest.approx(np.mean([r.t_iou[c] for c in (0, 5, 9)]))
    # F: a label of t that the flow never samples and that is not in t+1 has an empty union: skipped
    lab2 = np.zeros((2, 299, 299), np.uint8)
    lab2[0, 100:120, 0:20] = 3
    frames = np.zeros((2, 299, 299, 3), np.uint8)
    shift = lambda a, b: np.tile(np.float32([100.0, 0.0]), (*a.shape[:2], 1))  # noqa: E731
    f = temporal_consistency(lab2, frames, convention="reference", flow=shift)
    assert 3 not in f.f_iou and f.raw["t_iou"][3] == [0.0]
    zero = lambda a, b: np.zeros((*a.shape[:2], 2), np.float32)  # noqa: E731
    f = temporal_consistency(lab2, frames, convention="reference", flow=zero)
    assert f.raw["f_iou"][3] == [0.0] and f.raw["f_dice"][3] == [0.0]  # in the warped mask only: 0


def _hole_fraction(frame):
    from napari_sasvi.core.metrics.temporal import REF_SIZE, resize_nearest

    return float(np.mean(resize_nearest(frame, REF_SIZE) != 0))


def test_reference_resize_is_torch_nearest():
    import cv2
    import torch
    import torch.nn.functional as F
    from PIL import Image

    from napari_sasvi.core.metrics.temporal import REF_SIZE, nearest_indices, resize_nearest

    def torch_nearest(x):
        t = torch.from_numpy(x.astype(np.int64)).to(torch.uint8)[None, None].float()
        return F.interpolate(t, size=(299, 299), mode="nearest").squeeze().to(torch.uint8).numpy()

    for n in range(1, 1000):
        t = torch.arange(n, dtype=torch.float32)[None, None, :, None]
        expect = F.interpolate(t, size=(299, 1), mode="nearest")[0, 0, :, 0].numpy()
        assert np.array_equal(nearest_indices(n, 299), expect), n
    rng = np.random.default_rng(0)
    for h, w in ((65, 130), (91, 182), (480, 854), (37, 53), (299, 299), (598, 2), (1080, 1920)):
        x = rng.integers(0, 256, (h, w)).astype(np.uint8)
        assert np.array_equal(resize_nearest(x, REF_SIZE), torch_nearest(x)), (h, w)
    ids = rng.integers(0, 1000, (37, 53)).astype(np.int32)  # ids above 255 wrap, as .to(torch.uint8)
    assert np.array_equal(resize_nearest(ids, REF_SIZE), torch_nearest(ids))
    # on 65 x 130, OpenCV's INTER_NEAREST, PIL's NEAREST and exact integer floor pick other pixels
    x = (np.arange(65)[:, None] * 3 + np.arange(130)[None, :] * 0).astype(np.uint8)
    y = np.repeat(np.arange(130, dtype=np.uint8)[None, :], 65, 0)
    for a in (x, y):
        want = torch_nearest(a)
        assert np.array_equal(resize_nearest(a, REF_SIZE), want)
        assert not np.array_equal(cv2.resize(a, REF_SIZE, interpolation=cv2.INTER_NEAREST), want)
        assert not np.array_equal(np.asarray(Image.fromarray(a).resize(REF_SIZE, Image.NEAREST)), want)
    exact = np.minimum(np.arange(299) * 65 // 299, 64)
    assert not np.array_equal(exact, nearest_indices(65, 299))


def test_default_convention_counts_a_label_that_flickers():
    """A label present in one frame of a pair scores IoU 0 in the default convention too (it is
    flicker), and gives no contour distance."""
    from napari_sasvi.core.metrics.temporal import temporal_consistency

    lab = np.zeros((3, 20, 20), np.uint8)
    lab[:, 2:8, 2:8] = 1
    lab[1, 12:16, 12:16] = 2  # class 2 only in the middle frame
    r = temporal_consistency(lab, ignore={0})
    assert r.t_iou[1] == 1.0 and r.t_iou[2] == 0.0
    assert 2 not in r.t_assd
