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
    "segment_video": "napari_sasvi.core.engine.batch",
    "segment_videos": "napari_sasvi.core.engine.batch",
    "load_store": "napari_sasvi.core.engine.batch",
    "Models": "napari_sasvi.core.engine.batch",
    "open_labels": "napari_sasvi.core.inputs.labels",
    "open_frames": "napari_sasvi.core.inputs.frames",
    "segment_distributed": "napari_sasvi.core.engine.distributed",
    "iter_segment_distributed": "napari_sasvi.core.engine.distributed",
    "export": "napari_sasvi.core.exports",
    "iter_export": "napari_sasvi.core.exports",
    # what long work yields and returns
    "FrameDone": "napari_sasvi.core.records",
    "StoreOpened": "napari_sasvi.core.records",
    "RunSummary": "napari_sasvi.core.records",
    "EditPlan": "napari_sasvi.core.records",
    "EditStarted": "napari_sasvi.core.records",
    "EditSummary": "napari_sasvi.core.records",
    "VideoStarted": "napari_sasvi.core.engine.batch",
    "VideoDone": "napari_sasvi.core.engine.batch",
    "BatchSummary": "napari_sasvi.core.engine.batch",
    "Event": "napari_sasvi.core.policy",
    # the engine: one video's run, an anchors run, edits of a finished store
    "iter_sasvi": "napari_sasvi.core.engine",
    "run_sasvi": "napari_sasvi.core.engine",
    "iter_from_anchors": "napari_sasvi.core.engine",
    "read_anchors": "napari_sasvi.core.inputs.anchors",
    "EditRequest": "napari_sasvi.core.engine",
    "iter_edit": "napari_sasvi.core.engine",
    "run_edit": "napari_sasvi.core.engine",
    "plan_edit": "napari_sasvi.core.engine",
    "undo_edit": "napari_sasvi.core.engine",
    "edit_tracker": "napari_sasvi.core.engine.rebuild",
    "read_edits": "napari_sasvi.core.store.edit_log",
    "boundaries": "napari_sasvi.core.store.edit_log",
    "reprompts": "napari_sasvi.core.store.edit_log",
    "iter_evaluate_frames": "napari_sasvi.core.metrics.evaluate",
    "iter_evaluate_temporal": "napari_sasvi.core.metrics.evaluate",
    # models and sample data
    "build_tracker": "napari_sasvi.core.engine.batch",
    "SyntheticVideo": "napari_sasvi.core.synthetic",
    "ClassTable": "napari_sasvi.core.datasets",
    "get_class_table": "napari_sasvi.core.datasets",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    """The public API, imported on first use (so that ``import napari_sasvi`` stays light)."""
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'napari_sasvi' has no attribute {name!r}")
