"""The layers a user prompts on: "SASVi clicks" (Points), "SASVi box" (Shapes) and the preview
"SASVi prompt" (Labels), all 2-D in the frame's pixel coordinates, for the frame shown.

Coordinates: napari puts pixel ``i``'s centre at ``i`` (it covers ``i - 0.5 .. i + 0.5``), the
prompts' clicks are pixel indices ``(x, y)`` and their boxes pixel edges (``x0 <= x < x1``). A
click is the pixel under the cursor (rounded); a box's corners move by half a pixel.

Mouse: the clicks layer stays in pan/zoom mode and its own drag callback adds a point on a click
that did not move (a drag pans): left click positive, shift+click or right click negative.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: canvas pixels the mouse may move between press and release for a click (more: a pan)
CLICK_SLOP = 4
POSITIVE, NEGATIVE = "positive", "negative"
SIGN_COLORS = {POSITIVE: "lime", NEGATIVE: "red"}
NAMES = ("SASVi clicks", "SASVi box", "SASVi prompt")


class PromptLayers:
    """Adds, reads and clears the prompt layers of ``viewer``; ``on_change()`` is called after
    every change of the clicks or the box (the user's, not :meth:`clear`'s)."""

    def __init__(self, viewer, on_change: Callable[[], None]):
        self._viewer = viewer
        self._on_change = on_change
        self._quiet = False  # our own changes (clear, keeping the last box) call no on_change
        self.clicks = self.box = self.preview = None

    @property
    def shown(self) -> bool:
        return self.clicks is not None

    def add(self, frame_size: tuple[int, int], frames_layer=None) -> None:
        """Add the three layers (2-D, ``frame_size`` (H, W)), on the frames layer's scale and offset."""
        from napari.utils.colormaps import DirectLabelColormap

        h, w = frame_size
        where = {}
        if frames_layer is not None and len(frames_layer.scale) >= 2:  # an RGB layer's scale has no channel axis
            where = {"scale": frames_layer.scale[-2:], "translate": frames_layer.translate[-2:]}
        v = self._viewer
        transparent = (0.0, 0.0, 0.0, 0.0)
        self.preview = v.add_labels(
            np.zeros((h, w), np.uint8),
            name=NAMES[2],
            opacity=0.6,
            colormap=DirectLabelColormap(color_dict={None: transparent, 0: transparent, 1: (1.0, 1.0, 0.0, 1.0)}),
            **where,
        )
        self.preview.editable = False
        self.box = v.add_shapes(
            ndim=2, name=NAMES[1], edge_color="yellow", face_color="transparent", edge_width=max(1, min(h, w) // 100),
            **where,
        )  # fmt: skip
        self.box.mode = "add_rectangle"
        self.clicks = v.add_points(
            np.empty((0, 2)),
            ndim=2,
            name=NAMES[0],
            features={"sign": np.array([], dtype=object)},
            feature_defaults={"sign": POSITIVE},
            face_color="sign",
            face_color_cycle=SIGN_COLORS,
            border_color="white",
            size=max(3, min(h, w) // 40),
            **where,
        )
        self.clicks.mode = "pan_zoom"  # clicks come from the callback below, drags pan
        self.clicks.mouse_drag_callbacks.append(self._click)
        self.clicks.events.data.connect(self._changed)
        self.box.events.data.connect(self._box_changed)
        v.layers.selection.active = self.clicks

    def remove(self) -> None:
        for layer in (self.clicks, self.box, self.preview):
            if layer is not None and layer in self._viewer.layers:
                self._viewer.layers.remove(layer)
        if self.clicks is not None:
            self.clicks.events.data.disconnect(self._changed)
            self.box.events.data.disconnect(self._box_changed)
        self.clicks = self.box = self.preview = None

    def mine(self, layer) -> bool:
        return layer is not None and any(layer is x for x in (self.clicks, self.box, self.preview))

    # -- the user's input ----------------------------------------------------------------------------
    def _click(self, layer, event):
        """A press on the canvas while the clicks layer is selected: on release, a point where it
        was pressed, unless the mouse moved (a pan). Shift or the right button: negative."""
        press_pos = np.asarray(event.pos, float)
        where = layer.world_to_data(event.position)
        negative = "Shift" in set(event.modifiers) or event.button == 2
        yield
        while event.type == "mouse_move":
            yield
        if np.abs(np.asarray(event.pos, float) - press_pos).max(initial=0) > CLICK_SLOP:
            return
        self.add_click(where[-2:], negative)

    def add_click(self, yx, negative: bool = False) -> None:
        """Add a click at ``yx`` (data coordinates of the clicks layer)."""
        self.clicks.feature_defaults = {"sign": NEGATIVE if negative else POSITIVE}
        self.clicks.add(np.asarray(yx, float).reshape(1, 2))
        self.clicks.feature_defaults = {"sign": POSITIVE}

    def _changed(self, event=None) -> None:
        action = str(getattr(event, "action", "") or "")
        if self._quiet or action.endswith("ing"):  # adding/removing/changing: the change follows
            return
        self._on_change()

    def _box_changed(self, event=None) -> None:
        action = str(getattr(event, "action", "") or "")
        if self._quiet or action.endswith("ing"):
            return
        if len(self.box.data) > 1:  # only the last box counts
            with self.quiet():
                self.box.data = [self.box.data[-1]]
                self.box.shape_type = ["rectangle"]
        self._on_change()

    # -- reading and clearing ------------------------------------------------------------------------
    def geometry(self) -> tuple[tuple[tuple[float, float], ...], tuple[int, ...], tuple | None]:
        """The clicks ``((x, y), ...)`` as the pixels under them, their labels (1/0) and the box
        ``(x0, y0, x1, y1)`` in pixel edges, or None."""
        pts = np.asarray(self.clicks.data, float).reshape(-1, 2)
        signs = list(self.clicks.features["sign"]) if len(pts) else []
        points = tuple((float(np.round(x)), float(np.round(y))) for y, x in pts)
        labels = tuple(0 if s == NEGATIVE else 1 for s in signs)
        box = None
        if len(self.box.data):
            corners = np.asarray(self.box.data[-1], float)[:, -2:]
            (y0, x0), (y1, x1) = corners.min(0) + 0.5, corners.max(0) + 0.5
            box = (float(x0), float(y0), float(x1), float(y1))
        return points, labels, box

    def empty(self) -> bool:
        return not self.shown or (len(self.clicks.data) == 0 and len(self.box.data) == 0)

    def quiet(self):
        layers = self

        class _Quiet:
            def __enter__(self):
                layers._quiet = True

            def __exit__(self, *exc):
                layers._quiet = False

        return _Quiet()

    def clear(self) -> None:
        """No clicks, no box, no preview."""
        if not self.shown:
            return
        with self.quiet():
            self.clicks.data = np.empty((0, 2))
            self.box.data = []
        self.show_mask(None)

    def show_mask(self, mask: np.ndarray | None, rgba=None) -> None:
        """The preview layer shows ``mask`` (H, W) bool (None: nothing), in ``rgba`` when given."""
        if self.preview is None:
            return
        if rgba is not None:
            self.set_color(rgba)
        if mask is None:
            self.preview.data = np.zeros(self.preview.data.shape, np.uint8)
        else:
            self.preview.data = np.asarray(mask, np.uint8)

    def set_color(self, rgba) -> None:
        from napari.utils.colormaps import DirectLabelColormap

        if self.preview is None:
            return
        t = (0.0, 0.0, 0.0, 0.0)
        self.preview.colormap = DirectLabelColormap(color_dict={None: t, 0: t, 1: tuple(rgba)})

    # -- keys ----------------------------------------------------------------------------------------
    def bind_keys(self, keys: dict[str, Callable[[], None]]) -> dict:
        """Bind ``keys`` (key -> action) on the clicks and box layers and on the viewer; returns
        the viewer's bindings they replaced (for :meth:`unbind_keys`)."""
        replaced = {}
        for key, action in keys.items():
            for layer in (self.clicks, self.box):
                layer.bind_key(key, lambda _layer, a=action: a(), overwrite=True)
            replaced[key] = self._viewer.bind_key(key, lambda _viewer, a=action: a(), overwrite=True)
        return replaced

    def unbind_keys(self, replaced: dict) -> None:
        for key, old in replaced.items():
            self._viewer.bind_key(key, None)
            if old is not None:
                self._viewer.bind_key(key, old, overwrite=True)


__all__ = ["NAMES", "PromptLayers"]
