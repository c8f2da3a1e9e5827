"""An independent, literal re-implementation of the published SASVi T and F procedures.

``eval_scripts/eval_vid_T.py`` and ``eval_scripts/eval_vid_OF.py`` of MECLabTUDA/SASVi, step by
step, with torch where they use torch, so that napari-sasvi's ``reference`` convention can be
checked against it. Differences from the scripts, none of which changes a number:

- the label maps and frames are given as arrays (the scripts read PNG / JPEG files with PIL,
  ``np.array(Image.open(f))`` and ``Image.open(f).convert("RGB")``);
- RAFT is replaced by ``flow_model(img1, img2) -> (2, H, W)`` (no weights here), called once per
  pair with the normalised (1, 3, 512, 384) frames, as the script calls RAFT;
- torchvision's ``Resize((512, 384))`` (antialiased bilinear on a tensor) is written as the
  ``F.interpolate`` call it makes (torchvision is not imported in the test process; a subprocess
  test checks the two agree);
- the per-label means and macro averages are returned rather than printed.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
import torch.nn.functional as F

SIZE = (299, 299)


def _load_mask(mask: np.ndarray) -> torch.Tensor:
    """``torch.from_numpy(m).to(uint8).unsqueeze(0)`` (+ one more unsqueeze), nearest to 299 x 299."""
    t = torch.from_numpy(np.ascontiguousarray(mask)).to(torch.uint8).unsqueeze(0)
    if t.dim() < 4:
        t = t.unsqueeze(0)
    return F.interpolate(t.float(), size=SIZE, mode="nearest").squeeze().to(torch.uint8)


def _iou(m1: torch.Tensor, m2: torch.Tensor) -> float:
    inter = torch.logical_and(m1, m2).sum().item()
    union = torch.logical_or(m1, m2).sum().item()
    return np.nan if union == 0 else inter / union


def _dice(m1: torch.Tensor, m2: torch.Tensor) -> float:
    inter = torch.logical_and(m1, m2).sum().item()
    s1, s2 = m1.sum().item(), m2.sum().item()
    return np.nan if s1 + s2 == 0 else 2 * inter / (s1 + s2)


def _contour_distance(m1: torch.Tensor, m2: torch.Tensor) -> float:
    from skimage import measure

    c1 = measure.find_contours(m1.cpu().numpy().astype(np.uint8), level=0.5)
    c2 = measure.find_contours(m2.cpu().numpy().astype(np.uint8), level=0.5)
    if not c1 or not c2:
        return np.nan
    p1 = torch.from_numpy(np.vstack(c1))
    p2 = torch.from_numpy(np.vstack(c2))
    d = torch.cdist(p1, p2)
    return (torch.min(d, dim=1)[0].mean().item() + torch.min(d, dim=0)[0].mean().item()) / 2.0


def _summary(per_label: dict[int, list[float]]) -> tuple[dict[int, float], float]:
    means = {label: float(np.mean(v)) for label, v in per_label.items()}
    return means, float(np.mean(list(means.values())))


def published_t(videos: list[np.ndarray]) -> dict:
    """eval_vid_T.py over ``videos`` (each a (T, H, W) stack of label ids)."""
    ious, dists = defaultdict(list), defaultdict(list)
    for masks in videos:
        if len(masks) < 2:
            raise ValueError("Need at least two frames.")
        for t in range(len(masks) - 1):
            a, b = _load_mask(masks[t]), _load_mask(masks[t + 1])
            labels = torch.unique(torch.cat((torch.unique(a), torch.unique(b))))
            for label in labels:
                m1, m2 = a == label, b == label
                v = _iou(m1, m2)
                if not np.isnan(v):
                    ious[label.item()].append(v)
                d = _contour_distance(m1, m2)
                if not np.isnan(d):
                    dists[label.item()].append(d)
    iou, macro_iou = _summary(ious)
    assd, macro_assd = _summary(dists)
    return {"t_iou": iou, "t_assd": assd, "macro_t_iou": macro_iou, "macro_t_assd": macro_assd}


def _transform(frame: np.ndarray) -> torch.Tensor:
    """``T.Compose([T.ToTensor(), T.Resize((512, 384)), T.Normalize(0.5, 0.5)])`` of an RGB frame."""
    x = torch.from_numpy(np.array(frame, np.uint8, copy=True)).permute(2, 0, 1).contiguous()
    x = x.to(torch.float32).div(255)
    x = F.interpolate(x[None], size=[512, 384], mode="bilinear", align_corners=False, antialias=True)[0]
    mean, std = torch.as_tensor([0.5]), torch.as_tensor([0.5])
    return x.sub_(mean[:, None, None]).div_(std[:, None, None])


def _warp_segmentation(mask: np.ndarray, flow: torch.Tensor) -> np.ndarray:
    h, w = mask.shape
    fl = flow.cpu().numpy().transpose(1, 2, 0)
    gx, gy = np.meshgrid(np.arange(w), np.arange(h))
    cx = np.clip(gx + fl[:, :, 0], 0, w - 1)
    cy = np.clip(gy + fl[:, :, 1], 0, h - 1)
    return mask[cy.astype(np.int32), cx.astype(np.int32)]


def published_f(videos: list[np.ndarray], frame_videos: list[np.ndarray], flow_model) -> dict:
    """eval_vid_OF.py over ``videos`` (label stacks) and ``frame_videos`` ((T, H, W, 3) uint8)."""
    ious, dices = defaultdict(list), defaultdict(list)
    for masks, frames in zip(videos, frame_videos, strict=True):
        for t in range(len(masks) - 1):
            img1 = _transform(frames[t]).unsqueeze(0)
            img2 = _transform(frames[t + 1]).unsqueeze(0)
            with torch.no_grad():
                flow = flow_model(img1, img2)  # (2, 512, 384), RAFT's flow_list[-1][0]
            flow = F.interpolate(flow.unsqueeze(0), size=SIZE, mode="bilinear", align_corners=False).squeeze(0)
            a, b = _load_mask(masks[t]), _load_mask(masks[t + 1])
            warped = torch.from_numpy(_warp_segmentation(a.cpu().numpy(), flow))
            labels = torch.unique(torch.cat((torch.unique(warped), torch.unique(b))))
            for label in labels:
                m1, m2 = warped == label, b == label
                v = _iou(m1, m2)
                if not np.isnan(v):
                    ious[label.item()].append(v)
                d = _dice(m1, m2)
                if not np.isnan(d):
                    dices[label.item()].append(d)
    iou, macro_iou = _summary(ious)
    dice, macro_dice = _summary(dices)
    return {"f_iou": iou, "f_dice": dice, "macro_f_iou": macro_iou, "macro_f_dice": macro_dice}
