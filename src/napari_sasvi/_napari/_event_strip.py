"""A thin strip under the widget showing where along the video SASVi decided something, and its legend.

Two lanes across the video's length. The upper lane holds the run's re-prompts of the whole frame
(restarts red, objects added green, annotated and corrected frames blue, pinned re-prompts orange,
skipped ones dark grey, deferred ones light grey; edits waiting for Re-propagate as short pale
ticks). The lower lane holds the per-class decisions (one class re-prompted from the overseer
violet, faded out tan, back-filled teal, lost by the tracker magenta; in an instance store a
track's start yellow, its end grey): a long video can have
hundreds of them, so they get their own lane and never hide a restart. Rare kinds are drawn last,
on top of frequent ones sharing a pixel. The legend below lists only the kinds present, with counts.

Hovering a tick shows its frame, kind, reason and classes; clicking jumps the time slider to the
nearest event of the lane under the cursor; a right click offers to pin a re-prompt at the frame
under the cursor or to skip the run's re-prompt there (the corrections panel queues them for
Re-propagate).
"""

from __future__ import annotations

from collections import Counter

from qtpy.QtCore import QEvent, QRect, Qt
from qtpy.QtGui import QColor, QPainter
from qtpy.QtWidgets import QLabel, QMenu, QSizePolicy, QToolTip, QWidget

#: kind -> (colour, the legend's name, lane: 0 = whole-frame re-prompts, 1 = per-class decisions)
KINDS: dict[str, tuple[QColor, str, int]] = {
    "trigger_deferred": (QColor(170, 170, 170), "deferred", 0),
    "skipped": (QColor(110, 110, 110), "skipped", 0),
    "add_objects": (QColor(60, 180, 75), "objects added", 0),
    "anchor": (QColor(38, 139, 210), "anchor", 0),
    "corrected": (QColor(38, 139, 210), "corrected", 0),
    "pinned": (QColor(255, 150, 30), "pinned", 0),
    "restart": (QColor(220, 50, 47), "restart", 0),
    "reprompt_class": (QColor(160, 110, 240), "re-prompt class", 1),
    "fade": (QColor(200, 170, 120), "fade", 1),
    "backfill": (QColor(40, 190, 180), "backfill", 1),
    "lost": (QColor(240, 60, 170), "lost", 1),
    "track_end": (QColor(150, 150, 150), "track end", 1),  # instance stores: a track's first and last frame
    "track_start": (QColor(250, 220, 70), "track start", 1),
}
#: the lane's events are drawn in this order (frequent first, so rare ones stay visible on top)
_ORDER = {k: i for i, k in enumerate(KINDS)}
#: the legend's order: the upper lane's kinds, then the lower's, the most telling first
_LEGEND = ("restart", "add_objects", "anchor", "corrected", "pinned", "skipped", "trigger_deferred")
_LEGEND += ("reprompt_class", "fade", "backfill", "lost", "track_start", "track_end")
_LANE_H = 10  # pixels per lane; 2 between them
_PENDING = " (pending)"


def kind_of(event: dict) -> str:
    """The event's kind without the " (pending)" of an edit waiting for Re-propagate."""
    return event["kind"].split(" ")[0]


def class_names(event: dict, names: dict[int, str] | None = None) -> list[str]:
    """The classes an event is about (its mask, point and ``labels`` ids), by name where known."""
    ids = list(event.get("mask_labels", [])) + list(event.get("point_labels", [])) + list(event.get("labels", []))
    names = names or {}
    return [names.get(int(c), str(c)) for c in ids]


class EventLegend(QLabel):
    """A row of coloured squares naming the kinds on the strip, with their counts
    ("■ restart ×3  ■ re-prompt class ×37"); wraps when the dock is narrow."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.RichText)
        self._entries: list[tuple[str, str, int]] = []

    def set_counts(self, counts: dict[str, int]) -> None:
        self._entries = [(k, KINDS[k][1], counts[k]) for k in _LEGEND if counts.get(k)]
        parts = []
        for kind, name, n in self._entries:
            swatch = f'<span style="color:{KINDS[kind][0].name()}; font-size:14px">&#9632;</span>'
            label = name.replace(" ", "&nbsp;").replace("-", "&#8209;")  # an entry never wraps inside
            parts.append(f"{swatch}&nbsp;{label}&nbsp;&times;{n}")
        self.setText("&nbsp;&nbsp; ".join(parts))
        self.setVisible(bool(parts))

    def entries(self) -> list[tuple[str, int]]:
        """(legend name, count) per kind shown, in the legend's order."""
        return [(name, n) for _, name, n in self._entries]


