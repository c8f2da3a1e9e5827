"""Trained overseers: offline builds, the reference checkpoints' layout, strict loading (incl. the
transformers 4.x names), the clear errors, pre/post-processing and the label mapping."""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_sasvi.core.datasets import ClassTable, get_class_table
from napari_sasvi.core.errors import CheckpointError
from napari_sasvi.core.overseers.models import REFERENCE_SPECS, build_model, presets_with
from napari_sasvi.core.overseers.renames import RENAMES, load_state_dict_strict, map_keys
from napari_sasvi.core.overseers.trained import Thresholds, TrainedOverseer, load_overseer
from napari_sasvi.core.state_dict import read_state_dict

REFERENCE = json.loads(gzip.open(Path(__file__).parent / "data" / "reference_keys.json.gz", "rt").read())["models"]
COMBOS = sorted(REFERENCE_SPECS)


@pytest.fixture
def built(overseer_model):
    """``built(dataset, arch)``: one model per (dataset, arch), built once per session (conftest)."""
    return overseer_model


def _layout(dataset: str, arch: str):
    """The published architecture on the meta device: the same modules and tensor shapes, no weights
    (a tenth of the time of a real build)."""
    with torch.device("meta"):
        return build_model(REFERENCE_SPECS[(dataset, arch)])


def _reference_state(name: str, fill: float = 0.0) -> dict:
    """A state dict in the reference's (transformers 4.48) layout; constant tensors stored as one
    expanded value so the file stays small."""
    return {k: torch.tensor(fill).expand(shape) for k, shape in REFERENCE[name].items()}


@pytest.mark.parametrize("dataset,arch", COMBOS)
def test_reference_layout_matches_after_the_key_map(dataset, arch):
    model = _layout(dataset, arch)
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    ref = REFERENCE[f"{dataset}/{arch}"]
    mapped, renamed = map_keys(arch, {k: torch.empty(0) for k in ref}, set(own))
    # every reference key has a counterpart of the same shape, and every model key is covered
    back = {new: old for old, new in (r.split(" -> ") for r in renamed)}
    for k in mapped:
        assert k in own, f"{k} fits nothing"
        assert own[k] == tuple(ref[back.get(k, k)]), k
    missing = set(own) - set(mapped)
    assert missing <= {
        "model.pixel_level_module.encoder.swin.layernorm.weight",
        "model.pixel_level_module.encoder.swin.layernorm.bias",
    }
    assert (len(renamed) > 0) == bool(RENAMES[arch])


def test_reference_checkpoints_load_strictly_through_the_public_path(tmp_path):
    # a file in the published (transformers 4.x) layout, one per architecture
    for dataset, arch in [("cadis", "detr"), ("cholecseg8k", "mask2former"), ("cholecseg8k", "maskrcnn")]:
        state = _reference_state(f"{dataset}/{arch}")
        old_key = next(iter(k for k in state if "bias" in k and ("out_proj" in k or "attention.self.query" in k)), None)
        if old_key is not None:
            state[old_key] = torch.full(state[old_key].shape, 0.25)
        path = tmp_path / f"best_val_{arch}.pth"
        torch.save(state, path)
        ov = load_overseer(arch, path, get_class_table(dataset), device="cpu")
        assert ov.spec == REFERENCE_SPECS[(dataset, arch)]
        if old_key is not None:  # the renamed tensor landed where it belongs
            mapped, _ = map_keys(arch, {old_key: 0}, set(ov.model.state_dict()))
            (new_key,) = mapped
            assert new_key != old_key
            assert torch.all(ov.model.state_dict()[new_key] == 0.25)
        assert ov.describe()["checkpoint_sha256"]


def test_checkpoint_saved_from_the_model_loads_back(tmp_path, built):
    model = built("cataract1k", "maskrcnn")
    path = tmp_path / "mine.pth"
    torch.save({"state_dict": model.state_dict()}, path)  # a training checkpoint wrapping it works too
    ov = load_overseer("maskrcnn", path, get_class_table("cataract1k"), device="cpu")
    for k, v in model.state_dict().items():
        assert torch.equal(ov.model.state_dict()[k], v), k


def test_wrong_dataset_names_the_preset_it_fits(tmp_path):
    path = tmp_path / "detr14.pth"
    torch.save(_reference_state("cataract1k/detr"), path)
    with pytest.raises(CheckpointError, match=r"14 labels.*cadis preset needs 18.*cholecseg8k or cataract1k"):
        load_overseer("detr", path, get_class_table("cadis"), device="cpu")
    path = tmp_path / "m2f13.pth"
    torch.save(_reference_state("cholecseg8k/mask2former"), path)
    with pytest.raises(CheckpointError, match=r"fits the cholecseg8k preset"):
        load_overseer("mask2former", path, get_class_table("cataract1k"), device="cpu")
    assert presets_with("maskrcnn", 18) == ["cadis"]


