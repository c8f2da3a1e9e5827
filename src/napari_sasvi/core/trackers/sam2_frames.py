"""The frames SAM2's inference state reads, decoded lazily from a
:class:`~napari_sasvi.core.inputs.frames.FrameStack` and normalised as SAM2's own loader does, with the
next frame optionally read ahead in a worker thread."""

from __future__ import annotations

from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_STD = np.array([0.229, 0.224, 0.225], np.float32)


def sam2_input(rgb: np.ndarray, size: int):
    """A frame (H, W, 3) uint8 RGB as SAM2's own video loader makes its input: PIL resize to
    ``size`` x ``size`` (bicubic), [0, 1], ImageNet normalisation; a (3, size, size) float32 tensor."""
    import torch
    from PIL import Image

    img = np.asarray(Image.fromarray(rgb).resize((size, size)), np.float32) / 255.0
    img = (img - _MEAN) / _STD
    return torch.from_numpy(img.transpose(2, 0, 1).copy())


class LazyImages:
    """What SAM2's inference state calls ``images``: frame t as a normalised (3, S, S) tensor,
    decoded when SAM2 asks for it; counts how often each frame is requested (= encoded).

    With ``ahead`` set (the tracker sets it while it propagates), a worker thread decodes and
    normalises frame t + 1 while SAM2 computes frame t (PIL releases the GIL; on a GPU the main
    thread waits for the device meanwhile). The tensor is the same as without it; a frame read
    ahead and never asked for costs a decode, and its read error (a corrupt frame) is raised only
    when SAM2 asks for that frame."""

    def __init__(self, frames, image_size: int, device, cache: int = 2):
        self.frames = frames
        self.size = image_size
        self.device = device
        self.encodes: dict[int, int] = {}
        self._cache: OrderedDict[int, Any] = OrderedDict()
        self._cache_size = cache
        self.ahead = False
        self._next: tuple[int, Future] | None = None
        self._pool: ThreadPoolExecutor | None = None

    def __len__(self) -> int:
        return len(self.frames)

    def _load(self, t: int):
        return sam2_input(self.frames.frame(int(t)), self.size)

    def __getitem__(self, t: int):
        t = int(t)
        self.encodes[t] = self.encodes.get(t, 0) + 1
        tensor = self._cache.get(t)
        if tensor is None:
            nxt = self._next
            if nxt is not None and nxt[0] == t:
                self._next = None
                tensor = nxt[1].result()  # a read error is raised here, when the frame is needed
            else:
                self.drop()
                tensor = self._load(t)
            self._cache[t] = tensor
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        self._read_ahead(t + 1)
        return tensor

    def _read_ahead(self, t: int) -> None:
        if not self.ahead or t >= len(self) or t in self._cache:
            return
        if self._next is not None:
            if self._next[0] == t:
                return
            self.drop()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="sasvi-sam2-ahead")
        self._next = (t, self._pool.submit(self._load, t))

    def drop(self) -> None:
        """Forget the frame read ahead (waiting for the worker); its error, if any, belongs to a
        frame nobody asked for."""
        if self._next is not None:
            fut = self._next[1]
            self._next = None
            if not fut.cancel():
                fut.exception()

    def stop(self) -> None:
        """No more reading ahead: forget the frame read ahead and end the worker thread."""
        self.ahead = False
        self.drop()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
