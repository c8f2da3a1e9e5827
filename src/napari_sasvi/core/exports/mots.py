"""MOTS text (Voigtlaender et al., "MOTS: Multi-Object Tracking and Segmentation", CVPR 2019): the
txt format of KITTI MOTS and MOTSChallenge, one line per object per frame, read by their mots_tools
and by TrackEval."""

from __future__ import annotations

import json
import os
from collections.abc import Generator

import numpy as np

from ..errors import InputError
from ..fsutil import atomic_write_text, check_output_path
from ..instances.types import NO_TRACK, TrackInfo
from .coco_video import coco_rle
from .common import WRITTEN_BY, ExportProgress, ExportSummary, check_every, frame_range, open_sources, written_by_us
from .track_ids import check_ids, require_tracks, track_map

#: MOTS packs the class into the object id: obj_id = class_id * 1000 + instance_id
ID_BASE = 1000


def iter_export_mots(
    stores,
    out: str | os.PathLike,
    *,
    every: int = 1,
    array: str = "labels",
    ids: str | None = None,
    frame_base: int = 0,
    overwrite: bool = False,
) -> Generator[ExportProgress, None, ExportSummary]:
    """Write the track ids of instance-mode stores as MOTS text, one ``<video>.txt`` per store in the
    folder ``out`` (always a folder, also for one store: the layout TrackEval and mots_tools read,
    one file per sequence).

    Each line is ``time_frame obj_id class_id img_height img_width rle``, sorted by frame then id:

    * ``time_frame``: the store's frame index plus ``frame_base`` (0: KITTI MOTS, whose frames are
      numbered from 0; 1: MOTSChallenge, from 1). With ``every`` > 1 the frames keep their video
      index (0, 2, 4, ... for ``every=2``), so they still name the frame files.
    * ``obj_id`` = ``class_id * 1000 + instance_id``, as MOTS requires (``class_id = obj_id // 1000``).
      ``instance_id`` is napari-sasvi's track id when every track id of the video is below 1000
      (then ``obj_id % 1000`` is the track id); otherwise the tracks of each class are numbered
      1, 2, ... in the order they start, and ``<video>.ids.json`` beside the txt maps each obj_id
      to its track id.
    * ``class_id``: the id in the store's class table (not KITTI's car = 1, pedestrian = 2; tools
      that treat class 10 as KITTI's ignore region need the ids remapped for a table with a class 10).
    * ``rle``: the mask as compressed COCO RLE (pycocotools' ``counts`` string, column-major).

    Objects never overlap: the store holds one track id per pixel.

    Raises:
        InputError: a class-only store (MOTS needs track ids: segment with ``--instances``), the
            overseer's array, ``ids="class"``, a ``frame_base`` other than 0 or 1, more than 999
            tracks of one class, or an existing ``<video>.txt`` without ``overwrite``; nothing is
            written then.
    """
    check_every(every)
    check_ids(ids)
    if ids == "class":
        raise InputError("MOTS writes one line per object; --ids class has no meaning there (drop it).")
    if frame_base not in (0, 1):
        raise InputError(f"frame_base must be 0 (KITTI MOTS) or 1 (MOTSChallenge), got {frame_base}.")
    root = check_output_path(out, "MOTS folder")
    if root.suffix.lower() == ".txt":
        raise InputError(
            f"Give the MOTS export a folder (one <video>.txt per store is written in it), not {root.name}."
        )
    sources, classes, notes = open_sources(stores, array, None)
    tables = {s.name: require_tracks(s, array, classes, "a MOTS export") for s in sources}
    obj_ids = {s.name: mots_object_ids(tables[s.name], s.name) for s in sources}
    for s in sources:
        target = root / f"{s.name}.txt"
        if target.exists() and not overwrite:
            raise InputError(f"{target} exists; pass --overwrite to replace it, or choose another folder.")
    root.mkdir(parents=True, exist_ok=True)
    total = sum(len(frame_range(s, every)) for s in sources)
    done, per_video = 0, {}
    for s in sources:
        table, to_obj = tables[s.name], obj_ids[s.name]
        _, h, w = (int(x) for x in s.array.shape)
        lines = []
        for t in frame_range(s, every):
            tm = track_map(s, t, table)
            rows = sorted((to_obj[int(tid)], int(tid)) for tid in np.unique(tm) if tid != NO_TRACK)
            for oid, tid in rows:
                counts = coco_rle(tm == tid)["counts"]
                lines.append(f"{t + frame_base} {oid} {table[tid].class_id} {h} {w} {counts}")
            done += 1
            yield ExportProgress(done, total, s.name)
        renumbered = any(oid % ID_BASE != tid for tid, oid in to_obj.items())
        mapping = root / f"{s.name}.ids.json"
        if renumbered:
            doc = {
                "written_by": WRITTEN_BY,
                "description": "MOTS obj_id -> napari-sasvi track id (track ids reach 1000, so each class's "
                "tracks are numbered 1, 2, ... in the order they start)",
                "obj_ids": {str(oid): tid for tid, oid in sorted(to_obj.items(), key=lambda kv: kv[1])},
            }
            atomic_write_text(mapping, json.dumps(doc, indent=1))
            notes.append(f"{s.name}: track ids reach 1000; MOTS ids renumbered per class, mapping in {mapping.name}.")
        elif mapping.exists() and written_by_us(mapping):
            mapping.unlink()  # a stale mapping of an earlier export would contradict this one
        atomic_write_text(root / f"{s.name}.txt", "".join(line + "\n" for line in lines))
        per_video[s.name] = len(frame_range(s, every))
    return ExportSummary("mots", root, per_video, notes)


def mots_object_ids(table: dict[int, TrackInfo], video: str = "") -> dict[int, int]:
    """Track id -> MOTS obj_id (``class_id * 1000 + instance_id``): the track id as instance id
    when all are below 1000, else each class's tracks numbered 1, 2, ... by (first frame, id)."""
    if max(table, default=0) < ID_BASE:
        return {tid: info.class_id * ID_BASE + tid for tid, info in table.items()}
    out: dict[int, int] = {}
    per_class: dict[int, int] = {}
    for tid, info in sorted(table.items(), key=lambda kv: (kv[1].first, kv[0])):
        k = per_class[info.class_id] = per_class.get(info.class_id, 0) + 1
        if k >= ID_BASE:
            raise InputError(
                f"{video}: class {info.class_id} has more than {ID_BASE - 1} tracks, more than MOTS ids can hold "
                f"(obj_id = class_id * {ID_BASE} + instance_id); export it as COCO-video instead."
            )
        out[tid] = info.class_id * ID_BASE + k
    return out


__all__ = ["ID_BASE", "iter_export_mots", "mots_object_ids"]
