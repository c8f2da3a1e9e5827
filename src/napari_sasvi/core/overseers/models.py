"""The three overseer architectures of the published SASVi checkpoints, built from configs with no
network access (no pretrained download, no Hub config), so a checkpoint's ``state_dict`` loads
strictly.

Section 3 of the SASVi reference fixes, per dataset, the architecture and its heads:

============  =====================================  ===========================  =============================
dataset       Mask R-CNN (torchvision)               DETR (DetrForSegmentation)   Mask2Former (universal seg.)
============  =====================================  ===========================  =============================
cadis         ResNet18-FPN, 18 classes, dim 32       100 queries, 18 labels       20 queries, 18 labels
cholecseg8k   ResNet50-FPN v2, 13 classes, dim 64    100 queries, 14 labels       20 queries, 13 labels
cataract1k    ResNet18-FPN, 14 classes, dim 32       100 queries, 14 labels       20 queries, 14 labels
============  =====================================  ===========================  =============================

DETR uses the configuration of ``facebook/detr-resnet-50-panoptic`` (a timm ResNet-50 backbone),
Mask2Former the one of ``facebook/mask2former-swin-base-coco-instance`` (Swin-B, window 12); both
are written out here instead of being fetched from the Hub.

A model label maps to a class id of the dataset as ``class id = label - label_offset``; labels that
land outside the class table or on one of its ignored ids (the background) are dropped. Mask R-CNN
and DETR reserve label 0 for the background, so their offset is 1 where the dataset has no
background class of its own (CaDIS; CholecSeg8k's DETR) and 0 where it has one; Mask2Former's
labels are the class ids, and CaDIS's extra "no class" label 17 falls outside the table.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..datasets import ClassTable
from ..errors import CheckpointError, InputError

ARCHITECTURES = ("maskrcnn", "detr", "mask2former")
ARCH_TITLES = {"maskrcnn": "Mask R-CNN", "detr": "DETR", "mask2former": "Mask2Former"}


@dataclass(frozen=True)
class ArchSpec:
    """What to build: the architecture and the sizes its checkpoint fixes.

    Attributes:
        arch: ``maskrcnn``, ``detr`` or ``mask2former``.
        num_labels: classes of the model's classifier (Mask R-CNN counts its background class;
            DETR and Mask2Former add their "no object" class on top).
        label_offset: class id = model label - label_offset.
        backbone: Mask R-CNN only: ``resnet18_fpn`` or ``resnet50_fpn_v2``.
        dim_reduced: Mask R-CNN only: channels of the mask predictor's hidden layer.
        num_queries: DETR and Mask2Former: object queries.
        input_size: (height, width) the frames are resized to before the model.
        processor_size: DETR only: the side the DETR image processor then resizes to (800).
    """

    arch: str
    num_labels: int
    label_offset: int = 0
    backbone: str = ""
    dim_reduced: int = 0
    num_queries: int = 0
    input_size: tuple[int, int] = (299, 299)
    processor_size: int = 800

    def describe(self) -> dict:
        d = {"arch": self.arch, "num_labels": self.num_labels, "label_offset": self.label_offset}
        d["input_size"] = list(self.input_size)
        if self.arch == "maskrcnn":
            d.update(backbone=self.backbone, dim_reduced=self.dim_reduced)
        else:
            d["num_queries"] = self.num_queries
        if self.arch == "detr":
            d["processor_size"] = self.processor_size
        return d


def _maskrcnn(n: int, offset: int, backbone: str, dim: int) -> ArchSpec:
    return ArchSpec("maskrcnn", n, offset, backbone=backbone, dim_reduced=dim, input_size=(299, 299))


def _detr(n: int, offset: int) -> ArchSpec:
    return ArchSpec("detr", n, offset, num_queries=100, input_size=(200, 200))


def _m2f(n: int) -> ArchSpec:
    return ArchSpec("mask2former", n, 0, num_queries=20, input_size=(299, 299))


#: (dataset preset, architecture) -> the published checkpoint's architecture
REFERENCE_SPECS: dict[tuple[str, str], ArchSpec] = {
    ("cadis", "maskrcnn"): _maskrcnn(18, 1, "resnet18_fpn", 32),
    ("cholecseg8k", "maskrcnn"): _maskrcnn(13, 0, "resnet50_fpn_v2", 64),
    ("cataract1k", "maskrcnn"): _maskrcnn(14, 0, "resnet18_fpn", 32),
    ("cadis", "detr"): _detr(18, 1),
    ("cholecseg8k", "detr"): _detr(14, 1),
    ("cataract1k", "detr"): _detr(14, 0),
    ("cadis", "mask2former"): _m2f(18),
    ("cholecseg8k", "mask2former"): _m2f(13),
    ("cataract1k", "mask2former"): _m2f(14),
}


def check_arch(arch: str) -> str:
    a = str(arch).lower().replace("-", "").replace("_", "")
    if a not in ARCHITECTURES:
        raise InputError(f"Unknown overseer {arch!r}: use one of {', '.join(ARCHITECTURES)} (or replay).")
    return a


def reference_spec(arch: str, dataset: str) -> ArchSpec | None:
    """The published architecture for a dataset preset, or None for other class tables."""
    return REFERENCE_SPECS.get((dataset, check_arch(arch)))


def presets_with(arch: str, num_labels: int) -> list[str]:
    """Dataset presets whose published ``arch`` checkpoint has ``num_labels`` classes."""
    return [d for (d, a), s in REFERENCE_SPECS.items() if a == arch and s.num_labels == num_labels]


# -- reading the sizes off a checkpoint --------------------------------------------------------------
#: key of the classifier weight per architecture, under every name a release has given it
_CLASSIFIER_KEYS = {
    "maskrcnn": ("roi_heads.box_predictor.cls_score.weight",),
    "detr": ("detr.class_labels_classifier.weight", "class_labels_classifier.weight"),
    "mask2former": ("class_predictor.weight",),
}


def labels_in_checkpoint(arch: str, state: dict) -> int | None:
    """How many labels a checkpoint's classifier predicts (None when the key is not there)."""
    for k in _CLASSIFIER_KEYS[arch]:
        if k in state:
            n = int(state[k].shape[0])
            return n if arch == "maskrcnn" else n - 1  # DETR/Mask2Former: + "no object"
    return None


