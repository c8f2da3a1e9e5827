"""Training the pixel-classifier overseer (see :mod:`..overseers.pixel`): features of the annotated
pixels of each frame, a class-balanced sample of them, a random forest; seconds on a laptop CPU."""

from __future__ import annotations

import os
import time
from collections.abc import Generator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..inputs.labels import UNLABELLED
from ..overseers.pixel import FeatureParams, PixelModel, PixelOverseer, frame_features, labels_at
from .data import TrainingSet, check_trainable
from .events import Saved, Stage, TrainResult, TrainStep, Validated
from .validate import validate


@dataclass(frozen=True)
class PixelParams:
    """The forest and its sampling.

    Attributes:
        n_estimators, max_depth, min_samples_leaf: the random forest.
        per_class: annotated pixels drawn per class and frame at most (class-balanced: a class of
            50 painted pixels is not drowned by a background of 200 000).
        min_fraction: classes smaller than this fraction of a frame are dropped at prediction.
        seed: the sample and the forest.
    """

    n_estimators: int = 60
    max_depth: int = 16
    min_samples_leaf: int = 2
    per_class: int = 4000
    min_fraction: float = 0.001
    seed: int = 0
    n_jobs: int = -1


def iter_train_pixel(
    data: TrainingSet,
    out: str | os.PathLike,
    params: PixelParams | None = None,
    features: FeatureParams | None = None,
) -> Generator[Stage | TrainStep | Validated | Saved, None, TrainResult]:
    """Train on ``data.train``, validate on ``data.val`` (when any), save to ``out`` (``.skops``).

    Yields :class:`Stage` per frame featurised, one :class:`TrainStep` (loss: 1 - out-of-bag
    accuracy of the forest on the sampled pixels), :class:`Validated` and :class:`Saved`."""
    from sklearn.ensemble import RandomForestClassifier

    params, features = params or PixelParams(), features or FeatureParams()
    t0 = time.perf_counter()
    check_trainable(data)
    rng = np.random.default_rng(params.seed)
    xs, ys = [], []
    for i, s in enumerate(data.train):
        frame = s.frame()
        f = frame_features(frame, features)
        lab = labels_at(s.labels(), f.shape[:2])
        for c in np.unique(lab).tolist():
            if c == UNLABELLED:
                continue
            where = np.flatnonzero(lab.ravel() == c)
            if len(where) > params.per_class:
                where = rng.choice(where, params.per_class, replace=False)
            xs.append(f.reshape(-1, f.shape[-1])[where])
            ys.append(np.full(len(where), c, np.uint8))
        yield Stage("features", i + 1, len(data.train))
    X, y = np.concatenate(xs), np.concatenate(ys)
    forest = RandomForestClassifier(
        n_estimators=params.n_estimators,
        max_depth=params.max_depth,
        min_samples_leaf=params.min_samples_leaf,
        oob_score=True,
        n_jobs=params.n_jobs,
        random_state=params.seed,
    )
    forest.fit(X, y)
    yield TrainStep(
        1, 1, float(1.0 - forest.oob_score_), parts={"pixels": int(len(y)), "classes": len(forest.classes_)}
    )
    model = PixelModel(
        forest=forest,
        classes=data.classes,
        features=features,
        min_fraction=params.min_fraction,
        trained_on={
            **data.describe(),
            "pixels": int(len(y)),
            "params": asdict(params),
            "seconds": round(time.perf_counter() - t0, 2),
        },
    )
    v = None
    if data.val:
        v = yield from validate(PixelOverseer(model), data.val, data.classes, step=1)
    path = model.save(Path(out))
    yield Saved(1, path)
    return TrainResult(path, 1, v, time.perf_counter() - t0)


__all__ = ["PixelParams", "iter_train_pixel"]
