"""An nnU-Net v2 raw dataset from one or more stores: RGB frames, label PNGs, ``dataset.json`` and
video-wise ``splits_final.json``."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Generator, Sequence

import numpy as np

from ..datasets import ClassTable
from ..errors import InputError
from ..fsutil import atomic_path, atomic_write_text, check_output_path
from .common import WRITTEN_BY, ExportProgress, ExportSummary, check_every, frame_range, open_sources, written_by_us


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

    check_every(every)
    if not 1 <= int(dataset_id) <= 999:
        raise InputError(f"The nnU-Net dataset id must lie in 1..999, got {dataset_id}.")
    if not dataset_name or not all(c.isalnum() or c in "-" for c in dataset_name):
        raise InputError(f"The nnU-Net dataset name must be letters, digits and '-', got {dataset_name!r}.")
    sources, classes, notes = open_sources(stores, array, frames)
    for s in sources:
        s.stack()  # every video's frames are found and checked before anything is written
    root = check_output_path(out, "nnU-Net raw folder")
    ds = root / f"Dataset{int(dataset_id):03d}_{dataset_name}"
    marker = ds / "dataset.json"
    if ds.exists() and any(ds.iterdir()):
        if not overwrite:
            raise InputError(f"{ds} exists; pass --overwrite to replace it, or choose another dataset id or name.")
        if not written_by_us(marker):
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
    total = sum(len(frame_range(s, every)) for s in sources)
    done, seen_ignore, per_video, cases = 0, False, {}, {}
    for s in sources:
        cases[s.name] = []
        for t in frame_range(s, every):
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
