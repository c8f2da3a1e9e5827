"""Exports of finished stores, one format a module:

* :mod:`.nnunet`: an nnU-Net v2 raw dataset;
* :mod:`.coco_video`: COCO-video (YouTube-VIS style) JSON with RLE masks, one track per object of an
  instance-mode store (per class for class-only stores);
* :mod:`.mots`: MOTS text (KITTI MOTS / MOTSChallenge), one line per object per frame (instance-mode
  stores only);
* :mod:`.png`: palette PNG folders of class ids, or grey PNGs of track ids (``ids="track"``);
* :mod:`.overlay`: an overlay MP4 for a quick look;
* :mod:`.ome_zarr`: an OME-Zarr (NGFF 0.5) image of the frames with SASVi's, the overseer's and the
  track ids' label images, for napari-ome-zarr and other NGFF tools;
* :mod:`.reference`: the published scripts' layout (frames as ``%010d.jpg``, ``_rgb_mask.png`` and
  ``_binary_mask.npz`` masks), which ``segment`` writes beside a run;
* :mod:`.common`: the stores an export reads, its progress and its summary;
* :mod:`.track_ids`: the track ids and track table the identity-keeping exports read.

Every store export reads a store one frame at a time, writes each file atomically, exports only the
store's finished frames (and says how many), and never writes outside the output path given. The
frames an export needs (nnU-Net images, the overlay) are the store's own: the path recorded in the
store, or ``frames=`` when they moved; either way each frame read is checked against the hash the
run recorded, so another video is refused rather than paired with these labels.

Each ``iter_export_*`` is a generator: it yields one :class:`ExportProgress` per frame written and
returns an :class:`ExportSummary`; :func:`export` drives one to the end.
"""

from __future__ import annotations

import os
from collections.abc import Generator

from ..errors import InputError
from ..progress import drain
from .coco_video import iter_export_coco_video
from .common import ExportProgress, ExportSummary, find_stores
from .mots import iter_export_mots
from .nnunet import iter_export_nnunet, nnunet_label_values, video_splits
from .ome_zarr import iter_export_ome_zarr
from .overlay import iter_export_overlay_mp4, overlay
from .png import iter_export_png

FORMATS = ("nnunet", "coco-video", "png", "overlay-mp4", "mots", "ome-zarr")


def iter_export(stores, to: str, out, **kwargs) -> Generator[ExportProgress, None, ExportSummary]:
    """Dispatch to the exporter of ``to`` (one of :data:`FORMATS`)."""
    if to not in FORMATS:
        raise InputError(f"Unknown export format {to!r}; choose one of {', '.join(FORMATS)}.")
    fn = {
        "nnunet": iter_export_nnunet,
        "coco-video": iter_export_coco_video,
        "png": iter_export_png,
        "overlay-mp4": iter_export_overlay_mp4,
        "mots": iter_export_mots,
        "ome-zarr": iter_export_ome_zarr,
    }[to]
    if to in ("overlay-mp4", "ome-zarr"):
        paths = find_stores(stores if not isinstance(stores, (str, os.PathLike)) else [stores])
        if len(paths) != 1:
            what = "An overlay video shows" if to == "overlay-mp4" else "An OME-Zarr export holds"
            raise InputError(f"{what} one store; {len(paths)} were given (export them one by one).")
        stores = paths[0]
    return (yield from fn(stores, out, **kwargs))


def export(stores, to: str, out, **kwargs) -> ExportSummary:
    """Drive :func:`iter_export` to the end; returns its :class:`ExportSummary`."""
    return drain(iter_export(stores, to, out, **kwargs))


__all__ = [
    "FORMATS",
    "ExportProgress",
    "ExportSummary",
    "export",
    "find_stores",
    "iter_export",
    "iter_export_coco_video",
    "iter_export_mots",
    "iter_export_nnunet",
    "iter_export_ome_zarr",
    "iter_export_overlay_mp4",
    "iter_export_png",
    "nnunet_label_values",
    "overlay",
    "video_splits",
]
