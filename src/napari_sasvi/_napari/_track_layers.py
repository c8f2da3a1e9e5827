"""An instance store's track layers in a viewer (see :mod:`._tracks` for what they show): the
reader's (:func:`store_track_layers`, and :func:`watch_store` for a store a run still writes) and
the segment widget's (:class:`ShownTracks`; :class:`RunTracks` is the part its run worker drives).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..core.datasets import ClassTable
from ..core.errors import SasviError
from ..core.instances.types import NO_TRACK, TrackInfo
from ._tracks import (
    CentroidCache,
    centroid_layer_data,
    show_table,
    track_event_rows,
    track_names,
    tracks_layer_kwargs,
)

log = logging.getLogger(__name__)


# -- a run's tracks (the widget) ------------------------------------------------------------------
@dataclass(frozen=True)
class TracksSeen:
    """New track ids are on disk: the track table now (the run's worker yields it to the widget)."""

    table: dict


class RunTracks:
    """The run worker's side of an instance run's track layers: the centroids of every frame once
    it is written (:meth:`frame_done`, ~5 ms a frame at 480x854) and the track table whenever a
    frame brings new track ids. Inert for a class-only store."""

    def __init__(self):
        self.cache = CentroidCache()
        self.path = None
        self._tracks = None
        self._known: set[int] = set()

    def opened(self, path) -> None:
        """The run's store exists: the centroids of the frames already done (a resumed run)."""
        from ..core.store.sasvi_store import SasviStore

        store = SasviStore.read(path)
        if store.tracks is None:
            return
        self.path, self._tracks = path, store.tracks
        self._known = set(store.track_table)
        self.cache.update(self._tracks, range(store.frames_done))

    def frame_done(self, frame: int) -> TracksSeen | None:
        """Frame ``frame`` is written: its centroids; the table if it has a track not seen before."""
        from ..core.store.sasvi_store import SasviStore

        if self._tracks is None:
            return None
        self.cache.update(self._tracks, [frame])
        ids = set(self.cache.rows[frame][:, 0].astype(int).tolist())
        if ids <= self._known:
            return None
        table = SasviStore.read(self.path).track_table
        self._known = set(table)
        return TracksSeen(table)


# -- a store's layers (the reader) ----------------------------------------------------------------
def store_track_layers(store, name: str) -> tuple[list[tuple], CentroidCache]:
    """The layer-data tuples of an instance store's tracks: the track-id labels layer
    (``"<name> tracks"``, the zarr array itself, read lazily frame by frame) and the Tracks layer
    of the centroids of the frames done (``"<name> track centroids"``; none while no track has
    pixels). ``[]`` for a class-only store. Also returns the centroids kept, for a watcher."""
    cache = CentroidCache()
    if store.tracks is None:
        return [], cache
    table = store.track_table
    kw = tracks_layer_kwargs(table, store.classes, f"{name} tracks")
    kw["metadata"] = {**kw["metadata"], "sasvi_store": str(store.path), "frames_done": store.frames_done}
    layers = [(store.tracks, kw, "labels")]
    cache.update(store.tracks, range(store.frames_done))
    centroids = centroid_layer_data(cache, table, store.classes, f"{name} track centroids")
    if centroids is not None:
        layers.append(centroids)
    return layers, cache


def set_centroids(viewer, cache: CentroidCache, table, classes: ClassTable, name: str) -> None:
    """Add or update the Tracks layer ``name`` from ``cache`` (main thread)."""
    made = centroid_layer_data(cache, table, classes, name)
    if made is None:
        return
    data, kw, _ = made
    if name in viewer.layers:
        layer = viewer.layers[name]
        layer.data = data  # napari resets the properties and the graph with the data: set them after
        layer.properties = kw["properties"]
        layer.colormaps_dict = kw["colormaps_dict"]
        layer.color_by = "colour"  # recolours
        layer.graph = kw["graph"]
    else:
        viewer.add_tracks(data, **kw)


def watch_store(viewer, store, name: str, cache: CentroidCache, interval_s: float = 2.0, idle_s: float = 600.0):
    """A store opened while a run (elsewhere) still writes it: every ``interval_s`` read how far it
    got, take the centroids of the new frames (in a thread), recolour the tracks layer when new
    tracks appear, and add the centroids' Tracks layer once the run ends (the store complete, or no
    new frame for ``idle_s``). Stops when the tracks layer leaves the viewer. Returns the worker."""
    import time

    from napari.qt.threading import thread_worker

    from ..core.store.sasvi_store import SasviStore

    path, tracks_name, centroids_name = store.path, f"{name} tracks", f"{name} track centroids"
    seen, known = store.frames_done, set(store.track_table)

    def poll():
        nonlocal seen
        last_new = time.monotonic()
        while True:
            time.sleep(interval_s)
            try:
                current = SasviStore.read(path)
            except (SasviError, OSError) as e:  # deleted or moved meanwhile: the layers stay as they are
                log.warning("stopped following %s: %s", path, e)
                return None
            done, table = current.frames_done, current.track_table
            if done > seen:
                cache.update(current.tracks, range(seen, done))
                seen, last_new = done, time.monotonic()
            if done >= current.n_frames or time.monotonic() - last_new > idle_s:
                return table
            yield table  # each poll: napari's quit() takes effect at a yield

    def on_table(table):
        if set(table) != known and tracks_name in viewer.layers:
            known.clear()
            known.update(table)
            show_table(viewer.layers[tracks_name], table, store.classes)

    def on_end(table):
        if table is not None and tracks_name in viewer.layers:
            show_table(viewer.layers[tracks_name], table, store.classes)
            set_centroids(viewer, cache, table, store.classes, centroids_name)

    def on_removed(event):
        if event.value.name == tracks_name:
            worker.quit()

    worker = thread_worker(poll, start_thread=False)()
    worker.yielded.connect(on_table)
    worker.returned.connect(on_end)
    viewer.layers.events.removed.connect(on_removed)
    worker.finished.connect(lambda: viewer.layers.events.removed.disconnect(on_removed))
    worker.start()
    return worker


# -- the segment widget's tracks ------------------------------------------------------------------
class ShownTracks:
    """The segment widget's side of the instance store it shows: the tracks layer (its data a
    :class:`~._paint.PaintOverlay` of the tracks array: a track id painted there is a correction
    that Re-propagate re-propagates), the events table's track rows, the names of track ids, and
    the Tracks layer of centroids (:attr:`run` computes them in the run's worker). All empty for a
    class-only store. Main thread, except :attr:`run`'s calls."""

    def __init__(self, viewer):
        self.viewer = viewer
        self.layer = None
        self.rows: list[dict] = []
        self.names: dict[int, str] = {}
        self.run = RunTracks()
        self.worker = None  # centroids recomputed after an edit
        self._store = None
        self._name = ""

    def new_run(self) -> RunTracks:
        """A run starts: the centroids its worker computes (:class:`RunTracks`)."""
        self.run = RunTracks()
        return self.run

    def show_store(self, store, name: str, layer_for):
        """The store's tracks layer (``layer_for(name, data, kwargs)`` adds or reuses it) and rows;
        returns the layer, or None for a class-only store."""
        from ._paint import PaintOverlay

        self.layer, self.rows, self.names, self._store, self._name = None, [], {}, store, name
        if store.tracks is None:
            return None
        kw = tracks_layer_kwargs(store.track_table, store.classes, f"{name} tracks")
        self.layer = layer_for(f"{name} tracks", PaintOverlay(store.tracks), kw)
        self.show_table(store.track_table, store.frames_done)
        return self.layer

    def show_table(self, table: Mapping[int, TrackInfo], done: int | None = None) -> None:
        """The track table (a run's as far as written; ``done`` None: up to its last track's last
        frame) as the layer's colours and features, the names of track ids and the track rows."""
        classes = self._store.classes
        show_table(self.layer, table, classes)
        self.names = track_names(table, classes)
        last = max((i.last for i in table.values()), default=-1) + 1 if done is None else done
        self.rows = track_event_rows(table, classes, self._store.n_frames, last)

    def run_ended(self, store) -> None:
        """A run stopped (done or cancelled): its table and the centroids its worker computed."""
        self._store = store
        self.layer.refresh()
        self.show_table(store.track_table, store.frames_done)
        set_centroids(self.viewer, self.run.cache, store.track_table, store.classes, f"{self._name} track centroids")

    def edited(self, store) -> None:
        """An edit (or its undo) rewrote frames and the track table: show them; the centroids are
        computed again in a thread (every frame: the edit log says which it wrote, its undo not)."""
        from napari.qt.threading import thread_worker

        self._store = store
        self.layer.refresh()
        self.show_table(store.track_table, store.frames_done)
        fresh = RunTracks()

        def work():
            fresh.opened(store.path)
            return fresh.cache

        def done(cache):
            if self.worker is not worker:  # a later edit (or undo) started its own: this one is stale
                return
            self.run = fresh
            set_centroids(self.viewer, cache, store.track_table, store.classes, f"{self._name} track centroids")

        def finished():
            if self.worker is worker:  # an earlier worker ending leaves a later one in place
                self.worker = None

        self.worker = worker = thread_worker(work, start_thread=False)()
        worker.returned.connect(done)
        worker.finished.connect(finished)
        worker.start()

    def new_tracks(self, t: int, mask: np.ndarray) -> dict[int, int] | None:
        """The class of each id painted on frame ``t`` that the store has no track of: the class
        the store had under most of its pixels (a track split off or renamed keeps its class); an
        id painted on no class is left out (the edit then says to paint an existing id)."""
        from ..core.store.sasvi_store import SasviStore

        if self.layer is None:
            return None
        store = SasviStore.read(self._store.path)
        new = set(np.unique(mask).tolist()) - set(store.track_table) - {NO_TRACK}
        if not new:
            return None
        labels, no_label, out = np.asarray(store.labels[t]), store.classes.no_label, {}
        for k in sorted(new):
            under = labels[(mask == k) & (labels != no_label)]
            if under.size:
                out[int(k)] = int(np.bincount(under).argmax())
        return out or None
