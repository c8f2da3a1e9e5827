"""Writer contributions: a labels layer as a SASVi zarr store, as reference-layout PNGs, or as a
COCO-video (YouTube-VIS style) JSON with RLE masks."""

from __future__ import annotations

from pathlib import Path

from ..core.datasets import SYNTHETIC, ClassTable


def _classes(meta: dict) -> ClassTable:
    table = (meta.get("metadata") or {}).get("classes")
    return ClassTable.from_dict(table) if table else SYNTHETIC


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


def write_labels_pngs(path: str, data, meta: dict) -> list[str]:
    """Save a labels layer as a folder of ``<frame>_rgb_mask.png`` palette PNGs (frame size kept)."""
    import numpy as np

    from ..core.exports.reference import iter_export_label_pngs

    if np.ndim(data) == 2:
        data = np.asarray(data)[None]
    for _ in iter_export_label_pngs(data, _classes(meta), path, size=None):
        pass
    return [str(path)]


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
