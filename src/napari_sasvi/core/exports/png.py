"""Palette PNGs of class ids, one folder per store (the reference layout's file names on request)."""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path

from ..errors import InputError
from ..fsutil import check_output_path
from .common import ExportProgress, ExportSummary, Source, check_every, frame_range, open_sources
from .reference import iter_export_label_pngs


def iter_export_png(
    stores,
    out: str | os.PathLike,
    *,
    every: int = 1,
    array: str = "labels",
    size: tuple[int, int] | None = None,
    reference_layout: bool = False,
    overwrite: bool = False,
) -> Generator[ExportProgress, None, ExportSummary]:
    """Palette PNGs of class ids, one folder per video (``out/<video>/``; ``out`` itself for one
    store): ``<frame>.png``, or with ``reference_layout`` the published scripts' ``<frame>_rgb_mask.png``.
    Pixel values are SASVi class ids; the palette holds the class colours. ``size`` = (W, H)
    resizes (nearest), None keeps the frame size."""
    from ..inputs.videos import frame_names

    check_every(every)
    sources, classes, notes = open_sources(stores, array, None)
    root = check_output_path(out, "PNG folder")
    dirs = {s.name: root if len(sources) == 1 else root / s.name for s in sources}
    suffix = "_rgb_mask.png" if reference_layout else ".png"
    for s in sources:
        d = dirs[s.name]
        if d.is_dir() and any(p.name.endswith(suffix) for p in d.iterdir()) and not overwrite:
            raise InputError(
                f"{d} already holds label PNGs; pass --overwrite to replace them, or choose another folder."
            )
    total = sum(len(frame_range(s, every)) for s in sources)
    done, per_video = 0, {}
    for s in sources:
        idx = list(frame_range(s, every))
        names = _stem_names(s, frame_names)
        view = _Rows(s, idx)
        for _ in iter_export_label_pngs(
            view, classes, dirs[s.name], size=size, frame_names=[names[t] for t in idx], suffix=suffix
        ):
            done += 1
            yield ExportProgress(done, total, s.name)
        per_video[s.name] = len(idx)
    return ExportSummary("png", root, per_video, notes)


class _Rows:
    """Frames ``idx`` of a source's labels (checked against its class table), read one at a time."""

    def __init__(self, src: Source, idx: list[int]):
        self.src, self.idx = src, idx
        self.shape = (len(idx), *src.array.shape[1:])

    def __getitem__(self, k: int):
        return self.src.labels(self.idx[k])


def _stem_names(src: Source, frame_names) -> list[str]:
    fp = src.store.frames_path
    if fp is not None and Path(fp).is_dir():
        try:
            names = frame_names(src.stack())
        except InputError:
            names = None
        if names is not None:
            return names
    return [f"{t:010d}" for t in range(src.n)]
