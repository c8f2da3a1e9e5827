"""Exports of finished stores for what users train next: an nnU-Net v2 raw dataset, COCO-video
(YouTube-VIS style) JSON with RLE masks, palette PNG folders, and an overlay MP4 for a quick look.

Every export reads a store one frame at a time, writes each file atomically, exports only the
store's finished frames (and says how many), and never writes outside the output path given. The
frames an export needs (nnU-Net images, the overlay) are the store's own: the path recorded in the
store, or ``frames=`` when they moved; either way each frame read is checked against the hash the
run recorded, so another video is refused rather than paired with these labels.

Each ``iter_export_*`` is a generator: it yields one :class:`ExportProgress` per frame written and
returns an :class:`ExportSummary`; :func:`export` drives one to the end.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .datasets import ClassTable
from .errors import InputError
from .fsutil import atomic_path, atomic_write_text, check_output_path
from .progress import drain

FORMATS = ("nnunet", "coco-video", "png", "overlay-mp4")
WRITTEN_BY = "napari-sasvi"


@dataclass(frozen=True)
class ExportProgress:
    """``done`` of ``total`` frames exported (all stores together); ``video`` is being written."""

    done: int
    total: int
    video: str


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote: its main path, frames per video, and notes for the user (partial
    stores, dropped labels, ...)."""

    format: str
    path: Path
    frames: dict[str, int]
    notes: list[str] = field(default_factory=list)


# -- sources --------------------------------------------------------------------------------------
@dataclass
class _Source:
    name: str
    store: Any  # SasviStore
    array: Any  # zarr array (T, H, W)
    n: int  # finished frames
    frames_arg: Any = None

    def stack(self):
        """The store's frames, checked against the run's recorded input (shape and file names),
        each frame read then checked against its recorded hash by :meth:`frame`."""
        from .fingerprint import InputLedger, same_video
        from .frames import open_frames

        if getattr(self, "_stack", None) is not None:
            return self._stack
        where = self.frames_arg if self.frames_arg is not None else self.store.frames_path
        if where is None:
            raise InputError(
                f"{self.store.path} records no frames (it was made from an array); give the frames with --frames."
            )
        if isinstance(where, (str, os.PathLike)) and not Path(where).exists():
            raise InputError(
                f"The frames of {self.store.path} are not at {where} any more; give their new place with --frames."
            )
        stack = open_frames(where, name=self.name)
        want = self.store.signature.get("input", {})
        if want and not same_video(stack, want):
            raise InputError(
                f"The frames at {where} ({stack.shape[0]} frames) are not the video {self.store.path} was made "
                f"from ({want.get('name')}, {want.get('shape', ['?'])[0]} frames); give the right ones with --frames."
            )
        # every frame read is compared with the hash the run recorded (read-only: nothing is written)
        stack.on_read = InputLedger(self.store.group, stack, str(self.store.path), read_only=True).check
        self._stack = stack
        return stack

    def frame(self, t: int) -> np.ndarray:
        return self.stack().frame(t)

    def labels(self, t: int) -> np.ndarray:
        """Frame t's labels; a value that is neither a class of the store's table nor its no-label
        value is an error (an export never guesses what it means)."""
        lab = np.asarray(self.array[t])
        if getattr(self, "_valid", None) is None:
            classes = self.store.classes
            self._valid = np.zeros(256, bool)
            self._valid[list(classes.ids)] = True
            self._valid[classes.no_label] = True
        if not self._valid[lab].all():
            bad = sorted(int(v) for v in np.unique(lab[~self._valid[lab]]))
            raise InputError(
                f"{self.name}: frame {t} holds label values {bad} that are not classes of the store's table "
                f"{self.store.classes.name!r}; nothing more is exported. Fix the store (napari-sasvi edit) first."
            )
        return lab


