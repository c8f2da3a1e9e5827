"""Instance label files (issue 29, items 1 and 7): instance PNGs + instances.json, palette PNGs,
LabelMe and COCO read back object by object, matched to frames, refused with one line when bad;
the instance replay overseer on top of them."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image, ImageDraw

from napari_sasvi.core.datasets import PRESETS, ClassTable
from napari_sasvi.core.errors import EmptyInputError, FrameSizeError, InputError
from napari_sasvi.core.inputs.instance_labels import InstanceSource, detect_format, open_instance_labels
from napari_sasvi.core.instances.types import InstanceOverseer
from napari_sasvi.core.overseers.replay_instances import InstanceReplayOverseer

TABLE = ClassTable.from_dict(
    {
        "name": "tools",
        "no_label": 0,
        "ignore_ids": [0],
        "classes": [
            {"id": 0, "name": "background"},
            {"id": 1, "name": "grasper", "color": [255, 0, 0]},
            {"id": 2, "name": "hook", "color": [0, 128, 0]},
        ],
    }
)
H, W = 16, 20


def _box(y0, y1, x0, x1) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def _poly_mask(points) -> np.ndarray:
    im = Image.new("1", (W, H), 0)
    ImageDraw.Draw(im).polygon([tuple(p) for p in points], fill=1)
    return np.asarray(im, bool)


def _tree(root) -> dict:
    """Every file under root with its size and mtime: what a refused input must leave as it was."""
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            st = os.stat(os.path.join(d, f))
            out[os.path.join(d, f)] = (st.st_size, st.st_mtime_ns)
    return out


def _by_id(instances) -> dict:
    return {x.source_id: x for x in instances}


# -- instance PNGs ------------------------------------------------------------------------------------
def _instance_pngs(folder, frames: list[np.ndarray], classes: dict, mode_16: bool = False):
    folder.mkdir(parents=True, exist_ok=True)
    for t, ids in enumerate(frames):
        Image.fromarray(ids.astype(np.uint16 if mode_16 else np.uint8)).save(folder / f"{t:04d}.png")
    (folder / "instances.json").write_text(json.dumps({"classes": classes}))
    return folder


def _two_graspers() -> list[np.ndarray]:
    f0 = np.zeros((H, W), np.uint8)
    f0[_box(0, 5, 0, 6)] = 3
    f0[_box(8, 12, 10, 18)] = 7
    f2 = np.zeros((H, W), np.uint8)
    f2[_box(2, 6, 4, 9)] = 3
    f2[_box(10, 16, 0, 5)] = 9
    return [f0, np.zeros((H, W), np.uint8), f2]


def test_instance_pngs_round_trip(tmp_path):
    frames = _two_graspers()
    folder = _instance_pngs(tmp_path / "inst", frames, {"3": "grasper", "7": 2, "9": "Grasper"})
    assert detect_format(folder) == "instance_png"
    src = open_instance_labels(folder, TABLE, frame_size=(H, W))
    assert (src.kind, src.n_frames, src.annotated, src.class_table) == ("instance_png", 3, (0, 1, 2), TABLE)
    f0 = _by_id(src.instances(0))
    assert sorted(f0) == [3, 7]
    assert (f0[3].class_id, f0[7].class_id) == (1, 2)
    np.testing.assert_array_equal(f0[3].mask, frames[0] == 3)
    np.testing.assert_array_equal(f0[7].mask, frames[0] == 7)
    assert src.instances(1) == []  # annotated, nothing on it
    f2 = _by_id(src.instances(2))
    assert sorted(f2) == [3, 9] and f2[9].class_id == 1  # names match in any case
    np.testing.assert_array_equal(f2[3].mask, frames[2] == 3)
    with pytest.raises(IndexError):
        src.instances(3)


def test_instance_pngs_16_bit_and_table_from_names(tmp_path):
    ids = np.zeros((H, W), np.uint16)
    ids[_box(0, 4, 0, 4)] = 300
    ids[_box(5, 9, 5, 9)] = 1000
    folder = _instance_pngs(tmp_path / "i16", [ids, ids], {"300": "hook", "1000": "clip"}, mode_16=True)
    src = open_instance_labels(folder)
    assert [(c.id, c.name) for c in src.class_table] == [(0, "background"), (1, "clip"), (2, "hook")]
    got = _by_id(src.instances(1))
    assert (got[300].class_id, got[1000].class_id) == (2, 1)
    np.testing.assert_array_equal(got[1000].mask, ids == 1000)
    # class ids in instances.json need the table they refer to
    (folder / "instances.json").write_text(json.dumps({"classes": {"300": 1, "1000": 2}}))
    with pytest.raises(InputError, match="gives class ids: give the class table"):
        open_instance_labels(folder)


def test_fingerprint_follows_content(tmp_path):
    frames = _two_graspers()
    folder = _instance_pngs(tmp_path / "inst", frames, {"3": 1, "7": 2, "9": 1})
    a = open_instance_labels(folder, TABLE).fingerprint()
    assert open_instance_labels(folder, TABLE).fingerprint() == a
    (folder / "instances.json").write_text(json.dumps({"classes": {"3": 1, "7": 1, "9": 1}}))
    b = open_instance_labels(folder, TABLE).fingerprint()
    frames[2][0, 0] = 3
    Image.fromarray(frames[2]).save(folder / "0002.png")
    c = open_instance_labels(folder, TABLE).fingerprint()
    assert len({a, b, c}) == 3


# -- palette PNGs -------------------------------------------------------------------------------------
def test_palette_pngs_make_object_classes(tmp_path):
    folder = tmp_path / "davis"
    folder.mkdir()
    palette = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (768 - 9)
    palette[3 * 255 : 3 * 256] = [224, 224, 192]
    ids = np.zeros((H, W), np.uint8)
    ids[_box(0, 6, 0, 6)] = 1
    ids[_box(8, 14, 8, 14)] = 2
    ids[15, :] = 255  # void
    for t in range(2):
        im = Image.fromarray(ids if t == 0 else np.where(ids == 2, 0, ids).astype(np.uint8), mode="P")
        im.putpalette(palette)
        im.save(folder / f"{t:05d}.png")
    assert detect_format(folder) == "palette"
    src = open_instance_labels(folder, None, frame_count=2)
    assert src.kind == "palette"
    table = src.class_table
    assert [(c.id, c.name, c.color) for c in table] == [
        (0, "background", (0, 0, 0)),
        (1, "object 1", (128, 0, 0)),
        (2, "object 2", (0, 128, 0)),
    ]
    assert table.no_label == 0
    f0 = _by_id(src.instances(0))
    assert sorted(f0) == [1, 2] and f0[2].class_id == 2
    np.testing.assert_array_equal(f0[1].mask, ids == 1)
    assert sorted(_by_id(src.instances(1))) == [1]
    # with a class table, palette PNGs need instances.json to say each object's class
    with pytest.raises(InputError, match="without instances.json"):
        open_instance_labels(folder, TABLE)


# -- LabelMe -------------------------------------------------------------------------------------------
def _labelme(folder, name, shapes, size=(H, W)):
    folder.mkdir(parents=True, exist_ok=True)
    doc = {
        "version": "5.0",
        "shapes": shapes,
        "imagePath": f"{name}.png",
        "imageHeight": size[0],
        "imageWidth": size[1],
    }
    (folder / f"{name}.json").write_text(json.dumps(doc))


def _shape(label, gid, points, kind="polygon"):
    return {"label": label, "group_id": gid, "points": points, "shape_type": kind, "flags": {}}


G1A, G1B = [[0, 0], [5, 0], [5, 4], [0, 4]], [[10, 10], [14, 10], [12, 14]]
HOOK = [[15, 1], [19, 6]]


def test_labelme_round_trip(tmp_path):
    folder = tmp_path / "lm"
    _labelme(folder, "0000", [])
    _labelme(
        folder, "0001", [_shape("grasper", 1, G1A), _shape("hook", 1, HOOK, "rectangle"), _shape("grasper", 1, G1B)]
    )
    _labelme(
        folder, "0002", [_shape("hook", 1, HOOK, "rectangle"), _shape("grasper", None, G1B), _shape("grasper", 1, G1A)]
    )
    assert detect_format(folder) == "labelme"
    src = open_instance_labels(folder, PRESETS["cholecinstanceseg"], frame_size=(H, W))
    assert (src.kind, src.annotated) == ("labelme", (0, 1, 2))
    assert src.instances(0) == []  # a frame with no shapes is annotated, empty
    f1 = _by_id(src.instances(1))
    assert sorted(f1) == [1, 2]  # (grasper, 1) and (hook, 1), in order of first appearance
    assert (f1[1].class_id, f1[2].class_id) == (1, 2)  # cholecinstanceseg: grasper 1, hook 2
    np.testing.assert_array_equal(f1[1].mask, _poly_mask(G1A) | _poly_mask(G1B))  # two polygons, one instance
    np.testing.assert_array_equal(f1[2].mask, _poly_mask([[15, 1], [19, 1], [19, 6], [15, 6]]))
    f2 = src.instances(2)
    assert sorted((x.class_id, x.source_id) for x in f2 if x.source_id is not None) == [(1, 1), (2, 2)]
    loose = [x for x in f2 if x.source_id is None]  # group_id null: its own instance, no identity
    assert len(loose) == 1 and loose[0].class_id == 1
    np.testing.assert_array_equal(loose[0].mask, _poly_mask(G1B))
    # without a table, the labels' names make one
    own = open_instance_labels(folder)
    assert [c.name for c in own.class_table] == ["background", "grasper", "hook"]


def test_labelme_matched_to_frames_by_name(tmp_path):
    folder = tmp_path / "lm"
    _labelme(folder, "frame_0003", [_shape("grasper", 1, G1A)])
    _labelme(folder, "frame_0007", [_shape("grasper", 1, G1B)])
    names = [f"frame_{t:04d}" for t in range(10)]
    src = open_instance_labels(folder, TABLE, frame_count=10, frame_names=names)
    assert (src.n_frames, src.annotated) == (10, (3, 7))
    assert src.instances(5) == [] and src.file_name(7) == "frame_0007.json"
    np.testing.assert_array_equal(src.instances(7)[0].mask, _poly_mask(G1B))
    # by frame number against the index when the video has no names
    assert open_instance_labels(folder, TABLE, frame_count=10).annotated == (3, 7)


# -- COCO ----------------------------------------------------------------------------------------------
def _runs(mask: np.ndarray) -> list[int]:
    flat = mask.T.ravel().astype(np.uint8)  # column-major
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    return np.diff(np.concatenate([[0], edges])).tolist()


def _compressed(runs: list[int]) -> str:
    """pycocotools' rleToString."""
    out = []
    for i, x in enumerate(runs):
        if i > 2:
            x -= runs[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            out.append(chr((c | (0x20 if more else 0)) + 48))
    return "".join(out)


def _coco(path, anns, cats=((7, "hook"), (4, "grasper")), n=4):
    images = [{"id": 100 + t, "file_name": f"v_{1000 + 25 * t}.jpg", "height": H, "width": W} for t in range(n)]
    doc = {"images": images, "annotations": anns, "categories": [{"id": i, "name": nm} for i, nm in cats]}
    path.write_text(json.dumps(doc))
    return path


def _ann(k, image, cat, seg, **kw):
    return {"id": k, "image_id": image, "category_id": cat, "segmentation": seg, "iscrowd": 0, **kw}


def test_coco_round_trip(tmp_path):
    a, b = _box(1, 7, 2, 9), _box(9, 15, 11, 19)
    poly = [2, 2, 12, 2, 12, 10, 2, 10]
    anns = [
        _ann(1, 101, 4, {"size": [H, W], "counts": _compressed(_runs(a))}, track_id=5),
        _ann(2, 101, 7, {"size": [H, W], "counts": _runs(b)}, attributes={"track_id": 6}),
        _ann(3, 103, 4, [poly], track_id=5),
        _ann(4, 103, 4, {"size": [H, W], "counts": _runs(b)}, score=0.25),
    ]
    path = _coco(tmp_path / "ann.json", anns)
    assert detect_format(path) == "coco"
    src = open_instance_labels(path, TABLE, frame_count=4, frame_names=[f"{t:04d}" for t in range(4)])
    assert (src.kind, src.annotated) == ("coco", (1, 3))  # images without annotations are not annotated
    assert src.instances(0) == [] and src.instances(2) == []
    f1 = _by_id(src.instances(1))
    assert (f1[5].class_id, f1[6].class_id) == (1, 2)  # by category name: grasper 1, hook 2
    np.testing.assert_array_equal(f1[5].mask, a)
    np.testing.assert_array_equal(f1[6].mask, b)
    f3 = src.instances(3)
    tracked = [x for x in f3 if x.source_id == 5]
    assert len(tracked) == 1
    np.testing.assert_array_equal(tracked[0].mask, _poly_mask([(2, 2), (12, 2), (12, 10), (2, 10)]))
    plain = [x for x in f3 if x.source_id is None]  # no track id: no identity across frames
    assert len(plain) == 1 and plain[0].score == 0.25
    # without a table: the file's categories at their ids
    own = open_instance_labels(path)
    assert [(c.id, c.name) for c in own.class_table] == [(0, "background"), (4, "grasper"), (7, "hook")]
    assert {x.class_id for x in own.instances(1)} == {4, 7}


# -- the overseer ----------------------------------------------------------------------------------------
def test_replay_overseer_instances_and_classes_agree(tmp_path):
    folder = _instance_pngs(tmp_path / "inst", _two_graspers(), {"3": 1, "7": 2, "9": 1})
    ov = InstanceReplayOverseer(folder, TABLE, frame_count=3, frame_size=(H, W))
    assert isinstance(ov, InstanceOverseer) and ov.needs_frames is False
    per_instance = ov.predict_instances(None, [0, 1, 2])
    per_class = ov.predict(None, [0, 1, 2])
    assert per_instance[1] == [] and per_class[1] == {}
    for objs, res in zip(per_instance, per_class, strict=True):
        assert set(res) == {x.class_id for x in objs}
        for c, cm in res.items():
            union = np.logical_or.reduce([x.mask for x in objs if x.class_id == c])
            np.testing.assert_array_equal(cm.mask, union)
            assert cm.score == 1.0
    assert set(per_class[2]) == {1} and per_class[2][1].mask.sum() == (_two_graspers()[2] > 0).sum()
    d = ov.describe()
    assert (d["type"], d["kind"], d["fingerprint"]) == ("replay_instances", "instance_png", ov.fingerprint())
    assert isinstance(ov.source, InstanceSource) and ov.classes is TABLE


# -- bad input: one line each, nothing written ---------------------------------------------------------------
def _bad_png_no_class(root):
    return _instance_pngs(root / "x", _two_graspers(), {"3": 1, "7": 2}), TABLE


def _bad_png_class_outside(root):
    return _instance_pngs(root / "x", _two_graspers(), {"3": 1, "7": 9, "9": 1}), TABLE


def _bad_png_no_label_class(root):
    return _instance_pngs(root / "x", _two_graspers(), {"3": 0, "7": 2, "9": 1}), TABLE


def _bad_png_id_twice(root):
    folder = _instance_pngs(root / "x", _two_graspers(), {})
    (folder / "instances.json").write_text('{"classes": {"3": 1, "7": 2, "9": 1, "3": 2}}')
    return folder, TABLE


def _bad_png_id_twice_spelt(root):
    return _instance_pngs(root / "x", _two_graspers(), {"3": 1, "7": 2, "9": 1, "03": 2}), TABLE


def _bad_labelme_label(root):
    _labelme(root / "x", "0000", [_shape("scalpel", 1, G1A)])
    return root / "x", TABLE


def _bad_labelme_outside(root):
    _labelme(root / "x", "0000", [_shape("grasper", 1, [[0, 0], [W + 3, 0], [4, 4]])])
    return root / "x", TABLE


def _bad_two_files_one_frame(root):
    _labelme(root / "x", "0003", [_shape("grasper", 1, G1A)])
    Image.fromarray(np.zeros((H, W), np.uint8)).save(root / "x" / "0003.png")
    return root / "x", TABLE


def _bad_two_files_one_stem(root):
    folder = _instance_pngs(root / "x", _two_graspers(), {"3": 1, "7": 2, "9": 1})
    Image.fromarray(np.zeros((H, W), np.uint8)).save(folder / "0001.tif")
    return folder, TABLE


def _bad_coco_category(root):
    anns = [_ann(1, 100, 9, [[1, 1, 5, 1, 5, 5]])]
    return _coco(root / "a.json", anns, cats=((9, "scalpel"),)), TABLE


def _bad_coco_outside(root):
    anns = [_ann(1, 100, 4, [[1, 1, 5, 1, 5, H + 4]])]
    return _coco(root / "a.json", anns), TABLE


def _bad_coco_track_two_classes(root):
    anns = [_ann(1, 100, 4, [[1, 1, 5, 1, 5, 5]], track_id=5), _ann(2, 102, 7, [[1, 1, 5, 1, 5, 5]], track_id=5)]
    return _coco(root / "a.json", anns), TABLE


def _bad_coco_two_images_one_name(root):
    path = _coco(root / "a.json", [_ann(1, 100, 4, [[1, 1, 5, 1, 5, 5]])])
    doc = json.loads(path.read_text())
    doc["images"][1]["file_name"] = doc["images"][0]["file_name"]
    path.write_text(json.dumps(doc))
    return path, TABLE


def _bad_mode_l_without_json(root):
    folder = _instance_pngs(root / "x", _two_graspers(), {})
    (folder / "instances.json").unlink()
    return folder, None


def _bad_not_instances(root):
    (root / "notes.txt").write_text("x")
    return root / "notes.txt", TABLE


def _bad_one_labelme_file(root):
    _labelme(root / "x", "0000", [_shape("grasper", 1, G1A)])
    return root / "x" / "0000.json", TABLE


BAD = {
    "instance without class": (
        _bad_png_no_class,
        InputError,
        r"0002\.png: object id 9 has no class in .*instances\.json\. Add \"9\"",
    ),
    "class id outside the table": (_bad_png_class_outside, InputError, "object 7 has class id 9, outside the class"),
    "class id is no label": (
        _bad_png_no_label_class,
        InputError,
        "object 3 has class id 0, the class table's no-label",
    ),
    "object id mapped twice": (_bad_png_id_twice, InputError, r"instances\.json: object id '3' is given twice"),
    "object id mapped twice, spelt apart": (_bad_png_id_twice_spelt, InputError, "object id 3 is given twice"),
    "labelme label not in table": (_bad_labelme_label, InputError, r"0000\.json: shape 0 has class 'scalpel'"),
    "labelme polygon outside": (
        _bad_labelme_outside,
        InputError,
        r"0000\.json: shape 0 \(grasper\) has points outside",
    ),
    "two files for one frame": (
        _bad_two_files_one_frame,
        InputError,
        "0003.json and 0003.png are two annotation files",
    ),
    "two files with one stem": (_bad_two_files_one_stem, InputError, "0001.png and 0001.tif are two annotation files"),
    "coco category not in table": (_bad_coco_category, InputError, r"a\.json: category 'scalpel' .* does not list"),
    "coco polygon outside": (_bad_coco_outside, InputError, r"a\.json: annotation 1 .* has points outside the 20x16"),
    "coco track with two classes": (
        _bad_coco_track_two_classes,
        InputError,
        "track 5 is class 'grasper' in annotation 1",
    ),
    "coco two images one name": (_bad_coco_two_images_one_name, InputError, "two images have the file name"),
    "grey ids without instances.json": (_bad_mode_l_without_json, InputError, "mode-L image of object ids without"),
    "not instance labels": (_bad_not_instances, InputError, "Cannot read instance labels from"),
    "one labelme file": (_bad_one_labelme_file, InputError, "is one LabelMe file: give the folder"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_one_line_nothing_written(tmp_path, case):
    make, kind, pattern = BAD[case]
    path, table = make(tmp_path)
    before = _tree(tmp_path)
    with pytest.raises(kind, match=pattern) as e:
        InstanceReplayOverseer(path, table, frame_count=3)
    assert "\n" not in str(e.value) and str(path.name) in str(e.value)
    assert _tree(tmp_path) == before


def test_empty_folder_and_size_mismatch(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmptyInputError, match="No instance label files in"):
        open_instance_labels(tmp_path / "empty", TABLE)
    path = _coco(tmp_path / "none.json", [])
    with pytest.raises(EmptyInputError, match="holds no annotation"):
        open_instance_labels(path, TABLE)
    folder = _instance_pngs(tmp_path / "inst", _two_graspers(), {"3": 1, "7": 2, "9": 1})
    with pytest.raises(FrameSizeError, match="20x16 pixels, the frames 40x32"):
        open_instance_labels(folder, TABLE, frame_size=(32, 40))
    with pytest.raises(InputError, match="matches no prediction frame"):
        open_instance_labels(folder, TABLE, frame_count=5, frame_names=[f"x{t}" for t in "abcde"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "inst", "none.json"]


def test_a_detections_folder_says_its_ids_are_no_identities(tmp_path):
    """instances.json with "identities": false: the ids give classes, not objects (source_id None)."""
    ids = np.zeros((8, 10), np.uint8)
    ids[1:3, 1:3] = 81
    Image.fromarray(ids).save(tmp_path / "0000.png")
    (tmp_path / "instances.json").write_text(json.dumps({"classes": {"81": 5}, "identities": False}))
    (inst,) = open_instance_labels(tmp_path, PRESETS["synthetic"]).instances(0)
    assert inst.class_id == 5 and inst.source_id is None
    (tmp_path / "instances.json").write_text(json.dumps({"classes": {"81": 5}}))
    assert open_instance_labels(tmp_path, PRESETS["synthetic"]).instances(0)[0].source_id == 81
    (tmp_path / "instances.json").write_text(json.dumps({"classes": {"81": 5}, "identities": "no"}))
    with pytest.raises(InputError, match="identities"):
        open_instance_labels(tmp_path, PRESETS["synthetic"])
