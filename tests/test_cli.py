from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from napari_sasvi.cli import main
from napari_sasvi.core.inputs.frames import open_frames
from napari_sasvi.core.inputs.video import write_video


@pytest.fixture
def clip(tmp_path, small_frames):
    big = np.repeat(np.repeat(small_frames, 2, axis=1), 2, axis=2)
    return write_video(tmp_path / "clip.mp4", big, gop=5), big


def test_frames_command_writes_reference_layout(tmp_path, clip):
    path, frames = clip
    out = tmp_path / "out"
    assert main(["frames", str(path), str(out), "--quality", "90"]) == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == [f"{t:010d}.jpg" for t in range(len(frames))]
    assert Image.open(out / files[0]).format == "JPEG"
    again = open_frames(out)
    video = open_frames(path)
    err = np.abs(again.frame(7).astype(int) - video.frame(7).astype(int)).mean()
    assert err < 8


def test_frames_every_nth(tmp_path, clip):
    path, frames = clip
    out = tmp_path / "sub"
    assert main(["frames", str(path), str(out), "--every", "5"]) == 0
    assert len(list(out.iterdir())) == len(range(0, len(frames), 5))
    # output 1 is source frame 5
    video = open_frames(path)
    assert np.abs(open_frames(out).frame(1).astype(int) - video.frame(5).astype(int)).mean() < 8


def test_frames_refuses_to_overwrite(tmp_path, clip, capsys):
    path, _ = clip
    out = tmp_path / "out"
    out.mkdir()
    keep = out / "0000000000.jpg"
    keep.write_bytes(b"precious")
    assert main(["frames", str(path), str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert keep.read_bytes() == b"precious"
    assert main(["frames", str(path), str(out), "--overwrite"]) == 0
    assert keep.read_bytes() != b"precious"


def test_frames_bad_input(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["frames", str(empty), str(tmp_path / "o")]) == 2
    assert "No frame files" in capsys.readouterr().err
    assert main(["frames", str(tmp_path / "missing.mp4"), str(tmp_path / "o")]) == 2
    f = tmp_path / "file"
    f.write_text("x")
    d = tmp_path / "frames"
    d.mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(d / "0.png")
    assert main(["frames", str(d), str(f)]) == 2
    assert "is a file" in capsys.readouterr().err


@pytest.mark.slow  # 4-5 s: the demo's 12 frames at 256 x 320, flow and T/F scoring
def test_demo_runs_offline(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--frames", "12", "--image-size", "64"]) == 0
    out = capsys.readouterr().out
    assert "Grasper" in out and "Dice" in out
    assert len(list((tmp_path / "demo" / "frames").iterdir())) == 12
    from napari_sasvi.core.store.sasvi_store import SasviStore

    store = SasviStore.read(tmp_path / "demo" / "synthetic_surgery_seed0_default.zarr")
    assert store.complete


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "frames" in text and "demo" in text


# -- the one progress display --------------------------------------------------------------------
class _Terminal:
    """A stream that says it is a terminal."""

    def __init__(self):
        import io

        self.buf = io.StringIO()

    def write(self, s):
        return self.buf.write(s)

    def flush(self):
        pass

    def isatty(self):
        return True


def test_progress_draws_a_bar_on_a_terminal_and_log_lines_elsewhere(monkeypatch):
    import io

    import napari_sasvi._cli_progress as cp

    tty = _Terminal()
    with cp.Progress(50, "run", stream=tty) as bar:
        for k in range(1, 51):
            bar.update_to(k)
    assert "\r" in tty.buf.getvalue() and "50/50" in tty.buf.getvalue()

    log = io.StringIO()
    with cp.Progress(50, "run", stream=log) as bar:
        for k in range(1, 51):
            bar.update_to(k, "2.0 frames/s")
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert lines[0] == "run: 5/50 frames (10%), 2.0 frames/s" and lines[-1].startswith("run: 50/50 frames (100%)")
    assert len(lines) == 10

    # a slow task: a line every 10 s even when 10 % takes longer
    clock = iter(range(0, 10_000, 11))
    monkeypatch.setattr(cp.time, "monotonic", lambda: next(clock))
    log = io.StringIO()
    with cp.Progress(1000, "slow", stream=log) as bar:
        for k in (1, 2, 3):
            bar.update_to(k)
    assert log.getvalue().splitlines() == [f"slow: {k}/1000 frames (0%)" for k in (1, 2, 3)]


def test_demo_writes_into_a_temporary_folder_unless_out(tmp_path, monkeypatch, capsys):
    import tempfile

    cwd, tmp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmp.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    assert main(["demo", "--frames", "4"]) == 0
    assert list(cwd.iterdir()) == []  # nothing left in the working folder
    (out,) = tmp.iterdir()
    assert (out / "frames").is_dir()
    assert f"are in {out} (a temporary folder" in capsys.readouterr().out


def test_tests_keep_temporary_folders_only_on_failure(request):
    assert request.config.getini("tmp_path_retention_policy") == "failed"
