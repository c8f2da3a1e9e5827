"""Reading one frame of a lazy array from a worker thread, safely beside napari.

napari registers dask's opportunistic cache callbacks while it slices a layer; a ``compute()`` that
picks up the global callbacks at that moment, from another thread, races with it (a ``KeyError``
inside ``dask.cache`` that aborts the process). Computing with an explicit empty callback list and
the synchronous scheduler touches no global state.
"""

from __future__ import annotations

import numpy as np


def read_frame(array, t: int) -> np.ndarray:
    """``array[t]`` as numpy, for numpy, dask, zarr or any array-like."""
    x = array[t]
    if hasattr(x, "compute"):
        x = x.compute(scheduler="sync", callbacks=[])
    return np.asarray(x)