def find_stores(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Stores named directly, or every store inside a folder (a batch run's output)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if (p / "zarr.json").exists():
            out.append(p)
        elif p.is_dir():
            found = sorted(q for q in p.iterdir() if (q / "zarr.json").exists())
            if not found:
                raise InputError(f"{p} is neither a SASVi store nor a folder of stores (no zarr.json inside).")
            out.extend(found)
        else:
            raise InputError(f"{p} does not exist; give a store (.zarr folder) or a folder of stores.")
    if not out:
        raise InputError("No store given to export.")
    return out


def _open_sources(stores, array: str, frames: Sequence | None) -> tuple[list[_Source], ClassTable, list[str]]:
    from .store import SasviStore

    paths = find_stores(stores) if not isinstance(stores, (str, os.PathLike)) else find_stores([stores])
    if frames is not None and len(frames) != len(paths):
        raise InputError(f"{len(frames)} frame paths for {len(paths)} stores; give one --frames per store.")
    if array not in ("labels", "overseer"):
        raise InputError(f"array must be labels or overseer, got {array!r}.")
    sources, notes, table = [], [], None
    for i, p in enumerate(paths):
        store = SasviStore.read(p)
        classes = store.classes
        if table is None:
            table = classes
        elif classes.to_dict() != table.to_dict():
            raise InputError(
                f"{p} uses the class table {classes.name!r}, the other stores {table.name!r}; "
                "export stores of one class table together."
            )
        base = p.resolve().name  # "." or ".." name the folder they stand for
        name = base[: -len(".zarr")] if base.endswith(".zarr") else base
        n = min(store.frames_done, store.n_frames)
        if n == 0:
            raise InputError(f"{p} holds no finished frame yet; run (or resume) it first.")
        if n < store.n_frames:
            notes.append(f"{name}: only {n} of {store.n_frames} frames are finished; those are exported.")
        sources.append(_Source(name, store, store.group[array], n, frames[i] if frames is not None else None))
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise InputError(f"Two stores share a name ({', '.join(sorted(names))}); rename one.")
    return sources, table, notes


def _frames(src: _Source, every: int) -> range:
    return range(0, src.n, every)


def _check_every(every: int) -> None:
    if every < 1:
        raise InputError(f"every must be 1 or more, got {every}.")


def _written_by_us(marker: Path) -> bool:
    try:
        return json.loads(marker.read_text(encoding="utf-8")).get("written_by", "").startswith(WRITTEN_BY)
    except (OSError, ValueError, AttributeError):
        return False


# -- nnU-Net v2 -----------------------------------------------------------------------------------
def nnunet_label_values(classes: ClassTable) -> tuple[dict[int, int], dict[str, int], int | None]:
    """SASVi class id -> nnU-Net label value, the dataset.json ``labels`` block, and the value of
    unlabelled pixels (nnU-Net's ``ignore`` label, the highest value) or None.

    nnU-Net needs consecutive values from 0 and treats 0 as background (left out of its Dice loss
    and its scores). When the table's no-label value is one of its classes (CholecSeg8k's "Black
    Background", id 0), that class is value 0 and the others follow in id order. Otherwise (CaDIS:
    255 = unlabelled) no class is background: value 0 is an empty "background" that no pixel has,
    the classes are 1..N in id order (so CaDIS's Pupil, id 0, is trained and scored like the rest),
    and unlabelled pixels are ``ignore`` = N + 1."""
    ids = sorted(classes.ids)
    labels: dict[str, int] = {}
    if classes.no_label in ids:
        order = [classes.no_label] + [c for c in ids if c != classes.no_label]
        to_value = {cid: k for k, cid in enumerate(order)}
        ignore = None
    else:
        to_value = {cid: k + 1 for k, cid in enumerate(ids)}
        labels["background"] = 0
        ignore = len(ids) + 1
    for cid in sorted(to_value, key=to_value.get):
        name = "background" if to_value[cid] == 0 else classes.by_id(cid).name
        labels[name if name not in labels else f"{name} ({cid})"] = to_value[cid]
    return to_value, labels, ignore


def iter_export_nnunet(
    stores,
    out: str | os.PathLike,
    *,
    dataset_id: int = 501,
    dataset_name: str = "SASVi",
    every: int = 1,
    array: str = "labels",
    frames: Sequence | None = None,
    overwrite: bool = False,
) -> Generator[ExportProgress, None, ExportSummary]:
    """Write an nnU-Net v2 raw dataset ``out/DatasetXXX_Name`` from one or more stores: RGB frames
    as ``imagesTr/<video>_<frame>_0000.png`` (channels R, G, B), labels as ``labelsTr/<video>_<frame>.png``,
    ``dataset.json``, and ``splits_final.json`` with one fold per group of videos (frames of one
    video never on both sides of a split; copy it to nnUNet_preprocessed/DatasetXXX_Name/).

    Label values are the class ids' ranks (nnU-Net needs 0..N-1; value 0 is named "background" as
    nnU-Net requires); unlabelled pixels get the ``ignore`` label. dataset.json's ``napari_sasvi``
    block maps every value back to its class id and name.
    """
    from PIL import Image

    _check_every(every)
    if not 1 <= int(dataset_id) <= 999:
        raise InputError(f"The nnU-Net dataset id must lie in 1..999, got {dataset_id}.")
    if not dataset_name or not all(c.isalnum() or c in "-" for c in dataset_name):
        raise InputError(f"The nnU-Net dataset name must be letters, digits and '-', got {dataset_name!r}.")
    sources, classes, notes = _open_sources(stores, array, frames)
    for s in sources:
        s.stack()  # every video's frames are found and checked before anything is written
    root = check_output_path(out, "nnU-Net raw folder")
    ds = root / f"Dataset{int(dataset_id):03d}_{dataset_name}"
    marker = ds / "dataset.json"
    if ds.exists() and any(ds.iterdir()):
        if not overwrite:
            raise InputError(f"{ds} exists; pass --overwrite to replace it, or choose another dataset id or name.")
        if not _written_by_us(marker):
            raise InputError(f"{ds} was not written by napari-sasvi; it is left as it is: choose another dataset id.")
        for sub in ("imagesTr", "labelsTr"):
            shutil.rmtree(ds / sub, ignore_errors=True)
    images, labels_dir = ds / "imagesTr", ds / "labelsTr"
    images.mkdir(parents=True, exist_ok=True)
    labels_dir.mkdir(parents=True, exist_ok=True)
    # a provisional dataset.json: an export that stops half-way is known as ours (--overwrite replaces it)
    atomic_write_text(marker, json.dumps({"written_by": WRITTEN_BY, "napari_sasvi": {"state": "incomplete"}}))
    to_value, label_block, ignore = nnunet_label_values(classes)
    lut = np.full(256, ignore if ignore is not None else 0, np.uint8)
    for cid, v in to_value.items():
        lut[cid] = v
    total = sum(len(_frames(s, every)) for s in sources)
    done, seen_ignore, per_video, cases = 0, False, {}, {}
    for s in sources:
        cases[s.name] = []
        for t in _frames(s, every):
            case = f"{s.name}_{t:06d}"
            lab = lut[s.labels(t)]
            seen_ignore |= ignore is not None and bool((lab == ignore).any())
            with atomic_path(images / f"{case}_0000.png") as tmp:
                Image.fromarray(s.frame(t)).save(tmp, format="PNG")
            with atomic_path(labels_dir / f"{case}.png") as tmp:
                Image.fromarray(lab).save(tmp, format="PNG")
            cases[s.name].append(case)
            done += 1
            yield ExportProgress(done, total, s.name)
        per_video[s.name] = len(cases[s.name])
    if ignore is not None and seen_ignore:
        label_block["ignore"] = ignore
    elif ignore is not None:
        notes.append("no pixel is unlabelled, so dataset.json has no ignore label")
    dataset = {
        "channel_names": {"0": "R", "1": "G", "2": "B"},
        "labels": label_block,
        "numTraining": done,
        "file_ending": ".png",
        "name": dataset_name,
        "written_by": WRITTEN_BY,
        "description": f"SASVi {array} of {len(sources)} video(s), every {every} frame(s), exported by napari-sasvi",
        "napari_sasvi": {
            "array": array,
            "class_table": classes.name,
            "values": {
                str(v): {"class_id": cid, "name": classes.by_id(cid).name} for cid, v in sorted(to_value.items())
            },
            "ignore": {"value": ignore, "source_value": classes.no_label} if "ignore" in label_block else None,
            "videos": {s.name: {"store": str(s.store.path.resolve()), "frames": per_video[s.name]} for s in sources},
        },
    }
    atomic_write_text(marker, json.dumps(dataset, indent=2))
    atomic_write_text(ds / "splits_final.json", json.dumps(video_splits(cases), indent=1))
    if len(sources) < 2:
        notes.append("one video: splits_final.json has a single fold that validates on training frames")
    return ExportSummary("nnunet", ds, per_video, notes)


def video_splits(cases: dict[str, list[str]], folds: int = 5) -> list[dict[str, list[str]]]:
    """nnU-Net splits (a list of {"train", "val"}) that keep each video's frames on one side: the
    videos are dealt round-robin into ``min(folds, videos)`` folds."""
    videos = sorted(cases)
    if len(videos) < 2:
        allc = [c for v in videos for c in cases[v]]
        return [{"train": allc, "val": allc}]
    k = min(folds, len(videos))
    groups = [videos[i::k] for i in range(k)]
    return [
        {
            "train": [c for v in videos if v not in g for c in cases[v]],
            "val": [c for v in g for c in cases[v]],
        }
        for g in groups
    ]


# -- COCO-video (YouTube-VIS style) ---------------------------------------------------------------
def _rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils

    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(r["size"][0]), int(r["size"][1])], "counts": r["counts"].decode("ascii")}


