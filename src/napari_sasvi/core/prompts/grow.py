"""A mask from clicks or a box with no model: the classical segmenter behind offline prompts.

The flow tracker has no image model of its own, so a click or a box must become a mask by some
other means before it can seed an object. :func:`grow_mask` does it with two classical methods:

* **A box** (with or without clicks): OpenCV's GrabCut. The box's outside is sure background,
  its inside probable foreground, positive clicks sure-foreground discs, negative clicks
  sure-background discs. GrabCut runs on a crop around the box (the box plus a margin of a quarter
  of its size: the background model then describes what surrounds the object, not the whole
  frame), scaled so its longer side is at most :data:`MAX_SIDE` pixels.
* **Clicks only**: GrabCut over the frame (scaled to at most :data:`CLICK_MAX_SIDE`), from a
  probable-foreground disc around each positive click (:data:`CLICK_REACH`), the frame's border
  sure background, the clicks' own discs sure foreground or background. Chosen over a marker
  watershed on the colour gradient (positive clicks flooding against negative clicks and the
  border): one click at the object's innermost pixel on 12 DAVIS 2016 frames gave a mean Dice of
  0.73 this way (0.74 unscaled) against 0.44 with the watershed, which stops at the first strong edge inside
  a textured object (a swan's wing, a car's window): see "Prompts" in benchmarks/README.md.

Then one rule for both: the mask keeps the connected components that hold a positive click. A
component that holds both positive and negative clicks is split between them by a marker watershed
inside it (the split only needs the edge between the two clicks); one that touches a negative
click and holds no positive one is dropped. With no positive click (a box alone), the largest
remaining component is kept.

The result depends on the input only: GrabCut's k-means draws from OpenCV's random generator,
seeded before every call.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

__all__ = ["CLICK_MAX_SIDE", "MAX_SIDE", "grow_mask"]

#: GrabCut runs on the crop around the box scaled so its longer side is at most this: its cost
#: grows with the pixels (the crop around blackswan's first box: 2.1 s unscaled, 0.5 s at 320),
#: and on 12 DAVIS frames (not the benchmark's first frames) a box's Dice was 0.68 at 320 against
#: 0.71 at 480 and 0.60 at 240
MAX_SIDE = 320
#: the same for clicks alone, where GrabCut sees the whole frame and has no box to bound the object:
#: one click on 12 DAVIS frames, mean Dice 0.64 at 320 (0.24 s), 0.73 at 480 (0.57 s), 0.74 at 640
#: (0.92 s)
CLICK_MAX_SIDE = 480
GRABCUT_ITERATIONS = 5
#: a click marks a disc of this fraction of the frame's shorter side (5 px at 480 px)
CLICK_RADIUS = 0.01
#: the box's margin on each side, as a fraction of its size, in the crop GrabCut sees
CROP_MARGIN = 0.25
#: with clicks only, GrabCut starts from a probable-foreground disc of this fraction of the frame's
#: shorter side around each positive click (48 px at 480 px)
CLICK_REACH = 0.1
#: Gaussian sigma (pixels) before the watershed's gradient: JPEG blocks and fine texture would
#: otherwise stop the flood from a click short of the object's edge
SMOOTH_SIGMA = 2.0


def grow_mask(
    image: np.ndarray,
    points_xy: np.ndarray | None = None,
    point_labels: np.ndarray | None = None,
    box: tuple[float, float, float, float] | None = None,
) -> np.ndarray:
    """The mask of one object from clicks and/or a box on one frame.

    Args:
        image: (H, W, 3) uint8 RGB.
        points_xy: (N, 2) clicks, (x, y) pixel coordinates (pixel centres at integers, as napari
            places them); each is rounded to the nearest pixel, which must be in the frame.
        point_labels: (N,) 1 for a positive click (on the object), 0 for a negative one. None:
            every click is positive.
        box: (x0, y0, x1, y1) in pixels, x1 and y1 exclusive: the box holds the pixels with
            x0 <= x < x1 and y0 <= y < y1 (a mask's tight box is (min x, min y, max x + 1,
            max y + 1)); corners are rounded to the nearest integer and may come in any order. A
            box reaching past the frame is cut at its edge.

    Returns:
        (H, W) bool: the object.

    Raises:
        InputError: the image is not (H, W, 3) uint8; a click lies outside the frame; there is
            neither a positive click nor a box; the box has zero area or lies outside the frame.
    """
    img = _check_image(image)
    h, w = img.shape[:2]
    pts, labels = _check_points(points_xy, point_labels, (h, w))
    rect = None if box is None else _check_box(box, (h, w))
    if rect is None and not (labels > 0).any():
        raise InputError(
            "Nothing to grow a mask from: give a box or at least one positive click (label 1); "
            "negative clicks alone say only where the object is not."
        )
    radius = max(2, int(round(CLICK_RADIUS * min(h, w))))
    if rect is not None:
        mask = _grabcut_box(img, rect, pts, labels, radius)
    else:
        mask = _grabcut_clicks(img, pts, labels, radius)
    return _keep_clicked(mask, img, pts, labels, radius)


# -- checks ------------------------------------------------------------------------------------------
def _check_image(image) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise InputError(
            f"grow_mask needs an (H, W, 3) uint8 RGB image, got shape {img.shape} {img.dtype}: "
            "convert the frame to 8-bit RGB first."
        )
    if img.shape[0] < 2 or img.shape[1] < 2:
        raise InputError(f"grow_mask needs an image of at least 2 x 2 pixels, got {img.shape[1]} x {img.shape[0]}.")
    return np.ascontiguousarray(img)


def _check_points(points_xy, point_labels, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Clicks as (N, 2) int pixel (x, y) and their (N,) labels, checked against the frame."""
    h, w = shape
    if points_xy is None:
        if point_labels is not None and np.asarray(point_labels).size:
            raise InputError("Click labels were given without clicks: pass points_xy with one (x, y) per label.")
        return np.zeros((0, 2), np.int64), np.zeros(0, np.int64)
    pts = np.asarray(points_xy, np.float64)
    if pts.size == 0:
        pts = pts.reshape(0, 2)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise InputError(f"Clicks must be an (N, 2) array of (x, y) pixels, got shape {pts.shape}.")
    if not np.isfinite(pts).all():
        raise InputError("A click has a NaN or infinite coordinate: give finite (x, y) pixels.")
    labels = np.ones(len(pts), np.int64) if point_labels is None else np.asarray(point_labels).reshape(-1)
    if len(labels) != len(pts):
        raise InputError(f"{len(pts)} clicks but {len(labels)} click labels: give one label (1 or 0) per click.")
    if not np.isin(labels, (0, 1)).all():
        raise InputError(f"Click labels must be 1 (positive) or 0 (negative), got {sorted(set(labels.tolist()))}.")
    ij = np.rint(pts).astype(np.int64)
    outside = (ij[:, 0] < 0) | (ij[:, 0] >= w) | (ij[:, 1] < 0) | (ij[:, 1] >= h)
    if outside.any():
        x, y = pts[np.argmax(outside)]
        raise InputError(
            f"A click at (x={x:g}, y={y:g}) is outside the frame of {w} x {h} pixels: "
            f"clicks need 0 <= x < {w} and 0 <= y < {h}."
        )
    return ij, labels.astype(np.int64)


