"""A thin strip under the widget showing where along the video SASVi re-prompted.

One tick per event across the video's length (restarts red, objects added green, annotated and
corrected frames blue, pinned re-prompts orange, skipped ones dark grey, others light grey; edits
waiting for Re-propagate as short pale ticks);
clicking the strip jumps the time slider to the nearest event; a right click offers to pin a
re-prompt at the frame under the cursor or to skip the run's re-prompt there (the corrections panel
queues them for Re-propagate).
"""

from __future__ import annotations

from qtpy.QtCore import QRect
from qtpy.QtGui import QColor, QPainter
from qtpy.QtWidgets import QSizePolicy, QWidget

_COLOURS = {
    "restart": QColor(220, 50, 47),
    "add_objects": QColor(60, 180, 75),
    "anchor": QColor(38, 139, 210),
    "corrected": QColor(38, 139, 210),
    "pinned": QColor(255, 150, 30),
    "skipped": QColor(110, 110, 110),
}
_SHOWN = ("restart", "anchor", "add_objects", "trigger_deferred", "corrected", "pinned", "skipped")


class EventStrip(QWidget):
    def __init__(self, on_click=None, parent=None, on_pin=None, on_skip=None):
        super().__init__(parent)
        self.setMinimumHeight(18)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip(
            "SASVi re-prompts along the video: red = restart, green = object added, blue = annotated or "
            "corrected frame, orange = pinned, dark grey = skipped (short ticks: waiting for Re-propagate). "
            "Click to jump; right-click to pin a re-prompt there or skip the one under the cursor."
        )
        self._events: list[dict] = []
        self._n = 1
        self._on_click = on_click
        self._on_pin, self._on_skip = on_pin, on_skip  # right click: the timeline's edits

    def set_events(self, events: list[dict], n_frames: int) -> None:
        self._events = [e for e in events if e["kind"].split(" ")[0] in _SHOWN]
        self._n = max(1, n_frames)
        self.update()

    def frames(self) -> list[int]:
        return [e["frame"] for e in self._events]

    def _x(self, frame: int) -> int:
        return int(round(frame / max(1, self._n - 1) * (self.width() - 3))) + 1

    def paintEvent(self, event):  # noqa: N802 - Qt's name
        p = QPainter(self)
        p.fillRect(QRect(0, 6, self.width(), 6), QColor(90, 90, 90))
        for e in self._events:
            kind = e["kind"].split(" ")[0]
            colour = QColor(_COLOURS.get(kind, QColor(160, 160, 160)))
            if e["kind"].endswith("(pending)"):  # queued edits: a short, pale tick
                colour.setAlpha(140)
                p.fillRect(QRect(self._x(e["frame"]) - 1, 0, 3, self.height() // 2), colour)
                continue
            p.fillRect(QRect(self._x(e["frame"]) - 1, 0, 3, self.height()), colour)
        p.end()

    def frame_at(self, x: float) -> int:
        return int(round((x - 1) / max(1, self.width() - 3) * max(1, self._n - 1)))

    def nearest(self, x: float, kinds=None) -> dict | None:
        events = [e for e in self._events if kinds is None or e["kind"] in kinds]
        return min(events, key=lambda e: abs(self._x(e["frame"]) - x)) if events else None

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
        from qtpy.QtCore import Qt

        x = event.position().x() if hasattr(event, "position") else event.x()
        if event.button() == Qt.MouseButton.RightButton:
            actions = self.menu_actions(x)
            if actions:
                from qtpy.QtWidgets import QMenu

                menu = QMenu(self)
                for text, fn in actions:
                    menu.addAction(text).triggered.connect(lambda _=False, fn=fn: fn())
                pos = event.globalPosition().toPoint() if hasattr(event, "globalPosition") else event.globalPos()
                menu.exec(pos)
            return
        if not self._events or self._on_click is None:
            return
        nearest = self.nearest(x)
        self._on_click(int(nearest["frame"]))
