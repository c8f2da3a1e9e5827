"""Noticing that a dock widget went away, so that it stops listening to the viewer.

napari removes a plugin dock by un-parenting its widget (``setParent(None)``) and deleting the
dock; the widget itself gets no close call, and ``__del__`` never runs while the viewer's events
still hold its bound methods. An event filter sees the un-parenting (and a close) and calls back.
"""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtCore import QEvent, QObject


class _DetachFilter(QObject):
    def __init__(self, widget, callback: Callable[[], None]):
        super().__init__(widget)
        self._widget, self._callback, self._attached = widget, callback, False

    def eventFilter(self, obj, event):  # noqa: N802 - Qt's name
        kind = event.type()
        if kind == QEvent.Type.ParentChange:
            if obj.parent() is not None:
                self._attached = True
            elif self._attached:
                self._callback()
        elif kind == QEvent.Type.Close:
            self._callback()
        return False


def on_detach(widget, callback: Callable[[], None]) -> QObject:
    """Call ``callback`` once ``widget`` is taken out of its dock or closed; returns the filter."""
    f = _DetachFilter(widget, callback)
    widget.installEventFilter(f)
    return f
