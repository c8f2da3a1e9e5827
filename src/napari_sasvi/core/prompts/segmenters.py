"""From clicks and a box to a frame's mask of one object: SAM2's image path, or a classical one.

* :class:`Sam2ImageSegmenter` runs the image path of the store's own SAM2 model (the same weights
  as its tracker; no video pass): the frame's image features are computed once and kept for the
  last few frames, so each click after the first costs only the prompt encoder and the mask decoder.
* :class:`GrowSegmenter` grows the object from the clicks or the box with GrabCut / a watershed
  (:func:`~.grow.grow_mask`): no model, so prompting works offline and with the flow tracker.

A mask depends on the prompt alone (all its clicks and its box at once; the previous click's mask
is not fed back), so replaying a prompt file with the same model gives the same mask, bit for bit.
With one click and no box SAM2 gives three candidates and the one it scores best is taken (a lone
click is ambiguous: part, object, or whole); with more clicks or a box, one mask.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..store.fingerprint import frame_digest
from .grow import grow_mask
from .types import ObjectPrompt, check_prompt, clip_box


@dataclass(frozen=True)
class PromptMask:
    """A segmenter's answer: the mask (H, W) bool, its score (SAM2's predicted IoU; 1.0 for the
    classical method), and the seconds spent on image features (0 when cached) and on the prompt."""

    mask: np.ndarray
    score: float
    feature_seconds: float
    prompt_seconds: float


class Sam2ImageSegmenter:
    """SAM2's image path over a SAM2 model (a video predictor is one: it shares the image encoder,
    the prompt encoder and the mask decoder). Thread-safe: one computation at a time.

    The frame goes in as the video tracker reads it (:func:`~..trackers.sam2_frames.sam2_input`),
    through the image encoder once (with SAM2's "no memory" embedding added, as for a frame with no
    memory); a prompt then runs the prompt encoder (a box as its two corner points, then the
    clicks) and the mask decoder on the kept features, and the low-resolution mask is resized to
    the frame (bilinear) and cut at 0. No ``torch.jit`` scripting and no extra import (SAM2's
    ``SAM2ImagePredictor`` scripts its transforms when built, which holds the interpreter for
    about a second: napari froze for that long at the first click).

    Args:
        model: a ``SAM2Base`` (e.g. :attr:`SAM2Tracker.predictor <..trackers.sam2.SAM2Tracker>`).
        description: what :meth:`describe` reports (the tracker's description: model, weights).
        cache_frames: frames whose image features are kept (the most recently used).
    """

    kind = "sam2"

    def __init__(self, model, description: dict | None = None, cache_frames: int = 4):
        self.model = model
        self.size = int(model.image_size)
        self.device = next(model.parameters()).device
        self.description = dict(description or {})
        self.cache_frames = max(1, int(cache_frames))
        self._cache: OrderedDict[object, tuple[bytes, object, list]] = OrderedDict()  # key -> (pixels' digest, maps)
        self._lock = threading.Lock()

    def describe(self) -> dict:
        return {"type": "sam2-image", **{k: v for k, v in self.description.items() if k != "type"}}

    def _autocast(self):
        import contextlib

        import torch

        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def has_features(self, key, image: np.ndarray | None = None) -> bool:
        """Whether features for ``key`` are kept (of this ``image``, when given)."""
        entry = self._cache.get(key)
        return entry is not None and (image is None or entry[0] == bytes(frame_digest(image)))

    def _entry(self, key, image: np.ndarray) -> tuple[tuple, float]:
        """The kept features of ``image`` under ``key``, computed when missing or when the kept
        ones are of other pixels (another video's frame of the same index: the segmenter lives as
        long as its tracker, which a napari session reuses across stores); with the seconds spent.
        Call with the lock held."""
        import torch

        from ..trackers.sam2_frames import sam2_input

        digest = bytes(frame_digest(image))
        entry = self._cache.get(key)
        if entry is not None and entry[0] == digest:
            self._cache.move_to_end(key)
            return entry, 0.0
        t0 = time.perf_counter()
        m = self.model
        x = sam2_input(np.ascontiguousarray(image), self.size)[None].to(self.device)
        with torch.inference_mode(), self._autocast():
            out = m.forward_image(x)
            _, feats, _, sizes = m._prepare_backbone_features(out)
            if m.directly_add_no_mem_embed:
                feats[-1] = feats[-1] + m.no_mem_embed
            # (HW, B, C) -> (B, C, H, W), the finest level first
            maps = [f.permute(1, 2, 0).reshape(1, -1, *hw) for f, hw in zip(feats, sizes, strict=True)]
        entry = (digest, maps[-1], maps[:-1])
        self._cache[key] = entry
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_frames:
            self._cache.popitem(last=False)
        return entry, time.perf_counter() - t0

    def features(self, key, image: np.ndarray) -> float:
        """Compute and keep the image features of ``image`` (H, W, 3) uint8 RGB under ``key`` (a
        frame index); returns the seconds it took (0 when they were kept)."""
        with self._lock:
            return self._entry(key, image)[1]

    def segment(self, image: np.ndarray, prompt: ObjectPrompt, key=None) -> PromptMask:
        """The object's mask on ``image`` (H, W, 3) uint8 RGB from the prompt's clicks and box."""
        import torch
        import torch.nn.functional as F

        check_prompt(prompt, image.shape[:2])
        if not prompt.has_geometry:
            raise InputError("SAM2 segments from clicks or a box; this prompt has neither.")
        key = prompt.frame if key is None else key
        h, w = image.shape[:2]
        pts, labels = prompt.points_array()
        if prompt.box is not None:  # SAM's box: its corners as points labelled 2 and 3, first
            x0, y0, x1, y1 = clip_box(prompt.box, (h, w))
            pts = np.concatenate([np.array([[x0, y0], [x1, y1]], np.float32), pts])
            labels = np.concatenate([np.array([2, 3], np.int32), labels])
        multi = len(prompt.points) == 1 and prompt.box is None
        scale = np.array([self.size / w, self.size / h], np.float32)
        with self._lock:  # features and decoder under one lock: another thread cannot evict them between
            (_, embed, high_res), feature_s = self._entry(key, image)
            t0 = time.perf_counter()
            m = self.model
            coords = torch.from_numpy(pts * scale)[None].to(self.device)
            lab = torch.from_numpy(labels)[None].to(self.device)
            with torch.inference_mode(), self._autocast():
                sparse, dense = m.sam_prompt_encoder(points=(coords, lab), boxes=None, masks=None)
                low, iou, _, _ = m.sam_mask_decoder(
                    image_embeddings=embed,
                    image_pe=m.sam_prompt_encoder.get_dense_pe(),
                    sparse_prompt_embeddings=sparse,
                    dense_prompt_embeddings=dense,
                    multimask_output=multi,
                    repeat_image=False,
                    high_res_features=high_res,
                )
                scores = iou[0].float()
                best = int(torch.argmax(scores))
                full = F.interpolate(low[:, best : best + 1].float(), size=(h, w), mode="bilinear", align_corners=False)
            mask = (full[0, 0] > 0).cpu().numpy()
        return PromptMask(mask, float(scores[best]), feature_s, time.perf_counter() - t0)


class GrowSegmenter:
    """The classical segmenter (:func:`~.grow.grow_mask`): GrabCut from a box, a watershed from
    clicks. No model and no features to keep."""

    kind = "grow"

    def describe(self) -> dict:
        return {"type": "grow"}

    def has_features(self, key, image: np.ndarray | None = None) -> bool:
        return True

    def features(self, key, image: np.ndarray) -> float:
        return 0.0

    def segment(self, image: np.ndarray, prompt: ObjectPrompt, key=None) -> PromptMask:
        check_prompt(prompt, image.shape[:2])
        pts, labels = prompt.points_array()
        box = None if prompt.box is None else clip_box(prompt.box, image.shape[:2])
        t0 = time.perf_counter()
        mask = grow_mask(image, pts if len(pts) else None, labels if len(pts) else None, box)
        return PromptMask(np.asarray(mask, bool), 1.0, 0.0, time.perf_counter() - t0)


def segmenter_for(tracker, kind: str = "auto"):
    """The segmenter prompts on a store use: SAM2's image path when the store's tracker is SAM2
    (``auto``, ``sam2``), else the classical one (``auto`` with the flow or a transformers tracker,
    ``grow``). Asking for ``sam2`` with a tracker that has no SAM2 model is an :class:`InputError`."""
    model = getattr(tracker, "predictor", None)
    is_sam2 = model is not None and hasattr(model, "sam_mask_decoder")
    if kind == "grow" or (kind == "auto" and not is_sam2):
        return GrowSegmenter()
    if kind not in ("auto", "sam2"):
        raise InputError(f"Unknown prompt segmenter {kind!r}: choose auto, sam2 or grow.")
    if not is_sam2:
        raise InputError(
            "SAM2's image path needs the store's tracker to be SAM2; this store's is not: use the classical "
            "segmenter (grow)."
        )
    cached = getattr(tracker, "_prompt_segmenter", None)  # one per tracker: its features stay cached
    if cached is None:
        cached = Sam2ImageSegmenter(model, tracker.describe())
        tracker._prompt_segmenter = cached
    return cached


__all__ = ["GrowSegmenter", "PromptMask", "Sam2ImageSegmenter", "segmenter_for"]
