"""Trained overseers: Mask R-CNN, DETR and Mask2Former loaded from SASVi checkpoints, with the
reference's pre- and post-processing, batched over frames on CUDA or CPU.

Pre-processing (section 3 of the SASVi reference):

* Mask R-CNN: RGB in [0, 1] resized to 299 x 299; the model normalises inside (ImageNet mean/std).
* DETR: resized to 200 x 200 (bilinear), scaled to [0, 1], then what the DETR image processor does:
  resized to 800 x 800 and normalised with the ImageNet mean/std. Done in torch so it runs batched on
  the GPU.
* Mask2Former: resized to 299 x 299 (bilinear), scaled to [0, 1], no further normalisation.

Post-processing, with the reference's thresholds as defaults:

* Mask R-CNN: detections with box score > 0.05 (torchvision's default), mask probability > 0.5.
* DETR: queries whose most likely class is not "no object" and whose score (softmax) > 0; mask
  logits > 0.5.
* Mask2Former: the same with score > 0 and mask logits > 0.

The kept instances of one class are OR-ed into one mask (score = the best instance's), then
labels become class ids (:class:`~.models.ArchSpec.label_offset`); background and out-of-table
labels are dropped. Masks are brought to the frame size: Mask R-CNN's thresholded 299 x 299 masks
by nearest neighbour, the transformers' mask logits bilinearly before thresholding.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..datasets import ClassTable
from ..errors import CheckpointError
from ..instances.types import Instance
from ..state_dict import read_state_dict
from .base import OverseerResult, merge_instances
from .models import (
    ARCH_TITLES,
    ArchSpec,
    build_model,
    check_arch,
    labels_in_checkpoint,
    presets_with,
    reference_spec,
    spec_from_checkpoint,
)
from .renames import load_state_dict_strict

log = logging.getLogger(__name__)

#: frames per forward pass at most: DETR's segmentation head runs on all 100 queries at a quarter of
#: 800 x 800 and peaks at about 9.5 GiB per frame on the CPU (measured), so it goes one frame at a time
FORWARD_BATCH = {"maskrcnn": 8, "detr": 1, "mask2former": 8}
#: the reference's thresholds: (score, mask)
DEFAULT_THRESHOLDS = {"maskrcnn": (0.05, 0.5), "detr": (0.0, 0.5), "mask2former": (0.0, 0.0)}
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Thresholds:
    """``score``: keep an instance/query whose class score is above it; ``mask``: a pixel belongs to
    the instance where the mask probability (Mask R-CNN) or logit (DETR, Mask2Former) is above it."""

    score: float
    mask: float

    @classmethod
    def for_arch(cls, arch: str, score: float | None = None, mask: float | None = None) -> Thresholds:
        s, m = DEFAULT_THRESHOLDS[arch]
        return cls(s if score is None else float(score), m if mask is None else float(mask))


class TrainedOverseer:
    """A trained frame-wise model as the SASVi overseer.

    Build it with :func:`load_overseer` (from a checkpoint) or directly from a model of ``spec``.
    """

    needs_frames = True

    def __init__(
        self,
        model,
        spec: ArchSpec,
        classes: ClassTable,
        device: str = "auto",
        thresholds: Thresholds | None = None,
        checkpoint: str | None = None,
        checkpoint_sha256: str | None = None,
    ):
        from ..devices import resolve_device

        self.spec = spec
        self.classes = classes
        self.device = resolve_device(device)
        self.thresholds = thresholds or Thresholds.for_arch(spec.arch)
        self.model = model.to(self.device).eval()
        self.checkpoint = checkpoint
        self.checkpoint_sha256 = checkpoint_sha256
        self.name = f"{ARCH_TITLES[spec.arch]} ({classes.name})"
        if spec.arch == "maskrcnn":
            self.model.roi_heads.score_thresh = self.thresholds.score
        self._keep_ids = set(classes.ids) - set(classes.ignore_ids)
        self._detr_fast_ok = True

    # -- the Overseer protocol ---------------------------------------------------------------------
    def describe(self) -> dict:
        return {
            "type": self.spec.arch,
            "checkpoint": self.checkpoint,
            "checkpoint_sha256": self.checkpoint_sha256,
            "spec": self.spec.describe(),
            "thresholds": {"score": self.thresholds.score, "mask": self.thresholds.mask},
            "classes": self.classes.name,
        }

    def predict(self, frames: Sequence[np.ndarray] | None, indices: Sequence[int]) -> list[OverseerResult]:
        """Each class's detections merged into one mask (their union), scored by the best of them."""
        return [merge_instances(found) for found in self.predict_instances(frames, indices)]

    def predict_instances(self, frames: Sequence[np.ndarray] | None, indices: Sequence[int]) -> list[list[Instance]]:
        """Each detection (Mask R-CNN's boxes, DETR's and Mask2Former's queries) on its own."""
        import torch

        if frames is None:
            raise ValueError("a trained overseer needs the frames")
        if not len(frames):
            return []
        batch = np.stack([np.asarray(f) for f in frames])  # (B, H, W, 3) uint8, frames of one video
        step = FORWARD_BATCH[self.spec.arch]
        run = self._maskrcnn if self.spec.arch == "maskrcnn" else self._transformer
        out: list[list[Instance]] = []
        with torch.inference_mode():
            for i in range(0, len(batch), step):
                out.extend(run(batch[i : i + step]))
        return out

    # -- helpers -----------------------------------------------------------------------------------
    def _to_tensor(self, batch: np.ndarray):
        import torch

        return torch.from_numpy(batch).to(self.device).permute(0, 3, 1, 2).float().div_(255.0)

    def _resize_bilinear(self, x, size: tuple[int, int], antialias: bool):
        import torch.nn.functional as F

        if tuple(x.shape[-2:]) == tuple(size):
            return x
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=antialias)

    def _class_id(self, label: int) -> int | None:
        c = int(label) - self.spec.label_offset
        return c if c in self._keep_ids else None

    def _maskrcnn(self, batch: np.ndarray) -> list[list[Instance]]:
        import torch
        import torch.nn.functional as F

        h, w = batch.shape[1:3]
        x = self._resize_bilinear(self._to_tensor(batch), self.spec.input_size, antialias=True)
        outs = self.model(list(x))
        results = []
        for out in outs:
            cids = [self._class_id(label) for label in out["labels"].tolist()]
            keep = [i for i, c in enumerate(cids) if c is not None]
            found: list[Instance] = []
            if keep:
                masks = out["masks"][keep, 0] > self.thresholds.mask  # (n, 299, 299), already score-filtered
                # nearest resizing commutes with a union: merged class masks are as before
                full = F.interpolate(masks[:, None].to(torch.uint8), size=(h, w), mode="nearest-exact")[:, 0].bool()
                for j, i in enumerate(keep):
                    m = full[j].cpu().numpy()
                    if m.any():
                        found.append(Instance(cids[i], m, float(out["scores"][i])))
            results.append(found)
        return results

    def _transformer_inputs(self, batch: np.ndarray):
        x = self._to_tensor(batch)
        # the reference resizes with OpenCV's bilinear interpolation (no antialiasing), as here
        return transformer_inputs(self._resize_bilinear(x, self.spec.input_size, antialias=False), self.spec)

    def _transformer(self, batch: np.ndarray) -> list[list[Instance]]:
        import torch
        import torch.nn.functional as F

        h, w = batch.shape[1:3]
        inputs = self._transformer_inputs(batch)
        if self.spec.arch == "detr":
            logits, masks_for = self._detr(**inputs)
        else:
            out = self.model(**inputs)
            logits = out.class_queries_logits
            masks_for = lambda b, idx: out.masks_queries_logits[b, idx]  # noqa: E731
        probs = logits.float().softmax(-1)
        scores, labels = probs.max(-1)  # the last column is "no object"
        no_object = probs.shape[-1] - 1
        results = []
        for b in range(probs.shape[0]):
            keep = (labels[b] != no_object) & (scores[b] > self.thresholds.score)
            wanted = [
                q for q in torch.nonzero(keep).flatten().tolist() if self._class_id(int(labels[b, q])) is not None
            ]
            found: list[Instance] = []
            if wanted:
                mask_logits = masks_for(b, torch.tensor(wanted, device=logits.device)).float()  # (n, h', w')
                full = F.interpolate(mask_logits[None], size=(h, w), mode="bilinear", align_corners=False)[0]
                for j, q in enumerate(wanted):
                    m = (full[j] > self.thresholds.mask).cpu().numpy()
                    if m.any():
                        found.append(Instance(self._class_id(int(labels[b, q])), m, float(scores[b, q])))
            results.append(found)
        return results

    def _detr(self, pixel_values, pixel_mask):
        """DETR's class logits, and a function giving the mask logits of chosen queries only.

        DetrForSegmentation runs its mask head (a small FPN at a quarter of the input) on all 100
        queries; the post-processing keeps only queries with an object class, usually a handful.
        Running the head on those alone gives the same masks for them (the head treats every query
        on its own, GroupNorm included) at a fraction of the time and memory. The steps are
        transformers' own modules in the order of ``DetrForSegmentation.forward``; if a release
        changes them, the full forward runs instead (same results, slower)."""
        if self._detr_fast_ok:
            try:
                return self._detr_fast(pixel_values, pixel_mask)
            except (TypeError, AttributeError, RuntimeError, ValueError) as e:
                log.warning("DETR: query-selective mask head unavailable (%s); running the full forward", e)
                self._detr_fast_ok = False
        out = self.model(pixel_values=pixel_values, pixel_mask=pixel_mask)
        return out.logits, lambda b, idx: out.pred_masks[b, idx]

    def _detr_fast(self, pixel_values, pixel_mask):
        import torch

        m = self.model
        d = m.detr.model
        bsz = pixel_values.shape[0]
        feats = d.backbone(pixel_values, pixel_mask)
        feature_map, mask = feats[-1]
        proj = d.input_projection(feature_map)
        pos = d.position_embedding(
            shape=feature_map.shape, device=pixel_values.device, dtype=pixel_values.dtype, mask=mask
        )
        pos = pos.flatten(2).transpose(1, 2)
        flat_mask = mask.flatten(1)
        enc = d.encoder(
            inputs_embeds=proj.flatten(2).transpose(1, 2), attention_mask=flat_mask, spatial_position_embeddings=pos
        )
        query_pos = d.query_position_embeddings.weight.unsqueeze(0).repeat(bsz, 1, 1)
        dec = d.decoder(
            inputs_embeds=torch.zeros_like(query_pos),
            attention_mask=None,
            spatial_position_embeddings=pos,
            object_queries_position_embeddings=query_pos,
            encoder_hidden_states=enc.last_hidden_state,
            encoder_attention_mask=flat_mask,
        )
        seq = dec[0]
        logits = m.detr.class_labels_classifier(seq)
        fh, fw = feature_map.shape[-2:]
        memory = enc.last_hidden_state.transpose(1, 2).view(bsz, m.config.d_model, fh, fw)
        zero = torch.full((), 0.0, device=memory.device, dtype=memory.dtype)
        attn = torch.where(flat_mask.view(bsz, fh, fw)[:, None, None], zero, torch.finfo(memory.dtype).min)

        def masks_for(b, idx):
            one = slice(b, b + 1)
            bbox = m.bbox_attention(seq[one, idx], memory[one], attention_mask=attn[one])
            seg = m.mask_head(
                features=proj[one],
                attention_masks=bbox,
                fpn_features=[feats[2][0][one], feats[1][0][one], feats[0][0][one]],
            )
            return seg.view(len(idx), seg.shape[-2], seg.shape[-1])

        return logits, masks_for


