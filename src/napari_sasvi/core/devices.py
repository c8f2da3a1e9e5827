"""Compute devices: ``auto`` picks CUDA, then MPS, then the CPU; an explicit device that is not
there is an error that says what to pick instead."""

from __future__ import annotations

DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(device: str = "auto"):
    """The ``torch.device`` for a ``device`` option (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``)."""
    import torch

    from .errors import DeviceError

    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps else torch.device("cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError("CUDA was requested but no CUDA GPU is available: set the device to cpu or auto.")
    if device == "mps" and not mps:
        raise DeviceError("MPS was requested but is not available: set the device to cpu or auto.")
    if device not in ("cpu", "mps") and not device.startswith("cuda"):
        raise DeviceError(f"Unknown device {device!r}: use one of {', '.join(DEVICES)}.")
    return torch.device(device)