class EventStrip(QWidget):
    def __init__(self, on_click=None, parent=None, on_pin=None, on_skip=None):
        super().__init__(parent)
        self.setFixedHeight(2 * _LANE_H + 2)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMouseTracking(True)
        self.legend = EventLegend()
        self._events: list[dict] = []
        self._names: dict[int, str] = {}
        self._n = 1
        self._on_click = on_click
        self._on_pin, self._on_skip = on_pin, on_skip  # right click: the timeline's edits

    def set_events(self, events: list[dict], n_frames: int, names: dict[int, str] | None = None) -> None:
        """Show ``events`` (the store's event dicts and the corrections' rows; kinds not in
        :data:`KINDS` are left out) along ``n_frames``; ``names``: class id -> name, for tooltips."""
        shown = [e for e in events if kind_of(e) in KINDS]
        self._events = sorted(shown, key=lambda e: _ORDER[kind_of(e)])
        self._names = dict(names or {})
        self._n = max(1, n_frames)
        self.legend.set_counts(self.counts())
        self.update()

    def frames(self) -> list[int]:
        return sorted(e["frame"] for e in self._events)

    def counts(self) -> dict[str, int]:
        """Events per kind shown (edits waiting for Re-propagate count under their kind)."""
        return dict(Counter(kind_of(e) for e in self._events))

    def lane(self, event: dict) -> int:
        """0: the upper lane (re-prompts of the whole frame); 1: the lower (per-class decisions)."""
        return KINDS[kind_of(event)][2]

    def _x(self, frame: int) -> int:
        return int(round(frame / max(1, self._n - 1) * (self.width() - 3))) + 1

    def _lane_at(self, y: float) -> int:
        return 0 if y < _LANE_H + 1 else 1

    def paintEvent(self, event):  # noqa: N802 - Qt's name
        p = QPainter(self)
        for lane in (0, 1):
            top = lane * (_LANE_H + 2)
            p.fillRect(QRect(0, top + _LANE_H // 2 - 1, self.width(), 3), QColor(80, 80, 80))
        for e in self._events:
            colour, _, lane = KINDS[kind_of(e)]
            colour = QColor(colour)
            top, h = lane * (_LANE_H + 2), _LANE_H
            if e["kind"].endswith(_PENDING):  # queued edits: a short, pale tick
                colour.setAlpha(140)
                h = _LANE_H // 2
            p.fillRect(QRect(self._x(e["frame"]) - 1, top, 3 if lane == 0 else 2, h), colour)
        p.end()

    def frame_at(self, x: float) -> int:
        return int(round((x - 1) / max(1, self.width() - 3) * max(1, self._n - 1)))

    def nearest(self, x: float, kinds=None, lane: int | None = None) -> dict | None:
        events = [
            e for e in self._events if (kinds is None or e["kind"] in kinds) and (lane is None or self.lane(e) == lane)
        ]
        return min(events, key=lambda e: abs(self._x(e["frame"]) - x)) if events else None

    def tooltip_at(self, x: float, y: float) -> str:
        """The events within 3 pixels of ``x`` in the lane at ``y`` (frame, kind, reason, classes;
        at most 6), or what the strip shows when there are none."""
        lane = self._lane_at(y)
        near = [e for e in self._events if self.lane(e) == lane and abs(self._x(e["frame"]) - x) <= 3]
        if not near:
            return (
                "Upper lane: re-prompts of the whole frame (restarts, objects added, anchors, corrections, "
                "pins, skips). Lower lane: per-class (per-track) decisions (re-prompted, faded, back-filled, lost; "
                "tracks started and ended). "
                "Click to jump; right-click to pin a re-prompt there or skip the one under the cursor."
            )
        near.sort(key=lambda e: (e["frame"], _ORDER[kind_of(e)]))
        lines = []
        for e in near[:6]:
            classes = ", ".join(class_names(e, self._names))
            line = f"frame {e['frame']}: {e['kind']}"
            if e.get("reason"):
                line += f" - {e['reason']}"
            lines.append(line + (f" [{classes}]" if classes else ""))
        if len(near) > 6:
            lines.append(f"... and {len(near) - 6} more here")
        return "\n".join(lines)

    def event(self, ev):
        if ev.type() == QEvent.Type.ToolTip:
            QToolTip.showText(ev.globalPos(), self.tooltip_at(ev.pos().x(), ev.pos().y()), self)
            return True
        return super().event(ev)

    def menu_actions(self, x: float) -> list[tuple[str, object]]:
        """What a right click at ``x`` offers: pin a re-prompt at the frame there, skip the nearest
        re-prompt of the run (restart or object added) within 6 pixels."""
        out = []
        if self._on_pin is not None:
            f = min(max(self.frame_at(x), 0), self._n - 1)
            out.append((f"Pin re-prompt at frame {f}", lambda: self._on_pin(f)))
        near = self.nearest(x, ("restart", "add_objects"))
        if self._on_skip is not None and near is not None and abs(self._x(near["frame"]) - x) <= 6:
            f = int(near["frame"])
            out.append((f"Skip the {near['kind']} at frame {f}", lambda: self._on_skip(f)))
        return out

    def mousePressEvent(self, event):  # noqa: N802 - Qt's name
        pos = event.position() if hasattr(event, "position") else event.pos()
        x, y = pos.x(), pos.y()
        if event.button() == Qt.MouseButton.RightButton:
            actions = self.menu_actions(x)
            if actions:
                menu = QMenu(self)
                for text, fn in actions:
                    menu.addAction(text).triggered.connect(lambda _=False, fn=fn: fn())
                gpos = event.globalPosition().toPoint() if hasattr(event, "globalPosition") else event.globalPos()
                menu.exec(gpos)
            return
        if not self._events or self._on_click is None:
            return
        nearest = self.nearest(x, lane=self._lane_at(y)) or self.nearest(x)
        self._on_click(int(nearest["frame"]))
