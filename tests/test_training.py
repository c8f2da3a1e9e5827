"""Training overseers: the pixel classifier and the reference recipes, on the synthetic clip."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from napari_sasvi.cli import main
from napari_sasvi.core.config import OverseerConfig
from napari_sasvi.core.engine.batch import build_trained_overseer
from napari_sasvi.core.errors import CheckpointError, EmptyInputError, InputError
from napari_sasvi.core.progress import drain
from napari_sasvi.core.synthetic import SyntheticVideo
from napari_sasvi.core.training.data import (
    check_trainable,
    detect_layout,
    from_arrays,
    open_training_data,
    rule_split,
    subset,
)
from napari_sasvi.core.training.deep import DeepParams, iter_train_deep
from napari_sasvi.core.training.events import Saved, TrainStep, Validated
from napari_sasvi.core.training.run import iter_train


@pytest.fixture(scope="module")
def clip():
    v = SyntheticVideo(n_frames=16, height=96, width=128, seed=0)
    frames, labels = v.arrays()
    return frames, labels, v.classes


def _events(gen):
    seen = []
    result = drain(gen, seen.append)
    return seen, result


def _frame_folder(root, frames, labels, every=1):
    (root / "frames").mkdir(parents=True)
    (root / "masks").mkdir(parents=True)
    for t in range(len(frames)):
        Image.fromarray(frames[t]).save(root / "frames" / f"{t:04d}.png")
        if t % every == 0:
            Image.fromarray(labels[t]).save(root / "masks" / f"{t:04d}.png")
    return root


# -- the pixel classifier ------------------------------------------------------------------------------
@pytest.mark.slow  # 3-5 s here (5,000 files / a plain-loop reference / a forest)
def test_pixel_classifier_trains_from_painted_frames_and_segments(tmp_path, clip):
    frames, labels, classes = clip
    painted = np.full_like(labels, 255)  # 255: not painted (class 0, the background, is a class here)
    painted[[0, 8]] = labels[[0, 8]]
    ts = from_arrays(frames, painted, classes, val_frames=[8])
    assert [s.index for s in ts.train] == [0] and [s.index for s in ts.val] == [8]
    seen, result = _events(iter_train("pixel", ts, tmp_path / "px"))
    assert result.checkpoint.name == "overseer.skops" and result.checkpoint.is_file()
    steps = [e for e in seen if isinstance(e, TrainStep)]
    assert len(steps) == 1 and 0 <= steps[0].loss < 0.5  # out-of-bag error of the forest
    val = [e for e in seen if isinstance(e, Validated)]
    assert val and val[0].dice > 0.5, val
    # the checkpoint loads through the overseer path of segment, and predicts per-class masks
    ov = build_trained_overseer(OverseerConfig(kind="pixel", checkpoint=str(result.checkpoint)), classes)
    res = ov.predict([frames[12]], [12])[0]
    assert res and all(cm.mask.shape == labels.shape[1:] and 0 < cm.score <= 1 for cm in res.values())
    trained = set(np.unique(labels[0]).tolist()) - {0}  # classes it saw (instruments enter later)
    truth = set(np.unique(labels[12]).tolist()) & trained
    assert truth and len(set(res) & truth) >= len(truth) - 1
    assert ov.describe()["type"] == "pixel" and len(ov.describe()["checkpoint_sha256"]) == 64


def test_pixel_classifier_from_scribbles(tmp_path, clip):
    frames, labels, classes = clip
    scribbles = np.full_like(labels, 255)
    rng = np.random.default_rng(0)
    for c in np.unique(labels[0]).tolist():  # a few pixels of each class on frame 0
        ys, xs = np.nonzero(labels[0] == c)
        pick = rng.choice(len(ys), min(40, len(ys)), replace=False)
        scribbles[0, ys[pick], xs[pick]] = c
    ts = from_arrays(frames, scribbles, classes, unpainted=255)
    _, result = _events(iter_train("pixel", ts, tmp_path / "px"))
    ov = build_trained_overseer(OverseerConfig(kind="pixel", checkpoint=str(result.checkpoint)), classes)
    pred = np.full(labels.shape[1:], 0, np.uint8)
    for c, cm in ov.predict([frames[1]], [1])[0].items():
        pred[cm.mask] = c
    assert (pred == labels[1]).mean() > 0.6  # 40 pixels per class label most of the next frame


def test_pixel_file_is_checked_before_loading(tmp_path, clip):
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    _, _, classes = clip
    from collections import Counter

    bad = tmp_path / "bad.skops"
    bad.write_bytes(sio.dumps({"format": "napari-sasvi-pixel-classifier", "forest": Counter("ab")}))
    with pytest.raises(CheckpointError, match="would build types .*Counter"):
        build_trained_overseer(OverseerConfig(kind="pixel", checkpoint=str(bad)), classes)
    other = tmp_path / "other.skops"
    blob = {"format": "napari-sasvi-pixel-classifier", "classes": {}, "features": {}, "forest": LogisticRegression()}
    other.write_bytes(sio.dumps(blob))
    with pytest.raises(CheckpointError, match="holds no random forest"):
        build_trained_overseer(OverseerConfig(kind="pixel", checkpoint=str(other)), classes)
    junk = tmp_path / "junk.skops"
    junk.write_bytes(b"not a zip file")
    with pytest.raises(CheckpointError, match="not a pixel-classifier file"):
        build_trained_overseer(OverseerConfig(kind="pixel", checkpoint=str(junk)), classes)
    with pytest.raises(InputError, match="needs overseer.checkpoint"):
        build_trained_overseer(OverseerConfig(kind="pixel"), classes)


def test_pixel_model_of_other_classes_is_refused(tmp_path, clip):
    from napari_sasvi.core.datasets import get_class_table

    frames, labels, classes = clip
    _, result = _events(iter_train("pixel", from_arrays(frames[:2], labels[:2], classes), tmp_path / "px"))
    with pytest.raises(CheckpointError, match="trained for the 'synthetic' classes"):
        build_trained_overseer(
            OverseerConfig(kind="pixel", checkpoint=str(result.checkpoint)), get_class_table("cadis")
        )


# -- bad data --------------------------------------------------------------------------------------------
def test_bad_training_data_gives_clear_errors(tmp_path, clip):
    frames, labels, classes = clip
    wrong = labels[:3].copy()
    wrong[1, :4, :4] = 42
    with pytest.raises(InputError, match=r"label value\(s\) \[42\] are not ids"):
        from_arrays(frames[:3], wrong, classes)
    with pytest.raises(EmptyInputError, match="no annotated frames"):
        check_trainable(from_arrays(frames[:3], np.full_like(labels[:3], 255), classes))
    one = np.full_like(labels[:3], 255)
    one[0, :10, :10] = 3
    with pytest.raises(InputError, match="one class"):
        check_trainable(from_arrays(frames[:3], one, classes))
    with pytest.raises(InputError, match="differ in frames or size"):
        from_arrays(frames[:3], labels[:2], classes)
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="holds other files"):
        drain(iter_train("pixel", from_arrays(frames[:2], labels[:2], classes), out))
    assert (out / "notes.txt").read_text() == "mine"


def test_labelled_folder_layouts_splits_and_fraction(tmp_path, clip):
    frames, labels, classes = clip
    root = _frame_folder(tmp_path / "one", frames[:10], labels[:10], every=2)  # masks on even frames
    ts = open_training_data(root, classes, "folder", frames=[0, 4])
    assert [s.index for s in ts.train] == [0, 4] and [s.index for s in ts.val] == [2, 6, 8]
    assert np.array_equal(ts.train[1].labels(), labels[4]) and np.array_equal(ts.train[1].frame(), frames[4])
    assert "read as class-ids" in ts.readings[0]
    with pytest.raises(InputError, match=r"--frames \[1\]: those frames have no mask"):
        open_training_data(root, classes, "folder", frames=[1])
    # several videos: split by the fixed rule; --fraction draws a seeded subset of the training frames
    multi = tmp_path / "multi"
    for k in range(6):
        _frame_folder(multi / f"video{k:02d}", frames[:4], labels[:4])
    assert rule_split([f"video{k:02d}" for k in range(6)])["val"] == ["video01"]
    ts = open_training_data(multi, classes, "folder")
    assert {s.video for s in ts.val} == {"video01"} and len(ts.train) == 20
    a = open_training_data(multi, classes, "folder", fraction=0.25, seed=1)
    b = open_training_data(multi, classes, "folder", fraction=0.25, seed=1)
    assert len(a.train) == 5 and [s.name + s.video for s in a.train] == [s.name + s.video for s in b.train]
    assert subset(ts.train, 0.25, 2) != subset(ts.train, 0.25, 1)
    assert detect_layout(multi, "cadis") == "folder"


def test_cadis_and_cholecseg8k_layouts(tmp_path, clip):
    from napari_sasvi.core.datasets import get_class_table

    frames, labels, _ = clip
    cadis = get_class_table("cadis")
    for n in (1, 2, 5):
        d = tmp_path / "cadis" / f"Video{n:02d}"
        (d / "Images").mkdir(parents=True)
        (d / "Labels").mkdir()
        for t in range(2):
            Image.fromarray(frames[t]).save(d / "Images" / f"Video{n}_frame{t:06d}.png")
            Image.fromarray(labels[t]).save(d / "Labels" / f"Video{n}_frame{t:06d}.png")
    assert detect_layout(tmp_path / "cadis", "cadis") == "cadis"
    ts = open_training_data(tmp_path / "cadis", cadis, "cadis")
    assert {s.video for s in ts.train} == {"Video01"} and {s.video for s in ts.val} == {"Video05"}  # 02 is test
    chole = get_class_table("cholecseg8k")
    to_grey = {v: k for k, v in chole.source_values.items()}
    clip_dir = tmp_path / "chole" / "video01" / "video01_00080"
    clip_dir.mkdir(parents=True)
    for t in range(3):
        Image.fromarray(frames[t]).save(clip_dir / f"frame_{80 + t}_endo.png")
        grey = np.vectorize(lambda c: to_grey.get(int(c) + 1, 50))(labels[t]).astype(np.uint8)
        Image.fromarray(np.dstack([grey] * 3)).save(clip_dir / f"frame_{80 + t}_endo_watershed_mask.png")
    assert detect_layout(tmp_path / "chole", "cholecseg8k") == "cholecseg8k"
    ts = open_training_data(tmp_path / "chole", chole, "cholecseg8k", frames=[0, 1])
    want = np.vectorize(lambda c: chole.source_values[to_grey.get(int(c) + 1, 50)])(labels[2]).astype(np.uint8)
    assert np.array_equal(ts.val[0].labels(), want)


# -- the reference recipes ------------------------------------------------------------------------------
def _fixed_loss(arch, ckpt, sample, classes):
    """The training loss of a checkpoint on one frame, without augmentation, every random draw seeded."""
    import torch

    from napari_sasvi.core.overseers.trained import load_overseer
    from napari_sasvi.core.training.deep import _Forward
    from napari_sasvi.core.training.recipes import augment, trained_ids

    ov = load_overseer(arch, ckpt, classes, device="cpu")
    model = ov.model.train()
    img, lab = augment(sample.frame(), sample.labels(), ov.spec.input_size, train=False)
    torch.manual_seed(0)
    with torch.no_grad():
        loss, _ = _Forward(model, ov.spec, trained_ids(classes, ov.spec), torch.device("cpu"))([img] * 2, [lab] * 2)
    return float(loss)


@pytest.mark.slow
def test_maskrcnn_loss_falls_resumes_and_loads(tmp_path, clip):
    import shutil

    frames, labels, classes = clip
    ts = from_arrays(frames[:3], labels[:3], classes, val_frames=[2])
    out = tmp_path / "mrcnn"
    p = DeepParams(steps=1, batch_size=2, lr=3e-4, pretrained="no", val_every=50)
    seen, r1 = _events(iter_train_deep("maskrcnn", ts, out, p, device="cpu"))
    assert r1.steps == 1 and (out / "train_state.pt").is_file() and any(isinstance(e, Saved) for e in seen)
    info = json.loads((out / "train.json").read_text())
    assert info["pretrained"].startswith("from scratch")
    first = tmp_path / "step1.pth"
    shutil.copy(out / "overseer.pth", first)
    # the same command with more steps continues from step 1
    seen, r2 = _events(iter_train_deep("maskrcnn", ts, out, DeepParams(**{**p.__dict__, "steps": 5}), device="cpu"))
    steps = [e.step for e in seen if isinstance(e, TrainStep)]
    assert steps == list(range(2, 6)) and r2.steps == 5
    logged = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in logged if "loss" in x] == list(range(1, 6))
    assert [x["step"] for x in logged if "val_dice" in x] == [1, 5]
    assert _fixed_loss("maskrcnn", out / "overseer.pth", ts.train[0], classes) < _fixed_loss(
        "maskrcnn", first, ts.train[0], classes
    )
    # other settings in the same folder are refused and change nothing
    before = (out / "overseer.pth").read_bytes()
    with pytest.raises(InputError, match="other settings .*lr"):
        drain(iter_train_deep("maskrcnn", ts, out, DeepParams(steps=9, batch_size=2, lr=1e-3, pretrained="no")))
    assert (out / "overseer.pth").read_bytes() == before


@pytest.mark.slow
def test_cancel_keeps_the_last_step(tmp_path, clip):
    frames, labels, classes = clip
    ts = from_arrays(frames[:2], labels[:2], classes)
    calls = {"n": 0}

    def cancel():
        calls["n"] += 1
        return calls["n"] > 2  # after two steps

    p = DeepParams(steps=50, batch_size=1, pretrained="no")
    _, r = _events(iter_train_deep("maskrcnn", ts, tmp_path / "c", p, device="cpu", cancel=cancel))
    assert r.cancelled and r.steps == 2
    import torch

    assert torch.load(tmp_path / "c" / "train_state.pt", weights_only=True)["step"] == 2


@pytest.mark.slow
def test_cli_train_then_segment_with_the_overseer(tmp_path, clip, capsys):
    frames, labels, _ = clip
    root = _frame_folder(tmp_path / "clip", frames[:8], labels[:8], every=4)
    rc = main(
        ["train", "--overseer", "pixel", "--dataset", "Synthetic", "--data", str(root), "--out", str(tmp_path / "m")]
    )
    assert rc == 0
    # the command it prints names the dataset as segment spells it (any case is accepted there too)
    (use,) = [ln for ln in capsys.readouterr().out.splitlines() if "use it:" in ln]
    assert "--dataset synthetic --overseer pixel" in use
    rc = main(
        [
            "segment",
            str(root / "frames"),
            "--dataset",
            "SYNTHETIC",
            "--overseer",
            "pixel",
            "--overseer-checkpoint",
            str(tmp_path / "m" / "overseer.skops"),
            "--tracker",
            "flow",
            "--out",
            str(tmp_path / "s.zarr"),
        ]
    )
    assert rc == 0
    from napari_sasvi.core.store.sasvi_store import SasviStore

    store = SasviStore.read(tmp_path / "s.zarr")
    assert store.signature["overseer"]["type"] == "pixel"
    assert np.asarray(store.labels[7]).max() > 0
    # a Mask R-CNN run through the CLI: a few steps, then its checkpoint loads for segment
    rc = main(
        [
            "train",
            "--overseer",
            "maskrcnn",
            "--dataset",
            "synthetic",
            "--data",
            str(root),
            "--out",
            str(tmp_path / "mr"),
            "--steps",
            "1",
            "--batch-size",
            "1",
            "--pretrained",
            "no",
        ]
    )
    assert rc == 0
    rc = main(
        ["train", "--overseer", "pixel", "--dataset", "synthetic", "--data", str(root), "--out", str(tmp_path / "mr")]
    )
    assert rc == 2  # a Mask R-CNN run is there: refused


@pytest.mark.slow
def test_mask2former_trains_a_step_and_loads(tmp_path, clip):
    from napari_sasvi.core.overseers.trained import load_overseer

    frames, labels, classes = clip
    ts = from_arrays(frames[:2], labels[:2], classes, val_frames=[1])
    _, r = _events(
        iter_train_deep("mask2former", ts, tmp_path / "m2f", DeepParams(steps=1, batch_size=1, pretrained="no"))
    )
    assert r.steps == 1 and r.validation is not None
    ov = load_overseer("mask2former", r.checkpoint, classes, device="cpu")
    assert ov.spec.num_labels == len(classes)
