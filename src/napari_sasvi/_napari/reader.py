"""Reader contribution: frame folders and video files as lazy RGB image layers, and SASVi stores
as their labels layers (SASVi and overseer, in class colours, with class names; an instance store's
track ids and centroids too) beside the frames they were made from."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..core.errors import SasviError
from ..core.inputs.frames import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, open_frames

log = logging.getLogger(__name__)


def _is_frame_folder(path: Path) -> bool:
    if not path.is_dir():
        return False
    with os.scandir(path) as it:
        return any(e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS) for e in it)


def _is_sasvi_store(path: Path) -> bool:
    if not (path.is_dir() and (path / "zarr.json").is_file()):
        return False
    try:
        import json

        return "sasvi" in json.loads((path / "zarr.json").read_text(encoding="utf-8")).get("attributes", {})
    except (OSError, ValueError):
        return False


def get_reader(path):
    """Return a reader for a folder of frames, a video file or a SASVi store, else None (napari
    tries others)."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(path)
    if _is_sasvi_store(p):
        return read_store
    if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file():
        return read_frames
    if _is_frame_folder(p):
        return read_frames
    return None


def read_frames(path):
    """Layer data: the frames as a dask-backed RGB image layer named after the video."""
    if isinstance(path, (list, tuple)):
        path = path[0]
    try:
        stack = open_frames(path)
    except SasviError as e:
        # napari reports reader exceptions to the user; keep our message, it says what to do
        raise ValueError(str(e)) from e
    meta = {"source": str(Path(path).resolve()), "sasvi_frames": True}
    if getattr(stack.source, "fps", None):
        meta["fps"] = stack.source.fps
    return [(stack.data, {"name": stack.name, "rgb": True, "contrast_limits": (0, 255), "metadata": meta}, "image")]


def read_store(path):
    """Layer data of a SASVi store: the frames (when the store records where they are and they are
    still there), the SASVi labels and the overseer's labels (hidden), all lazy; for an instance store
    also its track ids and the tracks' centroids (see :mod:`._track_layers`)."""
    import napari

    from ..core.store.sasvi_store import SasviStore
    from ._track_layers import store_track_layers, watch_store
    from .sample import labels_layer_kwargs

    if isinstance(path, (list, tuple)):
        path = path[0]
    try:
        store = SasviStore.read(path)
    except SasviError as e:
        raise ValueError(str(e)) from e
    classes = store.classes
    name = Path(path).stem
    layers = []
    frames = store.frames_path
    if frames is not None and frames.exists():
        try:
            layers.extend(read_frames(str(frames)))
        except ValueError as e:  # frames moved or damaged: the labels still open
            log.warning("frames of %s not shown: %s", path, e)
    elif frames is not None:
        log.warning("frames of %s were at %s, which is gone; opening the labels only", path, frames)
    meta = {"sasvi_store": str(Path(path).resolve()), "frames_done": store.frames_done}
    instances = store.tracks is not None  # the tracks layer shows the classes too: the class layer starts hidden
    for array, title, visible in (("labels", "SASVi", not instances), ("overseer", "overseer", False)):
        kw = labels_layer_kwargs(classes, f"{name} {title}")
        kw["metadata"] = {**kw["metadata"], **meta, "array": array}
        kw["visible"] = visible
        layers.append((store.group[array], kw, "labels"))
    tracks, centroids = store_track_layers(store, name)
    layers.extend(tracks)
    viewer = napari.current_viewer() if instances and not store.complete else None
    if viewer is not None:  # a run still writes it: the tracks' colours and centroids follow it
        watch_store(viewer, store, name, centroids)
    return layers
