"""The OME-Zarr export (issue 31, item 1): an NGFF 0.5 image of the frames with labels/sasvi,
labels/overseer and (instance stores) labels/tracks, validated by ome-zarr-models, read back by
ome-zarr-py's reader and opened in napari through napari-ome-zarr."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from napari_sasvi.cli import main
from napari_sasvi.core.datasets import SYNTHETIC
from napari_sasvi.core.errors import InputError
from napari_sasvi.core.exports import export
from napari_sasvi.core.inputs.frames import open_frames
from napari_sasvi.core.instances.types import TrackInfo
from napari_sasvi.core.store.sasvi_store import SasviStore
from napari_sasvi.core.store.tracks import class_lut

N, H, W = 6, 24, 32
GRASPER, CLIPPER, LIVER = 5, 7, 2


def scene(t: int) -> np.ndarray:
    """Track ids on frame t: a grasper (1) moving right, a clipper (2) on frames 0..3."""
    tm = np.zeros((H, W), np.uint16)
    tm[4:11, 2 + 3 * t : 10 + 3 * t] = 1
    if t <= 3:
        tm[15:21, 20:28] = 2
    return tm


def make_store(root, name="Vid", instances=False, video=False):
    """A finished store over frames on disk (a PNG folder, or an MP4 at 10 frames/s with ``video``)."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (N, H, W, 3), dtype=np.uint8)
    if video:
        from napari_sasvi.core.inputs.video import write_video

        where = write_video(root / f"{name}.mp4", list(frames), fps=10, codec="mpeg4")
    else:
        where = root / f"{name}_frames"
        where.mkdir()
        for t, f in enumerate(frames):
            Image.fromarray(f).save(where / f"{t:05d}.png")
    store = SasviStore.open(
        root / f"{name}.zarr",
        n_frames=N,
        frame_size=(H, W),
        classes=SYNTHETIC,
        signature={"test": name},
        frames_path=where,
        instances=instances,
    )
    table = {}
    for t in range(N):
        tm = scene(t)
        if t == 0:
            table = {1: TrackInfo(1, GRASPER, 0, N - 1), 2: TrackInfo(2, CLIPPER, 0, 3)}
        labels = class_lut(table, LIVER)[tm]
        overseer = labels.copy()
        overseer[0, :] = SYNTHETIC.no_label  # the overseer leaves a row unlabelled: it differs from SASVi's
        store.write_frame(t, labels, overseer, [], tracks=(tm, table) if instances else None)
    return store.path, where


def _attrs(path) -> dict:
    return json.loads((path / "zarr.json").read_text())["attributes"]


