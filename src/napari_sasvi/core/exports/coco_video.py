"""COCO-video (YouTube-VIS style) JSON with RLE masks: one track per object (instance-mode stores,
scored by the overseer's mean confidence) or per class and video (scored by its agreement with the
overseer)."""

from __future__ import annotations

import json
import os
from collections.abc import Generator, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..datasets import ClassTable
from ..errors import InputError
from ..fsutil import atomic_write_text, check_output_path
from ..instances.types import NO_TRACK, TrackInfo
from .common import WRITTEN_BY, ExportProgress, ExportSummary, Source, check_every, frame_range, open_sources
from .track_ids import check_ids, table_for, track_map


def coco_rle(mask: np.ndarray) -> dict:
    """A bool mask (H, W) as compressed COCO RLE: ``{"size": [H, W], "counts": "<ascii>"}``."""
    from pycocotools import mask as mask_utils

    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(r["size"][0]), int(r["size"][1])], "counts": r["counts"].decode("ascii")}


def _bbox(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    return [float(x0), float(y0), float(xs.max() - x0 + 1), float(ys.max() - y0 + 1)]


def iter_export_coco_video(
    stores,
    out: str | os.PathLike,
    *,
    every: int = 1,
    array: str = "labels",
    ids: str | None = None,
    overwrite: bool = False,
) -> Generator[ExportProgress, None, ExportSummary]:
    """Write one YouTube-VIS-style JSON for one or more stores: ``videos`` (file names, size,
    length), ``categories`` (the class table: id = SASVi class id, name, colour), and ``annotations``,
    one per track: ``category_id``, ``segmentations`` (COCO RLE per exported frame, null where the
    track is absent), ``areas``, ``bboxes`` (x, y, w, h) and ``score``.

    A track is an object of an instance-mode store (``ids`` None or ``"track"``): one annotation per
    track id with ``track_id`` (napari-sasvi's id, stable over the video) and ``parent_track_id`` (the
    track it split from, or null); its ``score`` is the track table's ``mean_score``, the overseer's
    mean confidence over the frames it detected the object. A class-only store (or ``ids="class"``,
    or the overseer's array) has one track per class present in a video, as before: its ``score`` is
    the agreement with the overseer, the mean IoU between SASVi's mask and the overseer's frame-wise
    mask of that class over the frames where either has it (null for the overseer's own array:
    nothing to compare with). SASVi has no per-mask probability; this says how far propagation went
    from the frame-wise model.

    Raises:
        InputError: ``ids="track"`` with a class-only store or the overseer's array, a track id
            missing from its store's track table, an existing ``out`` without ``overwrite``.
    """
    check_every(every)
    check_ids(ids)
    target = check_output_path(out, "COCO-video JSON")
    if target.suffix.lower() != ".json":
        raise InputError(f"Give the COCO-video export a .json file name, got {target.name}.")
    if target.exists() and not overwrite:
        raise InputError(f"{target} exists; pass --overwrite to replace it, or choose another name.")
    sources, classes, notes = open_sources(stores, array, None)
    tables = {s.name: table_for(s, array, classes, ids, "a COCO-video export with --ids track") for s in sources}
    total = sum(len(frame_range(s, every)) for s in sources)
    videos, annotations, done, per_video = [], [], 0, {}
    for vid, s in enumerate(sources, start=1):
        idx = list(frame_range(s, every))
        _, h, w = (int(x) for x in s.array.shape)
        names = _frame_file_names(s, idx)
        videos.append({"id": vid, "name": s.name, "file_names": names, "width": w, "height": h, "length": len(idx)})

        def progress(k, base=done, video=s.name):
            return ExportProgress(base + k, total, video)

        table = tables[s.name]
        if table is not None:
            maps = (track_map(s, t, table) for t in idx)
            tracks = yield from object_tracks(maps, len(idx), table, progress)
        else:
            pairs = ((s.labels(t), np.asarray(s.store.overseer[t]) if array == "labels" else None) for t in idx)
            tracks = yield from class_tracks(pairs, len(idx), classes, progress)
        done += len(idx)
        for tr in tracks:
            annotations.append({"id": len(annotations) + 1, "video_id": vid, "height": h, "width": w, **tr})
        per_video[s.name] = len(idx)
    n_by_track = sum(tables[s.name] is not None for s in sources)
    per = (
        "per object"
        if n_by_track == len(sources)
        else "per class and video"
        if not n_by_track
        else "per object where a video has track ids, else per class"
    )
    info = {
        "description": f"SASVi {array}, exported by napari-sasvi (one track {per})",
        "every": every,
        "tracks": {s.name: ("object" if tables[s.name] is not None else "class") for s in sources},
        "score": (
            "object tracks (track_id given): the overseer's mean confidence over the frames it detected the object "
            "(the track table's mean_score); class tracks: mean IoU with the overseer's frame-wise mask over the "
            "frames where either has the class"
        ),
    }
    doc = coco_video_document(videos, annotations, classes, info)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, json.dumps(doc))
    return ExportSummary("coco-video", target, per_video, notes)


