"""Class tables: dataset presets (CaDIS, CholecSeg8k, Cataract-1K, the synthetic sample) and
user-defined tables read from a small YAML or JSON file.

The presets follow section 4 of the SASVi reference (``shared/docs/sasvi-reference.md``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InputError


@dataclass(frozen=True)
class ClassInfo:
    """One class: integer id, display name, RGB colour (0-255)."""

    id: int
    name: str
    color: tuple[int, int, int]


@dataclass(frozen=True)
class ClassTable:
    """The classes of a dataset.

    Attributes:
        name: preset name (``cadis``, ``cholecseg8k``, ``cataract1k``, ``synthetic``) or a file stem.
        classes: the classes, in id order.
        no_label: value of pixels that belong to no class (CaDIS 255, CholecSeg8k 0, ...).
        ignore_ids: ids that metrics leave out (background or ignore labels).
        dummy_id: the id the reference prompts with an empty mask when nothing is in view.
        source_values: for datasets whose ground-truth files store other values than the class ids
            (CholecSeg8k's watershed grey values, DAVIS's 0/255): file value -> class id.
        source_unlabelled: file values that mean "not annotated" in that encoding (CholecSeg8k's
            white border, 255); they read as unlabelled (255), never as a class.
    """

    name: str
    classes: tuple[ClassInfo, ...]
    no_label: int = 255
    ignore_ids: frozenset[int] = frozenset()
    dummy_id: int = 0
    source_values: Mapping[int, int] = field(default_factory=dict)
    source_unlabelled: frozenset[int] = frozenset()

    def __post_init__(self):
        ids = [c.id for c in self.classes]
        unknown = sorted(set(self.source_values.values()) - set(ids))
        if unknown:
            raise InputError(f"Class table {self.name!r}: source_values map to ids {unknown} that are not classes.")
        if len(set(ids)) != len(ids):
            raise InputError(f"Class table {self.name!r} lists an id twice: {sorted(ids)}.")
        if any(not 0 <= i <= 254 for i in ids):
            raise InputError(f"Class table {self.name!r}: ids must lie in 0..254 (uint8 labels, 255 = none).")

    def __iter__(self) -> Iterator[ClassInfo]:
        return iter(self.classes)

    def __len__(self) -> int:
        return len(self.classes)

    @property
    def ids(self) -> list[int]:
        return [c.id for c in self.classes]

    def by_id(self, class_id: int) -> ClassInfo:
        for c in self.classes:
            if c.id == class_id:
                return c
        raise KeyError(class_id)

    def scored_ids(self) -> list[int]:
        """Ids that count in macro averages (all but ``ignore_ids``)."""
        return [c.id for c in self.classes if c.id not in self.ignore_ids]

    def colors_rgba(self) -> dict[int | None, tuple[float, float, float, float]]:
        """Colours for a napari labels layer: id -> RGBA in [0, 1]; the no-label value transparent."""
        out: dict[int | None, tuple[float, float, float, float]] = {
            c.id: (c.color[0] / 255, c.color[1] / 255, c.color[2] / 255, 1.0) for c in self.classes
        }
        out[self.no_label] = (0.0, 0.0, 0.0, 0.0)
        out[None] = (0.0, 0.0, 0.0, 0.0)
        return out

    def palette(self) -> list[int]:
        """A 768-entry PIL palette: index i -> colour of class i (black where there is none)."""
        pal = [0] * 768
        for c in self.classes:
            pal[3 * c.id : 3 * c.id + 3] = list(c.color)
        return pal

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "no_label": self.no_label,
            "ignore_ids": sorted(self.ignore_ids),
            "dummy_id": self.dummy_id,
            "classes": [{"id": c.id, "name": c.name, "color": list(c.color)} for c in self.classes],
            "source_values": {str(k): v for k, v in self.source_values.items()},
            "source_unlabelled": sorted(self.source_unlabelled),
        }

    @classmethod
    def from_dict(cls, d: Mapping, name: str = "custom") -> ClassTable:
        try:
            classes = tuple(
                ClassInfo(int(c["id"]), str(c["name"]), tuple(int(v) for v in c.get("color", (128, 128, 128))))
                for c in d["classes"]
            )
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(
                f"Class table {name!r}: each class needs 'id', 'name' and optionally 'color' [r, g, b] ({e})."
            ) from e
        for c in classes:
            if len(c.color) != 3 or not all(0 <= v <= 255 for v in c.color):
                raise InputError(f"Class {c.id} ({c.name}): colour must be three values 0-255, got {c.color}.")
        return cls(
            name=str(d.get("name", name)),
            classes=tuple(sorted(classes, key=lambda c: c.id)),
            no_label=int(d.get("no_label", 255)),
            ignore_ids=frozenset(int(i) for i in d.get("ignore_ids", ())),
            dummy_id=int(d.get("dummy_id", 0)),
            source_values={int(k): int(v) for k, v in dict(d.get("source_values") or {}).items()},
            source_unlabelled=frozenset(int(v) for v in d.get("source_unlabelled") or ()),
        )


def _table(name: str, rows: list[tuple[int, str, tuple[int, int, int]]], **kw) -> ClassTable:
    return ClassTable(name=name, classes=tuple(ClassInfo(i, n, c) for i, n, c in rows), **kw)


CADIS = _table(
    "cadis",
    [
        (0, "Pupil", (0, 137, 255)),
        (1, "Surgical Tape", (255, 165, 0)),
        (2, "Hand", (255, 156, 201)),
        (3, "Eye Retractors", (99, 0, 255)),
        (4, "Iris", (255, 0, 0)),
        (5, "Skin", (255, 0, 165)),
        (6, "Cornea", (255, 255, 255)),
        (7, "Cannula", (141, 141, 141)),
        (8, "Cap. Cystotome", (255, 218, 0)),
        (9, "Tissue Forceps", (173, 156, 255)),
        (10, "Primary Knife", (73, 73, 73)),
        (11, "Ph. Handpiece", (250, 213, 255)),
        (12, "Lens Injector", (255, 156, 156)),
        (13, "I/A Handpiece", (99, 255, 0)),
        (14, "Secondary Knife", (157, 225, 255)),
        (15, "Micromanipulator", (255, 89, 124)),
        (16, "Cap. Forceps", (173, 255, 156)),
    ],
    no_label=255,
    ignore_ids=frozenset({255}),
    dummy_id=18,
)

CHOLECSEG8K = _table(
    "cholecseg8k",
    [
        (0, "Black Background", (127, 127, 127)),
        (1, "Abdominal Wall", (210, 140, 140)),
        (2, "Liver", (255, 114, 114)),
        (3, "Gastrointestinal Tract", (231, 70, 156)),
        (4, "Fat", (186, 183, 75)),
        (5, "Grasper", (170, 255, 0)),
        (6, "Connective Tissue", (255, 85, 0)),
        (7, "Blood", (255, 0, 0)),
        (8, "Cystic Duct", (255, 255, 0)),
        (9, "L-hook Electrocautery", (169, 255, 184)),
        (10, "Gallbladder", (255, 160, 165)),
        (11, "Hepatic Vein", (0, 50, 128)),
        (12, "Liver Ligament", (111, 74, 0)),
    ],
    no_label=0,
    ignore_ids=frozenset({0}),
    dummy_id=0,
    # watershed grey value -> class id; 255 (white border) is unlabelled
    source_values={50: 0, 11: 1, 21: 2, 13: 3, 12: 4, 31: 5, 23: 6, 24: 7, 25: 8, 32: 9, 22: 10, 33: 11, 5: 12},
    source_unlabelled=frozenset({255}),
)

CATARACT1K = _table(
    "cataract1k",
    [
        (0, "Background", (0, 0, 0)),
        (1, "Cornea", (175, 50, 53)),
        (2, "Pupil", (223, 230, 116)),
        (3, "Lens", (175, 114, 176)),
        (4, "Slit Knife", (70, 197, 221)),
        (5, "Gauge", (242, 130, 180)),
        (6, "Capsulorhexis Cystotome", (152, 204, 112)),
        (7, "Spatula", (103, 24, 0)),
        (8, "Phacoemulsification Tip", (0, 155, 85)),
        (9, "Irrigation-Aspiration", (247, 146, 29)),
        (10, "Lens Injector", (97, 63, 153)),
        (11, "Incision Knife", (70, 197, 221)),
        (12, "Katena Forceps", (238, 41, 103)),
        (13, "Capsulorhexis Forceps", (0, 113, 188)),
    ],
    no_label=0,
    ignore_ids=frozenset({0}),
    dummy_id=0,
)

SYNTHETIC = _table(
    "synthetic",
    [
        (0, "Black Background", (127, 127, 127)),
        (1, "Abdominal Wall", (210, 140, 140)),
        (2, "Liver", (255, 114, 114)),
        (3, "Fat", (186, 183, 75)),
        (4, "Gallbladder", (255, 160, 165)),
        (5, "Grasper", (170, 255, 0)),
        (6, "L-hook Electrocautery", (169, 255, 184)),
        (7, "Clipper", (0, 160, 255)),
    ],
    no_label=255,
    ignore_ids=frozenset({0}),
    dummy_id=0,
)

# CholecInstanceSeg's instrument classes (its utilities' dataset_variables.py); an instance dataset:
# LabelMe polygons per frame, read by inputs.instance_labels
CHOLECINSTANCESEG = _table(
    "cholecinstanceseg",
    [
        (0, "Background", (0, 0, 0)),
        (1, "grasper", (255, 0, 0)),
        (2, "hook", (0, 128, 0)),
        (3, "irrigator", (255, 255, 0)),
        (4, "clipper", (128, 0, 128)),
        (5, "bipolar", (255, 165, 0)),
        (6, "scissors", (0, 255, 255)),
        (7, "snare", (255, 0, 255)),
    ],
    no_label=0,
    ignore_ids=frozenset({0}),
    dummy_id=0,
)

PRESETS: dict[str, ClassTable] = {t.name: t for t in (CADIS, CHOLECSEG8K, CATARACT1K, SYNTHETIC, CHOLECINSTANCESEG)}


#: colours of the classes of tables built from files (COCO categories, LabelMe labels), in turn
CLASS_COLOURS = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
            (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212))  # fmt: skip


def categories_table(cats: list, path: Path) -> ClassTable:
    """The class table of the ``categories`` of the COCO file ``path`` (see :func:`~.inputs.coco_labels.coco_class_table`)."""
    try:
        rows = sorted((int(c["id"]), str(c["name"])) for c in cats)
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"{path}: each category needs an 'id' and a 'name' ({e}).") from e
    if not rows:
        raise InputError(f"{path} lists no categories: give the class table with --classes or --dataset.")
    if any(not 1 <= i <= 254 for i, _ in rows):
        raise InputError(f"{path}: category ids must lie in 1..254 (0 is the background), got {[i for i, _ in rows]}.")
    classes = [ClassInfo(0, "background", (0, 0, 0))]  # 0: no annotation
    classes += [ClassInfo(i, n, CLASS_COLOURS[k % len(CLASS_COLOURS)]) for k, (i, n) in enumerate(rows)]
    return ClassTable(name=path.stem, classes=tuple(classes), no_label=0, ignore_ids=frozenset({0}))


def canonical_dataset(name: str) -> str:
    """A preset's own name for ``name`` in any case, with or without ``-``/``_``
    (``CholecSeg8k``, ``cholec_seg8k`` -> ``cholecseg8k``); anything else (a class table file)
    unchanged. The CLI's ``--dataset`` choices and every lookup go through it."""
    key = str(name).lower().replace("-", "").replace("_", "")
    return key if key in PRESETS else str(name)