def test_class_store_exports_an_ngff_image_with_two_label_images(tmp_path):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Multiscales, Reader
    from ome_zarr_models.v05.image import Image as NgffImage

    store, frames = make_store(tmp_path)
    out = tmp_path / "vid.ome.zarr"
    assert main(["export", str(store), "--to", "ome-zarr", "--out", str(out)]) == 0
    ome = _attrs(out)["ome"]
    assert ome["version"] == "0.5"
    ms = ome["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["t", "c", "y", "x"] and ms["axes"][0]["type"] == "time"
    assert "unit" not in ms["axes"][0]  # a frame folder has no rate: frames counted, no unit
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == [1.0, 1.0, 1.0, 1.0]
    assert _attrs(out)["napari_sasvi"]["state"] == "complete"
    assert not (out / "labels" / "tracks").exists()  # a class-only store has no track ids

    import zarr

    # ome-zarr-models validates the whole hierarchy (image, labels group, label images and their arrays)
    model = NgffImage.from_zarr(zarr.open_group(str(out), mode="r"))
    assert model.labels is not None and list(model.labels.label_paths) == ["sasvi", "overseer"]

    # ome-zarr-py's reader: an image node (T, 3, H, W) and two label nodes (T, H, W)
    nodes = list(Reader(parse_url(str(out)))())
    image = next(n for n in nodes if n.specs and isinstance(n.specs[0], Multiscales) and not n.load(Label))
    assert image.data[0].shape == (N, 3, H, W) and image.data[0].chunksize == (1, 3, H, W)
    stack = open_frames(frames)
    assert np.array_equal(np.asarray(image.data[0][2]), stack.frame(2).transpose(2, 0, 1))
    labels = {n.zarr.path.rstrip("/").split("/")[-1]: n for n in nodes if n.load(Label)}
    assert set(labels) == {"sasvi", "overseer"}
    s = SasviStore.read(store)
    for name, arr in (("sasvi", s.labels), ("overseer", s.overseer)):
        data = labels[name].data[0]
        assert data.shape == (N, H, W) and data.dtype == np.uint8
        assert np.array_equal(np.asarray(data), np.asarray(arr[:]))
    image_label = _attrs(out / "labels" / "sasvi")["ome"]["image-label"]
    props = {p["label-value"]: p for p in image_label["properties"]}
    assert props[GRASPER]["class"] == SYNTHETIC.by_id(GRASPER).name and props[GRASPER]["class id"] == GRASPER
    assert props[SYNTHETIC.no_label]["class"] == "no label"
    colors = {c["label-value"]: c["rgba"] for c in image_label["colors"]}
    assert colors[CLIPPER] == [*SYNTHETIC.by_id(CLIPPER).color, 255] and colors[SYNTHETIC.no_label][3] == 0
    assert image_label["source"] == {"image": "../../"}


def test_a_video_scales_time_and_every_keeps_it(tmp_path):
    store, video = make_store(tmp_path, video=True)
    out = tmp_path / "half.zarr"
    summary = export(store, "ome-zarr", out, every=2)
    assert summary.frames == {"Vid": 3}
    ms = _attrs(out)["ome"]["multiscales"][0]
    assert ms["axes"][0] == {"name": "t", "type": "time", "unit": "second"}
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"][0] == pytest.approx(0.2)  # 2 frames at 10/s
    lab = _attrs(out / "labels" / "sasvi")["ome"]["multiscales"][0]
    assert [a["name"] for a in lab["axes"]] == ["t", "y", "x"] and lab["datasets"][0]["coordinateTransformations"][0][
        "scale"
    ] == pytest.approx([0.2, 1, 1])
    import zarr

    root = zarr.open_group(str(out), mode="r")
    assert root["0"].shape == (3, 3, H, W)
    stack = open_frames(video)
    assert np.array_equal(root["0"][2], stack.frame(4).transpose(2, 0, 1))  # exported frame 2 is frame 4
    assert np.array_equal(root["labels/sasvi/0"][1], np.asarray(SasviStore.read(store).labels[2]))


def test_an_instance_store_exports_its_track_ids(tmp_path):
    import zarr
    from ome_zarr_models.v05.image import Image as NgffImage

    store, _ = make_store(tmp_path, name="Inst", instances=True)
    out = tmp_path / "inst.zarr"
    export(store, "ome-zarr", out)
    assert _attrs(out / "labels")["ome"]["labels"] == ["sasvi", "overseer", "tracks"]
    NgffImage.from_zarr(zarr.open_group(str(out), mode="r"))
    tracks = zarr.open_group(str(out), mode="r")["labels/tracks/0"]
    assert tracks.dtype == np.uint16 and tracks.shape == (N, H, W)
    for t in range(N):
        assert np.array_equal(tracks[t], scene(t))
    image_label = _attrs(out / "labels" / "tracks")["ome"]["image-label"]
    props = {p["label-value"]: p for p in image_label["properties"]}
    assert props[1]["track id"] == 1 and props[1]["class"] == SYNTHETIC.by_id(GRASPER).name
    assert props[2]["class id"] == CLIPPER and props[2]["last frame"] == 3
    colors = {c["label-value"]: tuple(c["rgba"]) for c in image_label["colors"]}
    assert colors[0][3] == 0 and colors[1] != colors[2]  # each object a colour of its own
    # --ids class leaves the track ids out
    export(store, "ome-zarr", tmp_path / "cls.zarr", ids="class")
    assert not (tmp_path / "cls.zarr" / "labels" / "tracks").exists()


def test_refusals(tmp_path, capsys):
    store, frames = make_store(tmp_path)
    with pytest.raises(InputError, match="class-only store"):
        export(store, "ome-zarr", tmp_path / "t.zarr", ids="track")
    assert not (tmp_path / "t.zarr").exists()
    out = tmp_path / "o.zarr"
    export(store, "ome-zarr", out)
    # an existing export: refused without --overwrite, replaced with it
    assert main(["export", str(store), "--to", "ome-zarr", "--out", str(out)]) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert main(["export", str(store), "--to", "ome-zarr", "--out", str(out), "--overwrite", "--every", "3"]) == 0
    assert _attrs(out)["ome"]["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"][0] == 3
    # a half-written export of ours is replaced too; a SASVi store or another folder never is
    meta = json.loads((out / "zarr.json").read_text())
    meta["attributes"]["napari_sasvi"]["state"] = "incomplete"
    (out / "zarr.json").write_text(json.dumps(meta))
    export(store, "ome-zarr", out, overwrite=True)
    other = tmp_path / "Other"
    make_store(other.parent, name="Other")
    with pytest.raises(InputError, match="not written by napari-sasvi"):
        export(store, "ome-zarr", other.with_suffix(".zarr"), overwrite=True)
    assert SasviStore.read(other.with_suffix(".zarr")).complete  # untouched
    with pytest.raises(InputError, match="inside the store"):
        export(store, "ome-zarr", store / "x.zarr")
    # the CLI options that do not apply
    assert (
        main(["export", str(store), "--to", "ome-zarr", "--out", str(tmp_path / "a.zarr"), "--array", "overseer"]) == 2
    )
    assert "--array is not for --to ome-zarr" in capsys.readouterr().err
    assert main(["export", str(tmp_path), "--to", "ome-zarr", "--out", str(tmp_path / "b.zarr")]) == 2
    assert "holds one store" in capsys.readouterr().err
    # frames that moved: --frames finds them
    moved = tmp_path / "moved"
    frames.rename(moved)
    assert main(["export", str(store), "--to", "ome-zarr", "--out", str(tmp_path / "c.zarr")]) == 2
    assert "--frames" in capsys.readouterr().err and not (tmp_path / "c.zarr").exists()
    assert main(["export", str(store), "--to", "ome-zarr", "--out", str(tmp_path / "c.zarr"), "--frames", str(moved)]) == 0  # fmt: skip


@pytest.mark.gui
def test_napari_ome_zarr_opens_the_export(tmp_path, make_napari_viewer_proxy):
    store, frames = make_store(tmp_path, name="Inst", instances=True)
    out = tmp_path / "inst.ome.zarr"
    export(store, "ome-zarr", out)
    viewer = make_napari_viewer_proxy()
    layers = viewer.open(str(out), plugin="napari-ome-zarr")
    images = [ly for ly in layers if ly._type_string == "image"]
    labels = {ly.name.rsplit("/", 1)[-1]: ly for ly in layers if ly._type_string == "labels"}
    assert len(images) == 3  # the R, G, B channels, each a layer (NGFF has no RGB flag)
    assert images[0].data.shape == (N, H, W)
    stack = open_frames(frames)
    assert np.array_equal(np.asarray(images[1].data[3]), stack.frame(3)[..., 1])
    assert set(labels) == {"sasvi", "overseer", "tracks"}
    sasvi = labels["sasvi"]
    assert np.array_equal(np.asarray(sasvi.data[2]), np.asarray(SasviStore.read(store).labels[2]))
    names = dict(zip(sasvi.features["index"], sasvi.features["class"], strict=True))
    assert names[GRASPER] == SYNTHETIC.by_id(GRASPER).name and names[CLIPPER] == SYNTHETIC.by_id(CLIPPER).name
    tracks = labels["tracks"].features
    assert dict(zip(tracks["index"], tracks["class"], strict=True))[2] == SYNTHETIC.by_id(CLIPPER).name
    assert np.allclose(np.asarray(sasvi.colormap.map(np.array([GRASPER])))[0][:3], np.array(SYNTHETIC.by_id(GRASPER).color) / 255, atol=0.01)  # fmt: skip


@pytest.mark.gui
def test_napari_writer_saves_an_image_and_its_labels(tmp_path, make_napari_viewer_proxy):
    """napari's "save selected layers" with one image and two labels layers offers the OME-Zarr writer."""
    import zarr
    from ome_zarr_models.v05.image import Image as NgffImage

    from napari_sasvi._napari.writer import write_ome_zarr

    store, frames = make_store(tmp_path)
    viewer = make_napari_viewer_proxy()
    viewer.open(str(store), plugin="napari-sasvi")  # the frames (RGB) and the SASVi + overseer labels layers
    out = tmp_path / "saved.zarr"
    viewer.layers.selection = set(viewer.layers)
    assert viewer.layers.save(str(out), selected=True, plugin="napari-sasvi")
    root = zarr.open_group(str(out), mode="r")
    NgffImage.from_zarr(root)
    stack = open_frames(frames)
    assert root["0"].shape == (N, 3, H, W) and np.array_equal(root["0"][4], stack.frame(4).transpose(2, 0, 1))
    names = _attrs(out / "labels")["ome"]["labels"]
    assert len(names) == 2 and all(" " not in n for n in names)
    first = root[f"labels/{names[0]}/0"]
    assert np.array_equal(first[3], np.asarray(SasviStore.read(store).labels[3]))
    props = {
        p["label-value"]: p["class"] for p in _attrs(out / "labels" / names[0])["ome"]["image-label"]["properties"]
    }
    assert props[GRASPER] == SYNTHETIC.by_id(GRASPER).name
    # a labels layer of another size is refused (napari turns the writer's ValueError into "nothing
    # written"); nothing is written
    odd = viewer.add_labels(np.zeros((N, H, W + 1), np.uint8), name="odd")
    viewer.layers.selection = {viewer.layers[0], odd}
    assert viewer.layers.save(str(tmp_path / "odd.zarr"), selected=True, plugin="napari-sasvi") == []
    assert not (tmp_path / "odd.zarr").exists()
    with pytest.raises(ValueError, match=r"'odd' is \(6, 24, 33\), the image \(6, 24, 32\)"):
        write_ome_zarr(str(tmp_path / "odd.zarr"), [ly.as_layer_data_tuple() for ly in (viewer.layers[0], odd)])


def test_a_folder_of_stores_skips_an_ome_zarr_export_beside_them(tmp_path):
    """export FOLDER takes the SASVi stores in it, not other zarr groups (an OME-Zarr export)."""
    from napari_sasvi.core.exports import export, find_stores

    store, _ = make_store(tmp_path)
    export([store], "ome-zarr", tmp_path / "vid_ome.zarr")
    assert find_stores([tmp_path]) == [store]
    summary = export([tmp_path], "png", tmp_path / "png")
    assert sorted(p.name for p in (tmp_path / "png").glob("*.png"))[:1] and summary is not None


def test_a_refused_napari_save_is_shown(tmp_path, monkeypatch):
    """napari swallows a writer's ValueError: the refusal reaches the user as a notification."""
    import napari.utils.notifications as notes

    from napari_sasvi._napari.writer import write_ome_zarr

    shown = []
    monkeypatch.setattr(notes, "show_error", shown.append)
    frames = np.zeros((2, H, W, 3), np.uint8)
    with pytest.raises(ValueError, match="one image"):
        write_ome_zarr(str(tmp_path / "x.zarr"), [(frames, {"rgb": True}, "image")] * 2)
    assert shown and "nothing was saved" in shown[0] and not (tmp_path / "x.zarr").exists()


def test_a_labels_layer_without_a_class_table_is_not_saved_with_a_guessed_one(tmp_path, monkeypatch):
    import napari.utils.notifications as notes

    from napari_sasvi._napari.writer import write_labels_pngs, write_labels_zarr

    shown = []
    monkeypatch.setattr(notes, "show_error", shown.append)
    labels = np.zeros((2, H, W), np.uint8)
    for write, name in ((write_labels_zarr, "a.zarr"), (write_labels_pngs, "pngs")):
        with pytest.raises(ValueError, match="no class table"):
            write(str(tmp_path / name), labels, {"name": "painted", "metadata": {}})
        assert not (tmp_path / name).exists()
    assert len(shown) == 2
