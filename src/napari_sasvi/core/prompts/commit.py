"""Committing a prompt: the object's mask on its frame becomes an edit of the store.

A committed prompt is a correction (:mod:`~napari_sasvi.core.engine.edit`) of its frame: the
store's labels there with the object's pixels replaced by the prompt's mask (in a class store the
class's old pixels outside the mask become the table's no-label; in an instance store the track's
become no track). The frame is then an anchor, and the tracker propagates it to the next segment
boundary: only that span is recomputed, and Undo takes it back as any edit. The edit's record
keeps the prompt (clicks, labels, box, the mask it gave, the segmenter), so the store's prompts can
be exported and replayed (:mod:`.files`).
"""

from __future__ import annotations

from collections.abc import Callable, Generator

import numpy as np

from ..engine.edit import EditRequest, iter_edit
from ..errors import InputChangedError, InputError
from ..inputs.frames import open_frames
from ..instances.types import NO_TRACK
from ..store.fingerprint import frame_digest, recorded_digest
from ..store.sasvi_store import SasviStore
from .segmenters import segmenter_for
from .types import ObjectPrompt, check_prompt


def check_prompt_on_store(store, prompt: ObjectPrompt, added: dict[int, int] | None = None) -> None:
    """Refuse a prompt the store cannot take (before anything is computed): a frame outside the
    video or not finished, an object that is no class / track of the store, a bad click or box.
    ``added``: tracks (id -> class) that earlier prompts of a replay add."""
    n, h, w = store.labels.shape
    check_prompt(prompt, (h, w), n)
    if prompt.frame >= store.frames_done:
        raise InputError(
            f"Frame {prompt.frame} is not computed yet ({store.frames_done} of {n} frames are): let the run "
            "finish (or resume it) up to that frame, then prompt."
        )
    classes = store.classes
    if prompt.class_id not in classes.ids or prompt.class_id == classes.no_label:
        raise InputError(
            f"Class {prompt.class_id} is not a class of {classes.name} (ids {', '.join(map(str, classes.ids[:12]))}"
            f"{'...' if len(classes.ids) > 12 else ''})."
        )
    if store.tracks is None:
        if prompt.object != prompt.class_id or prompt.new_track:
            raise InputError("This store has one object per class (no --instances): prompt a class, not a track.")
        return
    table = {k: v.class_id for k, v in store.track_table.items()} | dict(added or {})
    if prompt.object == NO_TRACK:
        raise InputError(f"Track id {NO_TRACK} means no track: give the object a track id from 1 on.")
    if prompt.new_track and prompt.object in table:
        raise InputError(
            f"Track {prompt.object} exists already (a {classes.by_id(table[prompt.object]).name}): "
            f"a new object needs a new id, e.g. {max(table) + 1}."
        )
    if not prompt.new_track:
        if prompt.object not in table:
            raise InputError(
                f"The store has no track {prompt.object}: prompt one of its tracks, or make it a new object."
            )
        if table[prompt.object] != prompt.class_id:
            raise InputError(
                f"Track {prompt.object} is a {classes.by_id(table[prompt.object]).name}, "
                f"not a {classes.by_id(prompt.class_id).name}."
            )


def check_frame_content(store, t: int, image: np.ndarray) -> None:
    """The frame read for a prompt is the one the store was made from (its recorded hash)."""
    known = recorded_digest(store.group, t)
    if known is not None and not np.array_equal(known, frame_digest(image)):
        raise InputChangedError(
            f"Frame {t} differs from the frame the store {store.path} was made from: open the store's own frames. "
            "Nothing was written."
        )


def prompt_label_map(store, prompt: ObjectPrompt, mask: np.ndarray) -> tuple[np.ndarray, dict[int, int]]:
    """The corrected frame a prompt makes (module docstring), and the new tracks it adds."""
    t, obj = prompt.frame, prompt.object
    mask = np.asarray(mask, bool)
    if store.tracks is not None:
        cur = np.array(store.tracks[t])
        cur[cur == obj] = NO_TRACK
        cur[mask] = obj
        return cur, ({obj: prompt.class_id} if prompt.new_track else {})
    cur = np.array(store.labels[t])
    cur[(cur == obj) & ~mask] = store.classes.no_label
    cur[mask] = obj
    return cur, {}


def resolve_mask(store, stack, prompt: ObjectPrompt, segmenter) -> tuple[np.ndarray, dict]:
    """The prompt's mask: segmented from its clicks and box, or its own mask when it has no
    clicks or box (or when ``segmenter`` is None); with what made it."""
    if prompt.has_geometry and segmenter is not None:
        image = stack.frame(prompt.frame)
        check_frame_content(store, prompt.frame, image)
        return segmenter.segment(image, prompt).mask, segmenter.describe()
    if prompt.mask is None:
        raise InputError("The prompt has clicks or a box but no segmenter was given to turn them into a mask.")
    return prompt.mask, {"type": "mask"}


def iter_prompt(
    store_path,
    frames,
    tracker,
    prompt: ObjectPrompt,
    *,
    segmenter="auto",
    cancel: Callable[[], bool] | None = None,
    other_tracker: bool = False,
    made_by: dict | None = None,
) -> Generator:
    """Commit ``prompt`` to the store at ``store_path`` (module docstring) and propagate it.

    Args:
        frames: the store's video (a path or an array; checked as an edit checks it).
        tracker: the tracker the edit propagates with (the store's own; see
            :func:`~napari_sasvi.core.engine.rebuild.edit_tracker`).
        segmenter: a segmenter (:mod:`.segmenters`), ``"auto"``/``"sam2"``/``"grow"`` for
            :func:`~.segmenters.segmenter_for` the tracker, or None to commit the prompt's own mask
            (a replay: with saved masks, or with the masks it resolved first).
        made_by: with ``segmenter=None``, what made the prompt's mask (recorded; default: a mask).

    Yields what :func:`~napari_sasvi.core.engine.edit.iter_edit` yields; returns its
    :class:`~napari_sasvi.core.records.EditSummary`.

    Raises:
        InputError: a prompt the store cannot take (:func:`check_prompt_on_store`), one that
            selects no pixel; nothing is written then.
    """
    store = SasviStore.read(store_path)
    check_prompt_on_store(store, prompt)
    stack = open_frames(frames)
    if isinstance(segmenter, str):
        segmenter = segmenter_for(tracker, segmenter)
    mask, made = resolve_mask(store, stack, prompt, segmenter)
    made_by = made if segmenter is not None or made_by is None else made_by
    if not mask.any():
        raise InputError(
            f"The prompt on frame {prompt.frame} selects no pixel: add a positive click on the object or a box "
            "around it. Nothing was written."
        )
    label_map, new_tracks = prompt_label_map(store, prompt, mask)
    record = {**prompt.with_mask(mask).to_dict(), "segmenter": made_by}
    request = EditRequest("correction", prompt.frame, label_map, new_tracks, prompt=record)
    return (yield from iter_edit(store_path, stack, tracker, request, cancel=cancel, other_tracker=other_tracker))


__all__ = ["check_frame_content", "check_prompt_on_store", "iter_prompt", "prompt_label_map", "resolve_mask"]