def _bbox(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    return [float(x0), float(y0), float(xs.max() - x0 + 1), float(ys.max() - y0 + 1)]


def iter_export_coco_video(
    stores,
    out: str | os.PathLike,
    *,
    every: int = 1,
    array: str = "labels",
    overwrite: bool = False,
) -> Generator[ExportProgress, None, ExportSummary]:
    """Write one YouTube-VIS-style JSON for one or more stores: ``videos`` (file names, size,
    length), ``categories`` (the class table: id = SASVi class id, name, colour), and one
    ``annotations`` track per class present in a video: ``segmentations`` (COCO RLE per frame, null
    where the class is absent), ``areas``, ``bboxes`` (x, y, w, h) and ``score``.

    ``score`` is the track's agreement with the overseer: the mean IoU between SASVi's mask and the
    overseer's frame-wise mask of that class over the frames where either has it (null for the
    overseer's own array: nothing to compare with). SASVi has no per-mask probability; this says how far propagation went
    from the frame-wise model.
    """
    _check_every(every)
    target = check_output_path(out, "COCO-video JSON")
    if target.suffix.lower() != ".json":
        raise InputError(f"Give the COCO-video export a .json file name, got {target.name}.")
    if target.exists() and not overwrite:
        raise InputError(f"{target} exists; pass --overwrite to replace it, or choose another name.")
    sources, classes, notes = _open_sources(stores, array, None)
    total = sum(len(_frames(s, every)) for s in sources)
    videos, annotations, done, per_video = [], [], 0, {}
    for vid, s in enumerate(sources, start=1):
        idx = list(_frames(s, every))
        _, h, w = (int(x) for x in s.array.shape)
        names = _frame_file_names(s, idx)
        videos.append({"id": vid, "name": s.name, "file_names": names, "width": w, "height": h, "length": len(idx)})
        pairs = ((s.labels(t), np.asarray(s.store.overseer[t]) if array == "labels" else None) for t in idx)
        tracks = yield from _tracks(
            pairs, len(idx), classes, lambda k, base=done, video=s.name: ExportProgress(base + k, total, video)
        )
        done += len(idx)
        for tr in tracks:
            annotations.append({"id": len(annotations) + 1, "video_id": vid, "height": h, "width": w, **tr})
        per_video[s.name] = len(idx)
    info = {
        "description": f"SASVi {array}, exported by napari-sasvi (one track per class and video)",
        "every": every,
        "score": "mean IoU with the overseer's frame-wise mask over the frames where either has the class",
    }
    doc = coco_video_document(videos, annotations, classes, info)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, json.dumps(doc))
    return ExportSummary("coco-video", target, per_video, notes)


