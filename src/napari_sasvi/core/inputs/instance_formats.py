"""The instance label formats, each read and checked in full when opened (nothing is written, no
mask is kept): a folder of object-id images with ``instances.json``, palette PNGs of object ids
(DAVIS 2017 / YouTube-VOS), LabelMe JSON (one file per frame, CholecInstanceSeg); a COCO file
(RLE or polygons, Endoscapes) in :mod:`.instance_coco`. Each is a list of *units* (a file, or a COCO image) in frame order;
``instances(i)`` decodes the objects of unit i again when asked. :mod:`.instance_labels` matches
units to frames and is what callers use.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..datasets import ClassInfo, ClassTable
from ..errors import CorruptFrameError, FrameSizeError, InputError, LabelEncodingError
from ..instances.types import Instance
from .coco_labels import CLASS_COLOURS, polygon_mask

#: the file beside object-id images that gives each object id its class
INSTANCES_JSON = "instances.json"
#: palette index that DAVIS-style files use for "void" (not annotated): never an object
VOID = 255
#: how far (pixels) a polygon point may lie beyond the image before it is refused
EDGE_SLACK = 1.0


def class_of(table: ClassTable, value: object, where: str, what: str) -> int:
    """The class id that ``value`` (a class id or a class name) names in ``table``.

    Raises:
        InputError: not a class of the table (or its no-label value), naming ``where`` and ``what``.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        if value == table.no_label:
            raise InputError(
                f"{where}: {what} has class id {value}, the class table's no-label value (no class). "
                "Give it the id of a class, or remove it."
            )
        if value not in table.ids:
            raise InputError(
                f"{where}: {what} has class id {value}, outside the class table {table.name!r} (ids {table.ids}). "
                "Use an id of the table, or give the class table it belongs to."
            )
        return value
    if isinstance(value, str):
        names = {c.name: c.id for c in table if c.id != table.no_label}
        folded = {n.casefold(): i for n, i in names.items()}
        found = names.get(value, folded.get(value.casefold()))
        if found is None:
            raise InputError(
                f"{where}: {what} has class {value!r}, which the class table {table.name!r} does not list "
                f"({', '.join(names)}). Rename it to one of those, or give a class table that has it."
            )
        return found
    raise InputError(f"{where}: {what} has class {value!r}: give a class id (integer) or a class name.")


def table_from_names(names: Iterable[str], name: str) -> ClassTable:
    """A class table of class names found in the files: 0 background (no label), then the names
    in sorted order as ids 1, 2, ..."""
    rows = sorted(set(names))
    if len(rows) > 254:
        raise InputError(f"{name}: {len(rows)} class names, more than 254: give a class table.")
    classes = [ClassInfo(0, "background", (0, 0, 0))]
    classes += [ClassInfo(k + 1, n, CLASS_COLOURS[k % len(CLASS_COLOURS)]) for k, n in enumerate(rows)]
    return ClassTable(name=name, classes=tuple(classes), no_label=0, ignore_ids=frozenset({0}))


def digest(*parts: bytes) -> str:
    h = hashlib.blake2b(digest_size=16)
    for p in parts:
        h.update(p)
    return h.hexdigest()


class Units:
    """What every format gives: ``kind``, ``desc``, ``names`` (per unit, for matching to frames),
    ``annotated`` (per unit), ``size`` (H, W), ``table``, ``digests`` (per unit content hash) and
    ``instances(i)``."""

    kind: str
    desc: str
    names: list[str]
    annotated: list[bool]
    size: tuple[int, int]
    table: ClassTable
    digests: list[str]

    def instances(self, i: int) -> list[Instance]:
        raise NotImplementedError

    def _check_size(self, size: tuple[int, int], name: str) -> None:
        if size != self.size:
            raise FrameSizeError(
                f"{self.desc}: {name} is {size[1]}x{size[0]} pixels, {self.names[0]} {self.size[1]}x{self.size[0]}. "
                "All annotations of one video must have one size."
            )


