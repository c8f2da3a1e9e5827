"""Instances from a COCO file (RLE, compressed or not, or polygons; Endoscapes ships RLE), with
object identity where annotations carry a track id (YouTube-VIS-like); see
:mod:`.instance_labels`."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from ..datasets import ClassTable
from ..errors import InputError
from ..instances.types import Instance
from .coco_labels import categories_table, decode_rle, load_coco, polygon_mask
from .frames import frame_sort_key
from .instance_formats import Units, check_points, class_of, digest, points


def track_of(a: dict) -> object:
    """An annotation's object identity: ``track_id``, ``instance_id`` or ``attributes.track_id``."""
    for v in (a.get("track_id"), a.get("instance_id"), (a.get("attributes") or {}).get("track_id")):
        if v is not None:
            return v
    return None


class CocoInstances(Units):
    """The images of a COCO file (ordered like :class:`.coco_labels.CocoRaw`), each annotation an
    instance; an image without annotations is not annotated. Categories map to the class table by
    name, or without a table make it (:func:`.coco_labels.coco_class_table`). An annotation's
    ``source_id`` is its ``track_id``, ``instance_id`` or ``attributes.track_id``; without one it
    is None: plain COCO has no identity across frames. Annotations of one track on one image are
    one instance. ``score`` (detection results) is kept, 1 where absent."""

    kind = "coco"

    def __init__(self, path: Path, classes: ClassTable | None):
        doc = load_coco(path)
        self.desc = str(path)
        self.digests = [digest(path.read_bytes())]
        try:
            images = sorted(doc["images"], key=lambda im: frame_sort_key(str(im["file_name"])))
            self.names = [str(im["file_name"]) for im in images]
            sizes = [(int(im["height"]), int(im["width"])) for im in images]
            ids = [im["id"] for im in images]
            cats = {c["id"]: str(c["name"]) for c in doc.get("categories") or []}
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(
                f"{path}: images need 'id', 'file_name', 'height', 'width'; categories 'id', 'name' ({e})."
            ) from e
        if not images:
            raise InputError(f"{path} lists no images.")
        for what, seq, why in (
            ("file name", self.names, "two annotations for one frame: keep one"),
            ("id", ids, "give each image its own id"),
        ):
            dup = next((v for v, n in Counter(seq).items() if n > 1), None)
            if dup is not None:
                raise InputError(f"{path}: two images have the {what} {dup!r}; {why}.")
        self.size = sizes[0]
        for name, size in zip(self.names, sizes, strict=True):
            self._check_size(size, name)
        self.table = categories_table(doc.get("categories") or [], path) if classes is None else classes
        class_ids: dict[object, int] = {}  # category id -> class id, for the categories annotations use
        index = {im_id: t for t, im_id in enumerate(ids)}
        tracks: dict[int, tuple[int, object]] = {}
        self.anns: list[list[tuple[int, int | None, object, float]]] = [[] for _ in images]
        for a in doc["annotations"]:
            what = f"annotation {a.get('id')}"
            t = index.get(a.get("image_id"))
            if t is None:
                raise InputError(f"{path}: {what} refers to image {a.get('image_id')!r}, which 'images' does not list.")
            cat = a.get("category_id")
            if cat in cats and cat not in class_ids:
                what_cat = f"category {cats[cat]!r} (id {cat}, {what})"
                class_ids[cat] = cat if classes is None else class_of(classes, cats[cat], str(path), what_cat)
            cid = class_ids.get(cat)
            if cid is None:
                raise InputError(
                    f"{path}: {what} has category_id {a.get('category_id')!r}, which 'categories' does not list. "
                    "Add the category or fix the annotation."
                )
            sid = track_of(a)
            if sid is not None:
                if not isinstance(sid, int) or isinstance(sid, bool):
                    raise InputError(f"{path}: {what} has track id {sid!r}; track ids are integers.")
                first = tracks.setdefault(sid, (cid, a.get("id")))
                if first[0] != cid:
                    raise InputError(
                        f"{path}: track {sid} is class {self.table.by_id(first[0]).name!r} in annotation {first[1]} "
                        f"and {self.table.by_id(cid).name!r} in {what}. One object has one class: give one of them "
                        "another track id."
                    )
            score = a.get("score", 1.0)
            if not isinstance(score, (int, float)) or not 0 <= score <= 1:
                raise InputError(f"{path}: {what} has score {score!r}, not a number in [0, 1].")
            seg = a.get("segmentation")
            self._mask(seg, f"{what} (image {self.names[t]})")  # decoded once now, so a bad one fails before any run
            self.anns[t].append((cid, sid, seg, float(score)))
        self.annotated = [bool(x) for x in self.anns]

    def _mask(self, seg: object, what: str) -> np.ndarray:
        h, w = self.size
        try:
            if isinstance(seg, dict):
                if [int(v) for v in seg["size"]] != [h, w]:
                    raise InputError(f"{self.desc}: {what} is an RLE of size {seg['size']}, its image {h}x{w} (h x w).")
                return decode_rle(seg)
            if isinstance(seg, list) and seg:
                polys = seg if isinstance(seg[0], list) else [seg]
                for poly in polys:
                    pts = points(np.asarray(poly, float).reshape(-1, 2), self.desc, what)
                    check_points(pts, self.size, self.desc, what)
                return polygon_mask(polys, h, w)
            raise ValueError(f"segmentation {type(seg).__name__} {'(empty)' if not seg else ''}")
        except InputError:
            raise
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"{self.desc}: cannot decode {what}: {e}. Give RLE or polygons.") from e

    def instances(self, i: int) -> list[Instance]:
        groups: dict[object, list] = {}
        for j, (cid, sid, seg, score) in enumerate(self.anns[i]):
            m = self._mask(seg, f"annotation on {self.names[i]}")
            key = ("id", sid) if sid is not None else ("ann", j)
            if key in groups:
                groups[key][1] |= m
                groups[key][2] = max(groups[key][2], score)
            else:
                groups[key] = [cid, m, score, sid]
        return [Instance(cid, m, s, sid) for cid, m, s, sid in groups.values() if m.any()]


__all__ = ["CocoInstances", "track_of"]