def _tracks(pairs, n: int, classes: ClassTable, progress) -> Generator[Any, None, list[dict]]:
    """One track per class present in ``pairs`` ((labels, reference or None) per frame): RLE,
    area and box per frame (None where absent), and the mean IoU with the reference as its score
    (None without a reference). Yields ``progress(k)`` after frame k (1-based)."""
    tracks: dict[int, dict] = {}
    for k, (lab, ref) in enumerate(pairs):
        for cid in classes.ids:
            m = lab == cid
            r = ref == cid if ref is not None else None
            present = bool(m.any())
            if not present and (r is None or not r.any()):
                continue
            tr = tracks.setdefault(
                cid, {"segmentations": [None] * n, "areas": [None] * n, "bboxes": [None] * n, "iou": []}
            )
            if present:
                tr["segmentations"][k] = _rle(m)
                tr["areas"][k] = float(m.sum())
                tr["bboxes"][k] = _bbox(m)
            if r is not None:
                union = np.logical_or(m, r).sum()
                tr["iou"].append(float(np.logical_and(m, r).sum() / union) if union else 1.0)
        yield progress(k + 1)
    out = []
    for cid in sorted(tracks):
        tr = tracks[cid]
        if all(seg is None for seg in tr["segmentations"]):
            continue  # only the reference had it: no track
        score = round(float(np.mean(tr["iou"])), 4) if tr["iou"] else None
        out.append(
            {
                "category_id": int(cid),
                "iscrowd": 0,
                "segmentations": tr["segmentations"],
                "areas": tr["areas"],
                "bboxes": tr["bboxes"],
                "score": score,
            }
        )
    return out


