"""Is a SASVi store whole? The checks made before a store is resumed, viewed, exported or edited.

A store whose files are missing or unreadable (array metadata gone, a progress file cut short,
the snapshot's previous output deleted) is named as damaged in one message that says which file
and what to do (:class:`StoreDamagedError`); nothing in it is changed or overwritten.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..datasets import ClassTable
from ..errors import StoreDamagedError

ARRAYS = ("labels", "overseer")
_TODO = "restore it from a backup, or delete the store and run again to start over"


def damaged(path: Path, what: str, todo: str = _TODO) -> StoreDamagedError:
    return StoreDamagedError(f"{path} is a damaged SASVi store: {what}. Nothing was changed; {todo}.")


def _read_json(store: Path, name: str) -> object:
    try:
        return json.loads((store / name).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise damaged(store, f"{name} is missing") from None
    except (OSError, ValueError) as e:  # unreadable, cut short, not UTF-8 or not JSON
        raise damaged(store, f"{name} cannot be read ({e})") from None


def check_files(path: Path) -> None:
    """Check the metadata of the group and of both arrays (the store's ``zarr.json`` exists): each
    readable JSON of the right kind. The ``sasvi`` attributes, when there are some, must hold a
    class table and a signature; a group without them is for the caller to refuse."""
    meta = _read_json(path, "zarr.json")
    if not isinstance(meta, dict) or meta.get("node_type") != "group":
        raise damaged(path, "zarr.json does not describe a zarr group")
    attrs = meta.get("attributes", {})
    sasvi = attrs.get("sasvi") if isinstance(attrs, dict) else None
    if sasvi is not None:
        if not isinstance(sasvi, dict) or not isinstance(sasvi.get("signature"), dict):
            raise damaged(path, "the group attribute 'sasvi' in zarr.json has no valid 'signature'")
        try:
            ClassTable.from_dict(sasvi["classes"])
        except Exception as e:  # noqa: BLE001 - any fault of a hand-edited table is the same damage
            raise damaged(path, f"the class table in zarr.json's 'sasvi' attribute is invalid ({e!r})") from None
    for name in ARRAYS:
        arr = _read_json(path, f"{name}/zarr.json")
        if not isinstance(arr, dict) or arr.get("node_type") != "array":
            raise damaged(path, f"{name}/zarr.json does not describe a zarr array")


def has_sasvi_attrs(path: Path) -> bool:
    """Whether the group's ``zarr.json`` (readable at all) holds a ``sasvi`` attribute."""
    try:
        return "sasvi" in json.loads((path / "zarr.json").read_text(encoding="utf-8")).get("attributes", {})
    except (OSError, ValueError, AttributeError, TypeError):
        return False


def open_arrays(path: Path, group) -> tuple:
    """The labels and overseer arrays of ``group``, each (T, H, W) uint8 of the same shape."""
    arrays = []
    for name in ARRAYS:
        try:
            arr = group[name]
        except Exception as e:  # noqa: BLE001 - zarr's errors for bad metadata vary by field
            raise damaged(path, f"{name}/zarr.json is not valid array metadata ({e})") from None
        if arr.ndim != 3 or arr.dtype != "uint8":
            raise damaged(path, f"{name} is {arr.ndim}-D {arr.dtype}, not (T, H, W) uint8")
        arrays.append(arr)
    if arrays[0].shape != arrays[1].shape:
        raise damaged(path, f"labels {arrays[0].shape} and overseer {arrays[1].shape} differ in shape")
    return tuple(arrays)


def read_progress(path: Path, name: str, n_frames: int) -> dict:
    """The progress file ``name`` of the store, checked: frames done within the video, an event
    list, a snapshot that is None or names its frame. A store without one has no finished frame
    (a run stopped between creating the arrays and recording its start)."""
    if not (path / name).exists():
        return {"frames_done": 0, "events": [], "snapshot": None}
    progress = _read_json(path, name)
    todo = f"restore {name} from a backup, or delete the store and run again to start over"
    if not isinstance(progress, dict):
        raise damaged(path, f"{name} holds no progress record", todo)
    done, events, snap = progress.get("frames_done"), progress.get("events"), progress.get("snapshot")
    if not isinstance(done, int) or isinstance(done, bool) or not 0 <= done <= n_frames:
        raise damaged(path, f"{name} says {done!r} frames are done (the video has {n_frames})", todo)
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise damaged(path, f"{name} holds no valid event log", todo)
    if snap is not None and not (isinstance(snap, dict) and isinstance(snap.get("frame"), int)):
        raise damaged(path, f"{name} holds an invalid snapshot", todo)
    return progress


__all__ = ["ARRAYS", "check_files", "damaged", "has_sasvi_attrs", "open_arrays", "read_progress"]
