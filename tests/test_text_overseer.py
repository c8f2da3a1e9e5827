"""``--overseer text``: SAM 3 (transformers) prompted with class names as the frame-wise overseer.

The model is built from the real ``Sam3Config`` with tiny sizes and random weights (seed 0), its
processor with a CLIP tokenizer made here from a 54-token character vocabulary (no download), both
written with ``save_pretrained`` and loaded back through the overseer's own path. Random weights say
nothing about accuracy: these tests check the plumbing (shapes, classes, the feature reuse, the
store's record, the errors)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import write_video_dirs
from napari_sasvi.cli import main
from napari_sasvi.core.config import RunConfig
from napari_sasvi.core.datasets import SYNTHETIC
from napari_sasvi.core.engine.batch import Models
from napari_sasvi.core.errors import CheckpointError, InputError
from napari_sasvi.core.overseers.base import ClassMask
from napari_sasvi.core.overseers.text import TextOverseer, load_sam3, load_text_overseer, parse_prompts
from napari_sasvi.core.store.sasvi_store import SasviStore

#: SAM 3's input in these tests (a multiple of its 14 px patches): a 4 x 4 patch grid
SIZE = 56


def _tiny_sam3(folder):
    """A tiny SAM 3 image model (about 0.24 M parameters) and its processor, saved in ``folder``."""
    import torch
    from transformers import CLIPTokenizer, Sam3Config, Sam3Model, Sam3Processor
    from transformers.models.sam3.image_processing_sam3 import Sam3ImageProcessor

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in "abcdefghijklmnopqrstuvwxyz":
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault(ch + "</w>", len(vocab))
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    grid = SIZE // 14
    small = dict(hidden_size=32, num_attention_heads=2, intermediate_size=64)
    config = Sam3Config(
        vision_config=dict(
            backbone_config=dict(
                model_type="sam3_vit_model",
                **small,
                num_hidden_layers=2,
                image_size=SIZE,
                pretrain_image_size=SIZE,
                window_size=grid // 2,
                global_attn_indexes=[1],
            ),
            fpn_hidden_size=32,
            backbone_feature_sizes=[[4 * grid] * 2, [2 * grid] * 2, [grid] * 2],
        ),
        text_config=dict(
            vocab_size=len(vocab),
            **small,
            num_hidden_layers=1,
            projection_dim=32,
            max_position_embeddings=32,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        ),
        geometry_encoder_config=dict(**small, num_layers=1),
        detr_encoder_config=dict(**small, num_layers=1),
        detr_decoder_config=dict(**small, num_layers=1, num_queries=8),
        mask_decoder_config=dict(hidden_size=32, num_attention_heads=2),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Sam3Model(config).eval()
    processor = Sam3Processor(Sam3ImageProcessor(size={"height": SIZE, "width": SIZE}), tokenizer)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def sam3_dir(tmp_path_factory):
    return _tiny_sam3(tmp_path_factory.mktemp("sam3"))


@pytest.fixture(scope="module")
def frames():
    from napari_sasvi.core.synthetic import SyntheticVideo

    return SyntheticVideo(n_frames=3, height=48, width=64, seed=1).arrays()[0]


def test_prompts_name_classes_case_insensitively():
    assert parse_prompts(None, SYNTHETIC) == {c.id: c.name for c in SYNTHETIC if c.id != 0}
    assert parse_prompts(" grasper , CLIPPER,", SYNTHETIC) == {5: "Grasper", 7: "Clipper"}
    assert parse_prompts("l-hook electrocautery=hook", SYNTHETIC) == {6: "hook"}
    with pytest.raises(InputError, match="'scalpel' is not a class of the synthetic.*Grasper, L-hook"):
        parse_prompts("grasper, scalpel", SYNTHETIC)
    with pytest.raises(InputError, match="given twice"):
        parse_prompts("grasper, Grasper=tool", SYNTHETIC)
    with pytest.raises(InputError, match="empty"):
        parse_prompts(" , ", SYNTHETIC)
    with pytest.raises(InputError, match="overseer.prompts is for overseer.kind text, not replay"):
        RunConfig(overseer={"kind": "replay", "prompts": "grasper"})
    assert RunConfig(overseer={"kind": "text", "prompts": "grasper"}).overseer.prompts == "grasper"


def test_predictions_keep_the_overseer_contract(sam3_dir, frames):
    """Every prompt gets its class (mask threshold 0: every pixel is in every kept mask), masks are
    bool at the frame size, the class's score is its best instance's; features once per frame."""
    ov = load_text_overseer(
        sam3_dir, SYNTHETIC, "cpu", "grasper, Fat=fat tissue", score_threshold=0.0, mask_threshold=0
    )
    assert isinstance(ov, TextOverseer) and ov.prompts == {5: "Grasper", 3: "fat tissue"}
    found = ov.predict_instances(list(frames), [0, 1, 2])
    assert ov.vision_passes == 3, "the image encoder runs once per frame, not once per prompt"
    assert len(found) == 3
    for inst in found:
        assert {d.class_id for d in inst} == {3, 5}
        assert len(inst) == 2 * 8  # the tiny model's 8 queries, each above a score of 0, per prompt
        for d in inst:
            assert d.mask.dtype == bool and d.mask.shape == (48, 64) and 0 <= d.score <= 1
    results = ov.predict(list(frames), [0, 1, 2])
    for res, inst in zip(results, found, strict=True):
        assert set(res) == {3, 5}
        for c, cm in res.items():
            assert isinstance(cm, ClassMask) and cm.mask.dtype == bool and cm.mask.shape == (48, 64)
            assert cm.score == pytest.approx(max(d.score for d in inst if d.class_id == c), abs=1e-6)
    strict = load_text_overseer(sam3_dir, SYNTHETIC, "cpu", "grasper", score_threshold=1.0)
    assert strict.predict(list(frames[:1]), [0]) == [{}], "nothing scores above 1"


def test_reused_image_features_give_the_full_forward_pass(sam3_dir, frames):
    """The overseer encodes each frame once and each phrase once; transformers' own one-call
    path (image and text in, as its documentation shows) finds the same instances."""
    import torch

    ov = load_text_overseer(sam3_dir, SYNTHETIC, "cpu", "grasper, clipper", score_threshold=0.1, mask_threshold=0.4)
    ours = ov.predict_instances([frames[1]], [1])[0]
    inputs = ov.processor(images=[frames[1]] * 2, text=["Grasper", "Clipper"], return_tensors="pt")
    with torch.inference_mode():
        out = ov.model(**{k: v for k, v in inputs.items() if k != "original_sizes"})
    ref = ov.processor.post_process_instance_segmentation(
        out, threshold=0.1, mask_threshold=0.4, target_sizes=[(48, 64)] * 2
    )
    want = [
        (cid, m.numpy().astype(bool), s)
        for cid, r in zip((5, 7), ref, strict=True)
        for m, s in zip(r["masks"], r["scores"], strict=True)
    ]
    want = [w for w in want if w[1].any()]
    assert len(ours) == len(want) > 0
    for d, (cid, m, s) in zip(ours, want, strict=True):
        assert d.class_id == cid and np.array_equal(d.mask, m) and d.score == pytest.approx(float(s), abs=1e-5)


def test_models_keep_sam3_when_only_the_prompts_change(sam3_dir):
    models = Models()
    base = RunConfig(dataset="synthetic", device="cpu", overseer={"kind": "text", "checkpoint": str(sam3_dir)})
    first = models.overseer(base, SYNTHETIC)
    again = models.overseer(base, SYNTHETIC)
    other = models.overseer(base.replace(**{"overseer.prompts": "grasper"}), SYNTHETIC)
    assert again is first and other is not first and other.model is first.model
    assert other.prompts == {5: "Grasper"} and models.builds["overseer"] == 2


def test_segment_cli_runs_the_text_overseer_into_a_store(tmp_path, capsys, sam3_dir):
    videos, _ = write_video_dirs(tmp_path, ["Video1"], n=3, size=(48, 64))
    out = tmp_path / "out.zarr"
    argv = ["segment", str(videos / "Video1"), "--out", str(out), "--dataset", "synthetic", "--overseer", "text"]
    flags = ["--overseer-checkpoint", str(sam3_dir), "--overseer-score-threshold", "0", "--prompts", "grasper, fat"]
    rc = main([*argv, *flags, "--overseer-mask-threshold", "0.5", "--tracker", "flow", "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    store = SasviStore.read(out)
    assert store.complete
    desc = store.signature["overseer"]
    assert desc["type"] == "text" and desc["model"] == str(sam3_dir.resolve())
    assert len(desc["model_sha256"]) == 64 and desc["prompts"] == [[5, "Grasper"], [3, "Fat"]]
    assert desc["thresholds"] == {"score": 0.0, "mask": 0.5}
    overseer = np.asarray(store.overseer[:])
    assert overseer.shape == (3, 48, 64)
    assert set(np.unique(overseer)) - {255} <= {3, 5} and (overseer != 255).any()
    # the same command resumes the finished store (the signature read back equals the new one)
    assert main([*argv, *flags, "--overseer-mask-threshold", "0.5", "--tracker", "flow", "--device", "cpu"]) == 0


def test_an_unknown_class_or_model_is_refused_before_anything_is_written(tmp_path, capsys, sam3_dir, monkeypatch):
    from huggingface_hub import constants as hf_constants

    videos, _ = write_video_dirs(tmp_path, ["Video1"], n=2, size=(48, 64))
    out = tmp_path / "out.zarr"
    argv = ["segment", str(videos / "Video1"), "--out", str(out), "--dataset", "synthetic", "--overseer", "text"]
    rest = ["--tracker", "flow", "--device", "cpu"]
    assert main([*argv, "--overseer-checkpoint", str(sam3_dir), "--prompts", "grasper, scalpel", *rest]) == 2
    err = capsys.readouterr().err
    assert "--prompts: 'scalpel' is not a class of the synthetic class table" in err and "Clipper" in err
    assert "Traceback" not in err
    assert main([*argv, "--overseer-checkpoint", str(tmp_path / "nowhere"), *rest]) == 2
    err = capsys.readouterr().err
    assert "SAM 3 model folder" in err and "nowhere does not exist" in err and "Traceback" not in err
    assert main([*argv, "--overseer-score-threshold", "0.1", "--prompts", "x", "--overseer", "detr", *rest]) == 2
    assert "--prompts is for --overseer text, not detr" in capsys.readouterr().err
    assert not out.exists()
    # a checkpoint lacking weights (transformers would fill them at random and only log it) is refused
    import shutil

    from safetensors.torch import load_file, save_file

    partial = tmp_path / "partial"
    shutil.copytree(sam3_dir, partial)
    weights = load_file(partial / "model.safetensors")
    save_file({k: v for k, v in weights.items() if "text_encoder" not in k}, partial / "model.safetensors")
    with pytest.raises(CheckpointError, match="lacks weights the model needs .*text_encoder"):
        load_sam3(partial)
    # no network (HF_HUB_OFFLINE=1, nothing cached): the error says where the model comes from
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="Hugging Face Hub: it needs the network once") as e:
        load_sam3("nobody-here/sam3-missing")
    assert "gated" in str(e.value) and "hf auth login" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.gui
def test_widget_text_choice_runs_sam3_into_a_layer(make_napari_viewer_proxy, qtbot, tmp_path, sam3_dir, frames):
    """The segment widget's "Text (SAM 3)": its model and prompt fields show, SAM 3's thresholds are
    set, the form reads as ``overseer.kind text`` and a run fills the store and the layer."""
    from napari_sasvi._napari._form import TEXT_CHOICE

    viewer = make_napari_viewer_proxy()
    viewer.add_image(frames, name="clip", rgb=True)
    _, widget = viewer.window.add_plugin_dock_widget("napari-sasvi", "SASVi segment video")
    widget._dataset.value = "synthetic"
    widget._sam2.value = "optical flow (DIS, no weights)"
    widget._device.value = "cpu"
    widget._overseer.value = TEXT_CHOICE
    assert not widget._text_model.native.isHidden() and not widget._text_prompts.native.isHidden()
    assert widget._overseer_ckpt.native.isHidden() and widget._overseer_layer.native.isHidden()
    assert (widget._score_thr.value, widget._mask_thr.value) == (0.5, 0.5)
    assert widget.run_config().overseer.checkpoint == "facebook/sam3"
    assert widget.run_config().overseer.prompts is None  # every class
    widget._text_model.value, widget._text_prompts.value = str(sam3_dir), "grasper, clipper"
    widget._score_thr.value = 0.0
    widget._out.value = tmp_path / "text.zarr"
    config = widget.run_config()
    assert (config.overseer.kind, config.overseer.prompts, config.overseer.score_threshold) == (
        "text",
        "grasper, clipper",
        0.0,
    )
    assert widget.run() is not None
    qtbot.waitUntil(lambda: widget._worker is None, timeout=120_000)
    store = SasviStore.read(tmp_path / "text.zarr")
    assert store.complete and store.signature["overseer"]["prompts"] == [[5, "Grasper"], [7, "Clipper"]]
    assert set(np.unique(np.asarray(viewer.layers["text SASVi"].data))) <= {5, 7, 255}
