"""The demo: the synthetic clip written as files, its noisy "overseer" masks replayed, SASVi run on
them, and the result scored against the ground truth (offline, no weights to download)."""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path

from .config import RunConfig, TrackerConfig
from .engine import FrameDone
from .progress import Returning, drain


def iter_demo(
    out: str | os.PathLike,
    n_frames: int = 60,
    seed: int = 0,
    mode: str = "default",
    tracker: TrackerConfig | None = None,
) -> Generator[str | FrameDone, None, dict]:
    """Yields what it is doing (lines of text) and :class:`FrameDone` per SASVi frame; returns
    ``{"store", "frames", "summary", "dice": {"overseer": {id: d}, "sasvi": {...}}, "macro",
    "temporal": {"ground truth" | "overseer" | "SASVi": macro dict}}``."""
    from PIL import Image

    from .engine.batch import segment_videos
    from .exports.reference import iter_export_frames
    from .inputs.frames import open_frames
    from .inputs.videos import VideoJob
    from .metrics.accuracy import macro, overlap_counts
    from .metrics.temporal import temporal_consistency
    from .store.sasvi_store import SasviStore
    from .synthetic import SyntheticVideo

    tracker = tracker or TrackerConfig(kind="flow")
    video = SyntheticVideo(n_frames=n_frames, seed=seed)
    classes = video.classes
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    yield (
        f"1/3 synthetic clip: {video.n_frames} frames of {video.height} x {video.width}; "
        f"classes {', '.join(c.name for c in classes)}"
    )
    frames_dir, masks_dir = out / "frames", out / "overseer_masks"
    drain(iter_export_frames(open_frames(video.frames_dask(), name=video.name), frames_dir, overwrite=True))
    masks_dir.mkdir(exist_ok=True)
    for t in range(video.n_frames):  # the "overseer": ground truth with realistic frame-wise errors
        Image.fromarray(video.noisy_labels(t)).save(masks_dir / f"{t:010d}.png")
    if tracker.kind == "flow":
        yield f"2/3 SASVi ({mode} mode), tracker: optical flow ({tracker.model or 'dis'}; no weights)"
    else:
        weights = tracker.model or "random weights (offline: the labels show the pipeline, not SAM2's skill)"
        yield f"2/3 SASVi ({mode} mode), SAM2: {weights}"
    config = RunConfig(dataset="synthetic", mode=mode, tracker=tracker)
    store_path = out / f"{video.name}_{mode}.zarr"
    job = VideoJob(name=video.name, frames=frames_dir, store=store_path, masks=masks_dir)
    run = Returning(segment_videos([job], config))
    yield from (item for item in run if isinstance(item, FrameDone))
    batch = run.value
    summary = batch.videos[video.name]
    store = SasviStore.read(store_path)
    yield (
        f"3/3 wrote {store_path}: {store.frames_done} frames; "
        f"{len(summary.restarts)} restarts at {[e['frame'] for e in summary.restarts]}, "
        f"{sum(e['kind'] == 'add_objects' for e in summary.events)} objects added without a reset"
    )
    ids = classes.scored_ids()
    dice = {}
    for who, arr in (("overseer", store.overseer), ("sasvi", store.labels)):
        gt = (video.labels(t) for t in range(video.n_frames))
        dice[who] = overlap_counts((arr[t] for t in range(video.n_frames)), gt, classes.ids).dice()
    ignore = set(classes.ignore_ids) | {classes.no_label}
    stack = open_frames(frames_dir)
    temporal = {
        name: temporal_consistency(lab, stack.data, ignore=ignore, no_label=classes.no_label).macro
        for name, lab in (("ground truth", video.labels_dask()), ("overseer", store.overseer), ("SASVi", store.labels))
    }
    return {
        "store": store_path,
        "frames": frames_dir,
        "video": video,
        "summary": summary,
        "dice": dice,
        "macro": {who: macro(d, ids) for who, d in dice.items()},
        "temporal": temporal,
    }
