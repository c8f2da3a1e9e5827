"""State dicts of model files, for SAM2 and the overseers alike: read without running pickled
code (``weights_only=True``), and compared key by key and shape by shape with a model."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from .errors import CheckpointError


def read_state_dict(path: str | os.PathLike, what: str = "overseer") -> dict:
    """The ``state_dict`` in a ``.pth``/``.pt`` file, read without running pickled code.

    Accepts a bare state dict or one under ``state_dict``/``model`` (a training checkpoint).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what.capitalize()} checkpoint {path} does not exist.")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, not a torch file, pickled objects other than tensors
        raise CheckpointError(
            f"Cannot read {what} checkpoint {path.name}: it is truncated, damaged or not a PyTorch state dict.\n"
            f"  {path}: {type(e).__name__}: {str(e).splitlines()[0][:200]}\n  Download or copy it again."
        ) from e
    if isinstance(blob, Mapping):
        for key in ("state_dict", "model"):
            if key in blob and isinstance(blob[key], Mapping):
                blob = blob[key]
                break
    if not isinstance(blob, Mapping) or not blob or not all(hasattr(v, "shape") for v in blob.values()):
        raise CheckpointError(f"{path} holds no state dict of tensors: is it a {what} checkpoint?")
    # DataParallel / DistributedDataParallel prefix
    if all(k.startswith("module.") for k in blob):
        blob = {k[len("module.") :]: v for k, v in blob.items()}
    return dict(blob)


def state_dict_mismatch(own: dict, state: dict, allowed_missing=lambda key: False) -> str | None:
    """What keeps ``state`` from loading strictly into a model whose state dict is ``own``: the
    keys the model needs that are missing, the keys that fit nothing, and the tensors of another
    shape (a few of each named); None when everything fits."""

    def few(keys: list[str], n: int = 6) -> str:
        return ", ".join(keys[:n]) + (f" and {len(keys) - n} more" if len(keys) > n else "")

    missing = sorted(k for k in set(own) - set(state) if not allowed_missing(k))
    unexpected = sorted(set(state) - set(own))
    shape = sorted(
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if tuple(own[k].shape) != tuple(state[k].shape)
    )
    parts = []
    if missing:
        parts.append(f"{len(missing)} keys the model needs are not in the file: {few(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} keys of the file fit nothing in the model: {few(unexpected)}")
    if shape:
        parts.append(f"{len(shape)} tensors have another shape (file vs model): {few(shape, 4)}")
    return "; ".join(parts) or None
