"""Exports for training (issue 15, item 2), each read back with the format's own tools: nnU-Net v2
(its verify_dataset_integrity), COCO-video RLE (pycocotools), palette PNGs (PIL and this package's
label reader), the overlay MP4 (PyAV)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import write_video_dirs
from napari_sasvi.cli import main
from napari_sasvi.core.datasets import CADIS, CHOLECSEG8K, SYNTHETIC
from napari_sasvi.core.exports import export, nnunet_label_values, overlay, video_splits
from napari_sasvi.core.store.sasvi_store import SasviStore

N = 6


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """Two videos segmented (flow tracker, replayed noisy overseer) into out/VidA.zarr, out/VidB.zarr."""
    root = tmp_path_factory.mktemp("export")
    videos, masks = write_video_dirs(root, ["VidA", "VidB"], n=N)
    out = root / "out"
    rc = main(["segment", str(videos), "--out", str(out), "--overseer-masks", str(masks), "--dataset", "synthetic",
               "--tracker", "flow", "--device", "cpu"])  # fmt: skip
    assert rc == 0
    return root, videos, out


def _labels(store):
    return np.asarray(SasviStore.read(store).labels[:])


def test_nnunet_label_values():
    to_value, labels, ignore = nnunet_label_values(CHOLECSEG8K)
    assert ignore is None  # CholecSeg8k's no-label value 0 is a class ("Black Background")
    assert sorted(labels.values()) == list(range(len(CHOLECSEG8K.ids))) and labels["background"] == 0
    assert to_value[CHOLECSEG8K.no_label] == 0  # ... and is nnU-Net's background
    to_value, labels, ignore = nnunet_label_values(CADIS)
    # CaDIS: 255 = unlabelled, every id a real class (Pupil is 0): 0 is an empty background, the
    # classes 1..N (all trained and scored by nnU-Net), unlabelled pixels the ignore label N + 1
    assert labels["background"] == 0 and 0 not in to_value.values()
    assert [to_value[c] for c in sorted(CADIS.ids)] == list(range(1, len(CADIS.ids) + 1))
    assert ignore == len(CADIS.ids) + 1 and labels[CADIS.by_id(0).name] == 1


def test_video_splits_keep_each_video_on_one_side():
    cases = {f"v{k}": [f"v{k}_{t:06d}" for t in range(3)] for k in range(7)}
    splits = video_splits(cases)
    assert len(splits) == 5
    for fold in splits:
        val_videos = {c.split("_")[0] for c in fold["val"]}
        train_videos = {c.split("_")[0] for c in fold["train"]}
        assert val_videos and not val_videos & train_videos
        assert len(fold["train"]) + len(fold["val"]) == 21
    assert sorted(c for f in splits for c in f["val"]) == sorted(c for v in cases.values() for c in v)


def test_nnunet_dataset_of_two_videos(batch, tmp_path, capsys):
    root, videos, out = batch
    raw = tmp_path / "nnUNet_raw"
    assert main(["export", str(out), "--to", "nnunet", "--out", str(raw), "--dataset-id", "7", "--dataset-name", "Cholec-SASVi"]) == 0  # fmt: skip
    ds = raw / "Dataset007_Cholec-SASVi"
    meta = json.loads((ds / "dataset.json").read_text())
    assert meta["numTraining"] == 2 * N and meta["file_ending"] == ".png"
    assert meta["channel_names"] == {"0": "R", "1": "G", "2": "B"}
    values = sorted(meta["labels"].values())
    assert values == list(range(len(values)))  # consecutive, as nnU-Net requires
    back = {int(v): m["class_id"] for v, m in meta["napari_sasvi"]["values"].items()}
    for name in ("VidA", "VidB"):
        lab = _labels(out / f"{name}.zarr")
        for t in (0, N - 1):
            written = np.asarray(Image.open(ds / "labelsTr" / f"{name}_{t:06d}.png"))
            image = np.asarray(Image.open(ds / "imagesTr" / f"{name}_{t:06d}_0000.png"))
            assert image.shape == (*lab.shape[1:], 3)
            assert np.array_equal(image, np.asarray(Image.open(sorted((videos / name).iterdir())[t]).convert("RGB")))
            if "ignore" in meta["labels"]:
                assert np.array_equal(written == meta["labels"]["ignore"], lab[t] == SYNTHETIC.no_label)
            for v, cid in back.items():
                assert np.array_equal(written == v, lab[t] == cid)
    splits = json.loads((ds / "splits_final.json").read_text())
    assert len(splits) == 2 and all(not {c[:4] for c in f["val"]} & {c[:4] for c in f["train"]} for f in splits)
    # again without --overwrite: refused, nothing touched; with it: replaced (every 2nd frame)
    before = sorted(p.name for p in (ds / "labelsTr").iterdir())
    assert main(["export", str(out), "--to", "nnunet", "--out", str(raw), "--dataset-id", "7", "--dataset-name", "Cholec-SASVi"]) == 2  # fmt: skip
    assert "--overwrite" in capsys.readouterr().err
    assert sorted(p.name for p in (ds / "labelsTr").iterdir()) == before
    assert main(["export", str(out), "--to", "nnunet", "--out", str(raw), "--dataset-id", "7", "--dataset-name", "Cholec-SASVi", "--every", "2", "--overwrite"]) == 0  # fmt: skip
    assert json.loads((ds / "dataset.json").read_text())["numTraining"] == 2 * len(range(0, N, 2))
    assert len(list((ds / "imagesTr").iterdir())) == 2 * len(range(0, N, 2))
    # a folder napari-sasvi did not write is never replaced
    other = raw / "Dataset008_Cholec-SASVi"
    other.mkdir()
    (other / "dataset.json").write_text("{}")
    assert main(["export", str(out), "--to", "nnunet", "--out", str(raw), "--dataset-id", "8", "--dataset-name", "Cholec-SASVi", "--overwrite"]) == 2  # fmt: skip
    assert "not written by napari-sasvi" in capsys.readouterr().err
    assert (other / "dataset.json").read_text() == "{}"


@pytest.mark.slow
def test_nnunet_dataset_passes_nnunets_own_check(batch, tmp_path):
    verify = pytest.importorskip("nnunetv2.experiment_planning.verify_dataset_integrity")
    _, _, out = batch
    summary = export(out, "nnunet", tmp_path, dataset_id=9, dataset_name="Check")
    verify.verify_dataset_integrity(str(summary.path), 1)  # raises on any defect


def test_coco_video_rle_reads_back(batch, tmp_path):
    from pycocotools import mask as mask_utils

    _, _, out = batch
    target = tmp_path / "vis.json"
    assert main(["export", str(out), "--to", "coco-video", "--out", str(target)]) == 0
    doc = json.loads(target.read_text())
    assert [v["name"] for v in doc["videos"]] == ["VidA", "VidB"]
    assert all(v["length"] == N and len(v["file_names"]) == N for v in doc["videos"])
    assert doc["videos"][0]["file_names"][0] == "VidA/VidA_frame000000.png"
    assert {c["id"]: c["name"] for c in doc["categories"]} == {c.id: c.name for c in SYNTHETIC}
    for v in doc["videos"]:
        lab = _labels(out / f"{v['name']}.zarr")
        tracks = {a["category_id"]: a for a in doc["annotations"] if a["video_id"] == v["id"]}
        present = {int(c) for c in np.unique(lab) if c in SYNTHETIC.ids}
        assert set(tracks) == present
        for cid, a in tracks.items():
            assert 0 <= a["score"] <= 1
            for t, seg in enumerate(a["segmentations"]):
                want = lab[t] == cid
                if seg is None:
                    assert not want.any()
                    continue
                assert np.array_equal(mask_utils.decode(seg).astype(bool), want)
                assert a["areas"][t] == float(mask_utils.area(seg)) == want.sum()
                assert a["bboxes"][t] == [float(x) for x in mask_utils.toBbox(seg)]
    # the overseer's own array: its tracks, no agreement score
    export(out, "coco-video", tmp_path / "overseer.json", array="overseer")
    tracks = json.loads((tmp_path / "overseer.json").read_text())["annotations"]
    assert tracks and all(a["score"] is None for a in tracks)
    assert main(["export", str(out), "--to", "coco-video", "--out", str(target)]) == 2  # exists: refused


def test_palette_pngs_read_back_as_class_ids(batch, tmp_path):
    from napari_sasvi.core.inputs.labels import open_labels

    _, _, out = batch
    assert main(["export", str(out / "VidA.zarr"), "--to", "png", "--out", str(tmp_path / "a")]) == 0
    files = sorted((tmp_path / "a").iterdir())
    assert [f.name for f in files] == [f"VidA_frame{t:06d}.png" for t in range(N)]
    lab = _labels(out / "VidA.zarr")
    im = Image.open(files[2])
    assert im.mode == "P" and np.array_equal(np.asarray(im), lab[2])
    assert im.getpalette()[3 * 5 : 3 * 6] == list(SYNTHETIC.by_id(5).color[:3])
    stack = open_labels(tmp_path / "a", SYNTHETIC)
    assert stack.encoding == "class-ids"
    assert np.array_equal(np.stack([np.asarray(stack[t]) for t in range(N)]), lab)
    assert main(["export", str(out), "--to", "png", "--out", str(tmp_path / "b"), "--reference-layout", "--size", "40", "32"]) == 0  # fmt: skip
    ref = sorted((tmp_path / "b" / "VidB").iterdir())
    assert len(ref) == N and ref[0].name.endswith("_rgb_mask.png") and Image.open(ref[0]).size == (40, 32)


def test_overlay_mp4_reads_back(batch, tmp_path):
    import av

    _, videos, out = batch
    target = tmp_path / "look.mp4"
    assert main(["export", str(out / "VidA.zarr"), "--to", "overlay-mp4", "--out", str(target), "--opacity", "0.6", "--fps", "10"]) == 0  # fmt: skip
    with av.open(str(target)) as c:
        stream = c.streams.video[0]
        decoded = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        assert float(stream.average_rate) == 10
    store = SasviStore.read(out / "VidA.zarr")
    assert len(decoded) == N and decoded[0].shape == (64, 80, 3)
    frame = np.asarray(Image.open(sorted((videos / "VidA").iterdir())[1]).convert("RGB"))
    want = overlay(frame, np.asarray(store.labels[1]), SYNTHETIC, 0.6)
    assert np.abs(decoded[1].astype(int) - want).mean() < 4  # H.264 at crf 18
    assert np.abs(decoded[1].astype(int) - frame).mean() > 10  # the labels are visible
    assert main(["export", str(out), "--to", "overlay-mp4", "--out", str(tmp_path / "x.mp4")]) == 2  # two stores
    # every 2nd frame keeps the real duration: a frame folder has no rate, so 25 / 2 frames/s
    export(out / "VidA.zarr", "overlay-mp4", tmp_path / "half.mp4", every=2)
    with av.open(str(tmp_path / "half.mp4")) as c:
        assert float(c.streams.video[0].average_rate) == 12.5
        assert sum(1 for _ in c.decode(video=0)) == len(range(0, N, 2))
    assert main(["export", str(out / "VidA.zarr"), "--to", "overlay-mp4", "--out", str(tmp_path / "z.mp4"), "--fps", "0"]) == 2  # fmt: skip


def test_frames_that_moved_or_are_another_video(batch, tmp_path, capsys):
    root, videos, out = batch
    work = tmp_path / "copy"
    shutil.copytree(out / "VidA.zarr", work / "VidA.zarr")
    moved = tmp_path / "moved"
    shutil.copytree(videos / "VidA", moved)
    # the store points at frames that are gone
    meta = json.loads((work / "VidA.zarr" / "zarr.json").read_text())
    meta["attributes"]["sasvi"]["frames"] = str(tmp_path / "gone")
    (work / "VidA.zarr" / "zarr.json").write_text(json.dumps(meta))
    assert main(["export", str(work / "VidA.zarr"), "--to", "nnunet", "--out", str(tmp_path / "raw")]) == 2
    assert "give their new place with --frames" in capsys.readouterr().err
    assert not (tmp_path / "raw").exists()
    # another video's frames: refused
    assert main(["export", str(work / "VidA.zarr"), "--to", "nnunet", "--out", str(tmp_path / "raw"), "--frames", str(videos / "VidB")]) == 2  # fmt: skip
    assert "are not the video" in capsys.readouterr().err
    # same names and shape, other content: refused at the first frame read
    other = tmp_path / "swapped"
    shutil.copytree(videos / "VidA", other)
    first = sorted(other.iterdir())[0]
    Image.fromarray(255 - np.asarray(Image.open(first))).save(first)
    assert main(["export", str(work / "VidA.zarr"), "--to", "overlay-mp4", "--out", str(tmp_path / "o.mp4"), "--frames", str(other)]) == 2  # fmt: skip
    assert "differs from the frame" in capsys.readouterr().err and not (tmp_path / "o.mp4").exists()
    # the right frames at their new place
    assert main(["export", str(work / "VidA.zarr"), "--to", "overlay-mp4", "--out", str(tmp_path / "o.mp4"), "--frames", str(moved)]) == 0  # fmt: skip


def test_a_partial_store_exports_its_finished_frames(batch, tmp_path, capsys):
    _, _, out = batch
    part = tmp_path / "VidA.zarr"
    shutil.copytree(out / "VidA.zarr", part)
    progress = json.loads((part / "sasvi_progress.json").read_text())
    progress["frames_done"] = 4
    (part / "sasvi_progress.json").write_text(json.dumps(progress))
    assert main(["export", str(part), "--to", "coco-video", "--out", str(tmp_path / "p.json")]) == 0
    assert "only 4 of 6 frames are finished" in capsys.readouterr().err
    assert json.loads((tmp_path / "p.json").read_text())["videos"][0]["length"] == 4


def test_values_outside_the_class_table_are_refused(batch, tmp_path, capsys):
    _, _, out = batch
    bad = tmp_path / "VidA.zarr"
    shutil.copytree(out / "VidA.zarr", bad)
    import zarr

    arr = zarr.open_group(str(bad), mode="r+")["labels"]
    frame = np.asarray(arr[2])
    frame[:3, :3] = 200
    arr[2] = frame
    for to, target in (("nnunet", tmp_path / "raw"), ("coco-video", tmp_path / "v.json"), ("png", tmp_path / "p")):
        assert main(["export", str(bad), "--to", to, "--out", str(target)]) == 2
        assert "frame 2 holds label values [200]" in capsys.readouterr().err
    assert not (tmp_path / "v.json").exists()
    # the half-written nnU-Net folder is marked as ours and incomplete: --overwrite replaces it
    ds = tmp_path / "raw" / "Dataset501_SASVi"
    assert json.loads((ds / "dataset.json").read_text())["napari_sasvi"]["state"] == "incomplete"
    assert (
        main(["export", str(out / "VidA.zarr"), "--to", "nnunet", "--out", str(tmp_path / "raw"), "--overwrite"]) == 0
    )
    assert json.loads((ds / "dataset.json").read_text())["numTraining"] == N
