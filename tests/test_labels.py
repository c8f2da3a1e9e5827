"""The one label reader: encodings decided from the files (or asked for), values never dropped,
and `segment` and `evaluate` agreeing on the same data in every format."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from napari_sasvi.cli import main
from napari_sasvi.core.datasets import CHOLECSEG8K, get_class_table
from napari_sasvi.core.errors import LabelEncodingError
from napari_sasvi.core.inputs.labels import open_labels

T, H, W = 8, 24, 32
WATERSHED = {c: g for g, c in CHOLECSEG8K.source_values.items()}  # class id -> grey


def class_ids() -> np.ndarray:
    """A CholecSeg8k-like class-id stack: background, liver, a grasper that enters at t=3 and a
    gallbladder; a white (unlabelled) border column."""
    lab = np.zeros((T, H, W), np.uint8)
    lab[:, :, 16:] = 2  # liver
    lab[:, 12:, :10] = 10  # gallbladder
    for t in range(3, T):
        lab[t, 2:8, 2 + t : 8 + t] = 5  # grasper, moving
    lab[:, :, -1] = 255  # border: unlabelled
    return lab


def to_watershed(lab: np.ndarray) -> np.ndarray:
    lut = np.full(256, 255, np.uint8)
    for c, g in WATERSHED.items():
        lut[c] = g
    return lut[lab]


def write(folder, stack, mode="L", palette=None):
    folder.mkdir(parents=True)
    for t, a in enumerate(stack):
        if mode == "RGB":
            im = Image.fromarray(np.dstack([a] * 3))
        elif mode == "P":
            im = Image.fromarray(a, mode="L").convert("P")
            im = Image.frombytes("P", (a.shape[1], a.shape[0]), a.tobytes())
            im.putpalette(palette or CHOLECSEG8K.palette())
        else:
            im = Image.fromarray(a)
        im.save(folder / f"{t:04d}.png")
    return folder


@pytest.fixture
def lab():
    return class_ids()


def test_class_ids_in_l_and_p_and_watershed_greys_read_the_same(tmp_path, lab):
    l_ = open_labels(write(tmp_path / "l", lab), CHOLECSEG8K)
    p_ = open_labels(write(tmp_path / "p", lab, "P"), CHOLECSEG8K)
    ws = open_labels(write(tmp_path / "ws", to_watershed(lab), "RGB"), CHOLECSEG8K)
    assert (l_.encoding, p_.encoding, ws.encoding) == ("class-ids", "class-ids", "source")
    for t in range(T):
        np.testing.assert_array_equal(l_[t], lab[t])
        np.testing.assert_array_equal(p_[t], lab[t])
        np.testing.assert_array_equal(ws[t], lab[t])
    # .npy and a plain array go through the same reader
    np.save(tmp_path / "a.npy", lab)
    assert open_labels(tmp_path / "a.npy", CHOLECSEG8K)[4].tolist() == lab[4].tolist()
    assert open_labels(lab, CHOLECSEG8K).encoding == "class-ids"


def test_explicit_encoding_overrides_and_checks(tmp_path, lab):
    ws = write(tmp_path / "ws", to_watershed(lab), "RGB")
    ids = write(tmp_path / "ids", lab)
    with pytest.raises(LabelEncodingError, match=r"values 21, 22, 31, 50 are not classes") as e:
        open_labels(ws, CHOLECSEG8K, "class-ids")
    assert "source_values" in str(e.value)
    with pytest.raises(LabelEncodingError, match="not in the source_values"):
        open_labels(ids, CHOLECSEG8K, "source")
    assert open_labels(ws, CHOLECSEG8K, "source").encoding == "source"


def test_values_that_fit_both_are_decided_by_the_file_type(tmp_path):
    both = np.full((2, 4, 4), 5, np.uint8)  # 5, 11 and 12 are class ids and watershed greys
    both[:, :2] = 12
    ws = open_labels(write(tmp_path / "rgb", both, "RGB"), CHOLECSEG8K)
    ids = open_labels(write(tmp_path / "l", both), CHOLECSEG8K)
    assert ws.encoding == "source" and ws[0][0, 0] == 4  # grey 12 = fat
    assert ids.encoding == "class-ids" and ids[0][0, 0] == 12


def test_values_outside_the_table_are_an_error_that_lists_them(tmp_path, lab):
    bad = lab.copy()
    bad[5, 0, 0] = 40
    bad[6, 0, 0] = 77
    folder = write(tmp_path / "bad", bad)
    with pytest.raises(LabelEncodingError) as e:
        open_labels(folder, CHOLECSEG8K)
    msg = str(e.value)
    assert "40" in msg and "77" in msg and "0005.png" in msg and "source_values" in msg
    assert len(msg.splitlines()[0]) <= 200


def test_davis_binary_masks_need_source_values_and_keep_the_object(tmp_path):
    binary = np.zeros((3, 8, 8), np.uint8)
    binary[:, 2:6, 2:6] = 255
    folder = write(tmp_path / "davis", binary)
    table = tmp_path / "davis.yaml"
    table.write_text("no_label: 0\nignore_ids: [0]\nclasses: [{id: 0, name: bg}, {id: 1, name: object}]\n")
    with pytest.raises(LabelEncodingError, match="only the values 0 and 255"):
        open_labels(folder, get_class_table(table))
    table.write_text(table.read_text() + "source_values: {0: 0, 255: 1}\n")
    stack = open_labels(folder, get_class_table(table))
    assert stack.encoding == "source"
    assert int((stack[1] == 1).sum()) == 16
    # asked for explicitly, 255 is "no label": stated, not guessed
    assert open_labels(folder, get_class_table(table), "class-ids")[1].max() == 255


def test_colour_masks_and_a_folder_that_fits_nothing(tmp_path):
    colour = np.zeros((2, 6, 6, 3), np.uint8)
    colour[..., 0] = 255
    (tmp_path / "c").mkdir()
    for t in range(2):
        Image.fromarray(colour[t]).save(tmp_path / "c" / f"{t}.png")
    with pytest.raises(LabelEncodingError, match="colour mask"):
        open_labels(tmp_path / "c", CHOLECSEG8K)
    odd = write(tmp_path / "odd", np.full((2, 4, 4), 200, np.uint8))
    with pytest.raises(LabelEncodingError, match="fit neither") as e:
        open_labels(odd, CHOLECSEG8K)
    assert "200" in str(e.value)


def test_mask_fingerprint_covers_content(tmp_path, lab):
    folder = write(tmp_path / "m", lab)
    a = open_labels(folder, CHOLECSEG8K).fingerprint()
    changed = lab[4].copy()
    changed[0, 0] = 2  # one pixel, same file name, same frame size
    Image.fromarray(changed).save(folder / "0004.png")
    assert open_labels(folder, CHOLECSEG8K).fingerprint() != a


# -- segment and evaluate on the same data -----------------------------------------------------------
def frames_for(lab: np.ndarray, folder) -> None:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for t, a in enumerate(lab):
        img = (np.stack([a * 20, a * 7 + 30, 255 - a * 9], -1) + rng.integers(0, 20, (*a.shape, 3))).astype(np.uint8)
        Image.fromarray(img).save(folder / f"{t:04d}.png")


def test_segment_and_evaluate_agree_on_watershed_and_class_id_masks(tmp_path, lab, capsys):
    frames_for(lab, tmp_path / "frames")
    ws = write(tmp_path / "ws", to_watershed(lab), "RGB")
    ids = write(tmp_path / "ids", lab)
    common = ["--dataset", "cholecseg8k", "--tracker", "flow"]
    for name, masks in (("ws", ws), ("ids", ids)):
        assert main(["segment", str(tmp_path / "frames"), "--out", str(tmp_path / f"{name}.zarr"),
                     "--overseer-masks", str(masks), *common]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "read as source" in out and "read as class-ids" in out
    import zarr

    a, b = zarr.open_group(str(tmp_path / "ws.zarr"), mode="r"), zarr.open_group(str(tmp_path / "ids.zarr"), mode="r")
    np.testing.assert_array_equal(a["labels"][:], b["labels"][:])
    np.testing.assert_array_equal(a["overseer"][:], b["overseer"][:])
    events = json.loads((tmp_path / "ws.zarr" / "sasvi_progress.json").read_text())["events"]
    first = next(e for e in events if e["kind"] == "restart")
    assert set(first["mask_labels"]) == {0, 2, 10}  # not "label 12" of misread greys
    # evaluate reads the same files the same way: the overseer array against either ground truth is exact
    for gt in (ws, ids):
        assert main(["evaluate", "frames", str(tmp_path / "ws.zarr"), str(gt), "--array", "overseer",
                     "--json", str(tmp_path / "f.json")]) == 0  # fmt: skip
        report = json.loads((tmp_path / "f.json").read_text())
        assert report["macro_dice"] == pytest.approx(1.0)
    # the watershed ground truth scored against itself: 1, not 0
    assert main(["evaluate", "frames", str(ws), str(ws), "--dataset", "cholecseg8k", "--json",
                 str(tmp_path / "self.json")]) == 0  # fmt: skip
    assert json.loads((tmp_path / "self.json").read_text())["macro_dice"] == pytest.approx(1.0)
    # and T agrees between the two encodings of the same labels
    for name, src in (("t_ws", ws), ("t_ids", ids)):
        assert main(["evaluate", "temporal", str(src), "--dataset", "cholecseg8k",
                     "--json", str(tmp_path / f"{name}.json")]) == 0  # fmt: skip
    t_ws = json.loads((tmp_path / "t_ws.json").read_text())["pooled"]["macro"]
    t_ids = json.loads((tmp_path / "t_ids.json").read_text())["pooled"]["macro"]
    assert t_ws == t_ids and t_ws["t_iou"] > 0.5


def test_evaluate_refuses_or_resizes_other_sizes(tmp_path, lab, capsys):
    gt = write(tmp_path / "gt", lab)
    small = write(tmp_path / "small", lab[:, ::2, ::2])
    assert main(["evaluate", "frames", str(small), str(gt), "--dataset", "cholecseg8k"]) == 2
    err = capsys.readouterr().err
    assert "--export-size 0 0" in err and "--resize nearest" in err
    assert main(["evaluate", "frames", str(small), str(gt), "--dataset", "cholecseg8k", "--resize", "nearest",
                 "--json", str(tmp_path / "r.json")]) == 0  # fmt: skip
    assert "resized from 16x12 to 32x24 (nearest neighbour)" in capsys.readouterr().out
    assert json.loads((tmp_path / "r.json").read_text())["macro_dice"] > 0.8


def test_evaluate_with_nothing_to_score_is_an_error(tmp_path, capsys):
    bg = write(tmp_path / "bg", np.zeros((2, 4, 4), np.uint8))  # only the ignored background
    assert main(["evaluate", "frames", str(bg), str(bg), "--dataset", "cholecseg8k"]) == 2
    assert "nothing was scored" in capsys.readouterr().err


def test_unlabelled_ground_truth_pixels_are_not_scored():
    from napari_sasvi.core.metrics.accuracy import overlap_counts

    gt = np.array([[1, 1, 255, 255]], np.uint8)
    pred = np.array([[1, 1, 1, 2]], np.uint8)
    d = overlap_counts([pred], [gt], [1, 2]).dice()
    assert d == {1: 1.0}  # class 1 painted into the unlabelled border costs nothing; class 2 unscored


def test_resize_nearest_matches_torch():
    import torch

    from napari_sasvi.core.metrics.accuracy import resize_nearest

    a = np.random.default_rng(1).integers(0, 13, (37, 53)).astype(np.uint8)
    for size in ((299, 299), (20, 31), (480, 854)):
        ref = torch.nn.functional.interpolate(torch.from_numpy(a)[None, None].float(), size=size, mode="nearest")
        np.testing.assert_array_equal(resize_nearest(a, size), ref[0, 0].numpy().astype(np.uint8))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32])
def test_a_label_map_splits_into_the_classes_it_holds(dtype):
    from napari_sasvi.core.inputs.labels import present_values
    from napari_sasvi.core.overseers.base import label_map_to_result

    rng = np.random.default_rng(3)
    lab = rng.choice(np.array([0, 2, 5, 9, 255], dtype), size=(48, 64))
    lab[0, 0] = 255
    assert present_values(lab) == [int(v) for v in np.unique(lab)]
    assert present_values(np.zeros((0, 4), dtype)) == []
    res = label_map_to_result(lab, [0, 2, 3, 9, 255], no_label=255)  # 5 is not wanted, 3 is absent
    assert list(res) == [0, 2, 9]
    for c, m in res.items():
        np.testing.assert_array_equal(m.mask, lab == c)
        assert m.score == 1.0


def test_lossy_mask_files_are_counted_not_skipped_silently(tmp_path, lab):
    from napari_sasvi.core.errors import EmptyInputError

    jpgs = tmp_path / "jpg"
    jpgs.mkdir()
    for t in range(3):
        Image.fromarray(lab[t]).save(jpgs / f"{t:04d}.jpg", quality=95)
    (jpgs / "notes.txt").write_text("not a mask: not counted")
    with pytest.raises(EmptyInputError) as e:
        open_labels(jpgs, CHOLECSEG8K)
    assert "3 .jpg files skipped: masks must be lossless PNG/TIFF/BMP/.npy" in str(e.value)
    assert "txt" not in str(e.value)


def test_a_count_that_differs_because_files_were_skipped_says_so(tmp_path, lab, capsys):
    masks = tmp_path / "masks"
    masks.mkdir()
    Image.fromarray(lab[0]).save(masks / "0000.png")
    for t in range(1, 4):
        Image.fromarray(lab[t]).save(masks / f"{t:04d}.jpeg")
    frames = tmp_path / "frames"
    frames.mkdir()
    for t in range(4):
        Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(frames / f"{t:04d}.png")
    rc = main(
        ["segment", str(frames), "--out", str(tmp_path / "o.zarr"), "--overseer-masks", str(masks)]
        + ["--dataset", "cholecseg8k", "--tracker", "flow", "--device", "cpu"]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert "The overseer masks hold 1 frames but the video has 4" in err
    assert f"In {masks}: 3 .jpeg files skipped: masks must be lossless PNG/TIFF/BMP/.npy" in err
    assert not (tmp_path / "o.zarr").exists()


def test_a_frame_folder_without_frames_names_what_it_holds(tmp_path):
    from napari_sasvi.core.errors import EmptyInputError
    from napari_sasvi.core.inputs.frames import list_frame_files

    d = tmp_path / "d"
    d.mkdir()
    for name in ("a.gif", "b.gif", "files.csv", ".DS_Store"):
        (d / name).write_bytes(b"x")
    with pytest.raises(EmptyInputError, match=r"\(2 \.gif files, 1 \.csv file skipped\)"):
        list_frame_files(d)
