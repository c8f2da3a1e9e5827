"""What training generators yield: small frozen events the CLI, the widget and tests all read."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Stage:
    """Preparation with a count: ``what`` (features, class weights, ...), ``done`` of ``total``."""

    what: str
    done: int
    total: int


@dataclass(frozen=True)
class TrainStep:
    """One optimiser step (deep overseers) or the forest's fit (pixel: step 1 of 1)."""

    step: int
    total: int
    loss: float
    lr: float = 0.0
    parts: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Validated:
    """Frame-wise accuracy on the validation frames after ``step``: macro Dice and IoU over the
    scored classes present, and per class."""

    step: int
    dice: float
    iou: float
    per_class_dice: dict
    frames: int


@dataclass(frozen=True)
class Saved:
    """A checkpoint written at ``step``: ``path`` loads through the overseer path."""

    step: int
    path: Path
    state: Path | None = None


@dataclass(frozen=True)
class TrainResult:
    """What a training run returns: the last checkpoint, steps done, the last validation."""

    checkpoint: Path
    steps: int
    validation: Validated | None
    seconds: float
    cancelled: bool = False


__all__ = ["Saved", "Stage", "TrainResult", "TrainStep", "Validated"]