def get_class_table(name_or_path: str | os.PathLike | ClassTable) -> ClassTable:
    """A preset by name (``cadis``, ``cholecseg8k``, ``cataract1k``, ``synthetic``,
    ``cholecinstanceseg``; any case, see
    :func:`canonical_dataset`) or a table read from a ``.json``/``.yaml``/``.yml`` file with
    ``classes: [{id, name, color}]``, or a COCO JSON's ``categories`` (:func:`categories_table`)."""
    if isinstance(name_or_path, ClassTable):
        return name_or_path
    key = canonical_dataset(str(name_or_path))
    if key in PRESETS:
        return PRESETS[key]
    path = Path(name_or_path)
    if not path.is_file():
        raise InputError(
            f"Unknown dataset {str(name_or_path)!r}: use one of {', '.join(PRESETS)} or the path of a "
            "class table file (.json or .yaml with classes: [{id, name, color}])."
        )
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    if isinstance(data, list):
        data = {"classes": data}
    if isinstance(data, Mapping) and "classes" not in data and "categories" in data:
        return categories_table(data["categories"], path)  # a COCO file: its categories
    if not isinstance(data, Mapping) or "classes" not in data:
        raise InputError(f"{path}: a class table needs a 'classes' list of {{id, name, color}}.")
    return ClassTable.from_dict(data, name=path.stem)
