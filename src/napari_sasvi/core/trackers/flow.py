"""A tracker with no weights: dense optical flow carries each object's prompt forward.

How it works:

* **Anchors.** A prompt (a mask, or points turned into a mask) is the object's *anchor*, kept as
  it was given at its frame ``s``, with a transform from frame ``s`` to the current frame (the
  identity at ``s``).
* **Motion per object.** At each step, dense optical flow from frame ``t - 1`` to ``t`` (OpenCV
  DIS, or Farneback) is read at points inside the object's current mask, eroded so the points
  stay off its edges (where flow is smoothed across the boundary) and off the frame's border; a
  similarity transform (rotation, uniform scale, translation) is fitted to them with RANSAC and
  composed onto the object's transform, its scale change limited to 2 % per frame (a fit on points
  crowded at one side, an object entering the view, gets the scale wrong, and the error compounds).
  Few points (a small object): the median flow, as a translation.
* **Who is on top.** Where two objects' masks overlap (an instrument over tissue), the one whose
  fitted motion explains the flow there keeps the pixel: an object loses 5 of logit where its
  motion and the flow disagree by more than 1.5 px (+10 %). Without this, ties go to the lower
  class id and tissue swallowed the instruments sliding over it (instrument Dice 0.42 -> 0.72 on
  the synthetic clip).
* **One resampling.** The object's mask at ``t`` is its anchor warped once by the composed
  transform. Warping the mask from frame to frame would blur and threshold it at every step, so it
  would erode or grow without bound; warping the untouched anchor keeps its area and edges, and
  only the motion estimate accumulates error. Parts that leave the frame drop out.
* **Logits.** The warped anchor m in [0, 1] becomes a logit ``(m - 0.5) * 20``, minus the
  disagreement penalty above.
* **Optionally** (``extend=True``), what touches the frame's edge continues past it (the anchor's
  border pixels replicated outward): tissue under a panning camera gains (Dice 0.88 -> 0.91 on the
  synthetic clip) but instruments sliding in lose (0.72 -> 0.61), so it is off by default.
* **Flow ahead** (``ahead=True``, the default): while the caller works on frame ``t`` (the
  per-object fits, label composition, the store, SASVi's decisions), a worker thread reads frame
  ``t + 1`` and computes the flow ``t -> t + 1``. OpenCV and the image decoders release the GIL,
  so on two cores the two overlap. The computation is the same as without it, so the labels are
  byte-identical; only when it happens changes. A frame read ahead that is never used (the run
  stops, or restarts elsewhere) costs a decode and nothing else: an error reading it (a corrupt
  or changed frame) surfaces only when the frame is actually needed.
* **Point prompts** become a mask by a simple rule: the convex hull of the positive points (one or
  two points: discs), grown by ``point_radius`` (a fraction of the frame's shorter side), minus
  discs of that radius around the negative points.

Where it works: objects that move as a whole between frames (instruments, tissue under a moving
camera, zoom), with texture, at moderate speed (up to a few tens of pixels per frame at 480p).
Where it fails: deformation within a segment (a grasper opening, tissue being pulled: the shape
stays the anchor's), occlusions (flow inside the mask follows the occluder), fast thin instruments
against a smooth background, specular highlights and smoke, and long segments (drift
accumulates). SASVi bounds the last by re-seeding from the overseer every ``buffer`` frames and
re-prompting when classes change.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from ..errors import InputError

LOGIT_GAIN = 20.0
#: logit taken off where an object's fitted motion does not explain the flow: enough to lose against
#: an overlapping object whose motion does (a tie otherwise goes to the lower class id), not enough
#: to cut the object where nothing else claims the pixel
DISAGREE_PENALTY = 5.0
#: the flow methods: DIS (OpenCV's, medium preset computed down to full resolution), DIS made about
#: twice as fast (no variational refinement, frames at most 320 px: the same Dice on the real
#: CholecSeg8k clip, 0.017 less on the synthetic clip at 854 x 480; see benchmarks/README.md), and
#: Farneback. Each with the longer side the frames are scaled to by default.
METHODS = {"dis": 480, "dis-fast": 320, "farneback": 480}


def points_to_mask(shape: tuple[int, int], points_xy: np.ndarray, labels: np.ndarray, radius: float) -> np.ndarray:
    """The point-prompt rule: convex hull of the positive points grown by ``radius`` pixels (discs
    for one or two points), minus discs around the negative points."""
    import cv2

    h, w = shape
    pts = np.asarray(points_xy, np.float32).reshape(-1, 2)
    lab = np.asarray(labels).reshape(-1)
    pos, neg = pts[lab > 0], pts[lab <= 0]
    out = np.zeros((h, w), np.uint8)
    r = max(1, int(round(radius)))
    if len(pos) >= 3:
        hull = cv2.convexHull(np.round(pos).astype(np.int32))
        cv2.fillConvexPoly(out, hull, 1)
        out = cv2.dilate(out, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    for x, y in pos if len(pos) < 3 else []:
        cv2.circle(out, (int(round(x)), int(round(y))), r, 1, -1)
    for x, y in neg:
        cv2.circle(out, (int(round(x)), int(round(y))), r, 0, -1)
    return out.astype(bool)


class _Flow:
    """Backward flow (frame t -> frame t-1) at a reduced size, returned at full size."""

    def __init__(self, method: str, max_side: int):
        import cv2

        if method not in METHODS:
            raise InputError(f"Unknown flow method {method!r}: use one of {', '.join(METHODS)}.")
        self.method = method
        self.max_side = max_side
        self._dis = None
        if method.startswith("dis"):
            self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
            self._dis.setFinestScale(0)  # the preset stops at half resolution; sub-pixel accuracy matters here
            if method == "dis-fast":
                self._dis.setVariationalRefinementIterations(0)  # about half of DIS's time

    def gray(self, rgb: np.ndarray) -> np.ndarray:
        import cv2

        g = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
        h, w = g.shape
        scale = min(1.0, self.max_side / max(h, w))
        if scale < 1.0:
            g = cv2.resize(g, (max(8, round(w * scale)), max(8, round(h * scale))), interpolation=cv2.INTER_AREA)
        return g

    def calc(self, a: np.ndarray, b: np.ndarray, full: tuple[int, int]) -> np.ndarray:
        """(H, W, 2) float32: for each pixel of image ``a``, its displacement to image ``b``."""
        import cv2

        if self._dis is not None:
            flow = self._dis.calc(a, b, None)
        else:
            flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 4, 21, 3, 5, 1.1, 0)
        h, w = full
        sh, sw = a.shape
        if (sh, sw) != (h, w):
            flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR)
            flow[..., 0] *= w / sw
            flow[..., 1] *= h / sh
        return flow


class _Motion:
    """One frame pair's flow, and what every object's disagreement test reads of it, made once
    per frame pair (in the worker thread when reading ahead) instead of once per object: the
    flow at the frame's even pixels, x and y apart, and the squared tolerance there."""

    __slots__ = ("flow", "fx", "fy", "tol2")

    def __init__(self, flow: np.ndarray):
        self.flow = flow
        half = flow[::2, ::2]
        self.fx = np.ascontiguousarray(half[..., 0])
        self.fy = np.ascontiguousarray(half[..., 1])
        tol = 1.5 + 0.1 * np.hypot(self.fx, self.fy)  # 1.5 px, +10 % of the motion
        self.tol2 = tol * tol


