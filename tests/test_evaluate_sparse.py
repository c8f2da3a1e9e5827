"""`evaluate frames` with ground truth for some frames only: matched by name or frame number, the
other frames left out and counted (issue 28, item 4)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from napari_sasvi.cli import main
from napari_sasvi.core.datasets import ClassTable
from napari_sasvi.core.errors import InputError
from napari_sasvi.core.inputs.coco_labels import decode_rle
from napari_sasvi.core.metrics.evaluate import iter_evaluate_frames
from napari_sasvi.core.metrics.matching import match_frames
from napari_sasvi.core.progress import drain
from napari_sasvi.core.store.sasvi_store import SasviStore

TABLE = ClassTable.from_dict(
    {
        "name": "t",
        "no_label": 0,
        "ignore_ids": [0],
        "classes": [{"id": 0, "name": "bg"}, {"id": 1, "name": "tool"}, {"id": 2, "name": "organ"}],
    }
)
H, W = 6, 8


def _stacks(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(prediction, ground truth), (n, H, W) uint8 in {0, 1, 2}; they agree on about half the pixels."""
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 3, (n, H, W)).astype(np.uint8)
    pred = np.where(rng.random((n, H, W)) < 0.5, gt, rng.integers(0, 3, (n, H, W))).astype(np.uint8)
    return pred, gt


def _write(folder, stack, names) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for a, name in zip(stack, names, strict=True):
        Image.fromarray(a).save(folder / name)


def _dice_by_hand(pred: np.ndarray, gt: np.ndarray) -> float:
    """Macro over classes 1 and 2 of the Dice pooled over the given frames."""
    d = []
    for c in (1, 2):
        p, g = pred == c, gt == c
        d.append(2 * np.sum(p & g) / (p.sum() + g.sum()))
    return float(np.mean(d))


def _evaluate(pred, gt, classes=TABLE):
    return drain(iter_evaluate_frames(pred, gt, classes))


def test_sparse_ground_truth_by_name_scores_exactly_those_frames(tmp_path):
    pred, gt = _stacks(10)
    _write(tmp_path / "pred", pred, [f"{t:04d}.png" for t in range(10)])
    kept = [2, 5, 9]
    _write(tmp_path / "gt", gt[kept], [f"{t:04d}.png" for t in kept])
    report = _evaluate(tmp_path / "pred", tmp_path / "gt")
    assert report["n_scored"] == 3 and report["n_frames"] == 10
    assert report["frames"]["pred"] == {"n_scored": 3, "n_frames": 10, "matched_by": "name", "scored": kept}
    assert report["macro_dice"] == pytest.approx(_dice_by_hand(pred[kept], gt[kept]))
    # positions would pair the 3 files with frames 0, 1, 2: a different (wrong) score
    assert report["macro_dice"] != pytest.approx(_dice_by_hand(pred[:3], gt[kept]))
    series = report["per_frame_macro_dice"]["pred"]
    assert len(series) == 10 and [t for t, v in enumerate(series) if v is not None] == kept
    assert series[5] == pytest.approx(_dice_by_hand(pred[[5]], gt[[5]]))


def test_72_of_73_through_the_cli(tmp_path, capsys):
    pred, gt = _stacks(73, seed=1)
    _write(tmp_path / "pred", pred, [f"{t:04d}.png" for t in range(73)])
    _write(tmp_path / "gt", gt[:72], [f"{t:04d}.png" for t in range(72)])  # the last frame has no mask
    (tmp_path / "t.json").write_text(json.dumps(TABLE.to_dict()))
    out = [str(tmp_path / "pred"), str(tmp_path / "gt"), "--classes", str(tmp_path / "t.json")]
    assert main(["evaluate", "frames", *out, "--json", str(tmp_path / "o.json"), "--csv", str(tmp_path / "o.csv")]) == 0
    text = capsys.readouterr().out
    assert "scored 72 of 73 frames (ground truth matched by name: 72 by stem)" in text
    assert "scored 72 of 73 frames (frames without ground truth left out)" in text
    report = json.loads((tmp_path / "o.json").read_text())
    assert (report["n_scored"], report["n_frames"]) == (72, 73)
    assert report["macro_dice"] == pytest.approx(_dice_by_hand(pred[:72], gt[:72]))
    macro = list(csv.DictReader(open(tmp_path / "o.csv")))[-1]
    assert macro["name"] == "macro" and (macro["n_scored"], macro["n_frames"]) == ("72", "73")


def test_full_ground_truth_is_still_matched_by_position(tmp_path):
    pred, gt = _stacks(4, seed=2)
    _write(tmp_path / "pred", pred, [f"{t:04d}.png" for t in range(4)])
    _write(tmp_path / "gt", gt, [f"mask_{t + 100}.png" for t in range(4)])  # names that fit no frame
    report = _evaluate(tmp_path / "pred", tmp_path / "gt")
    assert report["frames"]["pred"]["matched_by"] == "position" and report["n_scored"] == 4
    assert report["macro_dice"] == pytest.approx(_dice_by_hand(pred, gt))


