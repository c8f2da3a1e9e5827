"""OME-Zarr (NGFF 0.5, zarr v3) of a finished store: the video as the image, SASVi's labels, the
overseer's and (instance stores) the track ids as its label images, so that napari-ome-zarr,
ome-zarr-py and other NGFF tools open it.

Layout::

    video.ome.zarr/
      zarr.json          ome: multiscales (axes t, c, y, x; t scaled by the frame rate when known),
                         omero (the three RGB channels); napari_sasvi: who wrote it, its state
      0/                 (T, 3, H, W) uint8, one chunk per frame
      labels/zarr.json   ome: labels ["sasvi", "overseer", ("tracks")]
      labels/sasvi/      multiscales (axes t, y, x) + image-label (colors, properties, source); 0/ (T, H, W) uint8
      labels/overseer/   the same for the overseer's labels
      labels/tracks/     instance stores: track ids (T, H, W) uint16; properties: track id, class

The export is written one frame at a time (the video is never held whole). Its root is marked
``incomplete`` first and ``complete`` at the end, so an export that stopped half-way is known as
ours and ``overwrite`` replaces it; anything else at the path is left alone.
"""

from __future__ import annotations

import colorsys
import json
import os
import shutil
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ... import __version__
from ..datasets import ClassTable
from ..errors import InputError
from ..fsutil import check_output_path
from ..instances.types import NO_TRACK, TrackInfo
from .common import WRITTEN_BY, ExportProgress, ExportSummary, Source, check_every, frame_range, open_sources
from .track_ids import check_ids, require_tracks, track_map

NGFF_VERSION = "0.5"
#: the key beside ``ome`` in the root's attributes that says napari-sasvi wrote the export
MARK = "napari_sasvi"
RGB = (("red", "FF0000"), ("green", "00FF00"), ("blue", "0000FF"))


@dataclass(frozen=True)
class LabelImage:
    """One label image of an export: its name under ``labels/``, its dtype, frame k's labels (H, W)
    of the exported frames, and its ``image-label`` colours and properties (one per label value)."""

    name: str
    dtype: str
    frame: Callable[[int], np.ndarray]
    colors: list[dict] = field(default_factory=list)
    properties: list[dict] = field(default_factory=list)


def class_label_metadata(classes: ClassTable) -> tuple[list[dict], list[dict]]:
    """``colors`` and ``properties`` of a class-id label image: each class's colour (opaque) and
    name and id; the no-label value, when it is no class, transparent and named "no label"."""
    colors = [{"label-value": c.id, "rgba": [*c.color, 255]} for c in classes]
    props = [{"label-value": c.id, "class": c.name, "class id": c.id} for c in classes]
    if classes.no_label not in classes.ids:
        colors.append({"label-value": classes.no_label, "rgba": [0, 0, 0, 0]})
        props.append({"label-value": classes.no_label, "class": "no label"})
    return colors, props


def track_label_metadata(table: dict[int, TrackInfo], classes: ClassTable) -> tuple[list[dict], list[dict]]:
    """``colors`` and ``properties`` of a track-id label image: a colour of its own per track (hues
    a golden angle apart, so neighbouring ids differ: the class colour would make two graspers one
    blob), and its id, class, first and last frame; 0 (no track) transparent."""
    colors = [{"label-value": NO_TRACK, "rgba": [0, 0, 0, 0]}]
    props: list[dict] = [{"label-value": NO_TRACK, "class": "no track"}]
    for tid in sorted(table):
        info = table[tid]
        r, g, b = colorsys.hsv_to_rgb((tid * 0.618033988749895) % 1.0, 0.75, 0.95)
        colors.append({"label-value": tid, "rgba": [round(r * 255), round(g * 255), round(b * 255), 255]})
        props.append(
            {
                "label-value": tid,
                "track id": tid,
                "class": classes.by_id(info.class_id).name,
                "class id": int(info.class_id),
                "first frame": int(info.first),
                "last frame": int(info.last),
            }
        )
    return colors, props


def _multiscale(name: str, axes: list[dict], time_step: float) -> dict:
    scale = [time_step] + [1.0] * (len(axes) - 1)
    return {
        "name": name,
        "axes": axes,
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}],
    }


