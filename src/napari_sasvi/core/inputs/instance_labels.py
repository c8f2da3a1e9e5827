"""Instance label files (objects with an id and a class, per frame) as one source, whatever the
format: :func:`open_instance_labels`.

Formats (found from the path, see :func:`detect_format`):

- ``instance_png``: a folder of object-id images (PNG mode L or 16-bit; pixel = object id, 0 =
  none; one id = one object on every frame) with ``instances.json``:
  ``{"classes": {"<object id>": <class id or name>}}``.
- ``palette``: a folder of palette PNGs (mode P) of object ids and no ``instances.json``, read
  when no class table is given (DAVIS 2017, YouTube-VOS): each id k is a class "object k" in the
  file's palette colour; index 255 is void (not annotated, no object).
- ``labelme``: a folder of LabelMe ``.json`` files, one per frame (CholecInstanceSeg): a frame's
  file with no shapes is annotated, with no object on it.
- ``coco``: one COCO ``.json`` (RLE, compressed or not, or polygons; Endoscapes): an image
  without annotations is not annotated. Object identity across frames only where annotations
  carry ``track_id`` / ``instance_id`` / ``attributes.track_id`` (YouTube-VIS-like); plain COCO
  has none, and its instances have ``source_id`` None.

The class table: the one given, else built from the files (COCO categories, the names of
LabelMe labels or ``instances.json``, palette objects); :attr:`InstanceSource.class_table` is the
one used either way. Files are matched to frames as ``evaluate frames`` matches ground truth
(:func:`..metrics.matching.match_frames`): in order when the counts agree, else by name (the video's
frame file stems) or frame number. Every file is read and checked when opened; nothing is written.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from ..datasets import ClassTable
from ..errors import EmptyInputError, FrameSizeError, InputError
from ..instances.types import Instance
from ..metrics.matching import match_frames
from .frames import frame_sort_key
from .instance_coco import CocoInstances
from .instance_formats import INSTANCES_JSON, IdImages, LabelMeFiles, Units

InstanceKind = Literal["instance_png", "coco", "labelme", "palette"]
#: extensions of object-id images (lossless only: a lossy format changes ids at edges)
ID_EXTENSIONS = (".png", ".tif", ".tiff", ".bmp")


class InstanceSource:
    """Instance annotations of one video, matched to its frames.

    Attributes:
        desc: the path read.
        kind: ``instance_png``, ``coco``, ``labelme`` or ``palette``.
        n_frames: the video's frame count (the files' count where it was not given).
        annotated: the frames that have an annotation, sorted (an annotated frame may hold no
            object: :meth:`instances` is then []).
        class_table: the class table the instances' ``class_id`` refer to.
        frame_size: (H, W) of the annotations.
    """

    def __init__(self, units: Units, n_frames: int, pairs: dict[int, int]):
        self._units = units
        self._unit_of = dict(pairs)
        self.desc = units.desc
        self.kind: InstanceKind = units.kind  # type: ignore[assignment]
        self.n_frames = n_frames
        self.annotated: tuple[int, ...] = tuple(sorted(pairs))
        self.class_table: ClassTable = units.table
        self.frame_size: tuple[int, int] = tuple(units.size)  # type: ignore[assignment]

    def is_annotated(self, t: int) -> bool:
        return t in self._unit_of

    def file_name(self, t: int) -> str | None:
        """The file (or COCO image) that annotates frame t, or None."""
        i = self._unit_of.get(t)
        return None if i is None else self._units.names[i]

    def instances(self, t: int) -> list[Instance]:
        """The objects of frame t, each with pixels (masks (H, W) bool); [] where t has no annotation.

        Raises:
            IndexError: t is not a frame of the video.
        """
        if not 0 <= t < self.n_frames:
            raise IndexError(f"frame {t} of a {self.n_frames}-frame video")
        i = self._unit_of.get(t)
        return [] if i is None else self._units.instances(i)

    def counts(self) -> dict[int, dict[int, int]]:
        """Per annotated frame: class id -> number of instances (reads every annotated frame)."""
        out: dict[int, dict[int, int]] = {}
        for t in self.annotated:
            c: dict[int, int] = defaultdict(int)
            for x in self.instances(t):
                c[x.class_id] += 1
            out[t] = dict(c)
        return out

    def fingerprint(self) -> str:
        """A hash of the files' content, which frame each annotates, and the class table."""
        h = hashlib.sha256()
        h.update(f"{self.kind}|{self.n_frames}|{sorted(self._unit_of.items())}".encode())
        for d in self._units.digests:
            h.update(d.encode())
        h.update(json.dumps(self.class_table.to_dict(), sort_keys=True).encode())
        return h.hexdigest()

    def describe(self) -> dict:
        return {
            "source": self.desc,
            "kind": self.kind,
            "frames": self.n_frames,
            "annotated": len(self.annotated),
            "fingerprint": self.fingerprint(),
        }

    def __repr__(self) -> str:
        return f"InstanceSource({self.kind}, {self.desc!r}, {len(self.annotated)} of {self.n_frames} frames annotated)"


