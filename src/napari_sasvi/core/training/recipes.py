"""The reference's training recipes for the three overseer architectures (section 3 of the SASVi
reference): optimiser settings, augmentation, class-balanced sampling, input sizes, and the
targets each model trains on.

All three use AdamW with weight decay 0.05 and a StepLR by epoch; Mask R-CNN lr 1e-4 with betas
(0.5, 0.999), DETR lr 1e-5, Mask2Former lr 1e-4, batch 8. Augmentation, applied jointly to the
frame and its label map: RandomResizedCrop (scale 0.8-1.0) to the input size, horizontal flip,
rotation within +-45 degrees, brightness/contrast. Pixels the rotation brings in are unannotated
(255), not background, so they teach nothing. Class-balanced sampling: class weight (1/freq)^0.2
over annotated pixels, a frame's weight the mean weight of the classes it shows.

Targets: each class present on a frame becomes instances, one per connected component (as the
reference's ``components=True``), its label ``class id + label_offset`` of the architecture's
spec; ignored classes (background) and unannotated pixels make none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..datasets import ClassTable
from ..inputs.labels import UNLABELLED
from ..overseers.models import ArchSpec, _detr, _m2f, _maskrcnn, reference_spec


@dataclass(frozen=True)
class Recipe:
    """Optimiser and schedule of one architecture."""

    lr: float
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.05
    batch_size: int = 8
    lr_step_epochs: int = 30
    lr_gamma: float = 0.5


RECIPES = {
    "maskrcnn": Recipe(lr=1e-4, betas=(0.5, 0.999)),
    "detr": Recipe(lr=1e-5),
    "mask2former": Recipe(lr=1e-4),
}
#: instances smaller than this fraction of the frame are dropped (specks teach box regression noise)
MIN_COMPONENT_FRACTION = 0.0005


def training_spec(arch: str, classes: ClassTable) -> ArchSpec:
    """The architecture a run for ``classes`` trains: the published layout for a dataset preset,
    else the layout :func:`~..overseers.models.spec_from_checkpoint` reads back from the file."""
    spec = reference_spec(arch, classes.name)
    if spec is not None:
        return spec
    n = len(classes)
    if arch == "maskrcnn":
        return _maskrcnn(n + 1, 1, "resnet18_fpn", 32)
    if arch == "detr":
        return _detr(n + 1, 1)
    return _m2f(n)


def trained_ids(classes: ClassTable, spec: ArchSpec) -> list[int]:
    """Class ids the model learns: in the table, not ignored, with a label inside the classifier."""
    out = []
    for c in classes.ids:
        if c in classes.ignore_ids or c == classes.no_label:
            continue
        label = c + spec.label_offset
        if spec.arch == "maskrcnn" and label == 0:
            continue  # label 0 is Mask R-CNN's background
        if 0 <= label < spec.num_labels:
            out.append(c)
    return out


# -- class-balanced sampling ----------------------------------------------------------------------
def class_frequencies(label_maps: Sequence[np.ndarray], ids: Sequence[int]) -> dict[int, float]:
    counts = dict.fromkeys(ids, 0)
    total = 0
    for lab in label_maps:
        values, n = np.unique(lab, return_counts=True)
        for v, k in zip(values.tolist(), n.tolist(), strict=True):
            if v in counts:
                counts[v] += k
            if v != UNLABELLED:
                total += k
    return {c: counts[c] / total for c in ids if total and counts[c]}


def sample_weights(present: Sequence[set[int]], freq: dict[int, float], alpha: float = 0.2) -> np.ndarray:
    """A frame's weight: the mean class weight (1/freq)^alpha of the classes it shows (the smallest
    class weight when it shows none of them)."""
    cw = {c: (1.0 / f) ** alpha for c, f in freq.items()}
    floor = min(cw.values()) if cw else 1.0
    w = [np.mean([cw[c] for c in p if c in cw]) if any(c in cw for c in p) else floor for p in present]
    return np.asarray(w, np.float64)


# -- augmentation -----------------------------------------------------------------------------------
def augment(frame: np.ndarray, labels: np.ndarray, size: tuple[int, int], train: bool = True):
    """(3, h, w) float in [0, 1] and (h, w) int64 labels at ``size``; random when ``train``
    (torch's global RNG: seed it per step for a run that resumes identically)."""
    import torch
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    img = tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1))
    lab = tv_tensors.Mask(torch.from_numpy(labels.astype(np.int64))[None])
    if train:
        t = v2.Compose(
            [
                v2.RandomResizedCrop(size, scale=(0.8, 1.0), antialias=True),
                v2.RandomHorizontalFlip(0.5),
                v2.RandomApply([v2.RandomRotation(45, fill={tv_tensors.Image: 0, tv_tensors.Mask: UNLABELLED})], 0.5),
                v2.RandomApply([v2.ColorJitter(brightness=0.2, contrast=0.2)], 0.5),
            ]
        )
    else:
        t = v2.Resize(size, antialias=True)
    img, lab = t(img, lab)
    return img.float().div(255.0), lab[0]


