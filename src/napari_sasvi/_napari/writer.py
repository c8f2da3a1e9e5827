"""Writer contributions: a labels layer as a SASVi zarr store, as reference-layout PNGs, or as a
COCO-video (YouTube-VIS style) JSON with RLE masks; an image layer and its labels as an OME-Zarr."""

from __future__ import annotations

import functools
from pathlib import Path

from ..core.datasets import ClassTable
from ..core.errors import SasviError


def _refusal_shown(write):
    """A writer whose refusal (a ValueError) is also shown as a notification: napari's
    ``layers.save`` swallows a writer's error and returns [], so the user would see nothing."""

    @functools.wraps(write)
    def wrapper(*args, **kwargs):
        try:
            return write(*args, **kwargs)
        except ValueError as e:
            from napari.utils.notifications import show_error

            show_error(f"SASVi: nothing was saved: {e}")
            raise

    return wrapper


def _classes(meta: dict) -> ClassTable:
    """The layer's class table (layers napari-sasvi made carry one); none is refused, never guessed:
    the saved names and colours would be another dataset's."""
    table = (meta.get("metadata") or {}).get("classes")
    if not table:
        raise ValueError(
            f"Labels layer {meta.get('name')!r} carries no class table, so its classes cannot be named. Give it one "
            "(layer.metadata['classes'] = napari_sasvi.core.datasets.get_class_table('cadis').to_dict(), or your "
            "table file's name), or save a layer napari-sasvi made."
        )
    return ClassTable.from_dict(table)


@_refusal_shown
def write_labels_zarr(path: str, data, meta: dict) -> list[str]:
    """Save a (T, H, W) labels layer as a zarr store SASVi can read (one chunk per frame)."""
    import numpy as np

    from ..core.store.sasvi_store import SasviStore

    classes = _classes(meta)
    if np.ndim(data) == 2:
        data = np.asarray(data)[None]
    n, h, w = (int(s) for s in data.shape)
    target = Path(path)
    if (target / "zarr.json").exists():
        # napari asked the user before saving over an existing path; replace a store saved from a
        # layer, but never a SASVi run's output (its labels are finished work)
        existing = SasviStore.read(target)
        if existing.signature.get("written_from") != "napari labels layer":
            raise ValueError(f"{target} holds a SASVi run's output; save the layer under another name.")
        import shutil

        shutil.rmtree(target)
    store = SasviStore.open(
        target,
        n_frames=n,
        frame_size=(h, w),
        classes=classes,
        signature={"written_from": "napari labels layer", "layer": meta.get("name", "")},
    )
    for t in range(store.frames_done, n):  # one frame at a time: a dask/zarr layer is never loaded whole
        frame = np.asarray(data[t]).astype(np.uint8)
        store.write_frame(t, frame, frame, [])
    return [str(target)]


@_refusal_shown
def write_labels_pngs(path: str, data, meta: dict) -> list[str]:
    """Save a labels layer as a folder of ``<frame>_rgb_mask.png`` palette PNGs (frame size kept)."""
    import numpy as np

    from ..core.exports.reference import iter_export_label_pngs

    if np.ndim(data) == 2:
        data = np.asarray(data)[None]
    for _ in iter_export_label_pngs(data, _classes(meta), path, size=None):
        pass
    return [str(path)]