def _folder_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """(object-id images, LabelMe .json files) of a folder, in frame order; two files of one stem
    are refused (two annotations for one frame)."""
    images, jsons = [], []
    for e in os.scandir(folder):
        if not e.is_file() or e.name.startswith("."):
            continue
        low = e.name.lower()
        if low.endswith(ID_EXTENSIONS):
            images.append(Path(e.path))
        elif low.endswith(".json") and low != INSTANCES_JSON:
            jsons.append(Path(e.path))
    seen: dict[str, Path] = {}
    for f in sorted(images + jsons):
        if f.stem in seen:
            raise InputError(
                f"{folder}: {seen[f.stem].name} and {f.name} are two annotation files for one frame ({f.stem}). "
                "Keep one file per frame (move frame images and other copies out of this folder)."
            )
        seen[f.stem] = f
    key = lambda p: frame_sort_key(p.name)  # noqa: E731
    return sorted(images, key=key), sorted(jsons, key=key)


def detect_format(path: str | os.PathLike) -> InstanceKind:
    """The format of instance labels at ``path``, from the path and the files' names and modes
    (``instance_png`` or ``palette`` by whether ``instances.json`` is there).

    Raises:
        EmptyInputError: a folder without any annotation file.
        InputError: a path that is none of the formats.
    """
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() == ".json":
            return "coco"
        raise InputError(_NOT_INSTANCES.format(path=path))
    if not path.is_dir():
        raise InputError(f"Instance labels {path} do not exist.")
    images, jsons = _folder_files(path)
    if not images and not jsons:
        raise EmptyInputError(
            f"No instance label files in {path}: expected one LabelMe .json or one object-id PNG per frame "
            f"(with {INSTANCES_JSON}, or palette PNGs)."
        )
    if images and jsons:
        raise InputError(
            f"{path} holds both LabelMe .json files ({jsons[0].name}, ...) and label images ({images[0].name}, ...). "
            "Keep one format per folder."
        )
    if jsons:
        return "labelme"
    return "instance_png" if (path / INSTANCES_JSON).is_file() else "palette"


_NOT_INSTANCES = (
    "Cannot read instance labels from {path}: give a COCO .json file, a folder of LabelMe .json files, or a folder "
    "of object-id PNGs (with instances.json, or palette PNGs)."
)


def _is_labelme(path: Path) -> bool:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(doc, dict) and "shapes" in doc


def _units(path: Path, classes: ClassTable | None) -> Units:
    kind = detect_format(path)
    if kind == "coco":
        try:
            return CocoInstances(path, classes)
        except InputError:
            if _is_labelme(path):  # the common slip: one LabelMe file given for its folder
                raise InputError(
                    f"{path} is one LabelMe file: give the folder that holds one LabelMe file per frame."
                ) from None
            raise
    images, jsons = _folder_files(path)
    if kind == "labelme":
        return LabelMeFiles(path, jsons, classes)
    return IdImages(path, images, classes)


def open_instance_labels(
    source: str | os.PathLike,
    classes: ClassTable | None = None,
    *,
    frame_count: int | None = None,
    frame_size: tuple[int, int] | None = None,
    frame_names: Sequence[str] | None = None,
) -> InstanceSource:
    """Read and check instance label files (see the module docstring for the formats).

    Args:
        source: a COCO ``.json`` file or a folder (LabelMe files, object-id PNGs).
        classes: the class table the files' classes are names or ids of; None to take it from the
            files (COCO categories, LabelMe label names, ``instances.json`` class names, palette
            objects); the result's ``class_table`` is the table used.
        frame_count: the video's frame count (None: one frame per file, or ``len(frame_names)``).
        frame_size: the video's (H, W), checked against the files.
        frame_names: the video's frame file stems, to match files to frames by name where the
            counts differ.

    Raises:
        EmptyInputError: no annotation file, or no annotation in a COCO file.
        InputError: a format error, naming the file and what to do (an object without a class, a
            class outside the table, two files for one frame, points outside the image, one track
            id for two classes, files that match no frame).
    """
    if not isinstance(source, (str, os.PathLike)):
        raise InputError(
            f"Instance labels are files (a folder of instance PNGs + instances.json, a COCO JSON, a LabelMe folder, "
            f"palette PNGs), not a {type(source).__name__}: write them to a folder, or run without --instances."
        )
    path = Path(source)
    if frame_names is not None and frame_count is not None and len(frame_names) != frame_count:
        raise InputError(f"{len(frame_names)} frame names for {frame_count} frames: give one name per frame.")
    units = _units(path, classes)
    if frame_size is not None and tuple(units.size) != tuple(frame_size):
        raise FrameSizeError(
            f"{path}: the annotations are {units.size[1]}x{units.size[0]} pixels, the frames "
            f"{frame_size[1]}x{frame_size[0]}. Give the annotations of this video (or frames of their size)."
        )
    if not any(units.annotated):
        raise EmptyInputError(f"{path} holds no annotation ({len(units.names)} images, none annotated).")
    if frame_count is None and frame_names is None:
        pairs = {i: i for i, a in enumerate(units.annotated) if a}
        return InstanceSource(units, len(units.names), pairs)
    n = frame_count if frame_count is not None else len(frame_names)  # type: ignore[arg-type]
    match = match_frames(frame_names, n, units.names, units.annotated, str(path))
    return InstanceSource(units, n, dict(match.pairs))


__all__ = ["ID_EXTENSIONS", "InstanceKind", "InstanceSource", "detect_format", "open_instance_labels"]
