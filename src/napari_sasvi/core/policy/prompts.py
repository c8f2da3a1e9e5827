"""Prompt geometry: mask overlaps, k-means point prompts, points snapped into their mask."""

from __future__ import annotations

import numpy as np


def mask_overlaps(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(|a & b| / |a|, |a & b| / |b|); 0 where a mask is empty."""
    inter = float(np.count_nonzero(a & b))
    na, nb = float(np.count_nonzero(a)), float(np.count_nonzero(b))
    return (inter / na if na else 0.0, inter / nb if nb else 0.0)


def kmeans_points(mask: np.ndarray, k: int, seed: int = 0, iters: int = 20) -> np.ndarray:
    """k-means centroids of a mask's pixel coordinates, as (k, 2) float (x, y).

    Deterministic in ``seed`` (k-means++ initialisation, Lloyd iterations). Requires at least k
    pixels; the caller decides what happens below that.
    """
    ys, xs = np.nonzero(mask)
    pts = np.stack([xs, ys], axis=1).astype(np.float64)
    rng = np.random.default_rng(seed)
    centres = [pts[rng.integers(len(pts))]]
    d2 = ((pts - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        total = d2.sum()
        idx = rng.choice(len(pts), p=d2 / total) if total > 0 else rng.integers(len(pts))
        centres.append(pts[idx])
        d2 = np.minimum(d2, ((pts - pts[idx]) ** 2).sum(1))
    c = np.array(centres)
    for _ in range(iters):
        # assign in chunks so memory stays small for large masks
        assign = np.empty(len(pts), np.int64)
        for i in range(0, len(pts), 65536):
            chunk = pts[i : i + 65536]
            assign[i : i + 65536] = ((chunk[:, None, :] - c[None]) ** 2).sum(2).argmin(1)
        new = np.array([pts[assign == j].mean(0) if np.any(assign == j) else c[j] for j in range(k)])
        if np.allclose(new, c):
            break
        c = new
    return c


def snap_to_mask(points: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Move each (x, y) point to the nearest pixel of ``mask`` (fix for D4's centroids that fall
    outside non-convex masks)."""
    ys, xs = np.nonzero(mask)
    pix = np.stack([xs, ys], 1).astype(np.float64)
    out = points.copy()
    for i, p in enumerate(points):
        xi, yi = int(round(p[0])), int(round(p[1]))
        if 0 <= yi < mask.shape[0] and 0 <= xi < mask.shape[1] and mask[yi, xi]:
            continue
        out[i] = pix[((pix - p) ** 2).sum(1).argmin()]
    return out
