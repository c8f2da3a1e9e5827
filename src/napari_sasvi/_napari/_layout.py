"""Room for the video: the docks' widths, narrow combo boxes and collapsible sections.

napari's own docks (layer list and controls) take about 270 px on the left. Each SASVi dock is
kept between :data:`DOCK_MIN` and :data:`DOCK_MAX` px wide, so that in a 1400 px window the canvas
keeps over half of the width with the segment and temporal widgets docked, and at 933 px still
shows the video (tests/test_widget_layout.py measures it). What makes a form wide is a long label
(magicgui gives every label of a container the widest one's width), a combo box sized to its
longest entry, and a long line of text that does not wrap: the forms use short labels with the
long text in tooltips, combo boxes that elide, and rarely used options in collapsed sections.
"""

from __future__ import annotations

from magicgui.widgets import ComboBox, Container

#: px: a dock's width bounds (its contents; napari adds the dock's frame)
DOCK_MIN, DOCK_MAX = 240, 300
#: characters a combo box shows before it elides (the full entry is in the list and the tooltip)
COMBO_CHARS = 12


def fit_dock(native, min_width: int = DOCK_MIN, max_width: int = DOCK_MAX) -> None:
    """Bound a dock widget's contents to ``min_width``..``max_width`` px."""
    native.setMinimumWidth(min_width)
    native.setMaximumWidth(max_width)


def narrow_combos(*containers: Container) -> None:
    """Combo boxes in ``containers`` no wider than :data:`COMBO_CHARS` characters (Qt's default
    sizes a combo box to its longest entry: the tracker list alone was 360 px); the entry shown is
    the tooltip, so an elided one can still be read."""
    for container in containers:
        for w in container:
            if isinstance(w, Container):
                narrow_combos(w)
            elif isinstance(w, ComboBox):
                _narrow(w)


def _narrow(combo: ComboBox) -> None:
    from qtpy.QtWidgets import QComboBox, QSizePolicy

    q = combo.native
    q.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    q.setMinimumContentsLength(COMBO_CHARS)
    q.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def show_entry(*_):
        q.setToolTip(str(q.currentText()))

    q.currentTextChanged.connect(show_entry)
    show_entry()


def section(title: str, body: Container, expanded: bool = False):
    """A collapsible section (superqt's ``QCollapsible``, a napari dependency) holding ``body``;
    collapsed unless ``expanded``."""
    from superqt import QCollapsible

    box = QCollapsible(title)
    box.setDuration(0)  # no animation: tests and screenshots see the final layout at once
    body.margins = (0, 0, 0, 0)
    box.addWidget(body.native)
    box.content().layout().setContentsMargins(0, 0, 0, 0)
    if expanded:
        box.expand(animate=False)
    else:
        box.collapse(animate=False)
    return box


def fit_table(table, stretch: int | None = 2) -> None:
    """A magicgui ``Table`` as wide as its dock: columns sized to their contents, column ``stretch``
    takes what is left (the events' reason), no row numbers; it scrolls rather than widen the dock.
    ``stretch=None``: every column shares the width (a table of short numbers)."""
    from qtpy.QtWidgets import QSizePolicy

    q = table.native
    q.verticalHeader().setVisible(False)
    q.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Expanding)
    header = q.horizontalHeader()
    for col in range(q.columnCount()):
        mode = header.ResizeMode.Stretch if stretch in (None, col) else header.ResizeMode.ResizeToContents
        header.setSectionResizeMode(col, mode)


def wrap_label(label) -> None:
    """A magicgui ``Label`` that wraps its text at the dock's width (magicgui's label keeps its
    text on one line, and a long status or hint then sets the dock's width)."""
    from qtpy.QtWidgets import QSizePolicy

    q = label.native
    q.setWordWrap(True)
    q.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
