"""Mask geometry for matching objects across frames: bounding boxes, IoU inside the boxes' union,
shifts, centroids."""

from __future__ import annotations

import numpy as np


def box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1), end exclusive, of a bool mask's pixels; None for an empty mask."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows.size == 0:
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def mask_iou(a: np.ndarray, b: np.ndarray, box_a=None, box_b=None) -> float:
    """IoU of two bool masks, computed inside their boxes' union (0 when the boxes are apart)."""
    box_a = box(a) if box_a is None else box_a
    box_b = box(b) if box_b is None else box_b
    if box_a is None or box_b is None:
        return 0.0
    if box_a[1] <= box_b[0] or box_b[1] <= box_a[0] or box_a[3] <= box_b[2] or box_b[3] <= box_a[2]:
        return 0.0
    y0, y1 = min(box_a[0], box_b[0]), max(box_a[1], box_b[1])
    x0, x1 = min(box_a[2], box_b[2]), max(box_a[3], box_b[3])
    sa, sb = a[y0:y1, x0:x1], b[y0:y1, x0:x1]
    inter = np.count_nonzero(sa & sb)
    return float(inter / np.count_nonzero(sa | sb)) if inter else 0.0


def shift_mask(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``mask`` moved by (dy, dx) pixels; what leaves the frame is lost, what enters is False."""
    if dy == 0 and dx == 0:
        return mask
    h, w = mask.shape
    out = np.zeros_like(mask)
    if abs(dy) >= h or abs(dx) >= w:
        return out
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = mask[ys, xs]
    return out


def centroid(mask: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    return float(ys.mean()), float(xs.mean())


__all__ = ["box", "centroid", "mask_iou", "shift_mask"]