# ---------------------------------------------------------------------------------------- images


def read_ids(path: Path) -> tuple[np.ndarray, str, list[int] | None]:
    """(object ids (H, W) integer, PIL mode, palette or None) of one object-id image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode in ("L", "P") or mode.startswith("I"):
                arr = np.asarray(im)
            elif mode == "1":
                arr = np.asarray(im, np.uint8)
            else:
                raise LabelEncodingError(
                    f"{path}: image mode {mode} is not a map of object ids. Give grey (mode L or 16-bit) or "
                    "palette (mode P) PNGs whose pixel value is the object's id (0 = none)."
                )
            palette = im.getpalette() if mode == "P" else None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise CorruptFrameError(f"Cannot read {path}: {e}. Replace the file or remove it.") from e
    if arr.size and arr.min() < 0:
        raise LabelEncodingError(f"{path}: negative object ids ({int(arr.min())}); ids are 0 (none) or positive.")
    return arr, mode, palette


def _read_mapping(path: Path) -> tuple[dict[int, object], bool]:
    """``instances.json``'s ``classes``: object id -> class id or name (an id given twice is
    refused), and its ``identities``: true (the default: one id is one object on every frame) or
    false (the ids are a detector's, per frame: they say nothing of identity)."""

    def pairs(items: list[tuple[str, object]]) -> dict:
        dup = next((k for k, n in Counter(k for k, _ in items).items() if n > 1), None)
        if dup is not None:
            raise InputError(f"{path}: object id {dup!r} is given twice. Give each object one class.")
        return dict(items)

    try:
        doc = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=pairs)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f'Cannot read {path}: {e}. It must be JSON: {{"classes": {{"<object id>": <class>}}}}.') from e
    classes = doc.get("classes") if isinstance(doc, dict) else None
    identities = doc.get("identities", True) if isinstance(doc, dict) else True
    if not isinstance(identities, bool):
        raise InputError(f'{path}: "identities" is true or false (whether one id is one object on every frame).')
    if not isinstance(classes, dict):
        raise InputError(f'{path} needs a "classes" object: {{"classes": {{"<object id>": <class id or name>}}}}.')
    out: dict[int, object] = {}
    for key, value in classes.items():
        try:
            oid = int(key)
        except ValueError:
            raise InputError(f'{path}: {key!r} is not an object id; the keys of "classes" are integers.') from None
        if oid <= 0:
            raise InputError(f"{path}: object id {oid}: ids start at 1 (0 is no object).")
        if oid in out:
            raise InputError(f"{path}: object id {oid} is given twice ({key!r}). Give each object one class.")
        out[oid] = value
    return out, identities


