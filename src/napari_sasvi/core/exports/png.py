"""Palette PNGs of class ids, one folder per store (the reference layout's file names on request),
or grey PNGs of track ids with the track table beside them (``ids="track"``)."""

from __future__ import annotations

import json
import os
from collections.abc import Generator
from pathlib import Path

import numpy as np
from PIL import Image

from ..datasets import ClassTable
from ..errors import InputError
from ..fsutil import atomic_path, atomic_write_text, check_output_path
from ..instances.types import TrackInfo
from .common import WRITTEN_BY, ExportProgress, ExportSummary, Source, check_every, frame_range, open_sources
from .reference import iter_export_label_pngs
from .track_ids import check_ids, require_tracks, track_map

#: the JSON written beside track-id PNGs (the instance label folder format: id -> class)
TRACK_TABLE_FILE = "instances.json"


def iter_export_png(
    stores,
    out: str | os.PathLike,
    *,
    every: int = 1,
    array: str = "labels",
    size: tuple[int, int] | None = None,
    reference_layout: bool = False,
    ids: str | None = None,
    overwrite: bool = False,
) -> Generator[ExportProgress, None, ExportSummary]:
    """PNGs of one video per folder (``out/<video>/``; ``out`` itself for one store): ``<frame>.png``,
    or with ``reference_layout`` the published scripts' ``<frame>_rgb_mask.png``. ``size`` = (W, H)
    resizes (nearest), None keeps the frame size.

    ``ids`` ``"class"`` (or None): palette PNGs whose pixel values are SASVi class ids, the palette
    holding the class colours. ``"track"`` (instance-mode stores): grey PNGs of track ids (0 = no
    track), 8-bit (mode ``L``) when every track id of the video is at most 255, else 16-bit (mode
    ``I;16``), one depth for all frames of a video; beside them ``instances.json``: ``{"classes":
    {"<track id>": class id}, "tracks": [{"id", "class_id", "class_name", "first", "last",
    "mean_score", "parent"}]}`` (first and last: the store's frame indices), the instance label
    folder format (instance PNGs), so the folder reads back as instances.

    Raises:
        InputError: ``ids="track"`` with a class-only store, the overseer's array or
            ``reference_layout``; a folder that already holds PNGs without ``overwrite``.
    """
    from ..inputs.videos import frame_names

    check_every(every)
    check_ids(ids)
    if ids == "track" and reference_layout:
        raise InputError("The reference layout holds class-id palette PNGs; drop --reference-layout with --ids track.")
    sources, classes, notes = open_sources(stores, array, None)
    tables = {s.name: require_tracks(s, array, classes, "--ids track") for s in sources} if ids == "track" else {}
    root = check_output_path(out, "PNG folder")
    dirs = {s.name: root if len(sources) == 1 else root / s.name for s in sources}
    suffix = "_rgb_mask.png" if reference_layout else ".png"
    for s in sources:
        d = dirs[s.name]
        if d.is_dir() and any(p.name.endswith(suffix) for p in d.iterdir()) and not overwrite:
            raise InputError(
                f"{d} already holds label PNGs; pass --overwrite to replace them, or choose another folder."
            )
    total = sum(len(frame_range(s, every)) for s in sources)
    done, per_video = 0, {}
    for s in sources:
        idx = list(frame_range(s, every))
        names = _stem_names(s, frame_names)
        stems = [names[t] for t in idx]
        if ids == "track":
            written = _track_pngs(s, idx, tables[s.name], classes, dirs[s.name], size, stems)
        else:
            written = iter_export_label_pngs(
                _Rows(s, idx), classes, dirs[s.name], size=size, frame_names=stems, suffix=suffix
            )
        for _ in written:
            done += 1
            yield ExportProgress(done, total, s.name)
        per_video[s.name] = len(idx)
    return ExportSummary("png", root, per_video, notes)


def _track_pngs(
    src: Source,
    idx: list[int],
    table: dict[int, TrackInfo],
    classes: ClassTable,
    out: Path,
    size: tuple[int, int] | None,
    stems: list[str],
):
    """Write frames ``idx`` of ``src``'s track ids as grey PNGs and the track table beside them;
    yields each frame index written."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file; give a folder for the PNG export.")
    out.mkdir(parents=True, exist_ok=True)
    dtype = np.uint8 if max(table, default=0) <= 255 else np.uint16
    doc = {
        "written_by": WRITTEN_BY,
        "description": f"pixel values: napari-sasvi track ids of {src.name} (0 = no track), "
        f"{8 * np.dtype(dtype).itemsize}-bit grey; classes: track id -> class id of the table {classes.name!r}",
        "class_table": classes.name,
        "classes": {str(k): table[k].class_id for k in sorted(table)},
        "tracks": [{**table[k].to_dict(), "class_name": classes.by_id(table[k].class_id).name} for k in sorted(table)],
    }
    atomic_write_text(out / TRACK_TABLE_FILE, json.dumps(doc, indent=1))
    for t, stem in zip(idx, stems, strict=True):
        tm = track_map(src, t, table)
        if size is not None:  # nearest on 32-bit ints: the geometry of the class-id PNGs' resize
            tm = np.asarray(Image.fromarray(tm.astype(np.int32), "I").resize(tuple(size), Image.NEAREST))
        with atomic_path(out / f"{stem}.png") as tmp:
            Image.fromarray(np.ascontiguousarray(tm.astype(dtype))).save(tmp, format="PNG")
        yield t


class _Rows:
    """Frames ``idx`` of a source's labels (checked against its class table), read one at a time."""

    def __init__(self, src: Source, idx: list[int]):
        self.src, self.idx = src, idx
        self.shape = (len(idx), *src.array.shape[1:])

    def __getitem__(self, k: int):
        return self.src.labels(self.idx[k])


def _stem_names(src: Source, frame_names) -> list[str]:
    fp = src.store.frames_path
    if fp is not None and Path(fp).is_dir():
        try:
            names = frame_names(src.stack())
        except InputError:
            names = None
        if names is not None:
            return names
    return [f"{t:010d}" for t in range(src.n)]
