"""Many videos on dask.distributed (issue 15, item 1): one task per video gives the labels a
sequential run gives, byte for byte; a video with bad input fails alone and is not retried; a
worker killed mid-video loses nothing: its video resumes from its store on the restarted worker."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from conftest import write_video_dirs
from napari_sasvi.cli import main
from napari_sasvi.core.config import RunConfig
from napari_sasvi.core.engine.batch import VideoDone, segment_videos
from napari_sasvi.core.engine.distributed import (
    BatchProgress,
    ClusterReady,
    VideoFailed,
    iter_segment_distributed,
    segment_distributed,
)
from napari_sasvi.core.progress import Returning, drain
from napari_sasvi.core.store.sasvi_store import SasviStore

distributed = pytest.importorskip("distributed")

FLOW = ["--dataset", "synthetic", "--tracker", "flow", "--device", "cpu"]


def _config(masks):
    return RunConfig.from_dict(
        {"dataset": "synthetic", "device": "cpu", "tracker": {"kind": "flow"}, "overseer": {"masks": str(masks)}}
    )


def _sequential(videos, masks, out):
    return drain(segment_videos(videos, _config(masks), out))


def _same_store(a, b):
    sa, sb = SasviStore.read(a), SasviStore.read(b)
    assert sa.complete and sb.complete
    assert np.array_equal(np.asarray(sa.labels[:]), np.asarray(sb.labels[:]))
    assert np.array_equal(np.asarray(sa.overseer[:]), np.asarray(sb.overseer[:]))
    assert sa.events == sb.events


def test_cli_scheduler_local_matches_sequential_and_a_bad_video_fails_alone(tmp_path, capsys):
    names = ["VidA", "VidB", "VidC"]
    videos, masks = write_video_dirs(tmp_path, names, n=6)
    _sequential(videos, masks, tmp_path / "seq")  # before VidC's frame is broken
    bad = sorted((videos / "VidC").iterdir())[3]
    good = bad.read_bytes()
    bad.write_bytes(b"not a png")
    capsys.readouterr()
    out = tmp_path / "dist"
    rc = main(["segment", str(videos), "--out", str(out), "--overseer-masks", str(masks), *FLOW, "--scheduler", "--workers", "2"])  # fmt: skip
    cap = capsys.readouterr()
    assert rc == 1
    assert "dashboard: http" in cap.out and "on a local cluster of 2 worker(s)" in cap.out
    assert "VidC: FAILED" in cap.out and bad.name in cap.out
    assert "1 video(s) failed (VidC)" in cap.err
    for name in ("VidA", "VidB"):
        _same_store(tmp_path / "seq" / f"{name}.zarr", out / f"{name}.zarr")
    # VidC stopped at its broken frame (before its store was made: the frames are checked on
    # opening); fixing the frame and running the same command again finishes it
    assert not (out / "VidC.zarr" / "zarr.json").exists()
    bad.write_bytes(good)
    rc = main(["segment", str(videos), "--out", str(out), "--overseer-masks", str(masks), *FLOW, "--scheduler", "--workers", "2"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    for name in names:
        _same_store(tmp_path / "seq" / f"{name}.zarr", out / f"{name}.zarr")


def test_cli_scheduler_flags_are_checked(tmp_path, capsys):
    videos, masks = write_video_dirs(tmp_path, ["V"], n=2)
    rc = main(["segment", str(videos), "--out", str(tmp_path / "o"), "--overseer-masks", str(masks), *FLOW, "--workers", "2"])  # fmt: skip
    assert rc == 2 and "add --scheduler local" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_python_api_takes_a_client_and_reports_progress(tmp_path):
    videos, masks = write_video_dirs(tmp_path, ["VidA", "VidB"], n=5, seed=4)
    _sequential(videos, masks, tmp_path / "seq")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster:
        with distributed.Client(cluster) as client:
            items = []
            summary = drain(
                iter_segment_distributed(videos, _config(masks), tmp_path / "dist", client=client, poll=0.05),
                items.append,
            )
            assert client.status == "running"  # the caller's client is left open
    ready = [i for i in items if isinstance(i, ClusterReady)]
    assert len(ready) == 1 and ready[0].workers == 2 and ready[0].videos == 2 and not ready[0].local
    progress = [i for i in items if isinstance(i, BatchProgress)]
    assert progress[-1].done == progress[-1].total == 10 and progress[-1].finished == 2
    assert [p.done for p in progress] == sorted(p.done for p in progress)
    assert sorted(i.name for i in items if isinstance(i, VideoDone)) == ["VidA", "VidB"]
    assert sorted(summary.videos) == ["VidA", "VidB"]
    for name in ("VidA", "VidB"):
        _same_store(tmp_path / "seq" / f"{name}.zarr", tmp_path / "dist" / f"{name}.zarr")
    # the same call again resumes: nothing is recomputed
    again = segment_distributed(videos, _config(masks), tmp_path / "dist", scheduler="local", n_workers=1)
    assert all(s.frames_written == 0 and s.resumed_from == 5 for s in again.videos.values())


def test_cli_scheduler_address_of_a_running_cluster(tmp_path, capsys):
    videos, masks = write_video_dirs(tmp_path, ["VidA"], n=3, seed=9)
    with distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster:
        address = cluster.scheduler_address
        rc = main(["segment", str(videos), "--out", str(tmp_path / "o"), "--overseer-masks", str(masks), *FLOW, "--scheduler", address])  # fmt: skip
        out = capsys.readouterr().out
        assert rc == 0 and f"1 video(s) on {address} of 1 worker(s)" in out
        assert SasviStore.read(tmp_path / "o" / "VidA.zarr").complete
        assert cluster.status.name == "running"  # a cluster the user runs is left running


def test_no_scheduler_at_the_address_is_a_clear_error(tmp_path):
    import socket

    from napari_sasvi.core.errors import InputError

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    videos, masks = write_video_dirs(tmp_path, ["VidA"], n=2)
    with pytest.raises(InputError, match="No dask scheduler answers at 'tcp://127.0.0.1:"):
        segment_distributed(
            videos, _config(masks), tmp_path / "o", scheduler=f"tcp://127.0.0.1:{port}", connect_timeout=1
        )
    assert not (tmp_path / "o").exists()


def _pid(dask_worker=None):
    return os.getpid()


@pytest.mark.slow
def test_a_worker_killed_mid_video_resumes_from_its_store(tmp_path):
    n = 60
    videos, masks = write_video_dirs(tmp_path, ["Long"], n=n, seed=7, size=(192, 256))
    ref = _sequential(videos, masks, tmp_path / "seq")
    assert ref.videos["Long"].frames_written == n
    store = tmp_path / "dist" / "Long.zarr"
    killed_at = None
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as cluster:
        with distributed.Client(cluster) as client:
            run = Returning(
                iter_segment_distributed(videos, _config(masks), tmp_path / "dist", client=client, poll=0.02)
            )
            items = []
            for item in run:
                items.append(item)
                if killed_at is None and isinstance(item, BatchProgress) and 5 <= item.done < n - 10:
                    killed_at = item.done
                    for pid in client.run(_pid).values():
                        os.kill(pid, signal.SIGKILL)
                    time.sleep(0.2)
    summary = run.value
    assert killed_at is not None, "the video finished before the worker could be killed"
    assert not [i for i in items if isinstance(i, VideoFailed)]
    s = summary.videos["Long"]
    # the rerun started from the store, not from frame 0, and wrote only the frames left
    assert killed_at <= s.resumed_from < n
    assert s.frames_written == n - s.resumed_from
    _same_store(tmp_path / "seq" / "Long.zarr", store)


@pytest.mark.slow
def test_sam2_on_a_worker_matches_a_sequential_run_with_as_many_threads(tmp_path):
    """The real SAM2 path on a worker. On the CPU, SAM2's floats depend on torch's thread count
    (1 and 2 threads differ in a few pixels), so the sequential reference runs with the worker's
    one thread (dask's workers start with OMP_NUM_THREADS=1)."""
    import torch

    from conftest import SAM2_SIZE

    videos, masks = write_video_dirs(tmp_path, ["V", "W"], n=4, seed=2)
    config = RunConfig.from_dict(
        {
            "dataset": "synthetic",
            "device": "cpu",
            "tracker": {"kind": "sam2", "config": "sam2.1_hiera_t", "random_weights": True, "image_size": SAM2_SIZE},
            "overseer": {"masks": str(masks)},
        }
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        drain(segment_videos(videos, config, tmp_path / "seq"))
    finally:
        torch.set_num_threads(threads)
    # two threads on the worker: both videos are handed to it at once, and take turns on its SAM2
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, dashboard_address=":0") as cluster:
        with distributed.Client(cluster) as client:
            assert client.run(lambda: __import__("torch").get_num_threads()) == {
                w: 1 for w in client.scheduler_info()["workers"]
            }
            summary = segment_distributed(videos, config, tmp_path / "dist", client=client)
            # two videos on one worker: SAM2 was built once there
            assert list(client.run(_builds).values()) == [{"tracker": 1, "overseer": 0}]
    assert summary.videos["V"].frames_written == summary.videos["W"].frames_written == 4
    for name in ("V", "W"):
        _same_store(tmp_path / "seq" / f"{name}.zarr", tmp_path / "dist" / f"{name}.zarr")


def _builds(dask_worker=None):
    from napari_sasvi.core.engine import distributed as d

    return dict(d._MODELS.builds)


def test_paths_sent_to_workers_are_absolute(tmp_path, monkeypatch):
    from napari_sasvi.core.engine.distributed import _absolute_config, _absolute_job
    from napari_sasvi.core.inputs.videos import VideoJob

    monkeypatch.chdir(tmp_path)
    (tmp_path / "v").mkdir()
    (tmp_path / "m").mkdir()
    (tmp_path / "table.yaml").write_text("x")
    job = _absolute_job(VideoJob(name="v", frames="v", store=__import__("pathlib").Path("out/v.zarr"), masks="m"))
    assert job.frames == str(tmp_path / "v") and job.masks == str(tmp_path / "m")
    assert job.store == tmp_path / "out" / "v.zarr" and job.name == "v"
    cfg = _absolute_config(
        {"dataset": "table.yaml", "overseer": {"checkpoint": "published"}, "tracker": {"model": None}}
    )
    assert cfg["dataset"] == str(tmp_path / "table.yaml") and cfg["overseer"]["checkpoint"] == "published"