def test_another_model_type_is_named(tmp_path):
    path = tmp_path / "detr.pth"
    torch.save(_reference_state("cadis/detr"), path)
    with pytest.raises(CheckpointError, match="no Mask R-CNN classifier"):
        load_overseer("maskrcnn", path, get_class_table("cadis"), device="cpu")


def test_keys_that_do_not_map_are_listed(built):
    model = built("cadis", "maskrcnn")
    state = dict(model.state_dict())
    state.pop("rpn.head.conv.0.0.weight")
    state["roi_heads.something_new.weight"] = torch.zeros(3)
    state["roi_heads.mask_predictor.conv5_mask.weight"] = torch.zeros(256, 64, 2, 2)
    with pytest.raises(CheckpointError) as e:
        load_state_dict_strict(model, "maskrcnn", state, "x.pth")
    msg = str(e.value)
    assert "rpn.head.conv.0.0.weight" in msg
    assert "roi_heads.something_new.weight" in msg
    assert "conv5_mask.weight (256, 64, 2, 2) vs (256, 32, 2, 2)" in msg


def test_truncated_and_unsafe_files(tmp_path, built):
    good = tmp_path / "good.pth"
    torch.save(built("cadis", "maskrcnn").state_dict(), good)
    data = good.read_bytes()
    bad = tmp_path / "truncated.pth"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated, damaged"):
        load_overseer("maskrcnn", bad, get_class_table("cadis"), device="cpu")
    unsafe = tmp_path / "code.pth"
    torch.save({"model": Path("/")}, unsafe)  # an arbitrary object: refused, not unpickled
    with pytest.raises(CheckpointError):
        read_state_dict(unsafe)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_overseer("maskrcnn", tmp_path / "none.pth", get_class_table("cadis"), device="cpu")
    assert good.read_bytes() == data  # nothing touched the good file


