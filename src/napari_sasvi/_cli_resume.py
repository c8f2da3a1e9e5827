"""``napari-sasvi resume STORE``: continue a run where it stopped (a crash, a full disk, Cancel),
from the store alone: the run config it records, its frames where it says they are."""

from __future__ import annotations

from pathlib import Path


def add_resume(sub) -> None:
    p = sub.add_parser(
        "resume",
        help="continue a stopped run from its store alone (the run config and frames it records)",
        description="Continue the run that wrote STORE after its last finished frame, with the options it "
        "was started with (recorded in the store): no need to repeat the segment command. The frames and "
        "masks must be where they were; their content is checked against the run's.",
    )
    p.add_argument("store", type=Path, help="a store written by napari-sasvi segment (or the widget)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], help="run on another device than recorded")
    p.set_defaults(func=run_resume_command)


def run_resume_command(args) -> int:
    from ._cli_segment import run_jobs
    from .core.engine.rebuild import resume_job
    from .core.store.sasvi_store import SasviStore

    job, config = resume_job(args.store)
    if args.device:
        config = config.replace(device=args.device)
    store = SasviStore.read(job.store)
    if store.complete:
        print(f"{job.store}: complete ({store.n_frames} frames); nothing to resume")
        return 0
    print(
        f"{job.name}: resuming {job.store} after frame {store.frames_done - 1} of {store.n_frames}, frames from {job.frames}"
    )
    return run_jobs([job], config)
