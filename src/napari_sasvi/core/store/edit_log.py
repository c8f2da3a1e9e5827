"""A store's edit log: the corrections, pinned and skipped re-prompts made after its run.

The log is ``sasvi_edits.json`` inside the store (rewritten atomically after every frame an edit
writes: what was planned, how far it got, its state); the labels each edit replaced are in
``sasvi_undo/NNNN.npy``. This module reads the log and answers the questions the edit planner,
the anchors reader and the napari shell ask of it (which frames are annotated, where the
segments start, the re-prompt timeline). Writing it is the store session's
(:class:`~.session.StoreSession`), which holds the writer lock while it does.

A *segment boundary* is a frame where SASVi reset the tracker and prompted again: frame 0, every
``restart`` and ``anchor`` event of the run, every correction and pinned re-prompt, minus the
skipped ones.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import StoreDamagedError

EDITS = "sasvi_edits.json"
UNDO_DIR = "sasvi_undo"
KINDS = ("correction", "pin", "skip")
#: run events that start a segment (a reset and a new prompt)
BOUNDARY_EVENTS = ("restart", "anchor")


def read_edits(store_path: str | Path) -> list[dict]:
    """Every edit of the store, undone ones included (oldest first)."""
    p = Path(store_path) / EDITS
    if not p.exists():
        return []
    try:
        return json.loads(p.read_text(encoding="utf-8"))["edits"]
    except (ValueError, KeyError, TypeError) as e:
        raise StoreDamagedError(
            f"{Path(store_path)} is a damaged SASVi store: its edit log {EDITS} cannot be read ({e}). "
            "Nothing was changed; restore the file from a backup, or delete it to forget the edits' records."
        ) from None


def active_edits(edits: list[dict]) -> list[dict]:
    """The edits in effect: not undone, and with at least one frame written (an edit that failed or
    was stopped before its first frame changed nothing, so it is no re-prompt and no anchor)."""
    return [e for e in edits if e["state"] != "undone" and e.get("written", 0) > 0]


def store_anchor_frames(store, edits: list[dict] | None = None) -> list[int]:
    """Annotated frames of a store: the run's anchors and the active corrections."""
    sig_anchors = (store.signature.get("overseer") or {}).get("anchors") or {}
    frames = {int(t) for t in sig_anchors.get("frames", [])}
    edits = read_edits(store.path) if edits is None else edits
    frames |= {e["frame"] for e in active_edits(edits) if e["kind"] == "correction"}
    return sorted(frames)


def boundaries(store, edits: list[dict] | None = None) -> list[int]:
    """Segment boundaries (see the module docstring), ascending."""
    edits = read_edits(store.path) if edits is None else edits
    act = active_edits(edits)
    b = {0} | {int(e["frame"]) for e in store.events if e["kind"] in BOUNDARY_EVENTS}
    b |= set(store_anchor_frames(store, edits))
    b |= {e["frame"] for e in act if e["kind"] == "pin"}
    b -= {e["frame"] for e in act if e["kind"] == "skip"}
    return sorted(b)


def reprompts(store, edits: list[dict] | None = None) -> list[dict]:
    """The re-prompt timeline: the run's re-prompts (restarts, anchors, objects added) and the
    edits, each ``{"frame", "kind", "reason", "labels", "source": "run"|"edit", "skipped"}``."""
    edits = read_edits(store.path) if edits is None else edits
    act = active_edits(edits)
    skipped = {e["frame"] for e in act if e["kind"] == "skip"}
    rows = []
    for e in store.events:
        if e["kind"] in (*BOUNDARY_EVENTS, "add_objects"):
            labels = e.get("mask_labels", []) + e.get("point_labels", []) + e.get("labels", [])
            rows.append(
                {
                    "frame": int(e["frame"]),
                    "kind": e["kind"],
                    "reason": e.get("reason", ""),
                    "labels": labels,
                    "source": "run",
                    "skipped": int(e["frame"]) in skipped,
                }
            )
    for e in act:
        if e["kind"] != "skip":
            rows.append(
                {
                    "frame": e["frame"],
                    "kind": "corrected" if e["kind"] == "correction" else "pinned",
                    "reason": f"edit {e['id']}{_prompt_note(e)}: frames {e['span'][0]}-{e['span'][1]} recomputed "
                    f"({e['state']})",
                    "labels": [],
                    "source": "edit",
                    "skipped": False,
                }
            )
    return sorted(rows, key=lambda r: (r["frame"], r["source"]))


def _prompt_note(edit: dict) -> str:
    """`` (prompt of class 3: 2 clicks, a box)`` for an edit made from a prompt, else nothing."""
    p = edit.get("prompt")
    if not p:
        return ""
    parts = []
    if p.get("points"):
        n = len(p["points"])
        parts.append(f"{n} click{'s' if n > 1 else ''}")
    if p.get("box") is not None:
        parts.append("a box")
    what = ", ".join(parts) or "a mask"
    return f" (prompt for object {p.get('object')}: {what})"


__all__ = [
    "BOUNDARY_EVENTS",
    "EDITS",
    "KINDS",
    "UNDO_DIR",
    "active_edits",
    "boundaries",
    "read_edits",
    "reprompts",
    "store_anchor_frames",
]