class IdImages(Units):
    """A folder of object-id images: with ``instances.json`` (kind ``instance_png``, each id's
    class from it) or, without it and without a class table, palette PNGs (kind ``palette``):
    each id k is the object class "object k" in the file's palette colour (index 255 is void)."""

    def __init__(self, folder: Path, files: list[Path], classes: ClassTable | None):
        self.desc = str(folder)
        self.names = [f.name for f in files]
        self.files = files
        mapping_path = folder / INSTANCES_JSON
        mapping, self.identities = _read_mapping(mapping_path) if mapping_path.is_file() else (None, True)
        self.kind = "instance_png" if mapping is not None else "palette"
        if mapping is None and classes is not None:
            raise InputError(
                f"{folder}: object-id images without {INSTANCES_JSON}, and a class table was given. Add "
                f'{INSTANCES_JSON} ({{"classes": {{"<object id>": <class>}}}}) to give each object its class, '
                "or give no class table to read palette PNGs as objects (DAVIS style)."
            )
        self.ids: list[list[int]] = []
        self.digests = []
        colours: dict[int, tuple[int, int, int]] = {}
        for k, path in enumerate(files):
            arr, mode, palette = read_ids(path)
            if k == 0:
                self.size = arr.shape
            self._check_size(arr.shape, path.name)
            if mapping is None and mode != "P":
                raise InputError(
                    f"{path}: a mode-{mode} image of object ids without {INSTANCES_JSON} beside it. Add "
                    f'{INSTANCES_JSON} ({{"classes": {{"<object id>": <class>}}}}), or give palette (mode P) PNGs.'
                )
            ids = [int(v) for v in np.unique(arr) if v != 0 and not (mapping is None and v == VOID)]
            self.ids.append(ids)
            self.digests.append(digest(f"{arr.shape}{arr.dtype}".encode(), np.ascontiguousarray(arr).tobytes()))
            for i in ids:
                if palette is not None and i not in colours and len(palette) >= 3 * i + 3:
                    colours[i] = tuple(palette[3 * i : 3 * i + 3])
            if mapping is not None:
                missing = [i for i in ids if i not in mapping]
                if missing:
                    raise InputError(
                        f"{path}: object id{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing[:8]))} "
                        f"{'have' if len(missing) > 1 else 'has'} no class in {mapping_path}. Add "
                        f'"{missing[0]}": <class id or name> to its "classes".'
                    )
        self.annotated = [True] * len(files)
        if mapping is None:
            used = sorted({i for ids in self.ids for i in ids})
            rows = [ClassInfo(0, "background", (0, 0, 0))]
            rows += [ClassInfo(i, f"object {i}", colours.get(i, CLASS_COLOURS[i % len(CLASS_COLOURS)])) for i in used]
            self.table = ClassTable(folder.name, tuple(rows), no_label=0, ignore_ids=frozenset({0}))
            self.class_of_id = {i: i for i in used}
        else:
            if classes is None:
                if not all(isinstance(v, str) for v in mapping.values()):
                    raise InputError(
                        f"{mapping_path} gives class ids: give the class table they refer to (a dataset or a "
                        "class table file), or give class names instead."
                    )
                classes = table_from_names(mapping.values(), folder.name)
            self.table = classes
            self.class_of_id = {i: class_of(classes, v, str(mapping_path), f"object {i}") for i, v in mapping.items()}
            self.digests.append(digest(mapping_path.read_bytes()))

    def instances(self, i: int) -> list[Instance]:
        arr = read_ids(self.files[i])[0]
        out = [Instance(self.class_of_id[k], arr == k, 1.0, k if self.identities else None) for k in self.ids[i]]
        return [x for x in out if x.mask.any()]


# ---------------------------------------------------------------------------------------- LabelMe


def check_points(pts: np.ndarray, size: tuple[int, int], where: str, what: str) -> None:
    h, w = size
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    if lo[0] < -EDGE_SLACK or lo[1] < -EDGE_SLACK or hi[0] > w + EDGE_SLACK or hi[1] > h + EDGE_SLACK:
        raise InputError(
            f"{where}: {what} has points outside the {w}x{h} image (x {lo[0]:.1f}..{hi[0]:.1f}, y {lo[1]:.1f}.."
            f"{hi[1]:.1f}). It was drawn on another image size: fix the points or the image size."
        )


def points(raw: object, where: str, what: str) -> np.ndarray:
    try:
        pts = np.asarray(raw, float)
    except (TypeError, ValueError):
        pts = np.zeros((0,))
    if pts.ndim != 2 or pts.shape[1] != 2 or not np.isfinite(pts).all():
        raise InputError(f"{where}: {what} needs points [[x, y], ...] of numbers.")
    return pts


