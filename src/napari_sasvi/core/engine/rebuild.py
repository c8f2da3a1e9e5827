"""What a store's own record rebuilds: the tracker its edits use, and the job that resumes it.

A store records the :class:`~napari_sasvi.core.config.RunConfig` of its run (``store.config``),
where its frames are (``store.frames_path``) and, in its signature, what decided its labels. An
edit recomputes spans with the tracker that made the rest (:func:`edit_tracker`); a run stopped
by a crash, a full disk or Cancel continues from the store alone (:func:`resume_job`), with no
need to repeat the command's options.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..config import RunConfig, TrackerConfig
from ..errors import InputError
from ..inputs.videos import VideoJob
from ..store.sasvi_store import SasviStore
from .batch import Models

log = logging.getLogger(__name__)


def store_run_config(store: SasviStore) -> RunConfig | None:
    """The run config the store recorded, or None (stores written before it was recorded, or a
    record this version cannot read: logged)."""
    rec = store.config
    if rec is None:
        return None
    try:
        return RunConfig.from_dict(rec)
    except InputError as e:
        log.warning("the run config recorded in %s does not load (%s)", store.path, e)
        return None


def store_tracker_config(store: SasviStore) -> TrackerConfig:
    """The tracker a store was made with: the run's recorded :class:`RunConfig`, or for stores
    written before it was recorded, the tracker's description where that names enough (the flow
    tracker, an official SAM2 model). Raises :class:`InputError` when it cannot be rebuilt."""
    config = store_run_config(store)
    if config is not None:
        return config.tracker
    desc = store.signature.get("tracker", {})
    if desc.get("type") == "flow":
        return TrackerConfig(kind="flow", model=desc.get("method"))
    if desc.get("type") == "sam2" and desc.get("model") and not desc.get("checkpoint"):
        return TrackerConfig(kind="sam2", model=desc["model"], image_size=desc.get("image_size"))
    raise InputError(
        f"The store {store.path} was made with the tracker {desc.get('type')} "
        f"({desc.get('config') or desc.get('model')}, checkpoint {desc.get('checkpoint')}), which cannot be rebuilt "
        "from the store alone: give it explicitly (napari-sasvi edit --tracker ... --other-tracker)."
    )


def edit_tracker(store, models: Models | None = None, device: str = "auto", tracker: TrackerConfig | None = None):
    """The tracker an edit of ``store`` uses: the store's own (:func:`store_tracker_config`), or
    ``tracker`` when the user names another; built for the store's mode (the legacy SAM2
    predictor for a ``reference`` run), memoised in ``models`` when given."""
    legacy = store.signature.get("params", {}).get("mode") == "reference"
    cfg = tracker if tracker is not None else store_tracker_config(store)
    run = RunConfig(mode="reference" if legacy else "default", device=device, tracker=cfg)
    return (models or Models()).tracker(run)


def resume_job(path: str | os.PathLike) -> tuple[VideoJob, RunConfig]:
    """The job and config that continue the store at ``path`` where its run stopped: its recorded
    run config, its frames where the store says they are, its overseer masks and anchors as the
    config names them. Raises :class:`InputError` for a store that records no config (written
    before napari-sasvi recorded it: run the same segment command again), whose frames are not
    where it says, or that was made from an array (give the frames again through the Python API)."""
    store = SasviStore.read(path)
    config = store_run_config(store)
    if config is None:
        raise InputError(
            f"{store.path} records no run config (written by an earlier napari-sasvi): resume it by running the "
            "same `napari-sasvi segment` command again."
        )
    frames = store.frames_path
    if frames is None:
        raise InputError(
            f"{store.path} was made from frames in memory (an array): resume it with segment_video(frames, "
            f"{str(store.path)!r}, config) in Python."
        )
    if not frames.exists():
        raise InputError(f"The frames of {store.path} are not where it says ({frames}): put them back, then resume.")
    if config.overseer.kind == "replay" and not config.overseer.masks:
        raise InputError(
            f"{store.path} was made with overseer masks in memory (an array): resume it with "
            f"segment_video(frames, {str(store.path)!r}, config, masks=...) in Python."
        )
    name = str(store.signature.get("input", {}).get("name") or Path(frames).stem)
    job = VideoJob(
        name=name,
        frames=frames,
        store=store.path,
        masks=config.overseer.masks if config.overseer.kind == "replay" else None,
        anchors=config.overseer.anchors,
        png=Path(config.export.png) if config.export.png else None,
    )
    return job, config


__all__ = ["edit_tracker", "resume_job", "store_run_config", "store_tracker_config"]