# -- targets ---------------------------------------------------------------------------------------
def instances(labels, ids: Sequence[int]) -> list[tuple[int, np.ndarray]]:
    """(class id, bool mask) per connected component of each class in ``ids`` on ``labels``."""
    from scipy import ndimage

    lab = np.asarray(labels)
    min_px = MIN_COMPONENT_FRACTION * lab.size
    out = []
    for c in np.unique(lab).tolist():
        if c not in ids:
            continue
        comp, n = ndimage.label(lab == c)
        for k in range(1, n + 1):
            m = comp == k
            if m.sum() >= max(min_px, 4):
                out.append((int(c), m))
    return out


def _boxes(masks: np.ndarray) -> np.ndarray:
    out = []
    for m in masks:
        ys, xs = np.nonzero(m)
        out.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return np.asarray(out, np.float32).reshape(-1, 4)


def maskrcnn_target(labels, ids: Sequence[int], spec: ArchSpec, device) -> dict:
    import torch

    inst = instances(labels, ids)
    h, w = np.asarray(labels).shape
    masks = np.stack([m for _, m in inst]) if inst else np.zeros((0, h, w), bool)
    return {
        "boxes": torch.from_numpy(_boxes(masks)).to(device),
        "labels": torch.tensor([c + spec.label_offset for c, _ in inst], dtype=torch.int64, device=device),
        "masks": torch.from_numpy(masks.astype(np.uint8)).to(device),
    }


def detr_target(labels, ids: Sequence[int], spec: ArchSpec, size: int, device) -> dict:
    """DETR's target at the processor size: class labels, normalised (cx, cy, w, h) boxes, masks."""
    import torch
    import torch.nn.functional as F

    inst = instances(labels, ids)
    h, w = np.asarray(labels).shape
    masks = np.stack([m for _, m in inst]) if inst else np.zeros((0, h, w), bool)
    b = _boxes(masks)
    boxes = np.stack(
        [(b[:, 0] + b[:, 2]) / 2 / w, (b[:, 1] + b[:, 3]) / 2 / h, (b[:, 2] - b[:, 0]) / w, (b[:, 3] - b[:, 1]) / h], 1
    )
    m = torch.from_numpy(masks.astype(np.float32))
    if len(m):
        m = (F.interpolate(m[None], size=(size, size), mode="nearest")[0] > 0.5).float()
    else:
        m = torch.zeros((0, size, size))
    return {
        "class_labels": torch.tensor([c + spec.label_offset for c, _ in inst], dtype=torch.int64, device=device),
        "boxes": torch.from_numpy(boxes.astype(np.float32)).reshape(-1, 4).to(device),
        "masks": m.to(device),
    }


def mask2former_target(labels, ids: Sequence[int], spec: ArchSpec, device) -> tuple:
    import torch

    inst = instances(labels, ids)
    h, w = np.asarray(labels).shape
    masks = np.stack([m for _, m in inst]) if inst else np.zeros((0, h, w), bool)
    return (
        torch.from_numpy(masks.astype(np.float32)).to(device),
        torch.tensor([c + spec.label_offset for c, _ in inst], dtype=torch.int64, device=device),
    )


__all__ = [
    "RECIPES",
    "Recipe",
    "augment",
    "class_frequencies",
    "detr_target",
    "instances",
    "mask2former_target",
    "maskrcnn_target",
    "sample_weights",
    "trained_ids",
    "training_spec",
]
