"""Ground truth from a COCO annotation file (``annotations.json``): RLE or polygon masks painted
into one semantic label map per image.

Each image of ``images`` is one frame, ordered like frame files (by the trailing integer of its
``file_name``, see :func:`.frames.frame_sort_key`); ``annotations`` are painted with their
``category_id`` as the class id, larger instances first so that small ones stay visible, on
background 0. An image without any annotation reads as unlabelled (255 everywhere): COCO files of
videos such as Endoscapes list every frame and annotate one in 30, so "no annotation" means "not
annotated", and such frames are left out of ``evaluate frames``.

Masks are decoded here, without pycocotools: compressed RLE (the ``counts`` string), uncompressed
RLE (a list of run lengths, ``iscrowd`` annotations) and polygons (filled with PIL, whose edge
pixels may differ from pycocotools' by one pixel).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..datasets import CLASS_COLOURS, ClassTable, categories_table
from ..errors import InputError
from .frames import frame_sort_key

#: the value that pixels of an annotated image covered by no annotation get
BACKGROUND = 0


def _rle_counts(counts: str | bytes) -> list[int]:
    """Run lengths of pycocotools' compressed string (``rleToString``): each run in 5-bit groups,
    least significant first, offset by 48 into printable ASCII; bit 0x20 of a group = more groups
    follow, bit 0x10 of the last = negative; from the third run on, a run is stored as its
    difference to the run two before."""
    s = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
    out: list[int] = []
    p = 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            if p >= len(s):
                raise ValueError("the counts string ends inside a run")
            c = s[p] - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p, k = p + 1, k + 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out


def decode_rle(rle: dict) -> np.ndarray:
    """A COCO RLE (``{"size": [h, w], "counts": str | list[int]}``) as an (h, w) bool mask.

    Runs alternate 0 and 1, starting with 0, over the mask in column-major order.

    Raises:
        ValueError: the runs do not cover the mask exactly, or a run is negative.
    """
    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    runs = [int(v) for v in counts] if isinstance(counts, list) else _rle_counts(counts)
    if any(n < 0 for n in runs):
        raise ValueError("a run length is negative")
    if sum(runs) != h * w:
        raise ValueError(f"the runs cover {sum(runs)} pixels, the mask has {h * w}")
    values = np.zeros(len(runs), bool)
    values[1::2] = True
    return np.repeat(values, runs).reshape((w, h)).T


def polygon_mask(polys: list, h: int, w: int) -> np.ndarray:
    """Polygons in COCO's form (each a flat list ``[x0, y0, x1, y1, ...]`` in pixels) filled into
    one (h, w) bool mask; polygons of fewer than three points are left out."""
    from PIL import Image, ImageDraw

    im = Image.new("1", (w, h), 0)
    draw = ImageDraw.Draw(im)
    for poly in polys:
        if len(poly) >= 6:
            draw.polygon([(float(poly[i]), float(poly[i + 1])) for i in range(0, len(poly) - 1, 2)], fill=1)
    return np.asarray(im, bool)


def is_coco_json(path: Any) -> bool:
    return isinstance(path, (str, os.PathLike)) and Path(path).suffix.lower() == ".json" and Path(path).is_file()


def load_coco(path: Path) -> dict:
    """A COCO file's document, checked to have ``images`` and ``annotations``."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"Cannot read {path} as COCO JSON: {e}") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list) or "annotations" not in doc:
        raise InputError(
            f"{path} is not a COCO annotation file: it needs 'images' and 'annotations' lists "
            "(give label PNGs, a .npy or a store otherwise)."
        )
    return doc


def coco_class_table(path: str | os.PathLike) -> ClassTable:
    """The class table of a COCO file's ``categories``: 0 background (no label, not scored) and
    each category at its ``id``."""
    path = Path(path)
    return categories_table(load_coco(path).get("categories") or [], path)


class CocoRaw:
    """The images of a COCO file as a raw label source (see :mod:`.label_sources`): ``raw(t)`` is
    the (H, W) uint8 label map of image t, 255 everywhere for an image without annotations."""

    def __init__(self, path: Path):
        doc = load_coco(path)
        self.desc = str(path)
        self.kinds = {"coco"}
        try:
            images = sorted(doc["images"], key=lambda im: frame_sort_key(str(im["file_name"])))
            self.names = [str(im["file_name"]) for im in images]
            sizes = {(int(im["height"]), int(im["width"])) for im in images}
            index = {im["id"]: t for t, im in enumerate(images)}
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"{path}: each image needs 'id', 'file_name', 'height' and 'width' ({e}).") from e
        if not images:
            raise InputError(f"{path} lists no images.")
        if len(sizes) > 1:
            raise InputError(f"{path}: the images have {len(sizes)} sizes; all frames of a video must have one.")
        self.anns: list[list[dict]] = [[] for _ in images]
        for a in doc["annotations"]:
            t = index.get(a.get("image_id"))
            if t is None:
                raise InputError(f"{path}: annotation {a.get('id')} refers to image {a.get('image_id')}, not listed.")
            self.anns[t].append(a)
        (h, w) = sizes.pop()
        self.shape = (len(images), h, w)

    def name(self, t: int) -> str:
        return self.names[t]

    def _mask(self, a: dict) -> np.ndarray:
        h, w = self.shape[1:]
        seg = a.get("segmentation")
        try:
            if isinstance(seg, dict):
                m = decode_rle(seg)
            elif isinstance(seg, list):
                m = polygon_mask(seg, h, w)
            else:
                raise ValueError(f"segmentation of type {type(seg).__name__}")
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"{self.desc}: cannot decode annotation {a.get('id')}: {e}.") from e
        if m.shape != (h, w):
            raise InputError(f"{self.desc}: annotation {a.get('id')} is {m.shape[1]}x{m.shape[0]}, its image {w}x{h}.")
        return m

    def raw(self, t: int) -> np.ndarray:
        anns = self.anns[t]
        if not anns:
            return np.full(self.shape[1:], 255, np.uint8)
        out = np.full(self.shape[1:], BACKGROUND, np.uint8)
        masks = [(self._mask(a), a) for a in anns]
        for m, a in sorted(masks, key=lambda x: -int(x[0].sum())):  # small instances painted last stay visible
            c = a.get("category_id")
            if not isinstance(c, int) or not 0 <= c <= 254:
                raise InputError(f"{self.desc}: annotation {a.get('id')} has category_id {c!r}, not an id 0..254.")
            out[m] = c
        return out


__all__ = [
    "CLASS_COLOURS",
    "CocoRaw",
    "categories_table",
    "coco_class_table",
    "decode_rle",
    "is_coco_json",
    "load_coco",
    "polygon_mask",
]
