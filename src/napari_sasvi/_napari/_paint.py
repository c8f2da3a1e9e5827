"""A store's labels as a napari labels layer can paint them, without writing the store."""

from __future__ import annotations

import numpy as np


class PaintOverlay:
    """A store's labels as an array that can be painted on (a napari labels layer's data): reads
    go to the store, except the frames painted since, which stay in memory (``pending``) until an
    edit writes them or they are discarded. The store itself is never written here."""

    def __init__(self, labels):
        self.base = labels
        self.shape = tuple(labels.shape)
        self.dtype = np.dtype(labels.dtype)
        self.ndim = len(self.shape)
        self.pending: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.shape[0]

    def frame(self, t: int) -> np.ndarray:
        t = int(t)
        return self.pending[t] if t in self.pending else np.asarray(self.base[t])

    @staticmethod
    def _key(key) -> tuple:
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis for k in key):
            i = key.index(Ellipsis)
            key = key[:i] + (slice(None),) * (3 - len(key) + 1) + key[i + 1 :]
        return key + (slice(None),) * (3 - len(key))

    def __getitem__(self, key):
        key = self._key(key)
        if any(isinstance(k, (np.ndarray, list)) for k in key):  # fancy: napari's painting
            idx = np.broadcast_arrays(*[np.asarray(k) for k in key])
            out = np.empty(idx[0].shape, self.dtype)
            for t in np.unique(idx[0]):
                sel = idx[0] == t
                out[sel] = self.frame(t)[idx[1][sel], idx[2][sel]]
            return out
        if not self.pending:
            return np.asarray(self.base[key])
        t, rest = key[0], key[1:]
        if isinstance(t, (int, np.integer)):
            return self.frame(t)[rest]
        ts = range(*t.indices(self.shape[0]))
        return np.stack([self.frame(f)[rest] for f in ts]) if len(ts) else np.asarray(self.base[key])

    def __setitem__(self, key, value) -> None:
        key = self._key(key)
        if any(isinstance(k, (np.ndarray, list)) for k in key):
            idx = np.broadcast_arrays(*[np.asarray(k) for k in key])
            value = np.broadcast_to(np.asarray(value, self.dtype), idx[0].shape)
            for t in np.unique(idx[0]):
                sel = idx[0] == t
                self._own(t)[idx[1][sel], idx[2][sel]] = value[sel]
            return
        t, rest = key[0], key[1:]
        ts = [int(t)] if isinstance(t, (int, np.integer)) else list(range(*t.indices(self.shape[0])))
        value = np.asarray(value, self.dtype)
        for k, f in enumerate(ts):
            self._own(f)[rest] = value if value.ndim < 3 or isinstance(t, (int, np.integer)) else value[k]

    def _own(self, t) -> np.ndarray:
        t = int(t)
        if t not in self.pending:
            self.pending[t] = np.array(self.base[t], copy=True)
        return self.pending[t]

    def __array__(self, dtype=None, copy=None):
        out = np.asarray(self.base[:])
        if self.pending:
            out = out.copy()
            for t, m in self.pending.items():
                out[t] = m
        return out if dtype is None else out.astype(dtype)

    def changed(self) -> list[int]:
        """Painted frames that differ from the store (painting back to the stored labels is no edit)."""
        return sorted(t for t, m in self.pending.items() if not np.array_equal(m, np.asarray(self.base[t])))


__all__ = ["PaintOverlay"]