def object_tracks(
    maps: Iterable[np.ndarray], n: int, table: dict[int, TrackInfo], progress
) -> Generator[Any, None, list[dict]]:
    """One track per track id present in ``maps`` (a track-id map (H, W) per frame): RLE, area and
    box per frame (None where absent), its class and score (``mean_score``) from ``table``. Yields
    ``progress(k)`` after frame k (1-based)."""
    tracks: dict[int, dict] = {}
    for k, tm in enumerate(maps):
        for tid in np.unique(tm):
            if tid == NO_TRACK:
                continue
            m = tm == tid
            tr = tracks.setdefault(int(tid), {"segmentations": [None] * n, "areas": [None] * n, "bboxes": [None] * n})
            tr["segmentations"][k] = coco_rle(m)
            tr["areas"][k] = float(m.sum())
            tr["bboxes"][k] = _bbox(m)
        yield progress(k + 1)
    out = []
    for tid in sorted(tracks):
        info = table[tid]
        out.append(
            {
                "category_id": int(info.class_id),
                "iscrowd": 0,
                "track_id": tid,
                "parent_track_id": info.parent,
                **tracks[tid],
                "score": round(float(info.mean_score), 4),
            }
        )
    return out


def class_tracks(pairs, n: int, classes: ClassTable, progress) -> Generator[Any, None, list[dict]]:
    """One track per class present in ``pairs`` ((labels, reference or None) per frame): RLE,
    area and box per frame (None where absent), and the mean IoU with the reference as its score
    (None without a reference). Yields ``progress(k)`` after frame k (1-based)."""
    tracks: dict[int, dict] = {}
    for k, (lab, ref) in enumerate(pairs):
        for cid in classes.ids:
            m = lab == cid
            r = ref == cid if ref is not None else None
            present = bool(m.any())
            if not present and (r is None or not r.any()):
                continue
            tr = tracks.setdefault(
                cid, {"segmentations": [None] * n, "areas": [None] * n, "bboxes": [None] * n, "iou": []}
            )
            if present:
                tr["segmentations"][k] = coco_rle(m)
                tr["areas"][k] = float(m.sum())
                tr["bboxes"][k] = _bbox(m)
            if r is not None:
                union = np.logical_or(m, r).sum()
                tr["iou"].append(float(np.logical_and(m, r).sum() / union) if union else 1.0)
        yield progress(k + 1)
    out = []
    for cid in sorted(tracks):
        tr = tracks[cid]
        if all(seg is None for seg in tr["segmentations"]):
            continue  # only the reference had it: no track
        score = round(float(np.mean(tr["iou"])), 4) if tr["iou"] else None
        out.append(
            {
                "category_id": int(cid),
                "iscrowd": 0,
                "segmentations": tr["segmentations"],
                "areas": tr["areas"],
                "bboxes": tr["bboxes"],
                "score": score,
            }
        )
    return out


def coco_video_document(videos: list[dict], annotations: list[dict], classes: ClassTable, info: dict) -> dict:
    """The YouTube-VIS-style document: ``info``, ``videos``, ``categories`` (the class table, id =
    SASVi class id), ``annotations``."""
    return {
        "info": {"written_by": WRITTEN_BY, "class_table": classes.name, **info},
        "licenses": [],
        "videos": videos,
        "categories": [
            {"id": int(c.id), "name": c.name, "supercategory": classes.name, "color": list(c.color)} for c in classes
        ],
        "annotations": annotations,
    }


def _frame_file_names(src: Source, idx: list[int]) -> list[str]:
    """``<video>/<frame file>`` for a frame folder, ``<video>/<index>.jpg`` otherwise (the layout
    ``napari-sasvi frames`` writes)."""
    fp = src.store.frames_path
    files = None
    if fp is not None and Path(fp).is_dir():
        from ..inputs.frames import list_frame_files

        try:
            files = list_frame_files(fp)
        except InputError:
            files = None
    if files is not None and len(files) >= src.n:
        return [f"{src.name}/{files[t].name}" for t in idx]
    return [f"{src.name}/{t:010d}.jpg" for t in idx]
