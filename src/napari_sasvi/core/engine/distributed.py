"""Many videos on a dask.distributed cluster: one task per video, each video's run as on one
machine (its policy is sequential), its store the checkpoint.

:func:`iter_segment_distributed` plans the batch on the client exactly as
:func:`~.segment.segment_videos` does (the same checks before anything runs), submits one task per
video and reports progress by reading the stores' own progress files, which every worker rewrites
after each finished frame (so the stores must be on a file system the client and the workers
share, as for any cluster job). A task that fails by bad input returns its message (no retry: the
same input fails the same way); a task whose worker dies is run again by the scheduler, and its
video resumes from its store, losing at most the frame being computed (SASVi replays from the last
segment start; see store/sasvi_store.py). Models are built once per worker process and kept there.

GPUs: a task asks for the dask resource ``GPU`` (1 per video) when the run's device is ``cuda``;
start GPU workers with ``--resources GPU=1`` (one per GPU, ``CUDA_VISIBLE_DEVICES`` set by the job
script). The local cluster (``scheduler="local"``) has one worker per CUDA device when there are
some, else ``n_workers`` CPU workers sharing the cores.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..errors import InputError, SasviError
from ..progress import drain

log = logging.getLogger(__name__)

_MODELS = None  # per worker process: the models, built once
_RUN_LOCK = threading.Lock()  # one video at a time per worker process: the models hold one video's state


@dataclass(frozen=True)
class ClusterReady:
    """The cluster is up: where its dashboard is, how many workers, how many videos were submitted."""

    dashboard: str | None
    workers: int
    videos: int
    local: bool


@dataclass(frozen=True)
class BatchProgress:
    """Frames on disk per video (read from the stores) and overall."""

    done: int
    total: int
    videos: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (done, n)
    finished: int = 0


@dataclass(frozen=True)
class VideoFailed:
    name: str
    message: str


def _worker_models():
    global _MODELS
    if _MODELS is None:
        from .batch import Models

        _MODELS = Models()
    return _MODELS


def run_job(job, config_dict: dict, threads: int | None = None) -> dict:
    """One video on a worker (the task): returns ``{"summary": RunSummary}`` or ``{"error": msg}``
    for bad input (not retried)."""
    from .batch import segment_videos

    if threads:
        import sys

        if "torch" in sys.modules or config_dict.get("tracker", {}).get("kind") != "flow":
            import torch

            torch.set_num_threads(threads)
        import cv2

        cv2.setNumThreads(threads)
    config = RunConfig.from_dict(config_dict)
    _pick_gpu(config.device)
    # a worker with several threads may be given two videos at once: they would share one tracker
    # (its state is the video's), so they take turns; a worker per GPU (or core share) is the unit
    with _RUN_LOCK:
        try:
            return {"summary": drain(segment_videos([job], config, models=_worker_models())).videos[job.name]}
        except SasviError as e:
            return {"error": str(e)}


def _absolute(value):
    """A relative path that exists here, made absolute (workers start elsewhere); anything else
    (a model name, an array, None) unchanged."""
    if isinstance(value, (str, os.PathLike)) and str(value) and Path(value).exists():
        return str(Path(value).resolve())
    return value


def _absolute_job(job):
    from dataclasses import fields, replace

    changes = {}
    for f in fields(job):
        v = getattr(job, f.name)
        if isinstance(v, (str, os.PathLike)) and f.name != "name":
            changes[f.name] = Path(v).resolve() if isinstance(v, Path) else _absolute(v)
    return replace(job, **changes)


def _absolute_config(d: dict) -> dict:
    d = json.loads(json.dumps(d))  # a copy
    if isinstance(d.get("dataset"), str):
        d["dataset"] = _absolute(d["dataset"])
    for section, keys in (
        ("overseer", ("checkpoint", "masks", "anchors")),
        ("tracker", ("checkpoint", "config", "model")),
        ("export", ("png", "events_json")),
    ):
        for k in keys:
            if (d.get(section) or {}).get(k) is not None:
                d[section][k] = _absolute(d[section][k])
    return d


def _pick_gpu(device: str) -> None:
    """On a worker of a machine with several GPUs and no ``CUDA_VISIBLE_DEVICES`` of its own (a
    LocalCluster's workers): make GPU ``worker name mod GPUs`` this process's current device, so
    that one worker per GPU means one GPU per worker. Job scripts that set the variable per
    worker are left alone."""
    if device not in ("auto", "cuda") or os.environ.get("CUDA_VISIBLE_DEVICES"):
        return
    import torch

    if not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        return
    try:
        from distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):
        return
    if isinstance(name, int) or (isinstance(name, str) and name.isdigit()):
        torch.cuda.set_device(int(name) % torch.cuda.device_count())


def _frames_done(store: Path) -> int:
    from ..store.sasvi_store import PROGRESS

    try:
        return int(json.loads((store / PROGRESS).read_text(encoding="utf-8"))["frames_done"])
    except (OSError, ValueError, KeyError):
        return 0


def local_cluster(n_workers: int | None = None, device: str = "auto", videos: int | None = None):
    """A LocalCluster for SASVi: one worker per CUDA device (resource GPU=1) when the run uses
    CUDA, else ``n_workers`` CPU workers (default: one per 2 cores, at least 1); never more
    workers than ``videos`` (a worker without a video would only hold cores and memory)."""
    from distributed import LocalCluster

    gpus = 0
    if device in ("auto", "cuda"):
        try:
            import torch

            gpus = torch.cuda.device_count()
        except ImportError:  # pragma: no cover - torch is a dependency
            gpus = 0
    if gpus:
        return LocalCluster(
            n_workers=min(n_workers or gpus, videos or gpus),
            threads_per_worker=1,
            resources={"GPU": 1},
            dashboard_address=":0",
        )
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    n = min(n_workers or max(1, cores // 2), videos or cores)
    return LocalCluster(n_workers=n, threads_per_worker=1, dashboard_address=":0", processes=True)


def iter_segment_distributed(
    inputs: Any,
    config: RunConfig | None = None,
    out: str | os.PathLike | None = None,
    *,
    client=None,
    scheduler: str = "local",
    n_workers: int | None = None,
    retries: int = 1,
    poll: float = 0.5,
    connect_timeout: float = 20,
) -> Generator:
    """Run the batch :func:`~.segment.segment_videos` would run, one dask task per video.

    Args:
        client: a ``distributed.Client`` to use (the caller's cluster); else one is made for
            ``scheduler``: ``"local"`` (a :func:`local_cluster`) or a scheduler address.
        retries: extra attempts for a task that raised (a worker's death is rescheduled anyway).
        connect_timeout: seconds to wait for the scheduler at an address.

    Yields :class:`ClusterReady`, :class:`BatchProgress` (every ``poll`` seconds while frames are
    added), :class:`~.segment.VideoDone` or :class:`VideoFailed` per video; returns a
    :class:`~.segment.BatchSummary`. Stopping the generator cancels the tasks not yet finished
    (the stores keep what was written; the same call resumes them).
    """
    from ..inputs.frames import open_frames
    from ..inputs.videos import plan_videos
    from .batch import BatchSummary, VideoDone, _check_exports, write_events_json

    config = config or RunConfig()
    config.class_table()
    config.policy_params(config.class_table())
    jobs = plan_videos(inputs, out if out is not None else "", config)
    _check_exports(config, jobs)
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        raise InputError(f"Two videos share a name ({', '.join(sorted(names))}); their stores would collide.")
    sizes = {j.name: len(open_frames(j.frames, name=j.name)) for j in jobs}

    own = None
    if client is None:
        try:
            from distributed import Client
        except ImportError as e:  # pragma: no cover - a dependency
            raise InputError("dask.distributed is not installed: pip install distributed") from e
        if scheduler == "local":
            cluster = local_cluster(n_workers, config.device, videos=len(jobs))
            own = (Client(cluster), cluster)
        else:
            try:
                own = (Client(scheduler, timeout=f"{connect_timeout}s"), None)
            except (OSError, TimeoutError, ValueError) as e:
                raise InputError(
                    f"No dask scheduler answers at {scheduler!r} ({type(e).__name__}: {e}).\n"
                    "  Start one (dask scheduler; workers: dask worker ADDRESS), check the address, "
                    "or use scheduler local. Nothing was written."
                ) from e
        client = own[0]
    try:
        if own is not None and own[1] is None:  # a cluster's address: let its workers join first
            try:
                client.wait_for_workers(1, timeout=connect_timeout)
            except (TimeoutError, OSError) as e:
                raise InputError(
                    f"The dask scheduler at {scheduler!r} has no worker after {connect_timeout:g} s; start some "
                    "(dask worker ADDRESS) and run again. Nothing was written."
                ) from e
        info = client.scheduler_info()
        workers = info.get("workers", {})
        has_gpu = any((w.get("resources") or {}).get("GPU") for w in workers.values())
        resources = {"GPU": 1} if (config.device == "cuda" or (config.device == "auto" and has_gpu)) else None
        if config.device == "cuda" and not has_gpu:
            raise InputError(
                "device cuda on a cluster with no GPU worker: start the workers with --resources GPU=1, "
                "or run with device auto or cpu."
            )
        threads = None
        if own is not None and own[1] is not None and not has_gpu:  # our local CPU cluster: share the cores
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            threads = max(1, cores // max(1, min(len(workers), len(jobs))))
        cfg = _absolute_config(config.to_dict())
        jobs = [_absolute_job(j) for j in jobs]
        futures = {
            client.submit(
                run_job, job, cfg, threads, key=f"sasvi-{job.name}-{time.time_ns()}", retries=retries,
                resources=resources, pure=False,
            ): job
            for job in jobs
        }  # fmt: skip
        yield ClusterReady(getattr(client, "dashboard_link", None), len(workers), len(jobs), own is not None)
        results, pending, last, finished = {}, set(futures), None, 0
        while pending:
            done_now = [f for f in pending if f.done()]
            for fut in done_now:
                pending.discard(fut)
                job = futures[fut]
                finished += 1
                try:
                    res = fut.result()
                except Exception as e:  # noqa: BLE001 - a task that died for good: say which and why
                    yield VideoFailed(job.name, f"{type(e).__name__}: {e}")
                    continue
                if "error" in res:
                    yield VideoFailed(job.name, res["error"])
                else:
                    results[job.name] = res["summary"]
                    yield VideoDone(job.name, res["summary"])
            per = {j.name: (min(_frames_done(Path(j.store)), sizes[j.name]), sizes[j.name]) for j in jobs}
            prog = BatchProgress(sum(d for d, _ in per.values()), sum(sizes.values()), per, finished)
            if prog != last:
                yield prog
                last = prog
            if pending and not done_now:
                time.sleep(poll)
        write_events_json(config, results, len(jobs))
        return BatchSummary(results)
    except GeneratorExit:
        for fut in futures if "futures" in locals() else ():
            fut.cancel()
        raise
    finally:
        if own is not None:
            own[0].close()
            if own[1] is not None:
                own[1].close()


def segment_distributed(inputs: Any, config: RunConfig | None = None, out=None, **kwargs):
    """Drive :func:`iter_segment_distributed` to the end; returns its BatchSummary (videos that
    failed are missing from it and named in the log)."""

    def report(item):
        if isinstance(item, VideoFailed):
            log.error("%s: %s", item.name, item.message)

    return drain(iter_segment_distributed(inputs, config, out, **kwargs), report)


__all__ = [
    "BatchProgress",
    "ClusterReady",
    "VideoFailed",
    "iter_segment_distributed",
    "local_cluster",
    "segment_distributed",
]