def transformer_inputs(x, spec: ArchSpec) -> dict:
    """The model inputs of frames ``x`` (B, 3, h, w) float in [0, 1] already at ``spec.input_size``:
    DETR's image processor (resize to ``processor_size``, ImageNet normalisation) in torch, so it runs
    batched on the GPU; Mask2Former takes them as they are. Training uses the same path."""
    import torch
    import torch.nn.functional as F

    if spec.arch != "detr":
        return {"pixel_values": x}
    side = spec.processor_size  # DetrImageProcessor: shortest edge 800 (a square stays square)
    if tuple(x.shape[-2:]) != (side, side):
        x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
    mean = torch.tensor(_IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(_IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    x = (x - mean) / std
    return {"pixel_values": x, "pixel_mask": torch.ones(x.shape[0], *x.shape[-2:], device=x.device).long()}


def _fits_message(arch: str, n: int, classes: ClassTable, spec: ArchSpec, source: str) -> str:
    fits = presets_with(arch, n)
    where = (
        f"it fits the {' or '.join(fits)} preset" + ("s" if len(fits) > 1 else "")
        if fits
        else "no dataset preset has that many"
    )
    return (
        f"{source} is a {ARCH_TITLES[arch]} checkpoint with {n} labels, but the {classes.name} preset needs "
        f"{spec.num_labels}: {where}. Choose the dataset it was trained for, or give its own "
        "class table file."
    )


def load_overseer(
    arch: str,
    checkpoint: str | os.PathLike,
    classes: ClassTable,
    device: str = "auto",
    score_threshold: float | None = None,
    mask_threshold: float | None = None,
) -> TrainedOverseer:
    """Build the overseer ``arch`` for ``classes`` and load ``checkpoint`` into it strictly.

    ``checkpoint`` is a file, or the name of a published SASVi checkpoint
    (``cadis/maskrcnn``, ... see :data:`~napari_sasvi.core.weights.SASVI_OVERSEERS`), which is
    downloaded into the user cache when missing.
    """
    from ..weights import resolve_overseer_checkpoint, sha256_of

    arch = check_arch(arch)
    path = resolve_overseer_checkpoint(checkpoint, arch, classes.name)
    state = read_state_dict(path, "overseer")
    spec = reference_spec(arch, classes.name)
    source = f"{Path(path).name}"
    if spec is not None:
        n = labels_in_checkpoint(arch, state)
        if n is None:
            raise CheckpointError(
                f"{source} has no {ARCH_TITLES[arch]} classifier: is it a checkpoint of another overseer type?"
            )
        if n != spec.num_labels:
            raise CheckpointError(_fits_message(arch, n, classes, spec, source))
    else:
        spec = spec_from_checkpoint(arch, state, classes)
    model = build_model(spec)
    load_state_dict_strict(model, arch, state, source)
    return TrainedOverseer(
        model,
        spec,
        classes,
        device=device,
        thresholds=Thresholds.for_arch(arch, score_threshold, mask_threshold),
        checkpoint=str(path),
        checkpoint_sha256=sha256_of(path),
    )
