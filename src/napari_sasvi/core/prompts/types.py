"""A prompt for one object on one frame: clicks, a box, or a mask, and what checks it.

A prompt names the frame, the object (a class id in a class store; a track id in an instance
store, a new one with its class) and what the user gave: positive and negative clicks (pixel
coordinates of the frame, ``(x, y)``), a box ``(x0, y0, x1, y1)`` (pixel edges: x0 <= x < x1),
or a mask (H, W) bool. A segmenter (:mod:`.segmenters`) turns clicks and boxes into the frame's
mask of the object; the commit (:mod:`.commit`) writes it as an edit of the store, recorded with
the prompt so it can be exported and replayed (:mod:`.files`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..instances.types import rle_decode, rle_encode


@dataclass(frozen=True)
class ObjectPrompt:
    """One object's prompt on one frame.

    Attributes:
        frame: the frame (0-based).
        object: the class id (class store) or the track id (instance store) the mask is for.
        class_id: the object's class (equal to ``object`` in a class store).
        points: clicks, (N, 2) float pixel coordinates ``(x, y)``; empty: none.
        labels: one per click, 1 positive, 0 negative.
        box: ``(x0, y0, x1, y1)`` pixel edges, or None.
        mask: the object's mask (H, W) bool when the prompt is a mask (a replayed prompt's saved
            mask, a painted one), or None.
        new_track: an instance store: ``object`` is a track the store does not have yet.
    """

    frame: int
    object: int
    class_id: int
    points: tuple[tuple[float, float], ...] = ()
    labels: tuple[int, ...] = ()
    box: tuple[float, float, float, float] | None = None
    mask: np.ndarray | None = field(default=None, compare=False)
    new_track: bool = False

    @property
    def has_geometry(self) -> bool:
        """Clicks or a box: a segmenter makes the mask."""
        return bool(self.points) or self.box is not None

    def points_array(self) -> tuple[np.ndarray, np.ndarray]:
        """Clicks as ``(N, 2) float32 (x, y)`` and ``(N,) int32`` labels."""
        pts = np.asarray(self.points, np.float32).reshape(-1, 2)
        return pts, np.asarray(self.labels, np.int32).reshape(-1)

    def with_mask(self, mask: np.ndarray) -> ObjectPrompt:
        return ObjectPrompt(
            self.frame, self.object, self.class_id, self.points, self.labels, self.box, np.asarray(mask, bool),
            self.new_track,
        )  # fmt: skip

    def to_dict(self) -> dict:
        """The prompt as JSON (the edit log's ``prompt`` and a prompt file's entries)."""
        out = {
            "frame": int(self.frame),
            "object": int(self.object),
            "class": int(self.class_id),
            "points": [[float(x), float(y)] for x, y in self.points],
            "labels": [int(v) for v in self.labels],
            "box": None if self.box is None else [float(v) for v in self.box],
        }
        if self.new_track:
            out["new_track"] = True
        if self.mask is not None:
            out["mask"] = rle_encode(self.mask)
        return out

    @classmethod
    def from_dict(cls, d: dict, where: str = "the prompt", frame_size: tuple[int, int] | None = None) -> ObjectPrompt:
        """Read :meth:`to_dict`'s form; a malformed entry is an :class:`InputError` naming ``where``.
        ``frame_size`` (H, W): a mask of another size is refused before it is decoded."""
        try:
            if not isinstance(d, dict):
                raise TypeError(f"a prompt is a JSON object, not {type(d).__name__}")
            points = tuple((_number(x), _number(y)) for x, y in d.get("points") or [])
            labels = tuple(_integer(v) for v in d.get("labels") or [])
            box = d.get("box")
            box = None if box is None else tuple(_number(v) for v in box)
            if box is not None and len(box) != 4:
                raise ValueError("a box is [x0, y0, x1, y1]")
            mask = d.get("mask")
            if mask is not None:
                size = tuple(_integer(v) for v in mask["size"])
                if frame_size is not None and size != tuple(frame_size):
                    raise ValueError(f"its mask is {size[1]}x{size[0]}; the frames are {frame_size[1]}x{frame_size[0]}")
                mask = rle_decode(mask)
            obj = _integer(d["object"])
            return cls(
                _integer(d["frame"]), obj, _integer(d.get("class", obj)), points, labels, box, mask,
                bool(d.get("new_track")),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise InputError(
                f"{where} cannot be read ({type(e).__name__}: {e}): a prompt is "
                '{"frame", "object", "class", "points": [[x, y], ...], "labels": [1|0, ...], "box": [x0, y0, x1, y1] '
                '| null, "mask": {"size", "runs"} | absent}.'
            ) from None


def _integer(v) -> int:
    """An integer of a JSON file (1 or 1.0; not 1.9, "1" or true)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or float(v) != int(v):
        raise ValueError(f"{v!r} is not an integer")
    return int(v)


