"""Failed checks leave nothing behind, resume trusts content, and errors a person can act on."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from napari_sasvi.cli import main
from napari_sasvi.core.datasets import SYNTHETIC
from napari_sasvi.core.engine import iter_sasvi, run_sasvi
from napari_sasvi.core.errors import FrameSizeError, InputChangedError, SasviError
from napari_sasvi.core.overseers.replay import ReplayOverseer
from napari_sasvi.core.policy import PolicyParams
from napari_sasvi.core.trackers.flow import FlowTracker

N, H, W = 10, 32, 40


def clip():
    rng = np.random.default_rng(3)
    lab = np.zeros((N, H, W), np.uint8)
    lab[:, :, 20:] = 2
    for t in range(N):
        lab[t, 4:12, 2 + t : 10 + t] = 5
    base = rng.integers(0, 255, (H + 8, W + 8, 3), dtype=np.uint8)
    frames = np.stack([base[t % 4 : t % 4 + H, :W] for t in range(N)])
    frames[lab == 5] = (200, 255, 0)
    return frames, lab


def write_frames(folder, frames, ext="bmp"):
    folder.mkdir(parents=True, exist_ok=True)
    for t, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"{t:04d}.{ext}")
    return folder


def write_masks(folder, lab):
    folder.mkdir(parents=True, exist_ok=True)
    for t, a in enumerate(lab):
        Image.fromarray(a).save(folder / f"{t:04d}.png")
    return folder


def run(frames, masks, out, **kw):
    from napari_sasvi.core.inputs.frames import open_frames

    stack = open_frames(frames)
    ov = ReplayOverseer(masks, SYNTHETIC, frame_count=len(stack), frame_size=stack.frame_size)
    return run_sasvi(stack, ov, FlowTracker(), str(out), SYNTHETIC, PolicyParams(), **kw)


@pytest.fixture
def inputs(tmp_path):
    frames, lab = clip()
    return write_frames(tmp_path / "frames", frames), write_masks(tmp_path / "masks", lab), frames, lab


def test_bad_inputs_are_refused_before_a_store_exists(tmp_path, inputs, capsys):
    frames, masks, arr, lab = inputs
    common = ["--dataset", "synthetic", "--tracker", "flow"]
    # a mask with an id outside the table, found at frame 7
    bad = lab.copy()
    bad[7, 0, 0] = 99
    write_masks(tmp_path / "bad_masks", bad)
    out = tmp_path / "out.zarr"
    assert (
        main(["segment", str(frames), "--out", str(out), "--overseer-masks", str(tmp_path / "bad_masks"), *common]) == 2
    )
    err = capsys.readouterr().err
    assert "99" in err and "0007.png" in err and not out.exists()
    # a frame of another size in the middle of the folder
    odd = write_frames(tmp_path / "odd", arr)
    Image.fromarray(np.zeros((H + 2, W, 3), np.uint8)).save(odd / "0006.bmp")
    assert main(["segment", str(odd), "--out", str(out), "--overseer-masks", str(masks), *common]) == 2
    assert "0006.bmp" in capsys.readouterr().err and not out.exists()
    with pytest.raises(FrameSizeError):
        run(odd, masks, out)
    assert not out.exists()
    # the corrected run into the same --out works
    assert main(["segment", str(frames), "--out", str(out), "--overseer-masks", str(masks), *common]) == 0
    assert (out / "zarr.json").exists()


def test_masks_for_fewer_frames_name_the_frames_without_one(tmp_path, inputs, capsys):
    frames, masks, arr, lab = inputs
    (masks / "0003.png").unlink()
    (masks / "0099.png").write_bytes((masks / "0004.png").read_bytes())
    (masks / "0004.png").unlink()
    out = tmp_path / "out.zarr"
    common = ["--dataset", "synthetic", "--tracker", "flow", "--overseer-masks", str(masks)]
    assert main(["segment", str(frames), "--out", str(out), *common]) == 2
    err = capsys.readouterr().err
    assert f"hold {N - 1} frames but the video has {N}" in err
    assert "Frames without a mask (matched by file name): 0003.bmp, 0004.bmp" in err
    assert "Masks without a frame (matched by file name): 0099.png" in err
    assert not out.exists()


def test_corrected_frame_after_a_mid_run_failure_resumes(tmp_path, inputs):
    frames, masks, arr, lab = inputs
    good = (frames / "0006.bmp").read_bytes()
    (frames / "0006.bmp").write_bytes(good[: len(good) // 3])  # truncated: found only when decoded
    out = tmp_path / "out.zarr"
    with pytest.raises(SasviError, match="0006.bmp"):
        run(frames, masks, out)
    from napari_sasvi.core.store.sasvi_store import SasviStore

    kept = SasviStore.read(out).frames_done
    assert 0 < kept <= 6
    (frames / "0006.bmp").write_bytes(good)  # fixed: the re-run resumes, nothing refused
    summary = run(frames, masks, out)
    assert summary.resumed_from == kept and SasviStore.read(out).complete
    fresh = run(frames, masks, tmp_path / "fresh.zarr")
    assert fresh.frames_written == N
    np.testing.assert_array_equal(SasviStore.read(out).labels[:], SasviStore.read(tmp_path / "fresh.zarr").labels[:])


def test_a_changed_frame_with_the_same_name_and_size_is_noticed(tmp_path, inputs):
    frames, masks, arr, lab = inputs
    out = tmp_path / "out.zarr"
    run(frames, masks, out, stop_after=6)
    f2 = frames / "0002.bmp"
    size = f2.stat().st_size
    changed = arr[2].copy()
    changed[0, 0] = changed[0, 0] ^ 0xFF  # one pixel; a BMP keeps its byte size
    Image.fromarray(changed).save(f2)
    assert f2.stat().st_size == size
    with pytest.raises(InputChangedError, match=r"frame 2 \(0002.bmp\) differs"):
        run(frames, masks, out)
    Image.fromarray(arr[2]).save(f2)  # restored: the run continues
    assert run(frames, masks, out).resumed_from == 6


def test_a_changed_frame_of_an_array_is_noticed_when_read_again(tmp_path, inputs):
    _, masks, arr, lab = inputs
    out = tmp_path / "arr.zarr"
    data = arr.copy()
    ov = ReplayOverseer(lab, SYNTHETIC)
    gen = iter_sasvi(data, ov, FlowTracker(), str(out), SYNTHETIC, PolicyParams(), stop_after=4)
    for _ in gen:
        pass
    data[3, 5, 5] ^= 0xFF  # a frame the resumed run reads again (its segment started at 0)
    with pytest.raises(InputChangedError, match="frame 3 differs"):
        for _ in iter_sasvi(data, ReplayOverseer(lab, SYNTHETIC), FlowTracker(), str(out), SYNTHETIC, PolicyParams()):
            pass


def test_changed_masks_are_another_run(tmp_path, inputs):
    frames, masks, arr, lab = inputs
    out = tmp_path / "out.zarr"
    run(frames, masks, out, stop_after=3)
    changed = lab[8].copy()
    changed[0, 0] = 5
    Image.fromarray(changed).save(masks / "0008.png")
    with pytest.raises(SasviError, match="differs in: overseer"):
        run(frames, masks, out)


def test_output_paths_and_exports(tmp_path, inputs, capsys):
    frames, masks, arr, lab = inputs
    common = ["--dataset", "synthetic", "--tracker", "flow", "--overseer-masks", str(masks)]
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    assert main(["segment", str(frames), "--out", str(a_file / "out.zarr"), *common]) == 2
    err = capsys.readouterr().err
    assert "which is a file" in err and "Traceback" not in err
    png = tmp_path / "png"
    out = tmp_path / "o.zarr"
    assert main(["segment", str(frames), "--out", str(out), "--export-png", str(png), *common]) == 0
    first = (png / "0000_rgb_mask.png").read_bytes()
    (png / "0000_rgb_mask.png").write_bytes(b"mine")
    assert main(["segment", str(frames), "--out", str(out), "--export-png", str(png), *common]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (png / "0000_rgb_mask.png").read_bytes() == b"mine"
    assert main(["segment", str(frames), "--out", str(out), "--export-png", str(png), "--overwrite", *common]) == 0
    assert (png / "0000_rgb_mask.png").read_bytes() == first
    assert main(["segment", str(frames), "--out", str(out), "--device", "cuda", *common]) == 0
    assert "the flow tracker runs on the CPU" in capsys.readouterr().err


def test_ctrl_c_says_how_to_continue(tmp_path, inputs, capsys, monkeypatch):
    frames, masks, arr, lab = inputs
    import napari_sasvi.core.engine.batch as segment

    def interrupted(*a, **k):
        raise KeyboardInterrupt
        yield

    monkeypatch.setattr(segment, "iter_sasvi", interrupted)
    argv = ["segment", str(frames), "--out", str(tmp_path / "o.zarr"), "--dataset", "synthetic", "--tracker", "flow",
            "--overseer-masks", str(masks)]  # fmt: skip
    assert main(argv) == 130
    assert "Run the same command again to continue" in capsys.readouterr().err


def test_error_first_lines_are_short(tmp_path, inputs):
    """Every refusal above starts with one line a person can read; details follow."""
    frames, masks, arr, lab = inputs
    from napari_sasvi.core.inputs.labels import open_labels

    bad = lab.copy()
    bad[:, 0, :] = np.arange(W) + 100
    msgs = []
    for make in (
        lambda: open_labels(write_masks(tmp_path / "b", bad), SYNTHETIC),
        lambda: ReplayOverseer(masks, SYNTHETIC, frame_count=N + 1),
        lambda: ReplayOverseer(masks, SYNTHETIC, frame_size=(H + 1, W)),
    ):
        with pytest.raises(SasviError) as e:
            make()
        msgs.append(str(e.value))
    for m in msgs:
        assert len(m.splitlines()[0]) <= 200, m


def test_sam2_checkpoint_of_another_config_names_it(tmp_path):
    import torch

    from napari_sasvi.core.errors import CheckpointError
    from napari_sasvi.core.trackers.sam2 import build_sam2_predictor

    tiny = build_sam2_predictor("sam2.1_hiera_t", None, device="cpu", image_size=64)
    ckpt = tmp_path / "mine.pt"
    torch.save({"model": tiny.state_dict()}, ckpt)
    with pytest.raises(CheckpointError) as e:
        build_sam2_predictor("sam2.1_hiera_s", ckpt, device="cpu", image_size=64)
    first = str(e.value).splitlines()[0]
    assert "This is a sam2.1_hiera_t checkpoint" in first and len(first) <= 200
