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

The flow field and the motion it carries are in :mod:`.flow_field`, one tracked object (anchor,
transform, fit, logits) in :mod:`.flow_object`; this module holds the tracker.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from ..errors import InputError
from .flow_field import METHODS, FlowField, Motion
from .flow_object import DISAGREE_PENALTY, LOGIT_GAIN, TrackedObject

__all__ = ["DISAGREE_PENALTY", "LOGIT_GAIN", "METHODS", "FlowTracker", "points_to_mask"]


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
    #: prompts between two frames of a propagation (``add_mask`` at the frame just yielded,
    #: ``remove_objects``) take effect from the next frame; nothing is recomputed
    live_prompts = True

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
        self._flow = FlowField(method, max_side)
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
        self._objects: dict[int, TrackedObject] = {}
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
        self._install(start)
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

    def confidence(self) -> dict[int, float]:
        """Per object, how sure the tracker is at the frame just yielded, in [0, 1]
        (:mod:`.confidence`: area kept, RANSAC fit, photometric error)."""
        return {i: o.confidence.value for i, o in self._objects.items()}

    def confidence_reasons(self) -> dict[int, str]:
        """Per object, the signal that sets its :meth:`confidence` (``area``, ``fit``, ``residual``)."""
        return {i: o.confidence.reason for i, o in self._objects.items()}

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
    def _read(self, t: int, prev: np.ndarray | None) -> tuple[np.ndarray, Motion | None]:
        """Frame t in gray, and the flow from ``prev`` (frame t-1 in gray) to it when given."""
        gray = self._flow.gray(self.frames.frame(t))
        motion = None if prev is None else Motion(self._flow.calc(prev, gray, self.frames.frame_size), prev, gray)
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

    def _install(self, frame: int) -> None:
        """Prompts given at ``frame`` (where the objects are) become tracked objects."""
        for obj, (f, m) in list(self._pending.items()):
            if f == frame:
                self._objects[obj] = TrackedObject(m, self.extend)
                del self._pending[obj]

    def _step(self, t: int) -> None:
        self._install(t - 1)  # live prompts given at the frame before, between two yields
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