def coco_video_document(videos: list[dict], annotations: list[dict], classes: ClassTable, info: dict) -> dict:
    """The YouTube-VIS-style document: ``info``, ``videos``, ``categories`` (the class table, id =
    SASVi class id), ``annotations``."""
    return {
        "info": {"written_by": WRITTEN_BY, "class_table": classes.name, **info},
        "licenses": [],
        "videos": videos,
        "categories": [
            {"id": int(c.id), "name": c.name, "supercategory": classes.name, "color": list(c.color)} for c in classes
        ],
        "annotations": annotations,
    }


def _frame_file_names(src: _Source, idx: list[int]) -> list[str]:
    """``<video>/<frame file>`` for a frame folder, ``<video>/<index>.jpg`` otherwise (the layout
    ``napari-sasvi frames`` writes)."""
    fp = src.store.frames_path
    files = None
    if fp is not None and Path(fp).is_dir():
        from .frames import list_frame_files

        try:
            files = list_frame_files(fp)
        except InputError:
            files = None
    if files is not None and len(files) >= src.n:
        return [f"{src.name}/{files[t].name}" for t in idx]
    return [f"{src.name}/{t:010d}.jpg" for t in idx]


# -- palette PNGs ---------------------------------------------------------------------------------
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
    from .export import iter_export_label_pngs
    from .segment import frame_names

    _check_every(every)
    sources, classes, notes = _open_sources(stores, array, None)
    root = check_output_path(out, "PNG folder")
    dirs = {s.name: root if len(sources) == 1 else root / s.name for s in sources}
    suffix = "_rgb_mask.png" if reference_layout else ".png"
    for s in sources:
        d = dirs[s.name]
        if d.is_dir() and any(p.name.endswith(suffix) for p in d.iterdir()) and not overwrite:
            raise InputError(
                f"{d} already holds label PNGs; pass --overwrite to replace them, or choose another folder."
            )
    total = sum(len(_frames(s, every)) for s in sources)
    done, per_video = 0, {}
    for s in sources:
        idx = list(_frames(s, every))
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

    def __init__(self, src: _Source, idx: list[int]):
        self.src, self.idx = src, idx
        self.shape = (len(idx), *src.array.shape[1:])

    def __getitem__(self, k: int):
        return self.src.labels(self.idx[k])


def _stem_names(src: _Source, frame_names) -> list[str]:
    fp = src.store.frames_path
    if fp is not None and Path(fp).is_dir():
        try:
            names = frame_names(src.stack())
        except InputError:
            names = None
        if names is not None:
            return names
    return [f"{t:010d}" for t in range(src.n)]


