"""Keep triton out of the napari process.

torch imports triton (its GPU kernel compiler) the first time ``torch._dynamo`` loads, which
torchvision's detection models and transformers do. triton's native library carries its own LLVM;
when napari's canvas already runs on Mesa (llvmpipe under Xvfb or in VMs, radeonsi on AMD
desktops), Mesa's LLVM is loaded too and the process crashes inside triton's import. napari-sasvi
never uses triton (no ``torch.compile``), so the napari shell marks it as absent before any model
loads; torch then reports "no triton" and carries on. Set ``NAPARI_SASVI_ALLOW_TRITON=1`` to keep
triton importable (for example with NVIDIA's own GL driver and ``torch.compile`` in the same
session). The command line and the library are not affected.
"""

from __future__ import annotations

import os
import sys


def keep_triton_out() -> None:
    if os.environ.get("NAPARI_SASVI_ALLOW_TRITON") or "triton" in sys.modules:
        return
    sys.modules["triton"] = None  # type: ignore[assignment]  # import triton -> ImportError
