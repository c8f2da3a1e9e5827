"""Training Mask R-CNN, DETR and Mask2Former overseers with the reference's recipes
(:mod:`.recipes`), into checkpoints the overseer loader reads, resumable after a crash or a Cancel.

A run writes into its folder ``OUT``:

* ``overseer.pth``: the model's plain ``state_dict``, what ``segment --overseer ARCH
  --overseer-checkpoint`` and :func:`~..overseers.trained.load_overseer` read;
* ``train_state.pt``: model, optimiser, scheduler, step and sampler state (tensors and plain values
  only: read back with ``weights_only=True``);
* ``train.json``: the settings, the data, the classes, whether the backbone was pretrained;
* ``train_log.jsonl``: one line per step (loss, lr) and per validation (Dice, IoU).

Running the same command again continues after the last saved step (``--steps`` may grow); other
settings in the same folder are refused, so a finished model is never overwritten by another run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..fsutil import atomic_path, atomic_write_text
from ..overseers.models import ARCH_TITLES, ArchSpec, build_model, check_arch
from .data import TrainingSet, check_trainable
from .events import Saved, Stage, TrainResult, TrainStep, Validated
from .recipes import (
    RECIPES,
    augment,
    class_frequencies,
    detr_target,
    mask2former_target,
    maskrcnn_target,
    sample_weights,
    trained_ids,
    training_spec,
)
from .validate import validate

log = logging.getLogger(__name__)

CHECKPOINT = "overseer.pth"
STATE = "train_state.pt"
INFO = "train.json"
LOG = "train_log.jsonl"
#: pretrained weights when online: torchvision's ImageNet / COCO weights, the Hub models of the reference
PRETRAINED_HUB = {
    "detr": "facebook/detr-resnet-50-panoptic",
    "mask2former": "facebook/mask2former-swin-base-coco-instance",
}


@dataclass(frozen=True)
class DeepParams:
    """A run's settings. ``None`` takes the recipe's value (:data:`.recipes.RECIPES`).

    Attributes:
        steps: optimiser steps in all; None: ``epochs`` epochs of the training frames.
        val_every: validate and save every this many steps (None: once per epoch).
        budget_s: stop (and save) after this many seconds of training, whatever ``steps`` says.
        pretrained: ``auto`` (pretrained backbone when online, else from scratch, said in the log),
            ``yes`` (an error when offline) or ``no``.
        max_val_frames: validate on at most this many frames (evenly spaced), to keep checks cheap.
    """

    steps: int | None = None
    epochs: int = 100
    batch_size: int | None = None
    lr: float | None = None
    val_every: int | None = None
    seed: int = 0
    budget_s: float | None = None
    pretrained: str = "auto"
    balanced: bool = True
    max_val_frames: int = 50


def _online(host: str, timeout: float = 3.0) -> bool:
    old = socket.getdefaulttimeout()
    try:
        socket.setdefaulttimeout(timeout)
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False
    finally:
        socket.setdefaulttimeout(old)


def _load_matching(model, state: dict) -> int:
    own = model.state_dict()
    fit = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    model.load_state_dict(fit, strict=False)
    return len(fit)


def load_pretrained(model, spec: ArchSpec, mode: str = "auto") -> str:
    """Pretrained weights into ``model`` where shapes fit (the heads stay random); returns what was
    done, for the log. ``mode`` ``no`` skips, ``auto`` falls back to scratch when offline."""
    if mode == "no":
        return "from scratch (--pretrained no)"
    host = "download.pytorch.org" if spec.arch == "maskrcnn" else "huggingface.co"
    try:
        if not _online(host):
            raise OSError(f"{host} cannot be reached")
        if spec.arch == "maskrcnn":
            if spec.backbone == "resnet50_fpn_v2":
                from torchvision.models.detection import MaskRCNN_ResNet50_FPN_V2_Weights as W

                n = _load_matching(model, W.COCO_V1.get_state_dict(progress=False))
                return f"pretrained: torchvision COCO Mask R-CNN v2 ({n} tensors)"
            from torchvision.models import ResNet18_Weights

            body = {
                f"backbone.body.{k}": v
                for k, v in ResNet18_Weights.IMAGENET1K_V1.get_state_dict(progress=False).items()
            }
            return f"pretrained: torchvision ImageNet ResNet-18 backbone ({_load_matching(model, body)} tensors)"
        if spec.arch == "detr":
            from transformers import DetrForSegmentation as Hub
        else:
            from transformers import AutoModel as Hub
        ref = Hub.from_pretrained(PRETRAINED_HUB[spec.arch])
        state = ref.state_dict()
        if spec.arch == "mask2former":  # AutoModel is the bare model: our keys sit under model.
            state = {f"model.{k}": v for k, v in state.items()}
        return f"pretrained: {PRETRAINED_HUB[spec.arch]} ({_load_matching(model, state)} tensors)"
    except Exception as e:  # noqa: BLE001 - offline, a proxy, a moved file: all mean "no weights"
        if mode == "yes":
            raise InputError(
                f"Pretrained {ARCH_TITLES[spec.arch]} weights cannot be fetched ({e}); use --pretrained no."
            ) from e
        log.warning("pretrained weights unavailable (%s): training starts from scratch", e)
        return f"from scratch: pretrained weights unavailable offline ({str(e).splitlines()[0][:120]})"


def _settings(arch: str, spec: ArchSpec, data: TrainingSet, p: DeepParams, lr: float, batch: int) -> dict:
    """What decides a run; a folder holding other settings is refused (``steps`` may change)."""
    return {
        "arch": arch,
        "spec": spec.describe(),
        "classes": data.classes.to_dict(),
        "data": data.source,
        "train_frames": [f"{s.video}/{s.name}" for s in data.train],
        "lr": lr,
        "batch_size": batch,
        "seed": p.seed,
        "balanced": p.balanced,
        "pretrained": p.pretrained,
    }


class _Forward:
    """One training step's loss for each architecture, from augmented frames and label maps."""

    def __init__(self, model, spec: ArchSpec, ids: list[int], device):
        self.model, self.spec, self.ids, self.device = model, spec, ids, device

    def __call__(self, images, labels):
        import torch

        from ..overseers.trained import transformer_inputs

        if self.spec.arch == "maskrcnn":
            targets = [maskrcnn_target(lab.numpy(), self.ids, self.spec, self.device) for lab in labels]
            parts = self.model([im.to(self.device) for im in images], targets)
            return sum(parts.values()), {k: float(v.detach()) for k, v in parts.items()}
        x = torch.stack(images).to(self.device)
        inputs = transformer_inputs(x, self.spec)
        if self.spec.arch == "detr":
            side = self.spec.processor_size
            targets = [detr_target(lab.numpy(), self.ids, self.spec, side, self.device) for lab in labels]
            out = self.model(**inputs, labels=targets)
        else:
            pairs = [mask2former_target(lab.numpy(), self.ids, self.spec, self.device) for lab in labels]
            out = self.model(**inputs, mask_labels=[m for m, _ in pairs], class_labels=[c for _, c in pairs])
        parts = {k: float(v.detach()) for k, v in (getattr(out, "loss_dict", None) or {}).items()}
        return out.loss, parts