# -- overlay MP4 ----------------------------------------------------------------------------------
def overlay(frame: np.ndarray, labels: np.ndarray, classes: ClassTable, opacity: float) -> np.ndarray:
    """Frame with the class colours blended in at ``opacity`` (unlabelled pixels untouched)."""
    lut = np.zeros((256, 3), np.float32)
    has = np.zeros(256, bool)
    for c in classes:
        lut[c.id] = c.color[:3]
        has[c.id] = True
    if classes.no_label in classes.ids and all(v == 0 for v in classes.by_id(classes.no_label).color[:3]):
        has[classes.no_label] = False  # a black background class: leave the frame visible
    colour = lut[labels]
    a = (has[labels] * float(opacity))[..., None]
    return (frame.astype(np.float32) * (1 - a) + colour * a).round().clip(0, 255).astype(np.uint8)


def iter_export_overlay_mp4(
    store,
    out: str | os.PathLike,
    *,
    opacity: float = 0.5,
    fps: float | None = None,
    every: int = 1,
    array: str = "labels",
    frames: Any = None,
    overwrite: bool = False,
) -> Generator[ExportProgress, None, ExportSummary]:
    """An H.264 MP4 (MPEG-4 part 2 where this PyAV has no libx264) of the frames with the labels
    blended at ``opacity``; ``fps`` defaults to the source video's rate, else 25."""
    import av

    from .video import iter_write_video

    _check_every(every)
    if not 0 <= opacity <= 1:
        raise InputError(f"opacity must lie in 0..1, got {opacity}.")
    if fps is not None and not fps > 0:
        raise InputError(f"fps must be above 0, got {fps}.")
    target = check_output_path(out, "overlay video")
    if target.suffix.lower() not in (".mp4", ".mov", ".mkv"):
        raise InputError(f"Give the overlay an .mp4 file name, got {target.name}.")
    if target.exists() and not overwrite:
        raise InputError(f"{target} exists; pass --overwrite to replace it, or choose another name.")
    sources, classes, notes = _open_sources([store], array, [frames] if frames is not None else None)
    if len(sources) != 1:
        raise InputError(f"An overlay video shows one store; {len(sources)} were given.")
    s = sources[0]
    stack = s.stack()
    # every N-th frame at the source's rate / N keeps the video's real duration
    rate = fps or (getattr(stack.source, "fps", None) or 25.0) / every
    idx = list(_frames(s, every))
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    blended = (overlay(s.frame(t), s.labels(t), classes, opacity) for t in idx)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:  # the temporary name keeps the suffix PyAV picks the container by
        for n in iter_write_video(tmp, blended, fps=rate, codec=codec):
            yield ExportProgress(n, len(idx), s.name)
    return ExportSummary("overlay-mp4", target, {s.name: len(idx)}, [*notes, f"codec {codec}, {rate:g} frames/s"])


# -- one entry point ------------------------------------------------------------------------------
def iter_export(stores, to: str, out, **kwargs) -> Generator[ExportProgress, None, ExportSummary]:
    """Dispatch to the exporter of ``to`` (one of :data:`FORMATS`)."""
    if to not in FORMATS:
        raise InputError(f"Unknown export format {to!r}; choose one of {', '.join(FORMATS)}.")
    fn = {
        "nnunet": iter_export_nnunet,
        "coco-video": iter_export_coco_video,
        "png": iter_export_png,
        "overlay-mp4": iter_export_overlay_mp4,
    }[to]
    if to == "overlay-mp4":
        paths = find_stores(stores if not isinstance(stores, (str, os.PathLike)) else [stores])
        if len(paths) != 1:
            raise InputError(f"An overlay video shows one store; {len(paths)} were given (export them one by one).")
        stores = paths[0]
    return (yield from fn(stores, out, **kwargs))


def export(stores, to: str, out, **kwargs) -> ExportSummary:
    """Drive :func:`iter_export` to the end; returns its :class:`ExportSummary`."""
    return drain(iter_export(stores, to, out, **kwargs))


__all__ = [
    "FORMATS",
    "ExportProgress",
    "ExportSummary",
    "export",
    "find_stores",
    "iter_export",
    "iter_export_coco_video",
    "iter_export_nnunet",
    "iter_export_overlay_mp4",
    "iter_export_png",
    "nnunet_label_values",
    "overlay",
    "video_splits",
]
