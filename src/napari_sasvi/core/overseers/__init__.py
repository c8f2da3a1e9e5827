"""Overseers: frame-wise models whose per-class masks SASVi propagates and re-prompts with."""

from .base import ClassMask, Overseer, OverseerCache, label_map_to_result, result_to_label_map
from .replay import ReplayOverseer, open_label_stack

__all__ = [
    "ClassMask",
    "Overseer",
    "OverseerCache",
    "ReplayOverseer",
    "label_map_to_result",
    "open_label_stack",
    "result_to_label_map",
]
