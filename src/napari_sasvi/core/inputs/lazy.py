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


class _FrameFunctionArray:
    """Array-like over ``fn(t) -> frame`` for ``dask.array.from_array``: indexes whole frames."""

    def __init__(self, fn, shape: tuple[int, ...], dtype):
        self.fn, self.shape, self.dtype, self.ndim = fn, tuple(shape), np.dtype(dtype), len(shape)

    def __getitem__(self, index):
        if not isinstance(index, tuple):
            index = (index,)
        first, rest = index[0], index[1:]
        n = self.shape[0]
        if isinstance(first, (int, np.integer)):
            frame = self.fn(int(first) % n)
            return frame[rest] if rest else frame
        ts = range(n)[first] if isinstance(first, slice) else [int(i) % n for i in np.asarray(first).ravel()]
        out = np.stack([self.fn(t) for t in ts]) if len(ts) else np.zeros((0, *self.shape[1:]), self.dtype)
        return out[(slice(None), *rest)] if rest else out


def lazy_stack(fn, shape: tuple[int, ...], dtype, name: str):
    """A dask array of ``shape`` whose chunk t (one frame per chunk) is ``fn(t)``, computed on demand.

    ``name`` must be unique per content (dask caches by it)."""
    import dask.array as da

    return da.from_array(
        _FrameFunctionArray(fn, shape, dtype),
        chunks=(1, *shape[1:]),
        name=name,
        asarray=False,
        fancy=False,
        meta=np.empty((0,) * len(shape), dtype),
    )
