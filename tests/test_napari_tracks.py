"""Instance stores in napari: the tracks labels layer (class colours, "Grasper #2" features), the
Tracks layer of centroids, the events table's track rows, the segment widget's instances checkbox."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest

from napari_sasvi._napari import _tracks
from napari_sasvi.core.datasets import SYNTHETIC
from napari_sasvi.core.engine import run_sasvi
from napari_sasvi.core.instances.identity import IdentityParams
from napari_sasvi.core.instances.types import Instance, TrackInfo
from napari_sasvi.core.policy import PolicyParams
from napari_sasvi.core.store.sasvi_store import SasviStore
from napari_sasvi.core.trackers.flow import FlowTracker

GRASPER, HOOK = 5, 6  # synthetic class ids: Grasper, L-hook Electrocautery
H, W, N = 96, 128, 24


def _square(y: int, x: int, r: int = 8) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[max(0, y - r) : y + r, max(0, x - r) : x + r] = True
    return m


def crossing(t: int):
    """Two graspers crossing along nearly one row, a hook from frame 4 to 15 (it ends mid-video)."""
    out = [(GRASPER, (30, 12 + 4 * t)), (GRASPER, (38, 116 - 4 * t))]
    if 4 <= t <= 15:
        out.append((HOOK, (75, 60)))
    return out


class Detections:
    """An instance overseer replaying ``crossing`` (no identities: the run matches them)."""

    needs_frames = False
    name = "scheduled detections"

    def predict_instances(self, frames, indices):
        return [[Instance(c, _square(*yx), 0.9) for c, yx in crossing(t)] for t in indices]

    def describe(self):
        return {"type": "scheduled"}


def _frames(n: int = N) -> np.ndarray:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 40, (n, H, W, 3), dtype=np.uint8)
    for t in range(n):
        for k, (_, (y, x)) in enumerate(crossing(t)):
            frames[t][_square(y, x)] = ((200, 60, 60), (60, 200, 60), (60, 60, 200))[k]
    return frames


def _instance_store(out, **kw):
    run_sasvi(
        _frames(), Detections(), FlowTracker(), str(out), SYNTHETIC, PolicyParams(buffer=12),
        instances=IdentityParams(), **kw,
    )  # fmt: skip
    return SasviStore.read(out)


# -- helpers (no viewer) ------------------------------------------------------------------------------
def test_colours_share_the_class_hue_and_differ_in_lightness():
    table = {
        1: TrackInfo(1, GRASPER, 0, 9),
        2: TrackInfo(2, GRASPER, 0, 9),
        3: TrackInfo(3, HOOK, 2, 5),
        4: TrackInfo(4, GRASPER, 3, 9, parent=1),
    }
    colors = _tracks.track_colors(table, SYNTHETIC)
    grasper = tuple(v / 255 for v in SYNTHETIC.by_id(GRASPER).color)
    hook = tuple(v / 255 for v in SYNTHETIC.by_id(HOOK).color)
    assert colors[1][:3] == pytest.approx(grasper) and colors[3][:3] == pytest.approx(hook)
    hls = [colorsys.rgb_to_hls(*colors[k][:3]) for k in (1, 2, 4)]
    assert [h for h, _, _ in hls] == pytest.approx([hls[0][0]] * 3)  # one hue: graspers all
    assert len({round(lightness, 3) for _, lightness, _ in hls}) == 3  # three lightnesses: told apart
    assert colors[0][3] == 0 and colors[None] == _tracks.UNKNOWN_TRACK
    features = _tracks.track_features(table, SYNTHETIC)
    assert list(features["track"]) == ["Grasper #1", "Grasper #2", "L-hook Electrocautery #3", "Grasper #4"]
    assert list(features["parent"]) == [None, None, None, 1]
    rows = _tracks.track_event_rows(table, SYNTHETIC, n_frames=10, done=10)
    assert [(r["frame"], r["kind"], r["reason"]) for r in rows] == [
        (0, "track_start", "Grasper #1"),
        (0, "track_start", "Grasper #2"),
        (2, "track_start", "L-hook Electrocautery #3"),
        (5, "track_end", "L-hook Electrocautery #3"),  # the others are on the video's last frame: no end
        (3, "track_start", "Grasper #4, split from #1"),
    ]


def test_frame_centroids_and_the_split_graph():
    ids = np.zeros((H, W), np.uint16)
    ids[10:20, 30:50] = 2
    ids[60:64, 0:4] = 7
    c = _tracks.frame_centroids(ids)
    np.testing.assert_allclose(c, [[2, 14.5, 39.5], [7, 61.5, 1.5]])
    cache = _tracks.CentroidCache()
    cache.update(np.stack([ids, np.where(ids == 2, 9, ids).astype(np.uint16)]), [0, 1])
    table = {2: TrackInfo(2, GRASPER, 0, 0), 7: TrackInfo(7, HOOK, 0, 1), 9: TrackInfo(9, GRASPER, 1, 1, parent=2)}
    data, graph, props = cache.layer_data(table)
    assert data[:, :2].tolist() == [[2, 0], [7, 0], [7, 1], [9, 1]]
    assert graph == {9: [2]} and props["class_id"].tolist() == [GRASPER, HOOK, HOOK, GRASPER]


# -- the reader ---------------------------------------------------------------------------------------
@pytest.mark.gui
def test_open_an_instance_store(make_napari_viewer_proxy, tmp_path):
    store = _instance_store(tmp_path / "inst.zarr")
    table, tracks = store.track_table, np.asarray(store.tracks)
    assert {i.class_id for i in table.values()} == {GRASPER, HOOK} and len(table) == 3
    viewer = make_napari_viewer_proxy()
    layers = viewer.open(str(tmp_path / "inst.zarr"), plugin="napari-sasvi")
    names = [la.name for la in layers]
    assert names == ["inst SASVi", "inst overseer", "inst tracks", "inst track centroids"]
    sasvi, _, labels, centroids = layers
    assert not sasvi.visible and labels.visible  # the tracks layer shows the classes too
    assert type(labels.data).__module__.startswith("zarr") and labels.data.shape == (N, H, W)  # lazy
    # features: one row per track, named by class and id
    f = labels.features.set_index("track_id")
    assert sorted(f.index) == sorted(table)
    for k, info in table.items():
        assert f.loc[k, "track"] == f"{SYNTHETIC.by_id(info.class_id).name} #{k}"
        assert (f.loc[k, "class_id"], f.loc[k, "first"], f.loc[k, "last"]) == (info.class_id, info.first, info.last)
    # colours: each track its class's hue; the two graspers two shades
    graspers = sorted(k for k, i in table.items() if i.class_id == GRASPER)
    rgba = {k: labels.colormap.map(np.array([k]))[0] for k in table}
    hue = {k: colorsys.rgb_to_hls(*rgba[k][:3])[0] for k in table}
    assert hue[graspers[0]] == pytest.approx(hue[graspers[1]]) and not np.allclose(rgba[graspers[0]], rgba[graspers[1]])
    hook = next(k for k, i in table.items() if i.class_id == HOOK)
    assert rgba[hook][:3] == pytest.approx(np.array(SYNTHETIC.by_id(HOOK).color) / 255)
    # hovering a grasper says which
    t, k = 3, graspers[1]
    y, x = (int(v) for v in np.argwhere(tracks[t] == k)[0])
    viewer.dims.set_current_step(0, t)
    assert f"Grasper #{k}" in labels.get_status((t, y, x))["value"]
    # the centroids: one track per id, each row its mask's centre
    assert set(np.unique(centroids.data[:, 0]).astype(int)) == set(table)
    for tid, frame, cy, cx in centroids.data[::5]:
        yy, xx = np.nonzero(tracks[int(frame)] == int(tid))
        assert (cy, cx) == pytest.approx((yy.mean(), xx.mean()))
    assert len(centroids.data) == sum(len(np.unique(tracks[t])) - 1 for t in range(N))
    # coloured as the labels layer
    for tid, colour in zip(centroids.data[:, 0], centroids.track_colors, strict=True):
        assert colour == pytest.approx(rgba[int(tid)])
    assert viewer.screenshot(canvas_only=True, flash=False).std() > 0


@pytest.mark.gui
def test_a_class_only_store_opens_as_before(make_napari_viewer_proxy, tmp_path):
    from napari_sasvi.core.overseers.replay import ReplayOverseer

    lab = np.full((6, H, W), 255, np.uint8)
    lab[:, 10:30, 10:30] = GRASPER
    run_sasvi(_frames(6), ReplayOverseer(lab, SYNTHETIC), FlowTracker(), str(tmp_path / "c.zarr"), SYNTHETIC)
    viewer = make_napari_viewer_proxy()
    layers = viewer.open(str(tmp_path / "c.zarr"), plugin="napari-sasvi")
    assert [la.name for la in layers] == ["c SASVi", "c overseer"] and layers[0].visible


@pytest.mark.gui
def test_a_store_opened_while_its_run_goes_gets_its_centroids_at_the_end(make_napari_viewer_proxy, qtbot, tmp_path):
    out = tmp_path / "live.zarr"
    _instance_store(out, stop_after=6, background_writes=False)
    partial = SasviStore.read(out)
    assert 6 <= partial.frames_done < N
    viewer = make_napari_viewer_proxy()
    layers = viewer.open(str(out), plugin="napari-sasvi")
    assert [la.name for la in layers][-2:] == ["live tracks", "live track centroids"]
    assert viewer.layers["live track centroids"].data[:, 1].max() == partial.frames_done - 1
    _instance_store(out)  # the run goes on to the end (here: in this thread, as another process would)
    qtbot.waitUntil(lambda: viewer.layers["live track centroids"].data[:, 1].max() == N - 1, timeout=20_000)
    done = SasviStore.read(out)
    assert set(viewer.layers["live tracks"].features["track_id"]) == set(done.track_table)


# -- the segment widget ---------------------------------------------------------------------------------
def _widget(make_napari_viewer_proxy, tmp_path, n_frames=12):
    from napari_sasvi._napari._form import REPLAY_FOLDER
    from napari_sasvi.core.synthetic import SyntheticVideo
    from napari_sasvi.core.synthetic_instances import write_instance_pngs

    viewer = make_napari_viewer_proxy()
    video = SyntheticVideo(n_frames=n_frames, height=96, width=128, seed=1)
    frames, labels = video.arrays()
    viewer.add_image(frames, name="clip", rgb=True)
    viewer.add_labels(labels, name="classes")
    folder = write_instance_pngs(video, tmp_path / "instances", noisy=False)
    _, widget = viewer.window.add_plugin_dock_widget("napari-sasvi", "SASVi segment video")
    widget._dataset.value = "synthetic"
    widget._sam2.value = "optical flow (DIS, no weights)"
    widget._overseer.value = REPLAY_FOLDER
    widget._overseer_path.value = folder
    widget._device.value = "cpu"
    return viewer, widget, video


@pytest.mark.gui
def test_widget_instance_run_shows_tracks_centroids_and_track_rows(make_napari_viewer_proxy, qtbot, tmp_path):
    viewer, widget, video = _widget(make_napari_viewer_proxy, tmp_path)
    assert "track" in widget._instances.tooltip and not widget._instances.value
    widget._instances.value = True
    assert widget.run_config().instances
    widget._out.value = tmp_path / "run.zarr"
    assert widget.run() is not None
    qtbot.waitUntil(lambda: widget._worker is None, timeout=120_000)
    store = SasviStore.read(tmp_path / "run.zarr")
    assert store.complete and store.tracks is not None, widget._status.value
    table = store.track_table
    assert {i.class_id for i in table.values()} == set(video.instance_classes.values())
    labels = viewer.layers["run tracks"]
    assert not viewer.layers["run SASVi"].visible and labels.visible
    assert viewer.layers.selection.active.name == "run tracks"  # where a user paints a correction
    assert set(labels.features["track_id"]) == set(table)
    assert "Grasper #" in " ".join(labels.features["track"])
    np.testing.assert_array_equal(np.asarray(labels.data[3]), np.asarray(store.tracks[3]))
    centroids = viewer.layers["run track centroids"]
    assert set(np.unique(centroids.data[:, 0]).astype(int)) == set(table)
    assert centroids.data[:, 1].max() == video.n_frames - 1
    rows = [tuple(r[:3]) for r in widget._table.data]
    for info in table.values():
        assert (info.first, "track_start", _tracks.track_name(info, store.classes)) in rows
    ends = [r for r in rows if r[1] == "track_end"]
    assert all(table[int(r[2].split("#")[1])].last == r[0] < video.n_frames - 1 for r in ends)
    assert widget._strip.counts()["track_start"] == len(table)
    # the policy's events are about tracks: they name them ("Grasper #1"), not their classes
    added = [(r[2], r[3]) for r in widget._table.data if r[1] == "add_objects"]
    assert added and all(
        name == _tracks.track_names(table, store.classes)[int(why.split()[2].rstrip(";"))] for why, name in added
    )


@pytest.mark.gui
def test_widget_instances_with_a_class_overseer_is_a_notification(
    make_napari_viewer_proxy, qtbot, tmp_path, monkeypatch
):
    from napari_sasvi._napari._form import REPLAY_LAYER, TRAINED

    viewer, widget, video = _widget(make_napari_viewer_proxy, tmp_path, n_frames=4)
    shown = []
    monkeypatch.setattr("napari.utils.notifications.show_error", lambda msg: shown.append(msg))
    widget._instances.value = True
    # class PNGs replayed as instances: the core's refusal comes back as a notification
    folder = tmp_path / "classes"
    folder.mkdir()
    from PIL import Image

    for t in range(video.n_frames):
        Image.fromarray(video.labels(t)).save(folder / f"{t:010d}.png")
    widget._overseer_path.value = folder
    widget._out.value = tmp_path / "bad.zarr"
    widget.run()
    qtbot.waitUntil(lambda: widget._worker is None, timeout=60_000)
    assert widget._status.value.startswith("error") and "instances.json" in widget._status.value
    assert shown and "Traceback" not in shown[-1] and not (tmp_path / "bad.zarr").exists()
    # a labels layer of class ids: refused by the form
    widget._overseer.value = REPLAY_LAYER
    assert widget.run() is None and "labels layer holds class ids" in shown[-1]
    # a pixel classifier gives no objects: the config's refusal
    widget._overseer.value = next(k for k, v in TRAINED.items() if v == "pixel")
    ckpt = tmp_path / "p.skops"
    ckpt.write_bytes(b"x")
    widget._overseer_ckpt.value = ckpt
    assert widget.run() is None and "needs an overseer that gives objects" in shown[-1]


@pytest.mark.gui
def test_painting_a_track_id_and_repropagate_re_propagates_that_instance(make_napari_viewer_proxy, qtbot, tmp_path):
    viewer, widget, video = _widget(make_napari_viewer_proxy, tmp_path)
    widget._instances.value = True
    widget._out.value = tmp_path / "e.zarr"
    widget.run()
    qtbot.waitUntil(lambda: widget._worker is None, timeout=120_000)
    path, panel = tmp_path / "e.zarr", widget._corrections
    before = SasviStore.read(path)
    tracks_before, table_before = np.asarray(before.tracks), before.track_table
    layer = viewer.layers["e tracks"]
    # corrections are painted as track ids, not as classes
    assert widget.labels_layer.name == "e tracks" and not viewer.layers["e SASVi"].editable
    # the user says one grasper is a new object from frame t on: paints its pixels with a new id
    t = max(i.first for i in table_before.values() if i.class_id == GRASPER) + 1
    old = next(k for k, i in table_before.items() if i.class_id == GRASPER and i.first < t < i.last)
    new = max(table_before) + 1
    yy, xx = np.nonzero(tracks_before[t] == old)
    layer.data_setitem((np.full(yy.shape, t), yy, xx), new)
    assert widget.new_tracks(t, np.asarray(layer.data[t])) == {new: GRASPER}  # the class it was painted over
    assert [r["kind"] for r in panel.timeline()] == ["corrected (pending)"]
    assert panel.repropagate() is not None
    qtbot.waitUntil(lambda: panel._worker is None and widget._shown_tracks.worker is None, timeout=120_000)
    store = SasviStore.read(path)
    tracks, table = np.asarray(store.tracks), store.track_table
    [summary] = panel.last_summaries
    assert summary.start == t and summary.written > 1
    assert (tracks[t][yy, xx] == new).all() and (tracks[:t] == tracks_before[:t]).all()
    assert table[new].class_id == GRASPER and table[new].first == t
    # shown: the new track named and coloured, its start in the table, its centroids in the Tracks layer
    assert f"Grasper #{new}" in list(layer.features["track"])
    assert (t, "track_start", f"Grasper #{new}") in [tuple(r[:3]) for r in widget._table.data]
    centroids = viewer.layers["e track centroids"]
    assert t in centroids.data[centroids.data[:, 0] == new][:, 1]
    panel.undo()
    np.testing.assert_array_equal(np.asarray(SasviStore.read(path).tracks), tracks_before)
    qtbot.waitUntil(lambda: widget._shown_tracks.worker is None, timeout=60_000)
    assert new not in set(layer.features["track_id"]) and new not in set(centroids.data[:, 0])
