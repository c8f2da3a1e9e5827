"""Write ``reference_keys.json.gz``: state-dict keys and shapes of the nine overseer architectures
(3 models x 3 datasets) as the SASVi reference built them in early 2025, for the tests.

Built independently of napari_sasvi, from section 3 of the SASVi reference, in an environment with
the releases of that time::

    python -m venv /tmp/tf4 && . /tmp/tf4/bin/activate
    pip install torch==2.14.1 torchvision==0.29.1 transformers==4.48.3 timm==1.0.14 scipy
    python tests/data/make_reference_keys.py tests/data/reference_keys.json.gz
"""

import gzip
import json
import sys

import timm
import torchvision
import transformers
from torchvision.models.detection import MaskRCNN, maskrcnn_resnet50_fpn_v2
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor
from transformers import (
    DetrConfig,
    DetrForSegmentation,
    Mask2FormerConfig,
    Mask2FormerForUniversalSegmentation,
    SwinConfig,
)


def maskrcnn(n, resnet50_v2, dim):
    if resnet50_v2:
        m = maskrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None)
    else:
        m = MaskRCNN(resnet_fpn_backbone(backbone_name="resnet18", weights=None), num_classes=n)
    m.roi_heads.box_predictor = FastRCNNPredictor(1024, n)
    m.roi_heads.mask_predictor = MaskRCNNPredictor(256, dim, n)
    return m


def detr(n):
    cfg = DetrConfig(use_timm_backbone=True, backbone="resnet50", use_pretrained_backbone=False, num_labels=n)
    return DetrForSegmentation(cfg)


def mask2former(n):
    swin = SwinConfig(
        image_size=384,
        embed_dim=128,
        depths=[2, 2, 18, 2],
        num_heads=[4, 8, 16, 32],
        window_size=12,
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )
    return Mask2FormerForUniversalSegmentation(Mask2FormerConfig(backbone_config=swin, num_queries=20, num_labels=n))


MODELS = {
    "cadis/maskrcnn": lambda: maskrcnn(18, False, 32),
    "cholecseg8k/maskrcnn": lambda: maskrcnn(13, True, 64),
    "cataract1k/maskrcnn": lambda: maskrcnn(14, False, 32),
    "cadis/detr": lambda: detr(18),
    "cholecseg8k/detr": lambda: detr(14),
    "cataract1k/detr": lambda: detr(14),
    "cadis/mask2former": lambda: mask2former(18),
    "cholecseg8k/mask2former": lambda: mask2former(13),
    "cataract1k/mask2former": lambda: mask2former(14),
}

out = {
    "versions": {
        "transformers": transformers.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm.__version__,
    },
    "models": {},
}
for name, make in MODELS.items():
    out["models"][name] = {k: list(v.shape) for k, v in make().state_dict().items()}
    print(name, len(out["models"][name]))
with gzip.open(sys.argv[1], "wt") as f:
    json.dump(out, f, separators=(",", ":"))
