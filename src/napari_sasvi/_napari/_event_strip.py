"""A thin strip under the widget showing where along the video SASVi re-prompted.

One tick per event across the video's length (restarts red, objects added green, annotated and
corrected frames blue, pinned re-prompts orange, skipped ones dark grey, others light grey; edits
waiting for Re-propagate as short pale ticks);
clicking the strip jumps the time slider to the nearest event.
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
    def __init__(self, on_click=None, parent=None):
        super().__init__(parent)
        self.setMinimumHeight(18)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip(
            "SASVi re-prompts along the video: red = restart, green = object added, blue = annotated or "
            "corrected frame, orange = pinned, dark grey = skipped (short ticks: waiting for Re-propagate). "
            "Click to jump."
        )
        self._events: list[dict] = []
        self._n = 1
        self._on_click = on_click

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

    def mousePressEvent(self, event):  # noqa: N802 - Qt's name
        if not self._events or self._on_click is None:
            return
        x = event.position().x() if hasattr(event, "position") else event.x()
        nearest = min(self._events, key=lambda e: abs(self._x(e["frame"]) - x))
        self._on_click(int(nearest["frame"]))
