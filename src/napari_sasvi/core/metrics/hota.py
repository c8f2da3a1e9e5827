"""HOTA (Luiten et al., IJCV 2021) of instance tracks, computed by TrackEval when it is installed.

TrackEval (github.com/JonathonLuiten/TrackEval, the HOTA authors' reference code; on PyPI as
``trackeval``, packaged by a maintainer of a fork) is an optional dependency: its metric takes
per-frame similarity matrices, so mask IoU works as it is. It is not a requirement of
napari-sasvi because its wheel pins ``opencv-python`` (a second ``cv2`` beside our
``opencv-python-headless``, the pair that breaks Qt) and a ``numpy>=2.3`` floor; ``pip install
--no-deps trackeval`` needs nothing napari-sasvi does not bring.

The identity counter keeps one small record per scored frame (object x track IoU, no pixels);
HOTA is evaluated per class (each class its own sequence, as TrackEval does for MOTS), and the
classes are combined detection-averaged (TrackEval's ``combine_classes_det_averaged``). Scores
are the means over TrackEval's 19 thresholds alpha = 0.05 ... 0.95.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import numpy as np

from ..errors import InputError

MISSING = (
    "HOTA needs TrackEval, which is not installed: pip install --no-deps trackeval "
    "(JonathonLuiten's TrackEval as packaged on PyPI; --no-deps keeps its opencv-python out), "
    "or leave out --hota."
)


@dataclass(frozen=True)
class HotaFrame:
    """One scored frame: global indices of its ground-truth objects (G,) and tracks (P,), their
    IoU (G, P) and classes (G,), (P,)."""

    gt: np.ndarray
    pred: np.ndarray
    similarity: np.ndarray
    gt_classes: np.ndarray
    pred_classes: np.ndarray


@dataclass(frozen=True)
class HotaScores:
    """HOTA and its parts, each the mean over alpha = 0.05 ... 0.95; ``hota_0`` at alpha 0.05."""

    hota: float
    det_a: float
    ass_a: float
    loc_a: float
    hota_0: float

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("hota", "det_a", "ass_a", "loc_a", "hota_0")}


def _hota_metric():
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # TrackEval prints notes about optional datasets on import
            from trackeval.metrics import HOTA
    except ImportError as e:
        raise InputError(MISSING) from e
    return HOTA()


def check_hota_available() -> None:
    """Raise :class:`InputError` (saying what to install) when TrackEval is missing."""
    _hota_metric()


def _sequence(frames: list[HotaFrame], cls: int | None) -> dict:
    """TrackEval's input for one class (None: all): ids renumbered 0..n-1 over the sequence."""
    gts, preds, sims = [], [], []
    for f in frames:
        g = np.ones(len(f.gt), bool) if cls is None else f.gt_classes == cls
        p = np.ones(len(f.pred), bool) if cls is None else f.pred_classes == cls
        gts.append(f.gt[g])
        preds.append(f.pred[p])
        sims.append(f.similarity[np.ix_(g, p)].astype(np.float64))
    g_ids = np.unique(np.concatenate(gts)) if gts else np.zeros(0, np.int64)
    p_ids = np.unique(np.concatenate(preds)) if preds else np.zeros(0, np.int64)
    return {
        "gt_ids": [np.searchsorted(g_ids, g) for g in gts],
        "tracker_ids": [np.searchsorted(p_ids, p) for p in preds],
        "similarity_scores": sims,
        "num_gt_dets": int(sum(len(g) for g in gts)),
        "num_tracker_dets": int(sum(len(p) for p in preds)),
        "num_gt_ids": len(g_ids),
        "num_tracker_ids": len(p_ids),
    }


def _scores(res: dict) -> HotaScores:
    # DetA and HOTA as TrackEval's final fields (its early exit for an empty side leaves them out)
    tp = np.asarray(res["HOTA_TP"], np.float64)
    det_a = tp / np.maximum(1, tp + res["HOTA_FN"] + res["HOTA_FP"])
    hota = np.sqrt(det_a * np.asarray(res["AssA"]))
    return HotaScores(
        float(hota.mean()),
        float(det_a.mean()),
        float(np.mean(res["AssA"])),
        float(np.mean(res["LocA"])),
        float(hota[0]),
    )


def hota_scores(frames: list[HotaFrame] | None, class_aware: bool) -> dict[int | None, HotaScores]:
    """HOTA per class (class-aware) and overall (key None) of the recorded frames."""
    metric = _hota_metric()
    frames = frames or []
    if not class_aware:
        return {None: _scores(metric.eval_sequence(_sequence(frames, None)))}
    classes = sorted({int(c) for f in frames for c in f.gt_classes} | {int(c) for f in frames for c in f.pred_classes})
    per = {c: metric.eval_sequence(_sequence(frames, c)) for c in classes}
    out: dict[int | None, HotaScores] = {c: _scores(r) for c, r in per.items()}
    both = metric.combine_classes_det_averaged(per) if per else metric.eval_sequence(_sequence(frames, None))
    out[None] = _scores(both)
    return out


__all__ = ["MISSING", "HotaFrame", "HotaScores", "check_hota_available", "hota_scores"]