def spec_from_checkpoint(arch: str, state: dict, classes: ClassTable) -> ArchSpec:
    """The architecture of a checkpoint trained on a user-defined class table: sizes read off its
    tensors, the label offset from the table (one extra label = a background label 0)."""
    n = labels_in_checkpoint(arch, state)
    if n is None:
        raise CheckpointError(
            f"This file has no {ARCH_TITLES[arch]} classifier ({_CLASSIFIER_KEYS[arch][0]}): "
            "is it a checkpoint of another model type?"
        )
    extra = n - len(classes)
    if arch == "mask2former":
        offset = 0
    elif extra in (0, 1):
        offset = extra
    else:
        raise CheckpointError(
            f"The {ARCH_TITLES[arch]} checkpoint predicts {n} labels but the class table {classes.name!r} "
            f"has {len(classes)} classes: expected {len(classes)} or {len(classes) + 1}."
        )
    if arch == "maskrcnn":
        body = "resnet50_fpn_v2" if "backbone.body.layer1.0.conv3.weight" in state else "resnet18_fpn"
        dim = int(state["roi_heads.mask_predictor.conv5_mask.weight"].shape[1])  # ConvTranspose2d: (in, out, k, k)
        return _maskrcnn(n, offset, body, dim)
    if arch == "detr":
        return replace(_detr(n, offset), num_queries=int(state["detr.model.query_position_embeddings.weight"].shape[0]))
    return replace(_m2f(n), num_queries=int(state["model.transformer_module.queries_embedder.weight"].shape[0]))


# -- building ------------------------------------------------------------------------------------
def build_model(spec: ArchSpec):
    """A randomly initialised model of ``spec`` in eval mode; nothing is downloaded."""
    builder = {"maskrcnn": _build_maskrcnn, "detr": _build_detr, "mask2former": _build_mask2former}[spec.arch]
    model = builder(spec)
    model.eval()
    return model


def _build_maskrcnn(spec: ArchSpec):
    from torchvision.models.detection import MaskRCNN, maskrcnn_resnet50_fpn_v2
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
    from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor

    size = dict(min_size=spec.input_size[0], max_size=max(spec.input_size))
    if spec.backbone == "resnet50_fpn_v2":
        model = maskrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None, **size)
    elif spec.backbone == "resnet18_fpn":
        # resnet_fpn_backbone keeps torchvision's frozen batch norm, as the reference's pretrained build
        model = MaskRCNN(
            resnet_fpn_backbone(backbone_name="resnet18", weights=None), num_classes=spec.num_labels, **size
        )
    else:
        raise InputError(f"Unknown Mask R-CNN backbone {spec.backbone!r}: resnet18_fpn or resnet50_fpn_v2.")
    heads = model.roi_heads
    heads.box_predictor = FastRCNNPredictor(heads.box_predictor.cls_score.in_features, spec.num_labels)
    heads.mask_predictor = MaskRCNNPredictor(256, spec.dim_reduced, spec.num_labels)
    return model


def detr_config(spec: ArchSpec):
    """``facebook/detr-resnet-50-panoptic``'s configuration (its defaults), with the head sizes of
    the checkpoint and no pretrained backbone."""
    from transformers import DetrConfig

    return DetrConfig(
        use_timm_backbone=True,
        backbone="resnet50",
        use_pretrained_backbone=False,
        num_queries=spec.num_queries,
        num_labels=spec.num_labels,
    )


def mask2former_config(spec: ArchSpec):
    """``facebook/mask2former-swin-base-coco-instance``'s configuration: a Swin-B backbone (window
    12, 384 pre-training) under the default pixel and transformer decoders."""
    from transformers import Mask2FormerConfig, SwinConfig

    swin = SwinConfig(
        image_size=384,
        embed_dim=128,
        depths=[2, 2, 18, 2],
        num_heads=[4, 8, 16, 32],
        window_size=12,
        drop_path_rate=0.3,
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )
    return Mask2FormerConfig(backbone_config=swin, num_queries=spec.num_queries, num_labels=spec.num_labels)


def _build_detr(spec: ArchSpec):
    from transformers import DetrForSegmentation

    return DetrForSegmentation(detr_config(spec))


def _build_mask2former(spec: ArchSpec):
    from transformers import Mask2FormerForUniversalSegmentation

    return Mask2FormerForUniversalSegmentation(mask2former_config(spec))
