"""`napari-sasvi segment` end to end (real SAM2, random weights, tiny inputs) and its errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from conftest import SAM2_SIZE, write_video_dirs
from napari_sasvi.cli import main
from napari_sasvi.core.store.sasvi_store import SasviStore

COMMON = [
    "--dataset",
    "synthetic",
    "--sam2-config",
    "sam2.1_hiera_t",
    "--sam2-random-weights",
    "--image-size",
    str(SAM2_SIZE),
    "--device",
    "cpu",
]


def test_segment_root_of_videos(tmp_path, capsys):
    videos, masks = write_video_dirs(tmp_path, ["Video1", "Video2"], n=3)
    out = tmp_path / "out"
    rc = main(
        [
            "segment",
            str(videos),
            "--out",
            str(out),
            "--overseer-masks",
            str(masks),
            *COMMON,
            "--events-json",
            str(tmp_path / "events.json"),
            "--export-png",
            str(tmp_path / "png"),
            "--export-npz",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    for name in ("Video1", "Video2"):
        store = SasviStore.read(out / f"{name}.zarr")
        assert store.complete and store.labels.shape == (3, 64, 80)
        pngs = sorted((tmp_path / "png" / name).glob("*_rgb_mask.png"))
        assert [p.name for p in pngs][0] == f"{name}_frame000000_rgb_mask.png"
        im = Image.open(pngs[0])
        assert im.mode == "P" and im.size == (299, 299)
        arr = np.load(tmp_path / "png" / name / f"{name}_frame000000_binary_mask.npz")["arr"]
        assert arr.dtype == bool and arr.shape == (8, 299, 299)
        # every pixel lands in exactly one channel (unlabelled ones are OR-ed into channel 0)
        assert (arr.sum(0) >= 1).all()
    events = json.loads((tmp_path / "events.json").read_text())
    assert set(events) == {"Video1", "Video2"}
    first = events["Video1"][0]
    assert first["kind"] == "restart" and first["frame"] == 0 and first["reason"] == "start"
    assert isinstance(first["mask_labels"], list) and isinstance(first["point_labels"], list)


def test_segment_bad_options(tmp_path, capsys):
    videos, masks = write_video_dirs(tmp_path, ["v"], n=3)
    v, out = videos / "v", tmp_path / "o.zarr"
    with_masks = ["--overseer-masks", str(masks / "v"), "--dataset", "synthetic", "--device", "cpu"]

    def err(*argv):
        assert main(["segment", str(v), "--out", str(out), *argv]) == 2
        return capsys.readouterr().err

    assert "--sam2-checkpoint" in err(*with_masks, "--sam2-config", "sam2.1_hiera_t")
    assert "--overseer-masks" in err(*COMMON)
    assert "Unknown SAM2 config" in err(*with_masks, "--sam2-config", "nope_config", "--sam2-random-weights")
    missing = str(tmp_path / "missing.pt")
    assert "does not exist" in err(*with_masks, "--sam2-config", "sam2.1_hiera_t", "--sam2-checkpoint", missing)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["segment", str(empty), "--out", str(out), *COMMON]) == 2
    assert "No video" in capsys.readouterr().err
    assert not out.exists()


def test_replay_from_label_pngs_maps_watershed_values(tmp_path):
    from napari_sasvi.core.datasets import CHOLECSEG8K
    from napari_sasvi.core.overseers.replay import ReplayOverseer

    grey = np.full((4, 5), 50, np.uint8)  # black background
    grey[1:3, 1:3] = 31  # grasper
    grey[0, 0] = 255  # white border: unlabelled
    (tmp_path / "m").mkdir()
    Image.fromarray(np.dstack([grey] * 3)).save(tmp_path / "m" / "frame_561_endo_watershed_mask.png")
    ov = ReplayOverseer(tmp_path / "m", CHOLECSEG8K, frame_count=1, frame_size=(4, 5))
    (res,) = ov.predict(None, [0])
    assert set(res) == {0, 5}
    assert res[5].mask.sum() == 4 and not res[0].mask[0, 0]
    colour = np.zeros((4, 5, 3), np.uint8)
    colour[..., 0] = 255
    (tmp_path / "c").mkdir()
    Image.fromarray(colour).save(tmp_path / "c" / "0.png")
    with pytest.raises(Exception, match="colour mask"):
        ReplayOverseer(tmp_path / "c", CHOLECSEG8K).predict(None, [0])


@pytest.mark.slow  # Mask R-CNN at its 299 px input: over a second a frame on one CPU thread
def test_segment_with_a_trained_overseer(tmp_path, capsys, maskrcnn_checkpoint):
    """`--overseer maskrcnn --overseer-checkpoint FILE`: the checkpoint loads, the model predicts on
    the frames, SAM2 propagates; the store records the overseer and its checkpoint's hash."""
    videos, _ = write_video_dirs(tmp_path, ["Video1"], n=2)
    ckpt = maskrcnn_checkpoint
    out = tmp_path / "out.zarr"
    argv = ["segment", str(videos / "Video1"), "--out", str(out), "--overseer", "maskrcnn"]
    rc = main([*argv, "--overseer-checkpoint", str(ckpt), "--overseer-score-threshold", "0.01", *COMMON])
    assert rc == 0, capsys.readouterr().err
    store = SasviStore.read(out)
    assert store.complete
    desc = store.signature["overseer"]
    assert desc["type"] == "maskrcnn" and desc["thresholds"]["score"] == 0.01
    assert desc["checkpoint_sha256"] and desc["spec"]["num_labels"] == 8
    overseer = np.asarray(store.overseer[:])
    assert overseer.shape == (2, 64, 80)
    assert set(np.unique(overseer)) - {255} <= set(range(1, 8)), "class 0 (background) is never predicted"
    assert (overseer != 255).any(), "random Mask R-CNN weights detect something above 0.01"


