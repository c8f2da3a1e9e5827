"""The "SASVi temporal consistency" widget in a real napari viewer (Xvfb)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from napari_sasvi._napari.temporal_widget import _short

pytestmark = pytest.mark.gui


def test_curves_bars_table_slider_and_exports(make_napari_viewer_proxy, qtbot, tmp_path):
    from napari_sasvi._napari.sample import labels_layer_kwargs
    from napari_sasvi.core.synthetic import SyntheticVideo

    viewer = make_napari_viewer_proxy()
    video = SyntheticVideo(n_frames=10, height=64, width=80)
    frames, gt = video.arrays()
    _, noisy = video.arrays(noisy=True)
    viewer.add_image(frames, name="clip", rgb=True)
    viewer.add_labels(gt, **labels_layer_kwargs(video.classes, "ground truth"))
    viewer.add_labels(noisy, **labels_layer_kwargs(video.classes, "frame-wise overseer"))
    _, w = viewer.window.add_plugin_dock_widget("napari-sasvi", "SASVi temporal consistency")
    assert w._layers["ground truth"].value == "ground truth"
    assert w._layers["overseer"].value == "frame-wise overseer"
    assert w._frames.value == "clip"
    w.compute()
    qtbot.waitUntil(lambda: w._worker is None, timeout=120_000)
    assert set(w.results) == {"overseer", "ground truth"}
    gt_r, ov_r = w.results["ground truth"], w.results["overseer"]
    assert len(gt_r.series["t_iou"]) == 9 and len(gt_r.series["f_iou"]) == 9
    # the noisy overseer flickers more than the ground truth
    assert ov_r.macro["t_iou"] < gt_r.macro["t_iou"]
    rows = {r[0]: r for r in w._table.data}
    assert float(rows["overseer"][5]) < 1.0  # Dice of the overseer against the ground truth
    assert len(w._ax_series.lines) >= 4 and len(w._ax_bars.patches) > 0
    # the cursor follows the slider; a click on the curves moves the slider
    viewer.dims.set_current_step(0, 6)
    assert list(w._cursor.get_xdata()) == [6, 6]

    class Click:
        inaxes, xdata = w._ax_series, 3.2

    w._clicked(Click)
    assert viewer.dims.current_step[0] == 3
    w.save_png(tmp_path / "fig.png")
    w.save_csv(tmp_path / "numbers.csv")
    assert (tmp_path / "fig.png").stat().st_size > 1000
    table = list(csv.reader(open(tmp_path / "numbers.csv")))
    assert table[0] == ["layer", "label", "class", "t_iou", "t_assd", "f_iou", "f_dice"]
    assert any(r[1] == "macro" for r in table) and any(r[1] == "dice_vs_ground_truth" for r in table)
    assert np.isfinite(float(next(r for r in table if r[0] == "overseer" and r[1] == "macro")[3]))


def test_layers_without_a_class_table_are_read_with_the_one_chosen(make_napari_viewer_proxy, qtbot):
    """A painted layer carries no class table: the widget asks for one instead of guessing, and
    reads the layer with the label reader (values outside the table are an error)."""
    from napari_sasvi.core.synthetic import SyntheticVideo

    viewer = make_napari_viewer_proxy()
    _, gt = SyntheticVideo(n_frames=6, height=48, width=64).arrays()
    viewer.add_labels(gt, name="ground truth")
    _, w = viewer.window.add_plugin_dock_widget("napari-sasvi", "SASVi temporal consistency")
    w.compute()
    qtbot.waitUntil(lambda: w._worker is None, timeout=60_000)
    assert "does not say which classes" in w._status.value and not w.results
    w._table_choice.value = "synthetic"
    w.compute()
    qtbot.waitUntil(lambda: w._worker is None, timeout=60_000)
    assert 0 < w.results["ground truth"].macro["t_iou"] <= 1
    bad = gt.copy()
    bad[2, 0, 0] = 99
    viewer.layers["ground truth"].data = bad
    w.compute()
    qtbot.waitUntil(lambda: w._worker is None, timeout=60_000)
    assert "99" in w._status.value


def test_plots_follow_the_theme_and_closing_disconnects(make_napari_viewer_proxy):
    from matplotlib.colors import to_hex
    from napari.utils.theme import get_theme

    viewer = make_napari_viewer_proxy()
    dock, w = viewer.window.add_plugin_dock_widget("napari-sasvi", "SASVi temporal consistency")
    for name in ("light", "dark"):
        viewer.theme = name
        assert to_hex(w.figure.get_facecolor()) == get_theme(name).background.as_hex()
        assert to_hex(w._ax_series.get_facecolor()) == get_theme(name).background.as_hex()
    viewer.window.remove_dock_widget(dock)
    assert not w._connected
    assert not [cb for cb in viewer.events.theme.callbacks if "_apply_theme" in str(cb)]


def test_classes_are_named_and_an_empty_layer_is_n_a(make_napari_viewer_proxy, qtbot, tmp_path):
    """The bars and the CSV name classes (not ids); a layer with nothing in it scores "n/a", and a
    class absent from a layer gets no bar, not a 0.000."""
    from napari_sasvi._napari.sample import labels_layer_kwargs
    from napari_sasvi.core.synthetic import SyntheticVideo

    viewer = make_napari_viewer_proxy()
    video = SyntheticVideo(n_frames=6, height=48, width=64)
    _, gt = video.arrays()
    empty = np.full_like(gt, video.classes.no_label)
    viewer.add_labels(gt, **labels_layer_kwargs(video.classes, "ground truth"))
    viewer.add_labels(empty, **labels_layer_kwargs(video.classes, "SASVi empty"))
    _, w = viewer.window.add_plugin_dock_widget("napari-sasvi", "SASVi temporal consistency")
    assert w._layers["SASVi"].value == "SASVi empty"
    w.compute()
    qtbot.waitUntil(lambda: w._worker is None, timeout=60_000)
    rows = {r[0]: r for r in w._table.data}
    # T-IoU, T-ASSD, F-IoU, F-Dice: nothing to score, not 0.000; against the ground truth the empty
    # layer does score: it misses every class (Dice 0)
    assert rows["SASVi"][1:] == ["n/a"] * 4 + ["0.000"]
    assert rows["ground truth"][1] != "n/a"
    names = {c.id: c.name for c in video.classes}
    ticks = [t.get_text() for t in w._ax_bars.get_xticklabels()]
    scored = w.results["ground truth"].labels_scored
    # class names, shortened for a narrow dock (the CSV has them whole)
    assert ticks == [_short(names[c]) for c in scored] and "Grasper" in ticks
    assert sum(t.get_text() == "n/a" for t in w._ax_bars.texts) == len(scored)  # no bar for the empty layer
    w.save_csv(tmp_path / "n.csv")
    table = list(csv.reader(open(tmp_path / "n.csv")))
    assert table[0][:3] == ["layer", "label", "class"]
    assert {r[2] for r in table if r[0] == "ground truth" and r[1].isdigit()} == {names[c] for c in scored}