def test_by_stem_prefix_and_by_frame_number(tmp_path):
    pred, gt = _stacks(8, seed=3)
    _write(tmp_path / "pred", pred, [f"frame_{t:04d}.png" for t in range(8)])
    # CholecSeg8k's names: the frame's stem, then what the file is
    _write(tmp_path / "ws", gt[[1, 6]], ["frame_0001_watershed_mask.png", "frame_0006_watershed_mask.png"])
    report = _evaluate(tmp_path / "pred", tmp_path / "ws")
    assert report["frames"]["pred"]["scored"] == [1, 6]
    assert report["macro_dice"] == pytest.approx(_dice_by_hand(pred[[1, 6]], gt[[1, 6]]))
    # the trailing integer: mask_3.png is frame_0003.png
    _write(tmp_path / "num", gt[[3, 4]], ["mask_3.png", "mask_4.png"])
    report = _evaluate(tmp_path / "pred", tmp_path / "num")
    assert report["frames"]["pred"]["scored"] == [3, 4]
    assert report["macro_dice"] == pytest.approx(_dice_by_hand(pred[[3, 4]], gt[[3, 4]]))
    m = match_frames(None, 8, ["gt_2.png", "gt_7.png"], [True, True], "v")  # no frame names: the index
    assert m.pairs == ((2, 0), (7, 1)) and m.how == (("frame number", 2),)