def test_trained_overseer_options_are_checked_before_anything_is_written(tmp_path, capsys, maskrcnn_checkpoint):
    videos, _ = write_video_dirs(tmp_path, ["Video1"], n=2)
    ckpt = maskrcnn_checkpoint
    argv = ["segment", str(videos / "Video1"), "--out"]
    out2 = tmp_path / "out2.zarr"
    assert main([*argv[:3], str(out2), "--overseer-checkpoint", str(ckpt), *COMMON]) == 2
    assert "add --overseer maskrcnn" in capsys.readouterr().err
    assert main([*argv[:3], str(out2), "--overseer", "detr", *COMMON]) == 2
    assert "needs --overseer-checkpoint" in capsys.readouterr().err
    assert main([*argv[:3], str(out2), "--overseer", "detr", "--overseer-checkpoint", str(ckpt), *COMMON]) == 2
    assert "no DETR classifier" in capsys.readouterr().err
    assert not out2.exists()


# -- inputs said, not guessed --------------------------------------------------------------------
FLOW = ["--dataset", "synthetic", "--tracker", "flow", "--device", "cpu"]


def _clip_folder(tmp_path, name="clip", n=4):
    """``<name>/frames``, ``<name>/masks`` and ``<name>/masks_color``, as a dataset ships a clip."""
    import shutil

    videos, masks = write_video_dirs(tmp_path / f"_{name}", ["v"], n=n)
    clip = tmp_path / name
    clip.mkdir()
    shutil.move(str(videos / "v"), clip / "frames")
    shutil.move(str(masks / "v"), clip / "masks")
    shutil.copytree(clip / "masks", clip / "masks_color")
    return clip


def test_a_clip_folder_is_one_video(tmp_path, capsys):
    clip = _clip_folder(tmp_path)
    out = tmp_path / "o.zarr"
    rc = main(["segment", str(clip), "--out", str(out), "--overseer-masks", str(clip / "masks"), *FLOW])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    # one store, not a folder of three (frames.zarr, masks.zarr, masks_color.zarr)
    store = SasviStore.read(out)
    assert store.complete and store.labels.shape == (4, 64, 80)
    first = captured.out.splitlines()[0]
    assert (
        first
        == f"{clip} is one clip: frames from {clip / 'frames'}; masks_color not read unless given as --overseer-masks or --anchors"
    )


def test_a_batch_root_lists_its_videos_before_it_starts(tmp_path, capsys):
    videos, masks = write_video_dirs(tmp_path, ["Video1", "Video2"], n=3)
    rc = main(["segment", str(videos), "--out", str(tmp_path / "out"), "--overseer-masks", str(masks), *FLOW])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    lines = captured.out.splitlines()
    assert lines[0] == f"2 videos under {videos}: Video1, Video2"
    assert lines[1].startswith("Video1: ")  # the listing comes before the first video starts


def test_clip_rule_and_batch_roots_of_clips(tmp_path):
    from napari_sasvi.core.config import RunConfig
    from napari_sasvi.core.inputs.videos import clip_frames, describe_videos, find_videos, plan_videos

    root = tmp_path / "root"
    root.mkdir()
    a, b = _clip_folder(root, "a"), _clip_folder(root, "b")
    jobs = plan_videos(root, tmp_path / "out", RunConfig())
    assert [(j.name, j.frames, j.store) for j in jobs] == [
        ("a", a / "frames", tmp_path / "out" / "a.zarr"),
        ("b", b / "frames", tmp_path / "out" / "b.zarr"),
    ]
    assert describe_videos(root, jobs) == f"2 videos under {root}: a, b"
    # names in any case; images/ rgb/ as the frames folder, gt*/labels* as label folders
    (a / "frames").rename(a / "Images")
    (a / "masks_color").rename(a / "GT_colour")
    assert clip_frames(a) == a / "Images"
    # a sub-folder of images that is neither frames nor labels: a batch, as before
    (a / "masks").rename(a / "other_video")
    assert clip_frames(a) is None
    assert [p.name for p in find_videos(a)] == ["GT_colour", "Images", "other_video"]
    # a frame folder is itself the video
    assert find_videos(b / "frames") == [b / "frames"]
    assert describe_videos(b / "frames", plan_videos(b / "frames", tmp_path / "x.zarr", RunConfig())) == (
        f"1 video: {b / 'frames'}"
    )


def test_progress_is_log_lines_when_not_a_terminal(tmp_path, capsys):
    videos, masks = write_video_dirs(tmp_path, ["v"], n=20, size=(32, 40))
    rc = main(
        ["segment", str(videos / "v"), "--out", str(tmp_path / "o.zarr"), "--overseer-masks", str(masks / "v"), *FLOW]
    )
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "\r" not in err  # no bar redrawn in a log
    lines = [ln for ln in err.splitlines() if ln.startswith("v: ")]
    assert lines[-1].startswith("v: 20/20 frames (100%)")
    # a line per 10 % (every 2 frames here; or per 10 s): 2, 4, ..., 18, and the closing one
    assert [ln.split()[1] for ln in lines] == [f"{k}/20" for k in range(2, 21, 2)]