class LabelMeFiles(Units):
    """LabelMe JSON, one file per frame: ``shapes[]`` of ``label`` (class name), ``group_id``
    (instance number within its class), ``shape_type`` polygon or rectangle and ``points``;
    shapes of one label and group id are one instance, whose ``source_id`` is a number given to
    each (class, group id) in order of first appearance (stable across frames). A shape with
    ``group_id`` null is an instance of its own with no identity (``source_id`` None). Without a
    class table, the labels' names make one (:func:`table_from_names`)."""

    kind = "labelme"

    def __init__(self, folder: Path, files: list[Path], classes: ClassTable | None):
        self.desc = str(folder)
        self.names = [f.name for f in files]
        self.annotated = [True] * len(files)
        self.digests = []
        parsed: list[list[tuple[str, int | None, np.ndarray, str]]] = []
        for k, path in enumerate(files):
            data = path.read_bytes()
            self.digests.append(digest(data))
            try:
                doc = json.loads(data)
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise InputError(f"Cannot read {path} as LabelMe JSON: {e}. Replace the file or remove it.") from e
            if not isinstance(doc, dict) or not isinstance(doc.get("shapes"), list):
                raise InputError(f"{path} is not a LabelMe file: it needs a 'shapes' list.")
            try:
                size = (int(doc["imageHeight"]), int(doc["imageWidth"]))
            except (KeyError, TypeError, ValueError):
                raise InputError(f"{path}: a LabelMe file needs 'imageHeight' and 'imageWidth'.") from None
            if k == 0:
                self.size = size
            self._check_size(size, path.name)
            parsed.append([self._shape(s, j, path) for j, s in enumerate(doc["shapes"])])
        if classes is None:
            classes = table_from_names((s[0] for shapes in parsed for s in shapes), folder.name)
        self.table = classes
        ids: dict[tuple[int, int], int] = {}
        self.shapes: list[list[tuple[int, int | None, np.ndarray]]] = []
        for path, shapes in zip(files, parsed, strict=True):
            rows = []
            for j, (label, gid, pts, _) in enumerate(shapes):
                cid = class_of(classes, label, str(path), f"shape {j}")
                sid = None if gid is None else ids.setdefault((cid, gid), len(ids) + 1)
                rows.append((cid, sid, pts))
            self.shapes.append(rows)

    def _shape(self, s: object, j: int, path: Path) -> tuple[str, int | None, np.ndarray, str]:
        where, what = str(path), f"shape {j}"
        if not isinstance(s, dict) or not isinstance(s.get("label"), str):
            raise InputError(f"{where}: {what} has no 'label' (its class name): give every shape one.")
        what = f"shape {j} ({s['label']})"
        gid = s.get("group_id")
        if gid is not None and (not isinstance(gid, int) or isinstance(gid, bool)):
            raise InputError(f"{where}: {what} has group_id {gid!r}: an integer or null.")
        kind = s.get("shape_type") or "polygon"
        pts = points(s.get("points"), where, what)
        if kind == "rectangle":
            if len(pts) != 2:
                raise InputError(f"{where}: {what} is a rectangle with {len(pts)} points, not 2 corners.")
            (x0, y0), (x1, y1) = pts
            pts = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
        elif kind == "polygon":
            if len(pts) < 3:
                raise InputError(f"{where}: {what} is a polygon of {len(pts)} points; it needs 3 or more.")
        else:
            raise InputError(
                f"{where}: {what} is a {kind!r}; instances are read from polygons and rectangles. "
                "Convert it to a polygon in LabelMe."
            )
        check_points(pts, self.size, where, what)
        return s["label"], gid, pts, kind

    def instances(self, i: int) -> list[Instance]:
        groups: dict[object, tuple[int, int | None, list[list[float]]]] = {}
        for j, (cid, sid, pts) in enumerate(self.shapes[i]):
            key = ("id", sid) if sid is not None else ("shape", j)
            groups.setdefault(key, (cid, sid, []))[2].append(pts.ravel().tolist())
        out = [Instance(cid, polygon_mask(polys, *self.size), 1.0, sid) for cid, sid, polys in groups.values()]
        return [x for x in out if x.mask.any()]


__all__ = [
    "INSTANCES_JSON",
    "IdImages",
    "LabelMeFiles",
    "Units",
    "class_of",
    "check_points",
    "digest",
    "points",
    "read_ids",
    "table_from_names",
]