@_refusal_shown
def write_labels_coco_video(path: str, data, meta: dict) -> list[str]:
    """Save a labels layer as a COCO-video JSON: one track per class, RLE per frame (the layer's
    class table from its metadata; no overseer to score against, so ``score`` is null)."""
    import json

    import numpy as np

    from ..core.exports.coco_video import class_tracks, coco_video_document
    from ..core.fsutil import atomic_write_text
    from ..core.progress import drain

    classes = _classes(meta)
    if np.ndim(data) == 2:
        data = np.asarray(data)[None]
    n, h, w = (int(x) for x in data.shape)
    name = meta.get("name") or Path(path).stem
    tracks = drain(class_tracks(((np.asarray(data[t]), None) for t in range(n)), n, classes, lambda k: k))
    annotations = [{"id": i + 1, "video_id": 1, "height": h, "width": w, **tr} for i, tr in enumerate(tracks)]
    video = {"id": 1, "name": name, "file_names": [f"{name}/{t:010d}.jpg" for t in range(n)], "width": w,
             "height": h, "length": n}  # fmt: skip
    doc = coco_video_document([video], annotations, classes, {"description": f"napari labels layer {name!r}"})
    atomic_write_text(path, json.dumps(doc))
    return [str(path)]


def _label_name(name: str, taken: set[str]) -> str:
    """A layer name as a path under ``labels/``: letters, digits, '-', '_' and '.', unique."""
    base = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name).strip("._") or "labels"
    out, k = base, 2
    while out in taken:
        out, k = f"{base}_{k}", k + 1
    taken.add(out)
    return out


@_refusal_shown
def write_ome_zarr(path: str, layer_data: list) -> list[str]:
    """Save one image layer (a (T, H, W, 3) RGB video, or (T, H, W) grey) and any labels layers of
    its size as an OME-Zarr (NGFF 0.5): the image with the labels under ``labels/``, each coloured
    and named from its class table (SASVi's layers carry one); one frame at a time, so lazy layers
    are never loaded whole. Replaces an OME-Zarr napari-sasvi wrote, nothing else."""
    import numpy as np

    from ..core.exports.ome_zarr import LabelImage, class_label_metadata, iter_write_ome_zarr, prepare_target
    from ..core.progress import drain

    images = [(d, m) for d, m, kind in layer_data if kind == "image"]
    if len(images) != 1:
        raise ValueError(f"An OME-Zarr holds one image; {len(images)} image layers were selected.")
    data, meta = images[0]
    rgb = bool(meta.get("rgb"))
    if np.ndim(data) == (3 if rgb else 2):  # a single frame
        data = data[None]
    n, h, w = (int(x) for x in data.shape[:3])
    if rgb and data.shape[-1] != 3:
        raise ValueError(f"An RGB layer for OME-Zarr needs 3 channels, this one has {data.shape[-1]}.")
    taken: set[str] = set()
    labels = []
    for d, m, kind in layer_data:
        if kind != "labels":
            continue
        d = d[None] if np.ndim(d) == 2 else d
        if tuple(int(x) for x in d.shape) != (n, h, w):
            raise ValueError(f"Labels layer {m.get('name')!r} is {tuple(d.shape)}, the image ({n}, {h}, {w}).")
        table = (m.get("metadata") or {}).get("classes")
        colors, props = class_label_metadata(_classes(m)) if table else ([], [])
        dtype = np.dtype(getattr(d, "dtype", np.uint32))
        dtype = dtype if dtype.kind in "iu" else np.dtype(np.uint32)
        labels.append(LabelImage(_label_name(m.get("name") or "labels", taken), dtype.name,
                                 lambda k, d=d, dt=dtype: np.asarray(d[k]).astype(dt), colors, props))  # fmt: skip
    fps = (meta.get("metadata") or {}).get("fps")
    try:
        target = prepare_target(path, overwrite=True)  # napari asked before saving over the path
    except SasviError as e:
        raise ValueError(str(e)) from e
    frame = (lambda k: np.asarray(data[k]).transpose(2, 0, 1)) if rgb else (lambda k: np.asarray(data[k])[None])
    drain(
        iter_write_ome_zarr(
            target,
            name=meta.get("name") or target.stem,
            n=n,
            image=frame,
            image_shape=(3 if rgb else 1, h, w),
            image_dtype=np.dtype(data.dtype).name,
            labels=labels,
            time_step=1 / fps if fps else 1.0,
            time_unit="second" if fps else None,
            info={"written_from": "napari layers"},
        )
    )
    return [str(target)]