def test_ground_truth_that_matches_no_frame_is_an_error(tmp_path, capsys):
    pred, gt = _stacks(10, seed=4)
    _write(tmp_path / "pred", pred, [f"{t:04d}.png" for t in range(10)])
    _write(tmp_path / "gt", gt[:3], ["0001.png", "0042.png", "0043.png"])
    with pytest.raises(InputError, match=r"0042\.png and 1 more matches no prediction frame \(10 frames: 0000"):
        _evaluate(tmp_path / "pred", tmp_path / "gt")
    (tmp_path / "t.json").write_text(json.dumps(TABLE.to_dict()))
    assert main(["evaluate", "frames", str(tmp_path / "pred"), str(tmp_path / "gt"), "--classes",
                 str(tmp_path / "t.json")]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "0042.png" in err and "Traceback" not in err
    # a ground truth with no names (an array) cannot be matched to another frame count
    np.save(tmp_path / "gt.npy", gt[:3])
    with pytest.raises(InputError, match="no file names"):
        _evaluate(tmp_path / "pred", tmp_path / "gt.npy")
    # nothing labelled at all
    _write(tmp_path / "blank", np.full((2, H, W), 255, np.uint8), ["0001.png", "0002.png"])
    with pytest.raises(InputError, match="no frame of the ground truth holds a label"):
        _evaluate(tmp_path / "pred", tmp_path / "blank")


def test_ambiguous_ground_truth_is_an_error(tmp_path):
    pred, gt = _stacks(6, seed=5)
    _write(tmp_path / "pred", pred, ["a_1.png", "b_1.png", "a_2.png", "b_2.png", "a_3.png", "b_3.png"])
    _write(tmp_path / "gt", gt[:1], ["0001.png"])
    with pytest.raises(InputError, match=r"0001\.png matches 2 prediction frames by frame number \(a_1\.png, b_1"):
        _evaluate(tmp_path / "pred", tmp_path / "gt")
    # two files for one frame
    with pytest.raises(InputError, match=r"0003\.png and mask_3\.png both match the frame frame 3"):
        match_frames(None, 6, ["0003.png", "mask_3.png"], [True, True], "v")


def test_store_predictions_match_like_folder_predictions(tmp_path):
    pred, gt = _stacks(10, seed=6)
    frames = tmp_path / "frames"
    _write(frames, np.repeat(pred[..., None], 3, axis=3) * 60, [f"{t:04d}.jpg" for t in range(10)])
    store = SasviStore.open(tmp_path / "p.zarr", n_frames=10, frame_size=(H, W), classes=TABLE,
                            signature={"k": 1}, frames_path=frames)  # fmt: skip
    for t in range(10):
        store.write_frame(t, pred[t], pred[t], [])
    _write(tmp_path / "pred", pred, [f"{t:04d}.png" for t in range(10)])
    kept = [0, 4, 7]
    _write(tmp_path / "gt", gt[kept], [f"{t:04d}.png" for t in kept])
    by_store = _evaluate(tmp_path / "p.zarr", tmp_path / "gt", None)  # the store brings its table
    by_folder = _evaluate(tmp_path / "pred", tmp_path / "gt")
    assert by_store["frames"]["p"]["scored"] == by_folder["frames"]["pred"]["scored"] == kept
    assert by_store["macro_dice"] == pytest.approx(by_folder["macro_dice"])
    assert by_store["macro_dice"] == pytest.approx(_dice_by_hand(pred[kept], gt[kept]))
    # a store whose frames are gone (or a video): matched by the frame number as the index
    frames.rename(tmp_path / "moved")
    _write(tmp_path / "gt_n", gt[kept], [f"gt_{t}.png" for t in kept])
    report = _evaluate(tmp_path / "p.zarr", tmp_path / "gt_n", None)
    assert report["frames"]["p"]["scored"] == kept
    assert report["macro_dice"] == pytest.approx(by_folder["macro_dice"])


# -- COCO ground truth ------------------------------------------------------------------------------
def _rle_uncompressed(mask: np.ndarray) -> dict:
    flat = mask.T.ravel().astype(np.uint8)  # column-major
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    runs = np.diff(np.concatenate([[0], edges])).tolist()
    return {"size": list(mask.shape), "counts": runs}


def test_decode_rle_matches_pycocotools():
    mask_utils = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(7)
    for shape in ((1, 1), (5, 7), (37, 61)):
        for p in (0.0, 0.1, 0.5, 1.0):
            m = rng.random(shape) < p
            r = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            np.testing.assert_array_equal(decode_rle({"size": r["size"], "counts": r["counts"].decode()}), m)
            np.testing.assert_array_equal(decode_rle({"size": r["size"], "counts": r["counts"]}), m)
            np.testing.assert_array_equal(decode_rle(_rle_uncompressed(m)), m)
    with pytest.raises(ValueError, match="cover"):
        decode_rle({"size": [2, 2], "counts": [1, 2]})


def test_coco_ground_truth_sparse(tmp_path, capsys):
    pred, gt = _stacks(6, seed=8)
    names = [f"v_{100 + 25 * t}.jpg" for t in range(6)]
    annotated = [1, 4]
    anns = []
    for t in annotated:
        for c in (1, 2):
            anns.append({"id": len(anns) + 1, "image_id": t + 10, "category_id": c, "iscrowd": 0,
                         "segmentation": _rle_uncompressed(gt[t] == c)})  # fmt: skip
    images = [{"id": t + 10, "file_name": n, "height": H, "width": W} for t, n in enumerate(names)]
    doc = {"images": images[::-1], "annotations": anns,  # listed out of order: sorted by file name
           "categories": [{"id": 1, "name": "tool"}, {"id": 2, "name": "organ"}]}  # fmt: skip
    (tmp_path / "gt.json").write_text(json.dumps(doc))
    _write(tmp_path / "pred", pred, [f"{t:04d}.png" for t in range(6)])
    # every image listed: by position; images without annotations are left out
    report = _evaluate(tmp_path / "pred", tmp_path / "gt.json", None)  # the COCO file's categories
    assert report["frames"]["pred"] == {"n_scored": 2, "n_frames": 6, "matched_by": "position", "scored": annotated}
    want = _dice_by_hand(pred[annotated], gt[annotated])
    assert report["macro_dice"] == pytest.approx(want)
    # only the annotated images listed, frames named like them: by stem
    doc_sparse = dict(doc, images=[images[t] for t in annotated])
    (tmp_path / "sparse.json").write_text(json.dumps(doc_sparse))
    _write(tmp_path / "named", pred, [n.replace(".jpg", ".png") for n in names])
    report = _evaluate(tmp_path / "named", tmp_path / "sparse.json", None)
    assert report["frames"]["named"]["scored"] == annotated and report["macro_dice"] == pytest.approx(want)
    # through the CLI, against prediction frames whose names say nothing: an error naming the image
    assert main(["evaluate", "frames", str(tmp_path / "pred"), str(tmp_path / "sparse.json")]) == 2
    assert "v_125.jpg" in capsys.readouterr().err


def test_coco_polygons_and_overlaps(tmp_path):
    from napari_sasvi.core.inputs.coco_labels import CocoRaw

    big = np.zeros((H, W), bool)
    big[:, :6] = True
    doc = {
        "images": [{"id": 1, "file_name": "0000.jpg", "height": H, "width": W}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 4, 1, 4, 3, 1, 3]]},  # a box
            {"id": 2, "image_id": 1, "category_id": 2, "segmentation": _rle_uncompressed(big)},
        ],
        "categories": [{"id": 1, "name": "tool"}, {"id": 2, "name": "organ"}],
    }
    (tmp_path / "a.json").write_text(json.dumps(doc))
    a = CocoRaw(tmp_path / "a.json").raw(0)
    want = np.where(big, 2, 0).astype(np.uint8)
    want[1:4, 1:5] = 1  # the smaller instance is painted last, over the larger one
    np.testing.assert_array_equal(a, want)
    doc["annotations"][1]["image_id"] = 9
    (tmp_path / "b.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match="refers to image 9, not listed"):
        CocoRaw(tmp_path / "b.json")
