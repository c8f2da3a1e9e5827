"""The docks leave room for the video (issue 31, item 6): with the segment and temporal widgets
docked on the right, the canvas keeps most of the window's width.

Measured under Xvfb (napari 0.9.2, PyQt6), canvas width with both docks added:

=========  ==================  =================
window     before (issue 31)   after
=========  ==================  =================
1400 px    522 px (37 %)       821 px (59 %)
933 px     55 px (6 %)         354 px (38 %)
=========  ==================  =================

napari's own layer list and controls take 271 px on the left; each SASVi dock is held to
``_layout.DOCK_MAX`` (300 px; 282 px measured). The thresholds leave ~30-50 px for a style or font
difference.

The real viewer (``make_napari_viewer``), not the proxy: the canvas and the main window are
private (``window._qt_viewer``, ``window._qt_window``), which the proxy warns about.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gui

#: window width -> the least canvas width accepted (px)
MIN_CANVAS = {1400: int(0.55 * 1400), 933: 300}


def _settle(qtbot, win, width, height=900):
    from qtpy.QtWidgets import QApplication

    win.resize(width, height)
    for _ in range(5):
        QApplication.processEvents()
        qtbot.wait(20)


@pytest.fixture
def docked(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    from napari_sasvi._napari.temporal_widget import TemporalWidget
    from napari_sasvi._napari.widget import SegmentWidget

    seg, temporal = SegmentWidget(viewer), TemporalWidget(viewer)
    viewer.window.add_dock_widget(seg, name="SASVi segment video", area="right")
    viewer.window.add_dock_widget(temporal, name="SASVi temporal consistency", area="right")
    return viewer, seg, temporal


@pytest.mark.parametrize("width", sorted(MIN_CANVAS, reverse=True))
def test_the_canvas_keeps_most_of_the_width(docked, qtbot, width):
    viewer, seg, temporal = docked
    win = viewer.window._qt_window
    _settle(qtbot, win, width)
    canvas = viewer.window._qt_viewer.canvas.native.width()
    assert win.width() == width
    assert canvas >= MIN_CANVAS[width], f"canvas {canvas} px of a {width} px window"
    for w in (seg, temporal):  # each dock within its bounds, and nothing in it wider than the dock
        assert w.native.width() <= 300
        assert w.native.minimumSizeHint().width() <= w.native.width()


def test_long_options_are_collapsed_and_the_events_table_fills_the_dock(docked, qtbot):
    viewer, seg, _ = docked
    _settle(qtbot, viewer.window._qt_window, 1400)
    assert not seg._more_box.isExpanded() and not seg._adv_box.isExpanded()
    assert seg._adv_box.content().height() == 0  # the policy's options take no room until opened
    seg._adv_box.expand(animate=False)
    _settle(qtbot, viewer.window._qt_window, 1400)
    assert seg._adv_box.content().height() >= seg._mode.native.height() > 0
    # the table's left and right edges are the form's (the dock's contents, less its margins)
    table, form = seg._table.native, seg.native
    margins = form.layout().contentsMargins()
    assert table.x() == margins.left()
    assert table.x() + table.width() == form.width() - margins.right()
    # a long tracker entry is elided, its full text in the tooltip
    seg._sam2.value = "optical flow (DIS fast: 320 px, no refinement)"
    assert seg._sam2.native.toolTip() == "optical flow (DIS fast: 320 px, no refinement)"
    assert seg._sam2.native.width() < seg._sam2.native.fontMetrics().horizontalAdvance(seg._sam2.value)
