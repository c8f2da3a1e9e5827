"""Prompt files: a store's prompts as JSON, to replay on another machine or with another model.

``napari-sasvi edit STORE --export-prompts FILE`` writes the prompts in effect (edits made from
a prompt and not undone, oldest first); ``napari-sasvi edit STORE --prompts FILE`` commits each
prompt of a file in turn, as if it were clicked again (:func:`~.commit.iter_prompt`). The file::

    {"format": "napari-sasvi prompts", "version": 1,
     "video": {"name", "shape", "fingerprint", "frame_hashes": {"12": "<blake2b-128 hex>", ...}},
     "classes": {...the store's class table...}, "instances": false,
     "prompts": [{"frame", "object", "class", "points": [[x, y], ...], "labels": [1, 0, ...],
                  "box": [x0, y0, x1, y1] | null, "mask": {"size": [H, W], "runs": [...]},
                  "segmenter": {...}, "new_track": true | absent}, ...]}

A replay re-segments a prompt's clicks and box with the store's segmenter (another model size
gives its own masks), or with ``saved_masks`` commits the masks the file holds. Before anything is
written every prompt is checked: a file made on another video (its shape, its file names, the
content hash of each prompted frame) or with another class table is refused as a whole, as is one
prompt the store cannot take (:func:`~.commit.check_prompt_on_store`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..fsutil import atomic_path
from ..inputs.frames import open_frames
from ..store.edit_log import active_edits, read_edits
from ..store.fingerprint import recorded_digest
from ..store.sasvi_store import SasviStore
from .commit import check_prompt_on_store, iter_prompt, resolve_mask
from .segmenters import segmenter_for
from .types import ObjectPrompt

FORMAT = "napari-sasvi prompts"
VERSION = 1


@dataclass(frozen=True)
class PromptReplay:
    """A replay reached prompt ``index`` (0-based) of ``total``."""

    index: int
    total: int
    prompt: ObjectPrompt


def store_prompts(store) -> list[dict]:
    """The prompts in effect in a store (the ``prompt`` of each active edit made from one)."""
    return [e["prompt"] for e in active_edits(read_edits(store.path)) if e.get("prompt")]


def not_replayed(store) -> list[str]:
    """What a replay of the store's prompt file would not reproduce: edits in effect that are not
    prompts (painted corrections, pins, skips), and prompts whose propagation was cancelled (a
    replay propagates them in full). One line each, for the user."""
    out = []
    for e in active_edits(read_edits(store.path)):
        if not e.get("prompt"):
            out.append(f"edit {e['id']} ({e['kind']} at frame {e['frame']}) is not a prompt: it is not in the file")
        elif e.get("state") == "cancelled":
            out.append(f"edit {e['id']} (a prompt at frame {e['frame']}) was cancelled: a replay propagates it in full")
    return out


def _frame_hash(store, t: int) -> str | None:
    h = recorded_digest(store.group, t)
    return None if h is None else bytes(h).hex()


def export_prompts(store) -> dict:
    """The prompt file of ``store`` (module docstring) as a dict."""
    prompts = store_prompts(store)
    sig = store.signature.get("input", {})
    frames = sorted({int(p["frame"]) for p in prompts})
    hashes = {str(t): h for t in frames if (h := _frame_hash(store, t)) is not None}
    return {
        "format": FORMAT,
        "version": VERSION,
        "video": {
            "name": sig.get("name"),
            "shape": sig.get("shape"),
            "fingerprint": sig.get("fingerprint"),
            "frame_hashes": hashes,
        },
        "classes": store.classes.to_dict(),
        "instances": store.tracks is not None,
        "prompts": prompts,
    }


def write_prompt_file(store, path: str | Path) -> int:
    """Write ``store``'s prompt file to ``path`` (atomically); returns how many prompts it holds.
    A store with no prompt is an :class:`InputError` (nothing is written)."""
    data = export_prompts(store)
    if not data["prompts"]:
        raise InputError(
            f"{store.path} has no prompts in effect (no edit made from clicks, a box or a prompt file): nothing to export."
        )
    path = Path(path)
    if path.suffix.lower() != ".json":
        raise InputError(f"Write the prompts to a .json file, not {path.name}.")
    if not path.parent.is_dir():
        raise InputError(f"{path.parent} is not a folder: create it first.")
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=1), encoding="utf-8")
    return len(data["prompts"])


def _same_classes(a: dict, b: dict) -> bool:
    def key(d):
        if not isinstance(d, dict):
            raise TypeError('"classes" is a class table: {"name", "classes": [{"id", "name"}, ...], ...}')
        return sorted((int(c["id"]), str(c["name"]).lower()) for c in d.get("classes", [])), d.get("no_label")

    return key(a) == key(b)


def read_prompt_file(path: str | Path, store) -> list[ObjectPrompt]:
    """The prompts of the file at ``path``, checked against ``store`` (module docstring)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"The prompt file {path} does not exist.") from None
    except (OSError, ValueError) as e:
        raise InputError(f"The prompt file {path} cannot be read ({e}).") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(
            f"{path} is not a napari-sasvi prompt file (write one with napari-sasvi edit --export-prompts)."
        )
    try:
        return _checked_prompts(data, path, store)
    except InputError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:  # a field of the wrong kind
        raise InputError(
            f"{path.name} is not a well-formed prompt file ({type(e).__name__}: {e}); write one with napari-sasvi "
            "edit --export-prompts. Nothing was written."
        ) from None