def _number(v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{v!r} is not a number")
    return float(v)


def check_prompt(prompt: ObjectPrompt, frame_size: tuple[int, int], n_frames: int | None = None) -> None:
    """Refuse a prompt that cannot be segmented, with a message that says what is wrong.

    Args:
        frame_size: (H, W) of the video's frames.
        n_frames: the video's length, to check the frame (None: not checked).

    Raises:
        InputError: a frame outside the video; clicks outside the frame or with labels other than
            0/1, a count of labels that differs from the clicks; a box of zero area or not inside
            the frame; a mask of another size; nothing that says where the object is (no positive
            click, no box, no mask).
    """
    h, w = frame_size
    if n_frames is not None and not 0 <= prompt.frame < n_frames:
        raise InputError(f"Frame {prompt.frame} is not in the video (frames 0-{n_frames - 1}).")
    if len(prompt.points) != len(prompt.labels):
        raise InputError(f"{len(prompt.points)} clicks but {len(prompt.labels)} click labels: give one label a click.")
    for (x, y), lab in zip(prompt.points, prompt.labels, strict=True):
        if not (0 <= x < w and 0 <= y < h):
            raise InputError(
                f"The click at (x={x:.1f}, y={y:.1f}) is outside frame {prompt.frame}, which is {w}x{h} pixels: "
                "click on the image."
            )
        if lab not in (0, 1):
            raise InputError(f"A click's label is 1 (positive) or 0 (negative), not {lab}.")
    if prompt.box is not None:
        x0, y0, x1, y1 = prompt.box
        if not all(np.isfinite(prompt.box)):
            raise InputError(f"The box {prompt.box} has a coordinate that is not a number.")
        if x1 - x0 < 1 or y1 - y0 < 1:
            raise InputError(
                f"The box ({x0:.1f}, {y0:.1f})-({x1:.1f}, {y1:.1f}) has no area: drag a box at least a pixel wide and high."
            )
        if x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h:
            raise InputError(
                f"The box ({x0:.1f}, {y0:.1f})-({x1:.1f}, {y1:.1f}) is outside frame {prompt.frame}, which is "
                f"{w}x{h} pixels."
            )
    if prompt.mask is not None and prompt.mask.shape != (h, w):
        raise InputError(f"The prompt's mask is {prompt.mask.shape[1]}x{prompt.mask.shape[0]}; the frames are {w}x{h}.")
    if prompt.mask is None and prompt.box is None and 1 not in prompt.labels:
        raise InputError(
            "Nothing says where the object is: add a positive click (or draw a box); negative clicks only remove."
        )


def clip_box(box: tuple[float, float, float, float], frame_size: tuple[int, int]) -> tuple[float, float, float, float]:
    """A box that overlaps the frame, cut to it (a box dragged past the image's edge)."""
    h, w = frame_size
    x0, y0, x1, y1 = box
    return (max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1))


__all__ = ["ObjectPrompt", "check_prompt", "clip_box"]
