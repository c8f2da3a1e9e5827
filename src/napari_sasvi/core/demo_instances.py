"""The instance demo (``napari-sasvi demo --instances``): the synthetic clip's instruments, two
graspers among them that cross, detected frame by frame by a noisy overseer whose ids say nothing
of identity; SASVi tracks them with stable ids, scored against the instance ground truth (ID
switches, IDF1, Dice per object). Offline, no weights. Benchmarks use the same pieces."""

from __future__ import annotations

import os
from collections.abc import Generator, Iterable
from pathlib import Path

import numpy as np

from .config import RunConfig, TrackerConfig
from .instances.types import Instance
from .progress import Returning, drain
from .records import FrameDone


def gt_instances(video, t: int) -> list[Instance]:
    """The synthetic clip's instruments at t as ground-truth instances (``source_id`` = its id)."""
    ids = video.instance_labels(t)
    classes = video.instance_classes
    return [Instance(classes[int(k)], ids == k, 1.0, int(k)) for k in np.unique(ids) if k != 0]


def object_dice(track_maps: Iterable[np.ndarray], gt_maps: Iterable[np.ndarray]) -> dict[int, tuple[int, float]]:
    """Per ground-truth object: the predicted track that overlaps it most over the whole clip, and
    the Dice of the two over all frames (2 |A & B| / (|A| + |B|), pixels summed over frames).

    Args:
        track_maps, gt_maps: per frame, (H, W) id maps (0 = none) of the prediction and the truth.
    Returns:
        gt id -> (track id, Dice); track 0 and Dice 0 for an object no track touches.
    """
    inter: dict[tuple[int, int], int] = {}
    pred_area: dict[int, int] = {}
    gt_area: dict[int, int] = {}
    for p, g in zip(track_maps, gt_maps, strict=True):
        p, g = np.asarray(p).ravel(), np.asarray(g).ravel()
        for k, n in zip(*np.unique(p[p != 0], return_counts=True), strict=True):
            pred_area[int(k)] = pred_area.get(int(k), 0) + int(n)
        for k, n in zip(*np.unique(g[g != 0], return_counts=True), strict=True):
            gt_area[int(k)] = gt_area.get(int(k), 0) + int(n)
        both = (p != 0) & (g != 0)
        pairs = p[both].astype(np.int64) * 65536 + g[both]
        for key, n in zip(*np.unique(pairs, return_counts=True), strict=True):
            pk = (int(key) // 65536, int(key) % 65536)
            inter[pk] = inter.get(pk, 0) + int(n)
    out = {}
    for g, ga in sorted(gt_area.items()):
        best = max(((n, p) for (p, gg), n in inter.items() if gg == g), default=(0, 0))
        n, p = best
        out[g] = (p, 2.0 * n / (ga + pred_area[p]) if p else 0.0)
    return out


def iter_demo_instances(
    out: str | os.PathLike, n_frames: int = 60, seed: int = 0, tracker: TrackerConfig | None = None
) -> Generator[str | FrameDone, None, dict]:
    """Yields what it does (lines) and :class:`FrameDone` per frame; returns ``{"store", "video",
    "summary", "identity": TrackEvaluation, "dice": {gt id: (track, Dice)}, "tracks": table}``."""
    from .engine.batch import segment_videos
    from .exports.reference import iter_export_frames
    from .inputs.frames import open_frames
    from .inputs.videos import VideoJob
    from .metrics.identity import track_metrics
    from .store.sasvi_store import SasviStore
    from .synthetic import SyntheticVideo
    from .synthetic_instances import write_instance_pngs

    tracker = tracker or TrackerConfig(kind="flow")
    video = SyntheticVideo(n_frames=n_frames, seed=seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pair = video.crossing_frames()
    yield (
        f"1/3 synthetic clip: {video.n_frames} frames of {video.height} x {video.width}; instruments "
        f"{', '.join(video.classes.by_id(c).name for c in video.instance_classes.values())}"
        + (f"; the two graspers cross at frames {pair[0]}-{pair[-1]}" if pair else "")
    )
    frames_dir, det_dir = out / "frames", out / "overseer_detections"
    drain(iter_export_frames(open_frames(video.frames_dask(), name=video.name), frames_dir, overwrite=True))
    write_instance_pngs(video, det_dir, noisy=True)  # a detector's ids: not identities
    yield f"2/3 SASVi --instances, tracker: {tracker.kind}; the overseer: noisy detections with no identity"
    config = RunConfig(dataset="synthetic", tracker=tracker, instances=True)
    store_path = out / f"{video.name}_instances.zarr"
    job = VideoJob(name=video.name, frames=frames_dir, store=store_path, masks=det_dir)
    run = Returning(segment_videos([job], config))
    yield from (item for item in run if isinstance(item, FrameDone))
    summary = run.value.videos[video.name]
    store = SasviStore.read(store_path)
    table = store.track_table
    yield f"3/3 wrote {store_path}: {store.frames_done} frames, {len(table)} tracks"
    pred_classes = {k: t.class_id for k, t in table.items()}
    n = video.n_frames
    identity = track_metrics(
        (np.asarray(store.tracks[t]) for t in range(n)), (gt_instances(video, t) for t in range(n)), pred_classes
    )
    dice = object_dice((np.asarray(store.tracks[t]) for t in range(n)), (video.instance_labels(t) for t in range(n)))
    return {
        "store": store_path,
        "video": video,
        "summary": summary,
        "identity": identity,
        "dice": dice,
        "tracks": table,
    }


__all__ = ["gt_instances", "iter_demo_instances", "object_dice"]