def _checked_prompts(data: dict, path: Path, store) -> list[ObjectPrompt]:
    if not isinstance(data.get("version", 0), int) or isinstance(data.get("version"), bool):
        raise ValueError(f"version {data.get('version')!r} is not an integer")
    if data.get("version", 0) > VERSION:
        raise InputError(
            f"{path} is a version {data['version']} prompt file; this napari-sasvi reads version {VERSION}."
        )
    video, sig = data.get("video") or {}, store.signature.get("input", {})
    if not isinstance(video, dict) or not isinstance(video.get("frame_hashes") or {}, dict):
        raise TypeError('"video" is {"name", "shape", "fingerprint", "frame_hashes": {frame: hash}}')
    if list(video.get("shape") or []) != list(sig.get("shape") or []) or video.get("fingerprint") != sig.get(
        "fingerprint"
    ):
        raise InputError(
            f"{path.name} was made on another video ({video.get('name')}, shape {video.get('shape')}) than the store "
            f"{store.path.name} ({sig.get('name')}, shape {sig.get('shape')}): nothing was written."
        )
    for t, h in (video.get("frame_hashes") or {}).items():
        mine = _frame_hash(store, int(t)) if 0 <= int(t) < store.n_frames else None
        if mine is not None and mine != h:
            raise InputError(
                f"{path.name} was made on another video: frame {t}'s content differs from the store's. Nothing was written."
            )
    if not _same_classes(data.get("classes") or {}, store.classes.to_dict()):
        raise InputError(
            f"{path.name} was made with the class table {(data.get('classes') or {}).get('name')!r}, the store with "
            f"{store.classes.name!r} (other ids or names): nothing was written."
        )
    if bool(data.get("instances")) != (store.tracks is not None):
        kind = "an instance store (--instances)" if data.get("instances") else "a class store"
        raise InputError(f"{path.name} holds the prompts of {kind}; {store.path.name} is not one. Nothing was written.")
    entries = data.get("prompts")
    if not isinstance(entries, list) or not entries:
        raise InputError(f"{path.name} holds no prompts.")
    size = tuple(store.labels.shape[1:])
    prompts = [ObjectPrompt.from_dict(d, f"{path.name}: prompt {i + 1}", size) for i, d in enumerate(entries)]
    added: dict[int, int] = {}  # tracks the file's earlier prompts add
    for i, p in enumerate(prompts):
        try:
            check_prompt_on_store(store, p, added)
        except InputError as e:
            raise InputError(f"{path.name}: prompt {i + 1}: {e} Nothing was written.") from None
        if p.new_track:
            added[p.object] = p.class_id
    return prompts


def iter_replay(
    store_path,
    frames,
    tracker,
    path: str | Path,
    *,
    saved_masks: bool = False,
    segmenter="auto",
    cancel: Callable[[], bool] | None = None,
    other_tracker: bool = False,
) -> Generator:
    """Commit every prompt of the file at ``path`` to the store, in order (module docstring).
    Yields :class:`PromptReplay` before each prompt and what its edit yields; returns the edits'
    summaries. Cancel stops between frames (the prompts committed so far stay)."""
    store = SasviStore.read(store_path)
    prompts = read_prompt_file(path, store)
    seg = None if saved_masks else segmenter_for(tracker, segmenter) if isinstance(segmenter, str) else segmenter
    if saved_masks:
        missing = [i + 1 for i, p in enumerate(prompts) if p.mask is None]
        if missing:
            raise InputError(
                f"Prompt(s) {missing} of {Path(path).name} have no saved mask: replay without saved masks."
            )
    # every mask before the first commit (a mask depends on its prompt and frame alone): one that
    # selects nothing refuses the file with nothing written, not half of it replayed
    stack = open_frames(frames)
    resolved = []
    for i, p in enumerate(prompts):
        mask, made_by = resolve_mask(store, stack, p, seg)
        if not mask.any():
            raise InputError(
                f"{Path(path).name}: prompt {i + 1} (object {p.object}, frame {p.frame}) selects no pixel with "
                f"{made_by.get('type')}: replay with --saved-masks, or fix the prompt. Nothing was written."
            )
        resolved.append((p.with_mask(mask), made_by))
    summaries = []
    for i, (p, made_by) in enumerate(resolved):
        yield PromptReplay(i, len(prompts), p)
        s = yield from iter_prompt(
            store_path, stack, tracker, p, segmenter=None, cancel=cancel, other_tracker=other_tracker, made_by=made_by
        )
        summaries.append(s)
        if s.cancelled:
            break
    return summaries


__all__ = [
    "FORMAT",
    "PromptReplay",
    "export_prompts",
    "not_replayed",
    "iter_replay",
    "read_prompt_file",
    "store_prompts",
    "write_prompt_file",
]
