"""Instance stores in napari: the labels layer of track ids (each track in its class's colour,
named "Grasper #2" in its features), the Tracks layer of the tracks' centroids (lines through time,
splits as its graph) and the events table's rows of track starts and ends.

Colours: every track of a class has the class's hue; the first track (lowest id) of a class has
the class colour itself, later ones step its lightness (+0.22, -0.22, +0.11, -0.11, ... in HLS),
so two graspers are two greens, told apart side by side and still read as graspers.

Centroids read every frame of the tracks array once (one bincount per coordinate: ~5 ms a frame
at 480x854); :class:`CentroidCache` keeps them per frame, so a run adds each frame as it is written
(in its worker) and the layer is built from what is kept.

These are the layers' pieces; :mod:`._track_layers` puts them in a viewer (the reader's, the
segment widget's).
"""

from __future__ import annotations

import colorsys
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from ..core.datasets import ClassTable
from ..core.instances.types import NO_TRACK, TrackInfo

#: lightness steps (HLS) of a class's 2nd, 3rd, ... track from the class colour (the 1st has 0)
LIGHTNESS_STEPS = (0.0, 0.22, -0.22, 0.11, -0.11, 0.33, -0.33)
#: ids not (yet) in the track table (a store still being written): grey, visible
UNKNOWN_TRACK = (0.6, 0.6, 0.6, 1.0)
#: the kinds of the events table's track rows
TRACK_START, TRACK_END = "track_start", "track_end"
FEATURES = ("track", "track_id", "class_id", "class", "first", "last", "mean_score", "parent")


def class_name(classes: ClassTable, class_id: int) -> str:
    """The class's name, or its id where the table has none."""
    try:
        return classes.by_id(int(class_id)).name
    except (KeyError, ValueError):
        return str(class_id)


def track_name(info: TrackInfo, classes: ClassTable) -> str:
    """``"Grasper #2"``: the track's class name and its id."""
    return f"{class_name(classes, info.class_id)} #{info.id}"


def track_names(table: Mapping[int, TrackInfo], classes: ClassTable) -> dict[int, str]:
    """Track id -> :func:`track_name` (what the events table and strip show for an instance
    store's events, whose ``labels`` are track ids)."""
    return {k: track_name(info, classes) for k, info in table.items()}


def _class_rgb(classes: ClassTable, class_id: int) -> tuple[float, float, float]:
    try:
        return tuple(v / 255 for v in classes.by_id(int(class_id)).color)
    except (KeyError, ValueError):
        return UNKNOWN_TRACK[:3]


def track_colors(table: Mapping[int, TrackInfo], classes: ClassTable) -> dict[int | None, tuple]:
    """Track id -> RGBA in [0, 1] (see the module docstring); 0 transparent, unknown ids grey
    (the ``None`` key of a napari ``DirectLabelColormap``)."""
    out: dict[int | None, tuple] = {NO_TRACK: (0.0, 0.0, 0.0, 0.0), None: UNKNOWN_TRACK}
    rank: dict[int, int] = {}
    for k in sorted(table):
        c = table[k].class_id
        n = rank.get(c, 0)
        rank[c] = n + 1
        h, lightness, s = colorsys.rgb_to_hls(*_class_rgb(classes, c))
        lightness = min(0.9, max(0.15, lightness + LIGHTNESS_STEPS[n % len(LIGHTNESS_STEPS)])) if n else lightness
        out[k] = (*colorsys.hls_to_rgb(h, lightness, s), 1.0)
    return out


def track_features(table: Mapping[int, TrackInfo], classes: ClassTable) -> pd.DataFrame:
    """One row per track (``index`` = its id, which napari's labels layer looks the hovered value
    up by); the status bar shows "track: Grasper #2, track_id: 2, class_id: 5, class: Grasper, ..."."""
    ids = sorted(table)
    infos = [table[k] for k in ids]
    return pd.DataFrame(
        {
            "index": ids,
            "track": [track_name(i, classes) for i in infos],
            "track_id": ids,
            "class_id": [i.class_id for i in infos],
            "class": [class_name(classes, i.class_id) for i in infos],
            "first": [i.first for i in infos],
            "last": [i.last for i in infos],
            "mean_score": [round(float(i.mean_score), 3) for i in infos],
            # object, not float: a track with no parent shows nothing (napari skips None), not "nan"
            "parent": pd.Series([i.parent for i in infos], dtype=object),
        }
    )


def tracks_layer_kwargs(table: Mapping[int, TrackInfo], classes: ClassTable, name: str) -> dict:
    """Keyword arguments of the labels layer of track ids (``"<name> tracks"``)."""
    from napari.utils.colormaps import DirectLabelColormap

    return {
        "name": name,
        "colormap": DirectLabelColormap(color_dict=track_colors(table, classes)),
        "features": track_features(table, classes),
        "metadata": {"classes": classes.to_dict(), "array": "tracks"},
        "opacity": 0.6,
    }


def show_table(layer, table: Mapping[int, TrackInfo], classes: ClassTable) -> None:
    """Update a tracks labels layer's colours and features to ``table`` (new tracks of a run)."""
    from napari.utils.colormaps import DirectLabelColormap

    layer.colormap = DirectLabelColormap(color_dict=track_colors(table, classes))
    layer.features = track_features(table, classes)