def _check_box(box, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """The box as integer (x0, y0, x1, y1), x1/y1 exclusive, ordered and cut to the frame."""
    h, w = shape
    b = np.asarray(box, np.float64).reshape(-1)
    if b.size != 4 or not np.isfinite(b).all():
        raise InputError(f"A box is four finite numbers (x0, y0, x1, y1), got {box!r}.")
    x0, x1 = sorted(np.rint(b[[0, 2]]).astype(int))
    y0, y1 = sorted(np.rint(b[[1, 3]]).astype(int))
    if x1 <= x0 or y1 <= y0:
        raise InputError(
            f"The box (x0={b[0]:g}, y0={b[1]:g}, x1={b[2]:g}, y1={b[3]:g}) has zero area: draw a box around the object."
        )
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if cx1 <= cx0 or cy1 <= cy0:
        raise InputError(
            f"The box (x0={b[0]:g}, y0={b[1]:g}, x1={b[2]:g}, y1={b[3]:g}) is outside the frame of {w} x {h} pixels."
        )
    return cx0, cy0, cx1, cy1


# -- the two methods ---------------------------------------------------------------------------------
def _discs(shape: tuple[int, int], pts: np.ndarray, radius: int) -> np.ndarray:
    import cv2

    out = np.zeros(shape, np.uint8)
    for x, y in pts:
        cv2.circle(out, (int(x), int(y)), radius, 1, -1)
    return out.astype(bool)


def grabcut(image: np.ndarray, init: np.ndarray, iterations: int = GRABCUT_ITERATIONS) -> np.ndarray:
    """GrabCut from a mask of ``cv2.GC_*`` values (uint8, the image's height and width), seeded so
    it is deterministic; True where the result is (probable or sure) foreground."""
    import cv2

    gc = np.ascontiguousarray(init, np.uint8).copy()
    if not np.isin(gc, (cv2.GC_FGD, cv2.GC_PR_FGD)).any() or not np.isin(gc, (cv2.GC_BGD, cv2.GC_PR_BGD)).any():
        return np.isin(gc, (cv2.GC_FGD, cv2.GC_PR_FGD))  # one model would be empty: nothing to cut
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # the GMMs' k-means initialisation draws from OpenCV's generator
    cv2.grabCut(np.ascontiguousarray(image[..., ::-1]), gc, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    return (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)


def _grabcut_box(img: np.ndarray, rect, pts: np.ndarray, labels: np.ndarray, radius: int) -> np.ndarray:
    """GrabCut on a crop around the box (and the clicks), scaled to at most MAX_SIDE."""
    import cv2

    h, w = img.shape[:2]
    x0, y0, x1, y1 = rect
    mx, my = int(np.ceil(CROP_MARGIN * (x1 - x0))) + radius, int(np.ceil(CROP_MARGIN * (y1 - y0))) + radius
    cx0, cy0, cx1, cy1 = max(0, x0 - mx), max(0, y0 - my), min(w, x1 + mx), min(h, y1 + my)
    if len(pts):  # clicks outside the box still count
        cx0, cy0 = min(cx0, max(0, pts[:, 0].min() - radius)), min(cy0, max(0, pts[:, 1].min() - radius))
        cx1, cy1 = max(cx1, min(w, pts[:, 0].max() + radius + 1)), max(cy1, min(h, pts[:, 1].max() + radius + 1))
    cw, ch = cx1 - cx0, cy1 - cy0
    scale = min(1.0, MAX_SIDE / max(cw, ch))
    sw, sh = max(2, int(round(cw * scale))), max(2, int(round(ch * scale)))
    crop = img[cy0:cy1, cx0:cx1]
    small = crop if scale == 1.0 else cv2.resize(crop, (sw, sh), interpolation=cv2.INTER_AREA)
    fx, fy = sw / cw, sh / ch
    init = np.full((sh, sw), cv2.GC_BGD, np.uint8)
    bx0, by0 = int(np.floor((x0 - cx0) * fx)), int(np.floor((y0 - cy0) * fy))
    bx1, by1 = max(bx0 + 1, int(np.ceil((x1 - cx0) * fx))), max(by0 + 1, int(np.ceil((y1 - cy0) * fy)))
    init[by0:by1, bx0:bx1] = cv2.GC_PR_FGD
    local = np.column_stack([np.rint((pts[:, 0] - cx0) * fx), np.rint((pts[:, 1] - cy0) * fy)]).astype(int)
    r = max(1, int(round(radius * scale)))
    init[_discs((sh, sw), local[labels > 0], r)] = cv2.GC_FGD
    init[_discs((sh, sw), local[labels == 0], r)] = cv2.GC_BGD
    fg = grabcut(small, init).astype(np.uint8)
    if scale != 1.0:
        fg = cv2.resize(fg * 255, (cw, ch), interpolation=cv2.INTER_LINEAR) > 127
    out = np.zeros((h, w), bool)
    out[cy0:cy1, cx0:cx1] = fg
    inside = np.zeros((h, w), bool)  # the box, and the positive clicks: the upscaling may bleed past them
    inside[y0:y1, x0:x1] = True
    inside |= _discs((h, w), pts[labels > 0], radius)
    out &= inside
    out |= _discs((h, w), pts[labels > 0], radius)
    out &= ~_discs((h, w), pts[labels == 0], radius)
    return out


def gradient(img: np.ndarray) -> np.ndarray:
    """(H, W) float32 colour gradient of the smoothed image (the largest Sobel magnitude over the
    three channels), the relief the watershed floods."""
    import cv2

    k = 2 * int(np.ceil(3 * SMOOTH_SIGMA)) + 1
    smooth = cv2.GaussianBlur(img, (k, k), SMOOTH_SIGMA).astype(np.float32)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3)
    return np.sqrt(gx * gx + gy * gy).max(axis=2)


def _grabcut_clicks(img: np.ndarray, pts: np.ndarray, labels: np.ndarray, radius: int) -> np.ndarray:
    """GrabCut over the whole frame (scaled to at most CLICK_MAX_SIDE): a probable-foreground disc
    of CLICK_REACH around each positive click, the frame's border sure background."""
    import cv2

    h, w = img.shape[:2]
    scale = min(1.0, CLICK_MAX_SIDE / max(h, w))
    sw, sh = max(2, int(round(w * scale))), max(2, int(round(h * scale)))
    small = img if scale == 1.0 else cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA)
    local = np.column_stack([np.rint(pts[:, 0] * sw / w), np.rint(pts[:, 1] * sh / h)]).astype(int)
    local = np.minimum(local, (sw - 1, sh - 1))
    init = np.full((sh, sw), cv2.GC_PR_BGD, np.uint8)
    init[[0, -1], :] = cv2.GC_BGD
    init[:, [0, -1]] = cv2.GC_BGD
    init[_discs((sh, sw), local[labels > 0], max(1, int(round(CLICK_REACH * min(sh, sw)))))] = cv2.GC_PR_FGD
    r = max(1, int(round(radius * scale)))
    init[_discs((sh, sw), local[labels > 0], r)] = cv2.GC_FGD
    init[_discs((sh, sw), local[labels == 0], r)] = cv2.GC_BGD
    fg = grabcut(small, init).astype(np.uint8)
    out = fg.astype(bool) if scale == 1.0 else cv2.resize(fg * 255, (w, h), interpolation=cv2.INTER_LINEAR) > 127
    out |= _discs((h, w), pts[labels > 0], radius)
    out &= ~_discs((h, w), pts[labels == 0], radius)
    return out


