"""Exports that keep track ids (issue 29, item 5): COCO-video with one annotation per object, MOTS
text, PNGs of track ids; each read back (pycocotools for RLE, PIL for PNGs) and compared with the
store's track ids frame by frame. Class-only stores export as before, and are refused where ids are
needed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from napari_sasvi.cli import main
from napari_sasvi.core.datasets import SYNTHETIC
from napari_sasvi.core.errors import InputError
from napari_sasvi.core.exports import export
from napari_sasvi.core.exports.mots import mots_object_ids
from napari_sasvi.core.instances.types import TrackInfo
from napari_sasvi.core.store.sasvi_store import SasviStore
from napari_sasvi.core.store.tracks import class_lut

N, H, W = 6, 24, 32
GRASPER, CLIPPER, LIVER = 5, 7, 2
SCORES = {1: 0.9, 2: 0.8, 3: 0.7, 4: 0.6}


def scene(t: int, ids=(1, 2, 3, 4)) -> np.ndarray:
    """Track ids on frame t: two graspers (ids[0], ids[1]) crossing (the second in front on frames
    2 and 3), a clipper (ids[2]) on frames 0..2 and another (ids[3]) from frame 3 on."""
    tm = np.zeros((H, W), np.uint16)
    tm[4:11, 2 + 4 * t : 10 + 4 * t] = ids[0]
    tm[6:13, 22 - 4 * t : 30 - 4 * t] = ids[1]
    if t <= 2:
        tm[16:21, 2:8] = ids[2]
    else:
        tm[16:21, 20:28] = ids[3]
    return tm


def make_store(path, ids=(1, 2, 3, 4), instances=True, n=N):
    classes = dict(zip(ids, (GRASPER, GRASPER, CLIPPER, CLIPPER), strict=True))
    store = SasviStore.open(
        path, n_frames=N, frame_size=(H, W), classes=SYNTHETIC, signature={"test": str(path)}, instances=instances
    )
    seen: dict[int, list[int]] = {}
    for t in range(n):
        tm = scene(t, ids)
        for tid in np.unique(tm[tm > 0]):
            seen.setdefault(int(tid), []).append(t)
        table = {
            k: TrackInfo(k, classes[k], v[0], v[-1], SCORES[ids.index(k) + 1], ids[0] if k == ids[3] else None)
            for k, v in seen.items()
        }
        labels = class_lut(table, LIVER)[tm]  # where no track: liver
        store.write_frame(t, labels, labels.copy(), [], tracks=(tm, table) if instances else None)
    return path


@pytest.fixture
def inst(tmp_path):
    return make_store(tmp_path / "Inst.zarr")


@pytest.fixture
def plain(tmp_path):
    return make_store(tmp_path / "Plain.zarr", instances=False)


def _decode(seg):
    from pycocotools import mask as mask_utils

    return mask_utils.decode({"size": seg["size"], "counts": seg["counts"].encode("ascii")}).astype(bool)


def test_scene_has_what_the_tests_need():
    assert (scene(0) == 3).any() and not (scene(N - 1) == 3).any() and (scene(N - 1) == 4).any()
    # the graspers cross: on frame 3 the second covers part of the first
    assert (scene(3) == 1).sum() < (scene(0) == 1).sum() and (scene(3) == 2).sum() == (scene(0) == 2).sum()


def test_coco_video_has_one_annotation_per_track(inst, tmp_path):
    target = tmp_path / "vis.json"
    assert main(["export", str(inst), "--to", "coco-video", "--out", str(target)]) == 0
    doc = json.loads(target.read_text())
    anns = {a["track_id"]: a for a in doc["annotations"]}
    assert sorted(anns) == [1, 2, 3, 4] and len(doc["annotations"]) == 4
    assert {k: a["category_id"] for k, a in anns.items()} == {1: GRASPER, 2: GRASPER, 3: CLIPPER, 4: CLIPPER}
    assert {k: a["score"] for k, a in anns.items()} == SCORES  # the track table's mean_score
    assert anns[4]["parent_track_id"] == 1 and anns[1]["parent_track_id"] is None
    assert doc["info"]["tracks"] == {"Inst": "object"} and "mean_score" in doc["info"]["score"]
    for tid, a in anns.items():
        assert len(a["segmentations"]) == N
        for t, seg in enumerate(a["segmentations"]):
            want = scene(t) == tid
            if seg is None:
                assert not want.any()
                continue
            assert np.array_equal(_decode(seg), want)
            assert a["areas"][t] == want.sum()
            ys, xs = np.nonzero(want)
            assert a["bboxes"][t] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
    assert anns[3]["segmentations"][3] is None and anns[4]["segmentations"][2] is None  # one ends, one starts
    # --ids class: one track per class, as for class-only stores, scored by agreement with the overseer
    export(inst, "coco-video", tmp_path / "cls.json", ids="class")
    cls = json.loads((tmp_path / "cls.json").read_text())["annotations"]
    assert sorted(a["category_id"] for a in cls) == [LIVER, GRASPER, CLIPPER]
    assert all("track_id" not in a and a["score"] == 1.0 for a in cls)
    grasper = next(a for a in cls if a["category_id"] == GRASPER)
    assert np.array_equal(_decode(grasper["segmentations"][3]), np.isin(scene(3), [1, 2]))
    # every 2nd frame: the segmentations follow the exported frames
    export(inst, "coco-video", tmp_path / "half.json", every=2)
    half = {a["track_id"]: a for a in json.loads((tmp_path / "half.json").read_text())["annotations"]}
    assert np.array_equal(_decode(half[2]["segmentations"][2]), scene(4) == 2)


def test_class_only_store_exports_as_before(plain, inst, tmp_path, capsys):
    export(plain, "coco-video", tmp_path / "plain.json")
    doc = json.loads((tmp_path / "plain.json").read_text())
    assert sorted(a["category_id"] for a in doc["annotations"]) == [LIVER, GRASPER, CLIPPER]
    assert all("track_id" not in a for a in doc["annotations"]) and doc["info"]["tracks"] == {"Plain": "class"}
    # the overseer's array of an instance store: class tracks, no score
    export(inst, "coco-video", tmp_path / "ov.json", array="overseer")
    assert all(a["score"] is None and "track_id" not in a for a in json.loads((tmp_path / "ov.json").read_text())["annotations"])  # fmt: skip
    # an instance store and a class-only one together: each by what it has
    both = tmp_path / "both.json"
    assert main(["export", str(inst), str(plain), "--to", "coco-video", "--out", str(both)]) == 0
    assert json.loads(both.read_text())["info"]["tracks"] == {"Inst": "object", "Plain": "class"}
    # palette PNGs of class ids, the default also for an instance store
    assert main(["export", str(inst), "--to", "png", "--out", str(tmp_path / "p")]) == 0
    im = Image.open(tmp_path / "p" / f"{3:010d}.png")
    assert im.mode == "P" and np.array_equal(np.asarray(im), np.asarray(SasviStore.read(inst).labels[3]))
    assert len(np.unique(np.asarray(im))) == 3  # liver, grasper, clipper
    assert not (tmp_path / "p" / "instances.json").exists()


def _read_mots(path):
    rows = []
    for line in path.read_text().splitlines():
        f = line.split(" ")
        assert len(f) == 6
        rows.append((int(f[0]), int(f[1]), int(f[2]), int(f[3]), int(f[4]), f[5]))
    return rows


def test_mots_text_reads_back(inst, tmp_path, capsys):
    from pycocotools import mask as mask_utils

    out = tmp_path / "mots"
    assert main(["export", str(inst), "--to", "mots", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["Inst.txt"]
    rows = _read_mots(out / "Inst.txt")
    assert rows == sorted(rows, key=lambda r: (r[0], r[1]))
    assert len(rows) == sum(len(np.unique(scene(t))) - 1 for t in range(N))
    by_frame: dict[int, list] = {}
    for t, oid, cid, h, w, counts in rows:
        assert (h, w) == (H, W) and oid // 1000 == cid
        tid = oid % 1000  # the track id: all below 1000
        assert cid == {1: GRASPER, 2: GRASPER, 3: CLIPPER, 4: CLIPPER}[tid]
        rle = {"size": [h, w], "counts": counts.encode("ascii")}
        assert np.array_equal(mask_utils.decode(rle).astype(bool), scene(t) == tid)
        by_frame.setdefault(t, []).append(rle)
    assert sorted(by_frame) == list(range(N))  # 0-based: KITTI MOTS
    for rles in by_frame.values():  # MOTS forbids overlapping masks on one frame
        assert mask_utils.area(mask_utils.merge(rles, intersect=True)) == 0
    # refused without --overwrite, nothing touched; 1-based (MOTSChallenge) and every 2nd frame with it
    before = (out / "Inst.txt").read_text()
    assert main(["export", str(inst), "--to", "mots", "--out", str(out), "--frame-base", "1"]) == 2
    assert "--overwrite" in capsys.readouterr().err and (out / "Inst.txt").read_text() == before
    assert main(["export", str(inst), "--to", "mots", "--out", str(out), "--frame-base", "1", "--every", "2", "--overwrite"]) == 0  # fmt: skip
    assert sorted({r[0] for r in _read_mots(out / "Inst.txt")}) == [1, 3, 5]  # frames 0, 2, 4 numbered from 1


def test_mots_ids_past_999_are_renumbered_per_class(tmp_path):
    from pycocotools import mask as mask_utils

    store = make_store(tmp_path / "Long.zarr", ids=(7, 1200, 3, 1500))
    out = tmp_path / "m"
    summary = export(store, "mots", out)
    assert any("renumbered" in n for n in summary.notes)
    mapping = json.loads((out / "Long.ids.json").read_text())["obj_ids"]
    # graspers 7 and 1200 start on frame 0: 5001, 5002; clippers 3 (frame 0), 1500 (frame 3): 7001, 7002
    assert mapping == {"5001": 7, "5002": 1200, "7001": 3, "7002": 1500}
    for t, oid, cid, h, w, counts in _read_mots(out / "Long.txt"):
        assert cid == oid // 1000
        want = scene(t, (7, 1200, 3, 1500)) == mapping[str(oid)]
        assert np.array_equal(mask_utils.decode({"size": [h, w], "counts": counts.encode()}).astype(bool), want)
    # a second export whose ids fit drops the stale mapping
    make_store(tmp_path / "x" / "Long.zarr")
    export(tmp_path / "x" / "Long.zarr", "mots", out, overwrite=True)
    assert not (out / "Long.ids.json").exists()
    table = {k: TrackInfo(k, GRASPER, k, k) for k in range(1000, 2000)}
    with pytest.raises(InputError, match="more than 999 tracks"):
        mots_object_ids(table, "v")


def test_png_track_ids_with_their_table(inst, tmp_path):
    out = tmp_path / "ids"
    assert main(["export", str(inst), "--to", "png", "--ids", "track", "--out", str(out)]) == 0
    meta = json.loads((out / "instances.json").read_text())
    assert meta["classes"] == {"1": GRASPER, "2": GRASPER, "3": CLIPPER, "4": CLIPPER}
    tracks = {d["id"]: d for d in meta["tracks"]}
    assert tracks[3]["first"] == 0 and tracks[3]["last"] == 2 and tracks[4]["first"] == 3 and tracks[4]["last"] == 5
    assert tracks[1]["class_name"] == "Grasper" and tracks[4]["class_name"] == "Clipper"
    for t in range(N):
        im = Image.open(out / f"{t:010d}.png")
        assert im.mode == "L" and np.array_equal(np.asarray(im), scene(t))
    # ids above 255: 16-bit for every frame of the video, also where the frame's ids are small
    big = make_store(tmp_path / "Big.zarr", ids=(7, 300, 3, 1500))
    export(big, "png", tmp_path / "big", ids="track", size=(64, 48))
    for t in (0, 4):
        im = Image.open(tmp_path / "big" / f"{t:010d}.png")
        assert im.mode == "I;16" and im.size == (64, 48)
        arr = np.asarray(im)
        assert set(np.unique(arr)) == set(np.unique(scene(t, (7, 300, 3, 1500))))
        assert np.array_equal(arr[::2, ::2], scene(t, (7, 300, 3, 1500)))  # nearest, x2


def test_refusals(inst, plain, tmp_path, capsys):
    def refused(argv, words):
        assert main(["export", *argv]) == 2
        err = capsys.readouterr().err
        assert words in err, err

    refused([str(plain), "--to", "mots", "--out", str(tmp_path / "m")], "--instances")
    refused([str(plain), "--to", "png", "--ids", "track", "--out", str(tmp_path / "p")], "class-only store")
    refused([str(plain), "--to", "coco-video", "--ids", "track", "--out", str(tmp_path / "c.json")], "--instances")
    refused([str(inst), "--to", "mots", "--array", "overseer", "--out", str(tmp_path / "m")], "--array labels")
    refused([str(inst), "--to", "mots", "--ids", "class", "--out", str(tmp_path / "m")], "--ids class")
    refused([str(inst), "--to", "mots", "--out", str(tmp_path / "m.txt")], "folder")
    refused([str(inst), "--to", "png", "--ids", "track", "--reference-layout", "--out", str(tmp_path / "p")], "--reference-layout")  # fmt: skip
    refused([str(inst), "--to", "nnunet", "--ids", "track", "--out", str(tmp_path / "n")], "--ids is for")
    assert not any(tmp_path.glob("m*")) and not (tmp_path / "p").exists() and not (tmp_path / "c.json").exists()
    # a mixed batch: the class-only store is refused before anything is written
    refused([str(inst), str(plain), "--to", "mots", "--out", str(tmp_path / "m")], "Plain is a class-only store")
    assert not (tmp_path / "m").exists()
    # a track id the table does not know: refused, not guessed
    import zarr

    arr = zarr.open_group(str(inst), mode="r+")["tracks"]
    frame = np.asarray(arr[2])
    frame[0, 0] = 9
    arr[2] = frame
    refused([str(inst), "--to", "coco-video", "--out", str(tmp_path / "c.json")], "frame 2 holds track ids [9]")
    assert not (tmp_path / "c.json").exists()
    refused([str(inst), "--to", "mots", "--out", str(tmp_path / "m2")], "frame 2 holds track ids [9]")
    assert not (tmp_path / "m2" / "Inst.txt").exists()