def _axes(names: str, time_unit: str | None) -> list[dict]:
    kinds = {"t": "time", "c": "channel", "y": "space", "x": "space"}
    axes = [{"name": a, "type": kinds[a]} for a in names]
    if time_unit:
        axes[0]["unit"] = time_unit
    return axes


def prepare_target(out: str | os.PathLike, overwrite: bool) -> Path:
    """The export's path, emptied when ``overwrite`` and an export of ours is there; anything else
    there is refused (a SASVi store, someone else's OME-Zarr, a folder of files)."""
    target = check_output_path(out, "OME-Zarr export")
    if not target.exists() or (target.is_dir() and not any(target.iterdir())):
        return target
    if not overwrite:
        raise InputError(f"{target} exists; pass --overwrite to replace it, or choose another name.")
    if not written_by_us(target):
        raise InputError(f"{target} was not written by napari-sasvi's OME-Zarr export; it is left as it is.")
    shutil.rmtree(target)
    return target


def written_by_us(path: Path) -> bool:
    """Whether the zarr group at ``path`` is an OME-Zarr export napari-sasvi wrote (whole or not)."""
    try:
        attrs = json.loads((Path(path) / "zarr.json").read_text(encoding="utf-8")).get("attributes") or {}
        return str((attrs.get(MARK) or {}).get("written_by", "")).startswith(WRITTEN_BY)
    except (OSError, ValueError, AttributeError):
        return False


def iter_write_ome_zarr(
    target: Path,
    *,
    name: str,
    n: int,
    image: Callable[[int], np.ndarray],
    image_shape: tuple[int, int, int],
    image_dtype: str = "uint8",
    labels: Sequence[LabelImage] = (),
    time_step: float = 1.0,
    time_unit: str | None = None,
    info: dict | None = None,
) -> Generator[int, None, None]:
    """Write an NGFF 0.5 image of ``n`` frames at ``target`` (which must not exist or be empty).

    Args:
        image: frame k as (C, H, W) of ``image_dtype``; C is 3 (RGB, with ``omero`` channel
            metadata) or 1.
        image_shape: (C, H, W).
        labels: the label images, each read one frame at a time.
        time_step: the ``t`` scale (seconds between exported frames with ``time_unit="second"``).
        info: recorded under ``napari_sasvi`` in the root's attributes.

    Yields the number of frames written after each frame.
    """
    import zarr

    c, h, w = image_shape
    mark = {"written_by": f"{WRITTEN_BY} {__version__}", "state": "incomplete", **(info or {})}
    ome: dict[str, Any] = {
        "version": NGFF_VERSION,
        "multiscales": [_multiscale(name, _axes("tcyx", time_unit), time_step)],
    }
    if c == 3 and image_dtype == "uint8":
        window = {"min": 0, "max": 255, "start": 0, "end": 255}
        ome["omero"] = {
            "channels": [{"label": lab, "color": col, "window": window, "active": True} for lab, col in RGB],
            "rdefs": {"model": "color"},
        }
    target.parent.mkdir(parents=True, exist_ok=True)
    root = zarr.open_group(str(target), mode="w", zarr_format=3, attributes={"ome": ome, MARK: mark})
    img = root.create_array(
        "0", shape=(n, c, h, w), chunks=(1, c, h, w), dtype=image_dtype, dimension_names=("t", "c", "y", "x")
    )
    arrays = []
    if labels:
        group = root.create_group("labels", attributes={"ome": {"version": NGFF_VERSION, "labels": []}})
        for lab in labels:
            image_label: dict[str, Any] = {"version": NGFF_VERSION, "source": {"image": "../../"}}
            if lab.colors:
                image_label["colors"] = lab.colors
            if lab.properties:
                image_label["properties"] = lab.properties
            attrs = {
                "ome": {
                    "version": NGFF_VERSION,
                    "multiscales": [_multiscale(lab.name, _axes("tyx", time_unit), time_step)],
                    "image-label": image_label,
                }
            }
            g = group.create_group(lab.name, attributes=attrs)
            arr = g.create_array(
                "0", shape=(n, h, w), chunks=(1, h, w), dtype=lab.dtype, fill_value=0, dimension_names=("t", "y", "x")
            )
            arrays.append((lab, arr.with_config({"write_empty_chunks": True})))
        # listed once every label image exists: a reader never meets a name without its group
        group.attrs["ome"] = {"version": NGFF_VERSION, "labels": [lab.name for lab in labels]}
    img = img.with_config({"write_empty_chunks": True})
    for k in range(n):
        img[k] = image(k)
        for lab, arr in arrays:
            arr[k] = lab.frame(k)
        yield k + 1
    root.attrs[MARK] = {**mark, "state": "complete"}