@functools.lru_cache(maxsize=8)
def _disc(radius: int) -> np.ndarray:
    import cv2

    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


class FlowTracker:
    """Optical-flow tracker; incremental (objects join a running segment without a reset).

    Args:
        method: ``dis`` (OpenCV's DIS, medium preset; default), ``dis-fast`` (DIS without its
            variational refinement, at 320 px: about twice as fast, slightly less accurate) or
            ``farneback``.
        max_side: the flow is computed on frames scaled so their longer side is at most this
            (default: the method's, 480 or 320 for ``dis-fast``).
        point_radius: radius of the point-prompt rule, as a fraction of the frame's shorter side.
        erode: pixels the mask is eroded by before the flow is read inside it.
        extend: continue what touches the frame's edge past it (the anchor's border pixels
            replicated outward), so objects sliding into view are not cut at the old edge.
        ahead: read the next frame and compute the flow to it in a worker thread while the caller
            works on the current one (same results; overlaps on more than one core).
    """

    incremental = True

    def __init__(
        self,
        method: str = "dis",
        max_side: int | None = None,
        point_radius: float = 0.03,
        erode: int = 3,
        extend: bool = False,
        ahead: bool = True,
    ):
        if max_side is None:
            max_side = METHODS.get(method, 480)
        self._flow = _Flow(method, max_side)
        self.ahead = ahead
        self._pool: ThreadPoolExecutor | None = None
        # read ahead: (frame, the gray image of the frame before it, whether the flow between the
        # two is computed, the future (gray, flow or None))
        self._next: tuple[int, np.ndarray, bool, Future] | None = None
        self.extend = extend
        self.method = method
        self.max_side = max_side
        self.point_radius = point_radius
        self.erode = erode
        self.frames = None
        self.encodes: dict[int, int] = {}  # frame -> flow computations that read it
        self.reset()

    # -- Tracker protocol ------------------------------------------------------------------------------
    def bind(self, frames) -> None:
        self.frames = frames
        self.reset()

    def reset(self) -> None:
        self._drain()
        self._objects: dict[int, _Object] = {}
        self._pending: dict[int, tuple[int, np.ndarray]] = {}
        self._t: int | None = None  # the frame the objects are at
        self._gray: np.ndarray | None = None

    def add_mask(self, frame: int, obj_id: int, mask: np.ndarray | None) -> None:
        h, w = self.frames.frame_size
        m = np.zeros((h, w), bool) if mask is None else np.asarray(mask, bool)
        if m.shape != (h, w):
            raise InputError(f"A mask prompt of {m.shape} for frames of {(h, w)}.")
        self._pending[int(obj_id)] = (int(frame), m)

    def add_points(self, frame: int, obj_id: int, points_xy: np.ndarray, labels: np.ndarray) -> None:
        h, w = self.frames.frame_size
        m = points_to_mask((h, w), points_xy, labels, self.point_radius * min(h, w))
        self._pending[int(obj_id)] = (int(frame), m)

    def remove_objects(self, obj_ids: Iterable[int]) -> None:
        for i in obj_ids:
            self._objects.pop(int(i), None)
            self._pending.pop(int(i), None)

    def propagate(self, start: int) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        n = len(self.frames)
        if self._objects and self._t is not None and self._t != start:
            if start < self._t:  # paths are only known forwards
                raise RuntimeError(f"flow tracker at frame {self._t} asked to restart at {start} without a reset")
            for k in range(self._t + 1, start + 1):
                self._step(k)
        if not self._objects or self._t is None:
            self._t, self._gray = start, self._flow.gray(self.frames.frame(start))
        for obj, (f, m) in list(self._pending.items()):
            if f == start:
                self._objects[obj] = _Object(m, self.extend)
                del self._pending[obj]
        self._read_ahead()
        try:
            yield start, self._logits()
            for t in range(start + 1, n):
                self._step(t)
                yield t, self._logits()
        finally:  # the caller stops or restarts elsewhere: no worker outlives the run's use of the frames
            self._drain()
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None

    def describe(self) -> dict:
        return {
            "type": "flow",
            "method": self.method,
            "max_side": self.max_side,
            "point_radius": self.point_radius,
            "erode": self.erode,
            "extend": self.extend,
            "logit_gain": LOGIT_GAIN,
        }

    # -- internals -----------------------------------------------------------------------------------
    def _read(self, t: int, prev: np.ndarray | None) -> tuple[np.ndarray, _Motion | None]:
        """Frame t in gray, and the flow from ``prev`` (frame t-1 in gray) to it when given."""
        gray = self._flow.gray(self.frames.frame(t))
        motion = None if prev is None else _Motion(self._flow.calc(prev, gray, self.frames.frame_size))
        return gray, motion

    def _drain(self) -> None:
        """Forget the frame read ahead, after the worker is done with it (one optical-flow object
        is never used from two threads); its errors belong to a frame nobody asked for."""
        if self._next is not None:
            fut = self._next[3]
            self._next = None
            if not fut.cancel():
                fut.exception()  # waits; an error reading a frame never used is not raised

    def _read_ahead(self) -> None:
        """Start reading the frame after the current one, and the flow to it if objects move."""
        t = self._t + 1
        if not self.ahead or t >= len(self.frames):
            return
        if self._next is not None:
            if self._next[0] == t and self._next[1] is self._gray:
                return
            self._drain()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="sasvi-flow-ahead")
        moving = bool(self._objects)
        fut = self._pool.submit(self._read, t, self._gray if moving else None)
        self._next = (t, self._gray, moving, fut)

    def _step(self, t: int) -> None:
        moving = bool(self._objects)
        nxt = self._next
        if nxt is not None and nxt[0] == t and nxt[1] is self._gray and (nxt[2] or not moving):
            self._next = None
            gray, motion = nxt[3].result()  # a frame's read error is raised here, when it is needed
        else:
            self._drain()
            gray, motion = self._read(t, self._gray if moving else None)
        self.encodes[t] = self.encodes.get(t, 0) + 1
        self._t, self._gray = t, gray
        self._read_ahead()  # frame t+1 and the flow to it, while the objects move to t here
        if moving:
            for obj in self._objects.values():  # flow: t-1 -> t
                obj.move(motion, self.erode)

    def _logits(self) -> dict[int, np.ndarray]:
        shape = self.frames.frame_size
        return {i: o.logits(shape) for i, o in self._objects.items()}


class _Object:
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

    def _disagreement(self, step: np.ndarray, motion: _Motion, mask: np.ndarray, origin: tuple[int, int]) -> None:
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

    def move(self, motion: _Motion, erode: int) -> None:
        import cv2

        flow = motion.flow
        self.disagree = None
        bx0, by0, bx1, by1 = self.box
        if bx1 <= bx0 or by1 <= by0:
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
            step, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=1.0)
        if step is None:
            if not len(src):
                return  # only edge pixels left: hold still
            dx, dy = np.median(dst - src, 0)
            step = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])
        else:
            step = self._limit_scale(step, src)
        self.transform = np.vstack([step, [0, 0, 1]]) @ self.transform
        self._warp()
        self._disagreement(step, motion, box, (x0, y0))
