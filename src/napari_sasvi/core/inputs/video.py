"""Random access into a video file with PyAV: seek to the nearest keyframe, decode forward.

Opening demuxes the packets once (no decoding) to learn every frame's presentation timestamp and
where the keyframes are; that is what makes frame ``t`` mean the same frame whether it is read
sequentially or at random. Demuxing a 5-minute 25 fps H.264 file takes a few tens of
milliseconds (see ``benchmarks/bench_frames.py``).
"""

from __future__ import annotations

import bisect
import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import CorruptFrameError, EmptyInputError, InputError


class VideoSource:
    """Frames of one video file, decoded on demand.

    Reads are serialised by a lock (a PyAV container is not thread-safe) and the last
    ``cache_size`` decoded frames are kept. Reading t+1 after t continues decoding without a seek.

    Attributes:
        decoded: number of frames the codec has decoded so far (tests count them).
        seeks: number of container seeks so far.
    """

    def __init__(self, path: str | os.PathLike, cache_size: int = 16):
        self.path = Path(path)
        self.name = self.path.stem
        self.cache_size = cache_size
        self.decoded = 0
        self.seeks = 0
        self._lock = threading.Lock()
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._container = None
        self._decoder = None
        self._last_pts: int | None = None
        self._index()

    # -- opening --------------------------------------------------------------------------------
    def _open(self):
        import av

        try:
            container = av.open(str(self.path))
        except (av.error.FFmpegError, OSError) as e:
            raise CorruptFrameError(
                f"Cannot open video {self.path}: {e}. Check that the file is a complete video "
                "(re-copy or re-export it)."
            ) from e
        if not container.streams.video:
            container.close()
            raise InputError(f"{self.path} has no video stream.")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return container, stream

    def _index(self) -> None:
        import av

        if not self.path.is_file():
            raise InputError(f"Video file {self.path} does not exist.")
        container, stream = self._open()
        pts: list[int] = []
        keys: list[int] = []
        try:
            for packet in container.demux(stream):
                if packet.size == 0:  # flush packet
                    continue
                ts = packet.pts if packet.pts is not None else packet.dts
                if ts is None:
                    continue
                pts.append(ts)
                if packet.is_keyframe:
                    keys.append(ts)
        except av.error.FFmpegError as e:
            container.close()
            raise CorruptFrameError(f"Cannot read video {self.path}: {e}. The file may be truncated.") from e
        self.height = stream.codec_context.height
        self.width = stream.codec_context.width
        self.fps = float(stream.average_rate) if stream.average_rate else None
        self.time_base = stream.time_base
        container.close()
        if not pts:
            raise EmptyInputError(f"Video {self.path} holds no frames.")
        self._pts = sorted(pts)
        self._keys = sorted(keys) or [self._pts[0]]
        self._pts_to_index = {p: i for i, p in enumerate(self._pts)}

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self._pts), self.height, self.width, 3)

    # -- reading --------------------------------------------------------------------------------
    def read(self, t: int) -> np.ndarray:
        with self._lock:
            cached = self._cache.get(t)
            if cached is not None:
                self._cache.move_to_end(t)
                return cached
            frame = self._decode(t)
            self._cache[t] = frame
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
            return frame

    def _keyframe_before(self, target: int) -> int:
        i = bisect.bisect_right(self._keys, target) - 1
        return self._keys[max(i, 0)]

    def _decode(self, t: int, retried: bool = False) -> np.ndarray:
        import av

        target = self._pts[t]
        key = self._keyframe_before(target)
        # Continue decoding forward when the decoder already stands between the keyframe and t.
        continue_forward = self._decoder is not None and self._last_pts is not None and key <= self._last_pts < target
        if not continue_forward:
            if self._container is None:
                self._container, _ = self._open()
            stream = self._container.streams.video[0]
            self._container.seek(key, stream=stream, backward=True, any_frame=False)
            self.seeks += 1
            self._decoder = self._container.decode(stream)
            self._last_pts = None
        try:
            for frame in self._decoder:
                self.decoded += 1
                pts = frame.pts if frame.pts is not None else frame.dts
                self._last_pts = pts
                if pts is None:
                    continue
                if pts == target:
                    return frame.to_ndarray(format="rgb24")
                if pts > target:
                    break
        except av.error.FFmpegError as e:
            self._reset()
            raise CorruptFrameError(
                f"Cannot decode frame {t} of {self.path}: {e}. The file may be truncated or damaged."
            ) from e
        self._reset()
        if not retried:
            # The seek landed after t (an index that disagrees with the container): decode from 0.
            self._keys = [self._pts[0]]
            return self._decode(t, retried=True)
        raise CorruptFrameError(f"Frame {t} of {self.path} could not be decoded (the video ends early or is damaged).")

    def _reset(self) -> None:
        self._decoder = None
        self._last_pts = None

    def close(self) -> None:
        with self._lock:
            if self._container is not None:
                self._container.close()
            self._container = None
            self._reset()
            self._cache.clear()

    def fingerprint(self) -> str:
        h = hashlib.sha256(f"video:{self.shape}:{self.path.stat().st_size}".encode())
        h.update(np.asarray(self._pts, dtype=np.int64).tobytes())
        return h.hexdigest()

    # PyAV objects do not pickle; a copy (dask with processes) reopens the file when it reads.
    def __getstate__(self):
        state = self.__dict__.copy()
        state.update(_container=None, _decoder=None, _last_pts=None, _lock=None, _cache=OrderedDict())
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"VideoSource({str(self.path)!r}, frames={self.shape[0]})"


def write_video(path: str | os.PathLike, frames, fps: float = 25.0, codec: str = "libx264", gop: int = 50) -> Path:
    """Encode an iterable of (H, W, 3) uint8 frames to ``path`` (used by tests, samples, benchmarks).

    Args:
        gop: keyframe interval in frames.
    """
    for _ in iter_write_video(path, frames, fps, codec, gop):
        pass
    return Path(path)


def iter_write_video(
    path: str | os.PathLike, frames, fps: float = 25.0, codec: str = "libx264", gop: int = 50
) -> Iterator[int]:
    """:func:`write_video` one frame at a time: yields the number of frames encoded so far. Odd
    widths and heights lose their last column or row (yuv420p needs even sizes)."""
    import av

    path = Path(path)
    it = iter(frames)
    first = next(it)
    h, w = first.shape[:2]
    with av.open(str(path), mode="w") as container:
        # a fractional rate (29.97, or 0.4 for every 60th frame of a 25 fps video) as a fraction
        rate = Fraction(fps).limit_denominator(1001) if fps != int(fps) else int(fps)
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = w - w % 2, h - h % 2
        stream.pix_fmt = "yuv420p"
        stream.gop_size = gop
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "crf": "18"}
        for n, arr in enumerate(_chain(first, it), start=1):
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(arr[: stream.height, : stream.width]), format="rgb24"
            )
            for packet in stream.encode(frame):
                container.mux(packet)
            yield n
        for packet in stream.encode():
            container.mux(packet)


def _chain(first, rest):
    yield first
    yield from rest