def iter_export_ome_zarr(
    store,
    out: str | os.PathLike,
    *,
    every: int = 1,
    ids: str | None = None,
    frames: Any = None,
    overwrite: bool = False,
) -> Generator[ExportProgress, None, ExportSummary]:
    """Write one store as an OME-Zarr (NGFF 0.5) image with its frames (see the module docstring).

    The frames are the store's own (its recorded path, or ``frames`` when they moved), each checked
    against the hash the run recorded. The time axis is scaled to seconds (``every`` / the video's
    frame rate) when the frames are a video file, else 1 per exported frame with no unit.

    Args:
        ids: ``None``: the track ids as ``labels/tracks`` where the store has them; ``"class"``: no
            track ids; ``"track"``: the track ids, a class-only store refused.

    Raises:
        InputError: several stores, ``ids="track"`` with a class-only store, an existing ``out``
            without ``overwrite`` (or one napari-sasvi did not write), frames that are not the store's.
    """
    check_every(every)
    check_ids(ids)
    sources, classes, notes = open_sources([store], "labels", [frames] if frames is not None else None)
    if len(sources) != 1:
        raise InputError(
            f"An OME-Zarr export holds one video; {len(sources)} stores were given (export them one by one)."
        )
    s = sources[0]
    table = None
    if ids == "track" or (ids is None and s.store.tracks is not None):
        table = require_tracks(s, "labels", classes, "an OME-Zarr export of track ids")
    stack = s.stack()  # found and checked before anything is written
    where, home = Path(out).resolve(), s.store.path.resolve()
    if where == home or home in where.parents:
        raise InputError(f"{out} lies inside the store {s.store.path}; choose a path outside it.")
    target = prepare_target(out, overwrite)
    idx = list(frame_range(s, every))
    _, h, w = (int(x) for x in s.array.shape)
    overseer = Source(s.name, s.store, s.store.group["overseer"], s.n)
    colors, props = class_label_metadata(classes)
    labels = [
        LabelImage("sasvi", "uint8", lambda k: s.labels(idx[k]), colors, props),
        LabelImage("overseer", "uint8", lambda k: overseer.labels(idx[k]), colors, props),
    ]
    if table is not None:
        t_colors, t_props = track_label_metadata(table, classes)
        labels.append(LabelImage("tracks", "uint16", lambda k: track_map(s, idx[k], table), t_colors, t_props))
    fps = getattr(stack.source, "fps", None)
    step, unit = (every / fps, "second") if fps else (float(every), None)
    info = {
        "store": str(s.store.path.resolve()),
        "class_table": classes.to_dict(),
        "every": every,
        "frames": [idx[0], idx[-1]],
        "fps": fps,
    }
    writing = iter_write_ome_zarr(
        target,
        name=s.name,
        n=len(idx),
        image=lambda k: np.ascontiguousarray(s.frame(idx[k]).transpose(2, 0, 1)),
        image_shape=(3, h, w),
        labels=labels,
        time_step=step,
        time_unit=unit,
        info=info,
    )
    for done in writing:
        yield ExportProgress(done, len(idx), s.name)
    if not fps:
        notes.append("the frames have no frame rate (a frame folder): the time axis counts frames, with no unit")
    return ExportSummary("ome-zarr", target, {s.name: len(idx)}, notes)


__all__ = [
    "LabelImage",
    "class_label_metadata",
    "iter_export_ome_zarr",
    "iter_write_ome_zarr",
    "prepare_target",
    "track_label_metadata",
    "written_by_us",
]
