"""The run's decisions as the user sees them: the CLI's end-of-run summary, the strip's two lanes and
legend, the events table (issue 28: reprompt_class, fade, backfill, lost beside the re-prompts)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from conftest import write_video_dirs
from napari_sasvi._cli_events import MAX_FRAMES, event_summary_lines, video_done_lines
from napari_sasvi.cli import main
from napari_sasvi.core.datasets import CHOLECSEG8K

LIVER, LHOOK, GALL, FAT = 2, 9, 10, 4


def run_events(n_frames: int = 5000) -> list[dict]:
    """A well-formed event log of a long run: restarts every 500 frames, anchors, objects added,
    frequent per-class re-prompts, a few fades, back-fills and lost objects, and table-only kinds."""
    ev = [{"frame": 0, "kind": "restart", "reason": "start", "mask_labels": [LIVER, FAT], "point_labels": []}]
    ev += [
        {"frame": f, "kind": "restart", "reason": "new class 10", "mask_labels": [LIVER, GALL], "point_labels": []}
        for f in range(500, n_frames, 500)
    ]
    ev += [{"frame": f, "kind": "anchor", "reason": "annotated frame"} for f in (1200, 3300)]
    ev += [
        {"frame": 740, "kind": "add_objects", "reason": "class 9 appeared", "mask_labels": [LHOOK], "point_labels": []}
    ]
    for f in range(37, n_frames, 131):
        c = LHOOK if f % 3 else LIVER
        reason = f"IoU with the overseer < 0.9 for 2 frames ({c}: 0.52)"
        ev.append({"frame": f, "kind": "reprompt_class", "reason": reason, "labels": [c]})
    ev += [
        {"frame": f, "kind": "fade", "reason": "the overseer missed it for 5 frames", "labels": [GALL]}
        for f in (1490, 2990, 4495)
    ]
    ev += [
        {"frame": f, "kind": "backfill", "reason": f"frames {f - 3}..{f - 1}", "labels": [GALL]} for f in (503, 2003)
    ]
    ev += [
        {"frame": f, "kind": "lost", "reason": "confidence 0.12 < 0.2; re-seeded from anchor 1200", "labels": [LIVER]}
        for f in (1500, 4020)
    ]
    ev += [
        {"frame": f, "kind": "dropout_ignored", "reason": "class 4 missing 1 frame"} for f in range(10, n_frames, 97)
    ]
    return sorted((e for e in ev if e["frame"] < n_frames), key=lambda e: e["frame"])


# -- the CLI's summary -----------------------------------------------------------------------------


def test_summary_counts_each_kind_and_names_the_classes():
    events = run_events()
    lines = event_summary_lines(events, CHOLECSEG8K)
    n = {k: sum(e["kind"] == k for e in events) for k in {e["kind"] for e in events}}
    assert lines[0] == (
        f"decisions: restart ×{n['restart']}, anchor ×2, add_objects ×1, reprompt_class ×{n['reprompt_class']}, "
        f"fade ×3, backfill ×2, lost ×2, dropout_ignored ×{n['dropout_ignored']}"
    )
    per = [e["labels"][0] for e in events if e["kind"] == "reprompt_class"]
    assert lines[1] == f"re-prompted: Liver ×{per.count(LIVER)}, L-hook Electrocautery ×{per.count(LHOOK)}"
    assert lines[2] == "faded: Gallbladder ×3"
    assert lines[3] == "back-filled: Gallbladder ×2"
    assert lines[4] == "lost: class 2 (Liver) at frames 1500, 4020; re-seeded from the nearest anchor"
    assert len(lines) == 5  # compact: one line per kind (lost: per class), no per-event lines
    # without a class table: ids
    assert event_summary_lines(events)[1].startswith("re-prompted: class 2 ×")
    assert event_summary_lines([], CHOLECSEG8K) == []


def test_long_frame_lists_are_shortened():
    lost = [{"frame": f, "kind": "lost", "reason": "", "labels": [LIVER]} for f in range(0, 100, 5)]
    [_, line] = event_summary_lines(lost, CHOLECSEG8K)
    assert line.startswith("lost: class 2 (Liver) at frames 0, 5, 10,")
    assert f", ... ({20 - MAX_FRAMES} more); re-seeded" in line
    restarts = [{"frame": f, "kind": "restart", "reason": "x"} for f in range(0, 5000, 200)]
    summary = SimpleNamespace(events=restarts, store="/x/v.zarr", frames_written=5000, resumed_from=0)
    head = video_done_lines("v", summary, CHOLECSEG8K)[0]
    assert head == (
        "v: 5000 frames written to /x/v.zarr; 25 restarts at "
        f"[{', '.join(str(f) for f in range(0, 200 * MAX_FRAMES, 200))}, ... ({25 - MAX_FRAMES} more)]"
    )
    short = SimpleNamespace(events=run_events(1200), store="s", frames_written=7, resumed_from=5)
    lines = video_done_lines("v", short, None)
    assert lines[0] == "v: resumed at frame 5, 7 frames written to s; restarts at [0, 500, 1000]"
    assert all(line.startswith("v: ") for line in lines) and lines[1].startswith("v: decisions: restart ×3")


def test_segment_prints_the_summary(tmp_path, capsys):
    videos, masks = write_video_dirs(tmp_path, ["Video1"], n=4)
    flow = ["--dataset", "synthetic", "--tracker", "flow", "--device", "cpu"]
    rc = main(["segment", str(videos), "--out", str(tmp_path / "out"), "--overseer-masks", str(masks), *flow])
    out = capsys.readouterr().out
    assert rc == 0
    [decisions] = [line for line in out.splitlines() if line.startswith("Video1: decisions: ")]
    assert "restart ×1" in decisions


# -- the strip, its legend and the table (Qt) --------------------------------------------------------


@pytest.mark.gui
def test_strip_lanes_legend_and_tooltips(qtbot):
    from napari_sasvi._napari._event_strip import EventStrip

    clicked = []
    strip = EventStrip(on_click=clicked.append)
    qtbot.addWidget(strip)
    strip.resize(600, strip.height())
    events = run_events()
    names = {c.id: c.name for c in CHOLECSEG8K}
    strip.set_events(
        events + [{"frame": 2500, "kind": "pinned (pending)", "reason": "press Re-propagate"}], 5000, names
    )
    counts = strip.counts()
    assert "dropout_ignored" not in counts  # table only: it would bury the strip
    assert counts["pinned"] == 1 and counts["lost"] == 2 and counts["restart"] == 10
    n_re = sum(e["kind"] == "reprompt_class" for e in events)
    assert strip.legend.entries() == [
        ("restart", 10),
        ("objects added", 1),
        ("anchor", 2),
        ("pinned", 1),
        ("re-prompt class", n_re),
        ("fade", 3),
        ("backfill", 2),
        ("lost", 2),
    ]
    assert f"re&#8209;prompt&nbsp;class&nbsp;&times;{n_re}" in strip.legend.text()
    # lanes: whole-frame re-prompts above, per-class decisions below
    lanes = {e["kind"]: strip.lane(e) for e in strip._events}
    assert lanes["restart"] == lanes["anchor"] == lanes["pinned (pending)"] == 0
    assert lanes["reprompt_class"] == lanes["fade"] == lanes["backfill"] == lanes["lost"] == 1
    # hover: the lane under the cursor says what happened at that frame, with class names
    x = strip._x(1500)
    low = strip.tooltip_at(x, strip.height() - 2)
    assert "frame 1500: lost - confidence 0.12" in low and "[Liver]" in low
    assert "fade" in low  # 1490 shares the pixels
    assert "lost" not in strip.tooltip_at(x, 2)  # the upper lane there: a restart
    assert "frame 1500: restart" in strip.tooltip_at(x, 2)
    assert strip.tooltip_at(strip._x(250), 2).startswith("Upper lane:")
    # a click jumps to the nearest event of the lane clicked
    from qtpy.QtCore import QPoint, Qt

    qtbot.mouseClick(strip, Qt.MouseButton.LeftButton, pos=QPoint(strip._x(3000), strip.height() - 2))
    qtbot.mouseClick(strip, Qt.MouseButton.LeftButton, pos=QPoint(strip._x(3000), 2))
    assert clicked[1] == 3000
    assert clicked[0] != 3000 and abs(clicked[0] - 3000) < 80  # a per-class event near 3000
    # no events: no legend
    strip.set_events([], 5000)
    assert strip.legend.entries() == [] and strip.legend.isHidden()


@pytest.mark.gui
def test_widget_lists_the_new_kinds_with_class_names(make_napari_viewer_proxy, qtbot, tmp_path):
    from napari_sasvi.core.records import StoreOpened
    from napari_sasvi.core.store.sasvi_store import SasviStore

    events = run_events(5000)
    store = SasviStore.open(tmp_path / "v.zarr", n_frames=5000, frame_size=(8, 8), classes=CHOLECSEG8K, signature={})
    store.mark_done(5000, events)
    viewer = make_napari_viewer_proxy()
    _, widget = viewer.window.add_plugin_dock_widget("napari-sasvi", "SASVi segment video")
    widget._show_store(StoreOpened(str(tmp_path / "v.zarr"), 5000, 5000))  # as a run's first item does
    qtbot.waitUntil(lambda: widget._table.shape[0] > 0, timeout=10_000)
    rows = {(r[0], r[1]): r for r in widget._table.data}
    assert {"reprompt_class", "fade", "backfill", "lost", "dropout_ignored"} <= {k for _, k in rows}
    assert rows[(0, "restart")][3] == "Liver, Fat"
    assert rows[(503, "backfill")][2:] == ["frames 500..502", "Gallbladder"]
    assert rows[(37, "reprompt_class")][3] == "L-hook Electrocautery"
    legend = dict(widget._strip.legend.entries())
    assert legend["re-prompt class"] == sum(e["kind"] == "reprompt_class" for e in events)
    assert legend["lost"] == 2 and "skipped" not in legend
