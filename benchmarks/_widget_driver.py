"""Driving napari-sasvi's widgets from a benchmark script by their private fields, as the GUI tests
do: one place for the lookups, so a renamed field stops every script with a one-line message that
names the script to update."""

from __future__ import annotations


class WidgetDriver:
    """``fail``, ``field`` and ``choose`` for the script ``script`` (its name in messages); ``hint``
    is added to a missing field's message (e.g. the fields the script uses)."""

    def __init__(self, script: str, hint: str = ""):
        self.script, self.hint = script, hint

    def fail(self, msg: str) -> None:
        raise SystemExit(f"{self.script}: {msg}")

    def field(self, w, name: str):
        if not hasattr(w, name):
            hint = f" ({self.hint})" if self.hint else ""
            self.fail(
                f"the widget {type(w).__name__} has no field {name!r}{hint}; the widget changed: "
                f"update benchmarks/{self.script}.py"
            )
        return getattr(w, name)

    def choose(self, w, name: str, want) -> None:
        """Set ComboBox ``name`` to the first choice that ``want`` (a string: equal, or a predicate) accepts."""
        combo = self.field(w, name)
        choices = list(combo.choices)
        ok = [c for c in choices if (want(c) if callable(want) else c == want)]
        if not ok:
            self.fail(f"no choice {want if isinstance(want, str) else '(as wanted)'} in the widget's {name}: {choices}")
        combo.value = ok[0]


class _Mouse:
    """What napari's canvas hands a layer's mouse callbacks: world position, canvas pos, modifiers,
    button, type."""

    def __init__(self, position, modifiers=(), button=1):
        self.type, self.position, self.pos = "mouse_press", tuple(position), (100.0, 100.0)
        self.modifiers, self.button, self.handled = tuple(modifiers), button, False
        self.view_direction, self.dims_displayed = None, [1, 2]


def click(layer, position, modifiers=(), button=1) -> None:
    """A click at world ``position`` ((t, y, x)) on ``layer``, through the callbacks napari calls
    for a click on the canvas (press, then release)."""
    from napari.utils._proxies import ReadOnlyWrapper
    from napari.utils.interactions import mouse_press_callbacks, mouse_release_callbacks

    event = _Mouse(position, modifiers, button)
    mouse_press_callbacks(layer, ReadOnlyWrapper(event, exceptions=("handled",)))
    event.type = "mouse_release"
    mouse_release_callbacks(layer, ReadOnlyWrapper(event, exceptions=("handled",)))


__all__ = ["WidgetDriver", "click"]