# -- which components to keep ------------------------------------------------------------------------
def _keep_clicked(mask: np.ndarray, img: np.ndarray, pts: np.ndarray, labels: np.ndarray, radius: int) -> np.ndarray:
    """The components of ``mask`` that hold a positive click (split from the negative clicks in
    the same component); with no positive click, the largest component no negative click touches."""
    import cv2

    n, comp = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return mask
    pos, neg = pts[labels > 0], pts[labels == 0]
    pos_ids = set(comp[pos[:, 1], pos[:, 0]].tolist()) - {0}
    # a negative disc is background: the component a negative click hit is the one its disc borders
    ring = cv2.dilate(_discs(mask.shape, neg, radius).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    neg_ids = set(np.unique(comp[ring]).tolist()) - {0}
    if not pos_ids:
        sizes = np.bincount(comp.ravel(), minlength=n)
        sizes[0] = 0
        sizes[list(neg_ids)] = 0
        if not sizes.any():  # every component touches a negative click: keep the largest anyway
            sizes = np.bincount(comp.ravel(), minlength=n)
            sizes[0] = 0
        return comp == int(np.argmax(sizes))
    out = np.isin(comp, list(pos_ids - neg_ids))
    for c in pos_ids & neg_ids:
        out |= _split(comp == c, img, pos, ring)
    return out


def _split(region: np.ndarray, img: np.ndarray, pos: np.ndarray, neg_ring: np.ndarray) -> np.ndarray:
    """The part of ``region`` that floods from the positive clicks rather than from the negative
    clicks' rings, by a marker watershed on the colour gradient inside it."""
    from skimage.segmentation import watershed

    markers = np.zeros(region.shape, np.int32)
    markers[neg_ring & region] = 1
    markers[pos[:, 1], pos[:, 0]] = 2
    markers[~region] = 0
    ys, xs = np.nonzero(region)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    sub = watershed(gradient(img[y0:y1, x0:x1]), markers[y0:y1, x0:x1], mask=region[y0:y1, x0:x1])
    out = np.zeros(region.shape, bool)
    out[y0:y1, x0:x1] = sub == 2
    return out
