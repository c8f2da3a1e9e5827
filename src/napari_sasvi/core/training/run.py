"""One entry for every overseer kind: ``iter_train("pixel" | "maskrcnn" | ..., data, out)``."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Generator
from dataclasses import asdict
from pathlib import Path

from ..errors import InputError
from ..fsutil import atomic_write_text
from .data import TrainingSet
from .deep import CHECKPOINT, INFO, DeepParams, _check_out, iter_train_deep
from .events import Saved, Stage, TrainResult, TrainStep, Validated
from .forest import PixelParams, iter_train_pixel

KINDS = ("pixel", "maskrcnn", "detr", "mask2former")
PIXEL_CHECKPOINT = "overseer.skops"


def checkpoint_path(kind: str, out: str | os.PathLike) -> Path:
    """Where a run of ``kind`` into the folder ``out`` leaves the model the overseer loader reads."""
    return Path(out) / (PIXEL_CHECKPOINT if kind == "pixel" else CHECKPOINT)


def iter_train(
    kind: str,
    data: TrainingSet,
    out: str | os.PathLike,
    *,
    deep: DeepParams | None = None,
    pixel: PixelParams | None = None,
    features=None,
    device: str = "auto",
    cancel: Callable[[], bool] | None = None,
) -> Generator[Stage | TrainStep | Validated | Saved, None, TrainResult]:
    """Train an overseer of ``kind`` on ``data`` into the folder ``out`` (see :mod:`.deep` for what
    it holds). A pixel classifier retrains in seconds: a folder with another pixel run's settings is
    refused rather than overwritten, as for the deep overseers."""
    if kind not in KINDS:
        raise InputError(f"Unknown overseer {kind!r} to train; choose one of {', '.join(KINDS)}.")
    if kind != "pixel":
        return (yield from iter_train_deep(kind, data, out, deep, device=device, cancel=cancel))
    from ..overseers.pixel import FeatureParams

    out = Path(out)
    _check_out(out)
    pixel, features = pixel or PixelParams(), features or FeatureParams()
    settings = {
        "arch": "pixel",
        "classes": data.classes.to_dict(),
        "data": data.source,
        "train_frames": [f"{s.video}/{s.name}" for s in data.train],
        "params": asdict(pixel),
        "features": asdict(features),
    }
    if (out / INFO).is_file():
        old = json.loads((out / INFO).read_text()).get("settings")
        if old != settings:
            raise InputError(f"{out} holds another training run; it is left as it is. Give another --out for this one.")
    out.mkdir(parents=True, exist_ok=True)
    result = yield from iter_train_pixel(data, checkpoint_path("pixel", out), pixel, features)
    atomic_write_text(out / INFO, json.dumps({"settings": settings, "data": data.describe()}, indent=2))
    return result


__all__ = ["KINDS", "checkpoint_path", "iter_train"]
