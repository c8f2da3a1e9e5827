"""torch's threads while the GUI waits for a computation in a worker."""

from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def one_core_left():
    """torch on one core fewer while a preview is computed, as for a run (the segment widget's
    ``limit_torch_threads``): napari's thread keeps a core while SAM2's image encoder runs
    (event-loop lateness p95 4 ms during a frame's features on 2 cores, benchmarks/bench_prompt_gui.py)."""
    torch = sys.modules.get("torch")
    if torch is None:  # the classical segmenter: no torch to limit
        yield
        return
    n = torch.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(1, min(n, cores - 1)))
    try:
        yield
    finally:
        torch.set_num_threads(n)