def _save(out: Path, model, optimizer, scheduler, step: int, generator, settings: dict) -> None:
    import torch

    with atomic_path(out / CHECKPOINT) as tmp:
        torch.save(model.state_dict(), tmp)
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "step": step,
        "generator": generator.get_state(),
        "settings_json": json.dumps(settings, sort_keys=True),
    }
    with atomic_path(out / STATE) as tmp:
        torch.save(state, tmp)


def _append_log(out: Path, row: dict) -> None:
    with open(out / LOG, "a") as f:
        f.write(json.dumps(row) + "\n")


def _trim_log(out: Path, step: int) -> None:
    """Keep the log lines up to the step a resumed run starts after (a crash may have logged more)."""
    path = out / LOG
    if not path.is_file():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= step]
    atomic_write_text(path, "".join(k + "\n" for k in keep))


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder for the checkpoints.")
    if out.is_dir() and any(out.iterdir()) and not (out / INFO).is_file():
        raise InputError(f"--out {out} holds other files; give an empty folder (or a previous training run's).")


def iter_train_deep(
    arch: str,
    data: TrainingSet,
    out: str | os.PathLike,
    params: DeepParams | None = None,
    device: str = "auto",
    cancel: Callable[[], bool] | None = None,
) -> Generator[Stage | TrainStep | Validated | Saved, None, TrainResult]:
    """Train ``arch`` on ``data`` into the folder ``out``, resuming a run of the same settings there.

    Yields :class:`Stage` (class weights, validation), :class:`TrainStep` per step,
    :class:`Validated` and :class:`Saved` every ``val_every`` steps and at the end. ``cancel`` is
    polled between steps: a cancelled run saves its last step and returns ``cancelled=True``."""
    import torch

    from ..devices import resolve_device
    from ..overseers.trained import TrainedOverseer

    p = params or DeepParams()
    arch = check_arch(arch)
    check_trainable(data)
    out = Path(out)
    _check_out(out)
    spec = training_spec(arch, data.classes)
    ids = trained_ids(data.classes, spec)
    recipe = RECIPES[arch]
    lr, batch = p.lr or recipe.lr, p.batch_size or recipe.batch_size
    per_epoch = max(1, math.ceil(len(data.train) / batch))
    total = p.steps if p.steps is not None else p.epochs * per_epoch
    val_every = p.val_every or per_epoch
    settings = _settings(arch, spec, data, p, lr, batch)
    dev = resolve_device(device)

    model = build_model(spec)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=recipe.betas, weight_decay=recipe.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=recipe.lr_step_epochs, gamma=recipe.lr_gamma)
    generator = torch.Generator().manual_seed(p.seed)
    step = 0
    info = {"settings": settings, "pretrained": None}
    if (out / STATE).is_file():
        state = torch.load(out / STATE, map_location="cpu", weights_only=True)
        if json.loads(state["settings_json"]) != settings:
            old = json.loads(state["settings_json"])
            diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
            raise InputError(
                f"{out} holds a training run of other settings ({', '.join(diff)} differ); it is left as it is. "
                "Give another --out, or the same settings to continue it."
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        step = int(state["step"])
        _trim_log(out, step)
        log.info("resuming %s training in %s after step %d", arch, out, step)
    else:
        out.mkdir(parents=True, exist_ok=True)
        info["pretrained"] = load_pretrained(model, spec, p.pretrained)
        atomic_write_text(out / INFO, json.dumps({**info, "data": data.describe()}, indent=2))
    model.to(dev)
    for st in optimizer.state.values():  # a resumed optimiser's moments follow the model's device
        for k, v in st.items():
            if torch.is_tensor(v) and k != "step":
                st[k] = v.to(dev)

    weights = np.ones(len(data.train))
    if p.balanced:
        maps = []
        for i, s in enumerate(data.train):
            maps.append(s.labels())
            yield Stage("class weights", i + 1, len(data.train))
        present = [set(np.unique(m).tolist()) for m in maps]
        weights = sample_weights(present, class_frequencies(maps, ids))
        del maps
    w = torch.as_tensor(weights, dtype=torch.float64)
    forward = _Forward(model, spec, ids, dev)
    t0 = time.perf_counter()
    last_val: Validated | None = None
    cancelled = False
    val_samples = data.val[:: max(1, math.ceil(len(data.val) / p.max_val_frames))] if data.val else []

    def checkpoint():
        nonlocal last_val
        if val_samples:
            model.eval()
            ov = TrainedOverseer(model, spec, data.classes, device=str(dev))
            last_val = yield from validate(ov, val_samples, data.classes, step)
            model.train()
            _append_log(
                out,
                {
                    "step": step,
                    "val_dice": last_val.dice,
                    "val_iou": last_val.iou,
                    "per_class": last_val.per_class_dice,
                },
            )
        _save(out, model, optimizer, scheduler, step, generator, settings)
        yield Saved(step, out / CHECKPOINT, out / STATE)

    model.train()
    while step < total:
        if cancel is not None and cancel():
            cancelled = True
            break
        if p.budget_s is not None and time.perf_counter() - t0 >= p.budget_s:
            break
        picks = torch.multinomial(w, batch, replacement=True, generator=generator).tolist()
        torch.manual_seed(p.seed * 1_000_003 + step)  # the augmentation of this step, the same after a resume
        pairs = [augment(data.train[i].frame(), data.train[i].labels(), spec.input_size) for i in picks]
        loss, parts = forward([a for a, _ in pairs], [b for _, b in pairs])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        if step % per_epoch == 0:
            scheduler.step()
        lr_now = optimizer.param_groups[0]["lr"]
        _append_log(
            out,
            {"step": step, "loss": float(loss.detach()), "lr": lr_now, "seconds": time.perf_counter() - t0, **parts},
        )
        yield TrainStep(step, total, float(loss.detach()), lr_now, parts)
        if step % val_every == 0 and step < total:
            yield from checkpoint()
    yield from checkpoint()
    return TrainResult(out / CHECKPOINT, step, last_val, time.perf_counter() - t0, cancelled)


__all__ = ["CHECKPOINT", "DeepParams", "iter_train_deep", "load_pretrained"]
