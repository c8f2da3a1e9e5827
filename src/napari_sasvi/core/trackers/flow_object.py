"""One object followed by the flow tracker: its anchor mask, the similarity transform that carries
it to the current frame (fitted to the flow inside the object with RANSAC), the warped anchor and
its logits, and where its motion does not explain the flow (it loses overlaps there). The method
is described in :mod:`napari_sasvi.core.trackers.flow`."""

from __future__ import annotations

import functools

import numpy as np

from .confidence import ObjectConfidence, sample_error
from .flow_field import Motion

LOGIT_GAIN = 20.0
#: logit taken off where an object's fitted motion does not explain the flow: enough to lose against
#: an overlapping object whose motion does (a tie otherwise goes to the lower class id), not enough
#: to cut the object where nothing else claims the pixel
DISAGREE_PENALTY = 5.0


@functools.lru_cache(maxsize=8)
def _disc(radius: int) -> np.ndarray:
    import cv2

    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


class TrackedObject:
    """One tracked object: its anchor mask, the transform anchor -> current frame, and the warped
    mask at the current frame.

    The warped mask is kept as a *box* of the frame (``box`` = x0, y0, x1, y1) and its pixels
    (``patch``): the anchor's support carried by the transform, plus a margin. Outside the box the
    mask is 0, so warping, fitting and the overlap test never touch the rest of the frame."""

    MAX_POINTS = 800
    EDGE = 4  # pixels at the frame's border whose flow is not read
    MAX_SCALE_STEP = 0.02  # zoom per frame is slow; a larger fitted scale change is noise
    MARGIN = 8  # pixels around the carried support: bilinear reach, and the erosion's pad

    def __init__(self, anchor: np.ndarray, extend: bool = False):
        import cv2

        h, w = anchor.shape
        self.size = (w, h)
        soft = anchor.astype(np.float32)
        # what touches the frame's edge continues past it: the anchor is padded by replicating its
        # border pixels outward, so an instrument sliding in (or tissue under a panning camera)
        # brings its continuation into view instead of a hole
        pad = max(h, w) // 2 if extend else 0
        self.anchor = cv2.copyMakeBorder(soft, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        ax, ay, aw, ah = cv2.boundingRect((self.anchor > 0).astype(np.uint8))
        # where the anchor is non-zero, as the corners of a rectangle in padded-anchor pixels
        self._support = np.array([[ax, ay], [ax + aw, ay], [ax, ay + ah], [ax + aw, ay + ah]], np.float64)
        self.transform = np.array([[1.0, 0.0, -pad], [0.0, 1.0, -pad], [0.0, 0.0, 1.0]])  # padded anchor -> frame
        self.disagree: np.ndarray | None = None  # in the box: 1 where the last step's motion did not fit the flow
        self._warp()
        self.confidence = ObjectConfidence(self._area())

    def _area(self) -> float:
        """Pixels of the warped mask in view (the box holds all of them), per unit of the
        transform's area scale: what is left in view of the mask as carried, whatever its zoom (a
        car driving away keeps 0.21 of its anchor's area and is tracked at Dice 0.77)."""
        det = abs(float(np.linalg.det(self.transform[:2, :2])))
        return float(np.count_nonzero(self.patch > 0.5)) / det if det > 0 else 0.0

    def _warp(self) -> None:
        """The anchor carried to the current frame, in the box its support lands in."""
        import cv2

        w, h = self.size
        if self._support[3, 0] == self._support[0, 0]:  # an empty anchor
            self.box, self.patch = (0, 0, 0, 0), np.zeros((0, 0), np.float32)
            return
        c = self._support @ self.transform[:2, :2].T + self.transform[:2, 2]
        m = self.MARGIN
        (lx, ly), (hx, hy) = np.floor(c.min(0)) - m, np.ceil(c.max(0)) + m
        x0, y0 = int(min(w, max(0, lx))), int(min(h, max(0, ly)))
        x1, y1 = int(min(w, max(0, hx))), int(min(h, max(0, hy)))
        self.box = (x0, y0, x1, y1)
        if x1 <= x0 or y1 <= y0:  # carried out of the frame
            self.patch = np.zeros((max(0, y1 - y0), max(0, x1 - x0)), np.float32)
            return
        at = self.transform[:2].copy()
        at[:, 2] -= (x0, y0)  # frame -> box
        self.patch = cv2.warpAffine(
            self.anchor, at, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        )

    def region(self, x0: int, y0: int, x1: int, y1: int, values: np.ndarray) -> np.ndarray:
        """``values`` (an array of the box's shape) over frame pixels [y0:y1, x0:x1], 0 outside the box."""
        bx0, by0, bx1, by1 = self.box
        if (bx0, by0, bx1, by1) == (x0, y0, x1, y1):
            return values
        out = np.zeros((y1 - y0, x1 - x0), values.dtype)
        ix0, iy0, ix1, iy1 = max(x0, bx0), max(y0, by0), min(x1, bx1), min(y1, by1)
        if ix1 > ix0 and iy1 > iy0:
            out[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0] = values[iy0 - by0 : iy1 - by0, ix0 - bx0 : ix1 - bx0]
        return out

    def logits(self, shape: tuple[int, int]) -> np.ndarray:
        """(m - 0.5) * LOGIT_GAIN over the frame, less the disagreement penalty."""
        out = np.full(shape, -0.5 * LOGIT_GAIN, np.float32)
        x0, y0, x1, y1 = self.box
        if x1 > x0 and y1 > y0:
            lg = out[y0:y1, x0:x1]  # computed in place: the same float32 operations, no temporaries
            np.subtract(self.patch, np.float32(0.5), out=lg)
            lg *= np.float32(LOGIT_GAIN)
            if self.disagree is not None:
                lg -= DISAGREE_PENALTY * self.disagree  # loses where another object's motion fits better
        return out

    @property
    def soft(self) -> np.ndarray:
        """The warped anchor over the whole frame (tests and debugging)."""
        w, h = self.size
        return self.region(0, 0, w, h, self.patch)

    def _limit_scale(self, step: np.ndarray, src: np.ndarray) -> np.ndarray:
        """Clamp the fitted per-frame scale to 1 +- MAX_SCALE_STEP, keeping rotation, and re-centre
        on the points so the object's centre moves as fitted. Points crowded at one side (an object
        entering the view) fit the scale badly, and a scale error compounds frame after frame."""
        a, b = step[0, 0], step[1, 0]
        scale = float(np.hypot(a, b))
        lo, hi = 1 - self.MAX_SCALE_STEP, 1 + self.MAX_SCALE_STEP
        if lo <= scale <= hi or scale == 0:
            return step
        lin = step[:, :2] * (min(max(scale, lo), hi) / scale)
        c = src.mean(0)
        moved = step[:, :2] @ c + step[:, 2]  # where the fit sends the centre of the points
        return np.hstack([lin, (moved - lin @ c)[:, None]])

    def _disagreement(self, step: np.ndarray, motion: Motion, mask: np.ndarray, origin: tuple[int, int]) -> None:
        """Where, inside the object at t-1 (``mask``, a region of the frame at ``origin``), the
        fitted step does not reproduce the flow (an occluder crossing it, or the object sliding
        over a static one), carried to frame t, in the new box. Computed on the frame's even
        pixels, then warped back to full resolution."""
        import cv2

        ox, oy = origin
        ex0, ey0 = ox % 2, oy % 2  # the region's first even frame column and row
        bx, by, bw, bh = cv2.boundingRect(np.ascontiguousarray(mask[ey0::2, ex0::2]))
        x0b, y0b, x1b, y1b = self.box
        if bw == 0 or x1b <= x0b or y1b <= y0b:
            self.disagree = None
            return
        x0, y0 = ox + ex0 + 2 * bx, oy + ey0 + 2 * by  # frame pixels, even
        x1, y1 = x0 + 2 * (bw - 1) + 1, y0 + 2 * (bh - 1) + 1
        gx = np.arange(x0, x1, 2, dtype=np.float32)[None, :]  # the grid's columns and rows, broadcast
        gy = np.arange(y0, y1, 2, dtype=np.float32)[:, None]
        half = (slice(y0 // 2, y0 // 2 + bh), slice(x0 // 2, x0 // 2 + bw))  # the grid in the even pixels
        (a, b, c), (d, e, g) = step.tolist()
        ex = ((a - 1) * gx + c) + (b * gy - motion.fx[half])
        ey = (d * gx + g) + ((e - 1) * gy - motion.fy[half])
        ex *= ex
        ey *= ey
        ex += ey
        inside = mask[y0 - oy : y1 - oy : 2, x0 - ox : x1 - ox : 2] > 0
        bad = ((ex > motion.tol2[half]) & inside).astype(np.float32)
        if not bad.any():
            self.disagree = None
            return
        # the half-resolution grid -> frame t -> the box: scale by 2, shift to the grid, the step,
        # then the box's origin
        place = np.array([[2.0, 0.0, x0], [0.0, 2.0, y0], [0.0, 0.0, 1.0]])
        into_box = np.array([[1.0, 0.0, -x0b], [0.0, 1.0, -y0b], [0.0, 0.0, 1.0]])
        self.disagree = cv2.warpAffine(
            bad,
            (into_box @ np.vstack([step, [0, 0, 1]]) @ place)[:2],
            (x1b - x0b, y1b - y0b),
            flags=cv2.INTER_NEAREST,
            borderMode=cv2.BORDER_CONSTANT,
        )

    def move(self, motion: Motion, erode: int) -> None:
        import cv2

        flow = motion.flow
        self.disagree = None
        bx0, by0, bx1, by1 = self.box
        if bx1 <= bx0 or by1 <= by0:
            self.confidence.update_area(0.0)
            return  # nothing in view: it stays where it left
        in_box = (self.patch > 0.5).view(np.uint8)  # 0 and 1, without a copy
        bx, by, bw, bh = cv2.boundingRect(in_box)
        if bw == 0:
            return
        # the fit reads the mask's bounding box (plus the erosion's reach), in frame pixels
        h, w = flow.shape[:2]
        bx, by = bx + bx0, by + by0
        pad = erode + 1
        x0, y0, x1, y1 = max(0, bx - pad), max(0, by - pad), min(w, bx + bw + pad), min(h, by + bh + pad)
        box = self.region(x0, y0, x1, y1, in_box)
        inner = None
        if erode > 0:
            eroded = cv2.erode(box, _disc(erode))
            inner = eroded if cv2.countNonZero(eroded) >= 12 else None
        if inner is None:
            inner = box.copy()
        e = self.EDGE  # flow at the frame's edge is unreliable
        inner[: max(0, e - y0), :] = 0
        inner[max(0, h - e - y0) :, :] = 0
        inner[:, : max(0, e - x0)] = 0
        inner[:, max(0, w - e - x0) :] = 0
        pts = cv2.findNonZero(inner)  # (x, y) in row-major order, as np.nonzero, at half the cost
        pts = np.zeros((0, 2), np.int32) if pts is None else pts.reshape(-1, 2)
        if len(pts) > self.MAX_POINTS:
            pts = pts[np.linspace(0, len(pts) - 1, self.MAX_POINTS).astype(int)]
        xs, ys = pts[:, 0] + x0, pts[:, 1] + y0
        src = np.stack([xs, ys], 1).astype(np.float32)
        dst = src + flow[ys, xs]
        step = None
        if len(src) >= 12:
            step, inliers = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=1.0)
        if step is None:
            if not len(src):
                return  # only edge pixels left: hold still
            dx, dy = np.median(dst - src, 0)
            step = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])
        else:
            step = self._limit_scale(step, src)
            self.confidence.update_fit(float(np.count_nonzero(inliers)) / len(src))
        self.transform = np.vstack([step, [0, 0, 1]]) @ self.transform
        self._warp()
        self._disagreement(step, motion, box, (x0, y0))
        self.confidence.update_area(self._area())
        if motion.prev is not None and motion.gray is not None:
            err = sample_error(motion.prev, motion.gray, src, step, self.size)
            if err is not None:
                self.confidence.update_residual(err)
