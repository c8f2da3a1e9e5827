"""Video trackers the SASVi policy drives (SAM2 through the ``sam2`` package)."""

from .base import Tracker, compose_labels

__all__ = ["Tracker", "compose_labels"]
