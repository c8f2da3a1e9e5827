"""napari-sasvi: SASVi (Segment Any Surgical Video) as a napari plugin, a CLI and a library.

Importing the package pulls in neither torch nor Qt; the library lives in ``napari_sasvi.core``,
the napari shell in ``napari_sasvi._napari``. The Python API in three lines::

    from napari_sasvi import RunConfig, segment_video, load_store
    segment_video("video01/", "video01.zarr", RunConfig(dataset="cholecseg8k"), masks="video01_masks/")
    labels = load_store("video01.zarr").labels      # (T, H, W) zarr array of class ids

(see docs/python.md).
"""

__version__ = "0.1.0"

_API = {
    "RunConfig": "napari_sasvi.core.config",
    "OverseerConfig": "napari_sasvi.core.config",
    "TrackerConfig": "napari_sasvi.core.config",
    "PolicyConfig": "napari_sasvi.core.config",
    "ExportConfig": "napari_sasvi.core.config",
    "segment_video": "napari_sasvi.core.segment",
    "segment_videos": "napari_sasvi.core.segment",
    "load_store": "napari_sasvi.core.segment",
    "Models": "napari_sasvi.core.segment",
    "open_labels": "napari_sasvi.core.labels",
    "open_frames": "napari_sasvi.core.frames",
    "segment_distributed": "napari_sasvi.core.distributed",
    "iter_segment_distributed": "napari_sasvi.core.distributed",
    "export": "napari_sasvi.core.exporters",
    "iter_export": "napari_sasvi.core.exporters",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    """The public API, imported on first use (so that ``import napari_sasvi`` stays light)."""
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'napari_sasvi' has no attribute {name!r}")
