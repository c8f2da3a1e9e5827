"""The CLI's end-of-run summary of a video's decisions: counts per kind, then who was re-prompted,
faded, back-filled or lost.

A 5000-frame run can log hundreds of per-class re-prompts; the summary stays a few lines (one per
kind, frames listed only for the rare ``lost`` objects, and shortened past :data:`MAX_FRAMES`). The
store's event log (``--events-json``) has every event.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from .core.errors import SasviError
from .core.store.sasvi_store import SasviStore

#: frames listed on a line before "... (N more)"
MAX_FRAMES = 12

#: the order kinds are counted in, run-level decisions first; kinds not listed follow by name
_ORDER = (
    "restart",
    "anchor",
    "add_objects",
    "reprompt_class",
    "fade",
    "backfill",
    "lost",
    "dropout_ignored",
    "duplicate",
    "carried_over",
    "trigger_deferred",
    "no_prompt",
    "dummy",
)

#: per-class decisions with a line of their own: kind -> the line's verb
_PER_CLASS = {"reprompt_class": "re-prompted", "fade": "faded", "backfill": "back-filled"}


def _frames(frames: Iterable[int]) -> str:
    fr = sorted(set(frames))
    shown = ", ".join(map(str, fr[:MAX_FRAMES]))
    return shown + (f", ... ({len(fr) - MAX_FRAMES} more)" if len(fr) > MAX_FRAMES else "")


def _names(classes, tracks=None) -> dict[int, str]:
    """id -> name: a class's name; an instance run's track: its class's name and id (``Grasper #2``)."""
    names = {c.id: c.name for c in classes} if classes is not None else {}
    if tracks:
        return {k: f"{names.get(t.class_id, f'class {t.class_id}')} #{k}" for k, t in tracks.items()}
    return names


def track_lines(tracks, classes) -> list[str]:
    """An instance run's tracks in one line: how many, per class (``tracks: 3 (Grasper ×2, Hook ×1)``)."""
    if not tracks:
        return []
    names = _names(classes)
    per = Counter(t.class_id for t in tracks.values())
    shown = ", ".join(f"{names.get(c, f'class {c}')} ×{n}" for c, n in sorted(per.items()))
    return [f"tracks: {len(tracks)} ({shown})"]


def lost_lines(events: list[dict], classes, tracks=None) -> list[str]:
    """One line per object the tracker lost (``lost`` events): its class and the frames."""
    frames: dict[int, list[int]] = {}
    for e in events:
        if e["kind"] == "lost":
            for c in e.get("labels", []):
                frames.setdefault(int(c), []).append(int(e["frame"]))
    names = _names(classes, tracks)
    return [
        f"lost: {'track' if tracks else 'class'} {c} ({names.get(c, '?')}) at frames {_frames(fr)}; re-seeded from the nearest anchor"
        for c, fr in sorted(frames.items())
    ]


def event_summary_lines(events: list[dict], classes=None, tracks=None) -> list[str]:
    """The summary printed after a video: one line of counts per decision kind
    (``decisions: restart ×3, reprompt_class ×13, fade ×1``), one line per per-class kind with its
    classes (``re-prompted: Liver ×4, L-hook ×9``), and :func:`lost_lines`. No events: no lines.

    Args:
        events: the store's event log (dicts with ``frame``, ``kind``, ``reason`` and class ids in
            ``labels``).
        classes: the run's :class:`~napari_sasvi.core.datasets.ClassTable` (names; None: ids only).
        tracks: an instance run's track table (its events name tracks: ``Grasper #2``).
    """
    kinds = Counter(e["kind"] for e in events)
    if not kinds:
        return []
    order = [k for k in _ORDER if k in kinds] + sorted(k for k in kinds if k not in _ORDER)
    lines = ["decisions: " + ", ".join(f"{k} ×{kinds[k]}" for k in order)]
    names = _names(classes, tracks)
    for kind, verb in _PER_CLASS.items():
        per = Counter(int(c) for e in events if e["kind"] == kind for c in e.get("labels", []))
        if per:
            lines.append(f"{verb}: " + ", ".join(f"{names.get(c, f'class {c}')} ×{n}" for c, n in sorted(per.items())))
    return lines + lost_lines(events, classes, tracks) + track_lines(tracks, classes)


def _store_tables(store):
    """An instance store's track table ({} for a class store) and the store's class table; ({},
    None) for a store that cannot be read."""
    try:
        s = SasviStore.read(store)
        return s.track_table, s.classes
    except (SasviError, OSError):
        return {}, None


def video_done_lines(name: str, summary, classes=None) -> list[str]:
    """What the CLI prints when a video ends: where its store is and its restarts, then
    :func:`event_summary_lines`, each line starting with the video's name.

    Args:
        name: the video's name.
        summary: its :class:`~napari_sasvi.core.records.RunSummary` (``events``, ``store``,
            ``frames_written``, ``resumed_from``).
        classes: the run's class table (names in the summary), or None.
    """
    s = summary
    restarts = [e["frame"] for e in s.events if e["kind"] == "restart"]
    if len(restarts) > MAX_FRAMES:
        at = f"{len(restarts)} restarts at [{_frames(restarts)}]"
    else:
        at = f"restarts at {restarts}"
    state = f"resumed at frame {s.resumed_from}, " if s.resumed_from else ""
    head = f"{name}: {state}{s.frames_written} frames written to {s.store}; {at}"
    tracks, stored = _store_tables(s.store)
    classes = classes if classes is not None else stored  # dataset from-labels: the store's own
    return [head] + [f"{name}: {line}" for line in event_summary_lines(s.events, classes, tracks)]