def _frames(n=2, h=90, w=120, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def _small_maskrcnn() -> TrainedOverseer:
    """The published CaDIS architecture at a 128 px input (the reference's 299 only costs time
    here), keeping 100 proposals and 20 detections per image instead of 1000 and 100: the same code
    path, a tenth of the RoI work on a CPU (random weights, seed 0)."""
    spec = replace(REFERENCE_SPECS[("cadis", "maskrcnn")], input_size=(128, 128))
    torch.manual_seed(0)
    model = build_model(spec)
    model.rpn._post_nms_top_n["testing"] = 100
    model.roi_heads.detections_per_img = 20
    return TrainedOverseer(model, spec, get_class_table("cadis"))


def test_maskrcnn_runs_batched_on_cpu():
    ov = _small_maskrcnn()
    assert ov.device.type in ("cpu", "cuda")
    out = ov.predict(_frames(3), [0, 1, 2])
    assert len(out) == 3
    classes = get_class_table("cadis")
    for res in out:
        for cid, cm in res.items():
            assert cid in classes.ids and cm.mask.shape == (90, 120) and cm.mask.dtype == bool
            assert 0.05 < cm.score <= 1
    assert any(out), "random Mask R-CNN weights give some detections above 0.05"
    # batch of 3 == three batches of 1
    single = [ov.predict([f], [i])[0] for i, f in enumerate(_frames(3))]
    for a, b in zip(out, single, strict=True):
        assert a.keys() == b.keys()
        for c in a:
            assert np.mean(a[c].mask != b[c].mask) < 0.01


def _force_label(model, arch, label):
    head = model.detr.class_labels_classifier if arch == "detr" else model.class_predictor
    with torch.no_grad():
        head.bias.zero_()
        head.bias[label] = 50.0


@pytest.mark.parametrize(
    "dataset,arch,label,expected",
    [
        ("cadis", "detr", 3, 2),  # CaDIS DETR: label 0 is background, class = label - 1
        ("cadis", "detr", 0, None),
        ("cholecseg8k", "detr", 1, None),  # class 0 (black background) is ignored
        ("cholecseg8k", "detr", 6, 5),
        ("cataract1k", "detr", 6, 6),
        ("cadis", "mask2former", 5, 5),
        ("cadis", "mask2former", 17, None),  # CaDIS's "no class" channel is dropped
        ("cataract1k", "mask2former", 0, None),
    ],
)
def test_transformer_label_mapping(built, dataset, arch, label, expected):
    # small inputs (the reference's DETR 800 px and Mask2Former 299 px are slow on a CPU; the benchmark
    # runs them): the label mapping does not depend on them
    spec = replace(REFERENCE_SPECS[(dataset, arch)], input_size=(64, 64), processor_size=64)
    model = built(dataset, arch)
    _force_label(model, arch, label)
    ov = TrainedOverseer(model, spec, get_class_table(dataset), "cpu", Thresholds(score=0.0, mask=-1e9))
    out = ov.predict(_frames(2, 70, 100), [0, 1])
    for res in out:
        assert list(res) == ([] if expected is None else [expected])
        if expected is not None:
            assert res[expected].mask.shape == (70, 100) and res[expected].mask.all()
            assert res[expected].score > 0.99


def test_thresholds_default_to_the_reference():
    assert Thresholds.for_arch("maskrcnn") == Thresholds(0.05, 0.5)
    assert Thresholds.for_arch("detr") == Thresholds(0.0, 0.5)
    assert Thresholds.for_arch("mask2former", mask=0.3) == Thresholds(0.0, 0.3)


def test_mask_threshold_changes_the_masks(built):
    spec = replace(REFERENCE_SPECS[("cataract1k", "mask2former")], input_size=(64, 64))
    model = built("cataract1k", "mask2former")
    _force_label(model, "mask2former", 4)
    frames = _frames(1, 64, 64)
    areas = []
    for thr in (-1e9, 0.0, 1e9):
        ov = TrainedOverseer(model, spec, get_class_table("cataract1k"), "cpu", Thresholds(0.0, thr))
        res = ov.predict(frames, [0])[0]
        areas.append(int(res[4].mask.sum()) if 4 in res else 0)
    assert areas[0] == 64 * 64 and areas[2] == 0 and areas[0] >= areas[1] >= areas[2]


def test_custom_class_table_reads_sizes_off_the_checkpoint(tmp_path):
    table = ClassTable.from_dict(
        {"classes": [{"id": i, "name": f"c{i}", "color": [i * 40, 0, 0]} for i in range(5)], "ignore_ids": []},
        name="mine",
    )
    from napari_sasvi.core.overseers.models import ArchSpec

    spec = ArchSpec("maskrcnn", 6, 1, backbone="resnet18_fpn", dim_reduced=16)
    torch.save(build_model(spec).state_dict(), tmp_path / "m.pth")
    ov = load_overseer("maskrcnn", tmp_path / "m.pth", table, device="cpu")
    assert ov.spec == spec
    assert ov.describe()["spec"]["dim_reduced"] == 16
    spec7 = replace(spec, num_labels=8)
    torch.save(build_model(spec7).state_dict(), tmp_path / "m8.pth")
    with pytest.raises(CheckpointError, match="predicts 8 labels.*expected 5 or 6"):
        load_overseer("maskrcnn", tmp_path / "m8.pth", table, device="cpu")


def test_detr_mask_head_on_kept_queries_matches_the_full_forward(built):
    """The query-selective path gives exactly DetrForSegmentation's logits and masks."""
    spec = replace(REFERENCE_SPECS[("cadis", "detr")], processor_size=96)
    model = built("cadis", "detr")
    with torch.no_grad():
        model.detr.class_labels_classifier.bias.zero_()
    ov = TrainedOverseer(model, spec, get_class_table("cadis"), "cpu")
    inputs = ov._transformer_inputs(np.stack(_frames(2, 60, 80)))
    with torch.inference_mode():
        full = model(**inputs)
        logits, masks_for = ov._detr_fast(**inputs)
        torch.testing.assert_close(logits, full.logits, rtol=1e-4, atol=1e-4)
        for b in range(2):
            idx = torch.tensor([0, 7, 42, 99])
            torch.testing.assert_close(masks_for(b, idx), full.pred_masks[b, idx], rtol=1e-3, atol=1e-3)
    assert ov._detr_fast_ok


@pytest.mark.parametrize("arch", ["detr", "mask2former"])
def test_transformers_give_each_query_as_an_instance(built, arch):
    """--instances: every kept query is an instance (several of one class here: all queries forced
    to one label), and predict is exactly their union per class with the best score."""
    from napari_sasvi.core.instances import Instance
    from napari_sasvi.core.overseers.base import merge_instances

    spec = replace(REFERENCE_SPECS[("cataract1k", arch)], input_size=(64, 64), processor_size=64)
    model = built("cataract1k", arch)
    _force_label(model, arch, 6)
    ov = TrainedOverseer(model, spec, get_class_table("cataract1k"), "cpu", Thresholds(score=0.0, mask=0.0))
    frames = _frames(2, 70, 100)
    found = ov.predict_instances(frames, [0, 1])
    assert len(found) == 2 and any(len(f) > 1 for f in found)  # many queries, one class
    for f, res in zip(found, ov.predict(frames, [0, 1]), strict=True):
        assert all(isinstance(d, Instance) and d.class_id == 6 and d.mask.shape == (70, 100) for d in f)
        merged = merge_instances(f)
        assert merged.keys() == res.keys()
        for c in merged:
            np.testing.assert_array_equal(merged[c].mask, res[c].mask)
            assert merged[c].score == res[c].score


def test_maskrcnn_gives_each_detection_as_an_instance():
    from napari_sasvi.core.overseers.base import merge_instances

    ov = _small_maskrcnn()
    found = ov.predict_instances(_frames(2), [0, 1])
    assert sum(len(f) for f in found) > 0
    for f, res in zip(found, ov.predict(_frames(2), [0, 1]), strict=True):
        merged = merge_instances(f)
        assert merged.keys() == res.keys()
        for c in merged:
            np.testing.assert_array_equal(merged[c].mask, res[c].mask)