# -- centroids ------------------------------------------------------------------------------------
_GRIDS: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _grids(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Flattened row and column of every pixel (float64: bincount's weights)."""
    if (h, w) not in _GRIDS:
        _GRIDS.clear()  # one video size at a time
        _GRIDS[(h, w)] = (np.repeat(np.arange(h, dtype=np.float64), w), np.tile(np.arange(w, dtype=np.float64), h))
    return _GRIDS[(h, w)]


def frame_centroids(ids: np.ndarray) -> np.ndarray:
    """(n, 3) float64 rows [track id, y, x] of the tracks on a (H, W) track-id map, by id."""
    flat = np.asarray(ids).ravel()
    counts = np.bincount(flat)
    present = np.flatnonzero(counts)
    present = present[present != NO_TRACK]
    if not len(present):
        return np.empty((0, 3))
    yy, xx = _grids(*ids.shape)
    n = counts[present]
    ys = np.bincount(flat, weights=yy, minlength=len(counts))[present] / n
    xs = np.bincount(flat, weights=xx, minlength=len(counts))[present] / n
    return np.column_stack([present.astype(np.float64), ys, xs])


class CentroidCache:
    """The tracks' centroids per frame of a store's track-id array, computed once per frame
    written (:meth:`update`) and read as a napari Tracks layer's data (:meth:`layer_data`)."""

    def __init__(self):
        self.rows: dict[int, np.ndarray] = {}

    def update(self, tracks, frames: Iterable[int]) -> None:
        """(Re)compute the centroids of ``frames`` of ``tracks`` ((T, H, W) array of track ids)."""
        for t in frames:
            self.rows[int(t)] = frame_centroids(np.asarray(tracks[int(t)]))

    def layer_data(self, table: Mapping[int, TrackInfo]) -> tuple[np.ndarray, dict, dict]:
        """(data (N, 4) rows [track id, t, y, x] sorted by id then t; graph {child: [parent]} of
        the splits; properties per row: track_id, class_id and colour, the row's place in the
        colour map of :func:`centroid_layer_kwargs`)."""
        parts = [np.insert(r, 1, t, axis=1) for t, r in sorted(self.rows.items()) if len(r)]
        data = np.concatenate(parts) if parts else np.empty((0, 4))
        data = data[np.lexsort((data[:, 1], data[:, 0]))]
        ids = data[:, 0].astype(np.int64)
        present = set(ids.tolist())
        graph = {
            k: [int(table[k].parent)]
            for k in sorted(present)
            if k in table and table[k].parent is not None and table[k].parent in present
        }
        order = {k: i for i, k in enumerate(sorted(table))}
        colour = np.array([(order.get(int(k), len(order)) + 0.5) / (len(order) + 1) for k in ids])
        classes = np.array([table[int(k)].class_id if int(k) in table else -1 for k in ids], np.int64)
        return data, graph, {"track_id": ids, "class_id": classes, "colour": colour}


def centroid_colormap(table: Mapping[int, TrackInfo], classes: ClassTable):
    """A stepwise colour map giving each track (by its place among the table's ids) its labels
    colour (:func:`track_colors`); the last step is the grey of ids not in the table."""
    from napari.utils.colormaps import Colormap

    colors = track_colors(table, classes)
    rgba = [colors[k] for k in sorted(table)] + [UNKNOWN_TRACK]
    return Colormap(colors=rgba, controls=np.linspace(0.0, 1.0, len(rgba) + 1), interpolation="zero", name="tracks")


def centroid_layer_kwargs(table: Mapping[int, TrackInfo], classes: ClassTable, name: str, graph: dict, props: dict):
    """Keyword arguments of the Tracks layer (``"<name> track centroids"``): coloured by track as
    the labels layer is."""
    return {
        "name": name,
        "graph": graph,
        "properties": props,
        "color_by": "colour",
        "colormaps_dict": {"colour": centroid_colormap(table, classes)},
        "tail_width": 3,
        "tail_length": 30,
        "blending": "translucent",  # napari's additive default washes the class colours out to white
        "metadata": {"array": "tracks"},
    }


def centroid_layer_data(cache: CentroidCache, table, classes: ClassTable, name: str):
    """The Tracks layer's napari layer-data tuple, or None when no track has pixels yet."""
    data, graph, props = cache.layer_data(table)
    if not len(data):
        return None
    return data, centroid_layer_kwargs(table, classes, name, graph, props), "tracks"


# -- events ---------------------------------------------------------------------------------------
def track_event_rows(table: Mapping[int, TrackInfo], classes: ClassTable, n_frames: int, done: int) -> list[dict]:
    """The events table's rows of the tracks: a start at each track's first frame ("Grasper #2",
    "split from #1" where it split off), an end at its last frame, except a track still on the
    last frame written (or the video's last frame: it did not end, the video did)."""
    rows = []
    for k in sorted(table):
        info = table[k]
        reason = track_name(info, classes) + (f", split from #{info.parent}" if info.parent is not None else "")
        rows.append({"frame": info.first, "kind": TRACK_START, "reason": reason, "labels": [k]})
        if info.last < min(n_frames, done) - 1:
            rows.append({"frame": info.last, "kind": TRACK_END, "reason": track_name(info, classes), "labels": [k]})
    return rows
