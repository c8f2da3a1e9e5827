"""Clicks and boxes in "SASVi segment video" (issue 30, item 1): prompt an object on the frame
shown, see its mask at once, commit it as an edit that propagates through its span.

A thin shell over :mod:`napari_sasvi.core.prompts`: the layers are :class:`~._prompt_layers.PromptLayers`;
every change of the clicks or the box asks for the frame's mask in a ``thread_worker`` (SAM2's image
features of a frame take about a second on a CPU; they are fetched when prompting starts and when
the frame changes, and kept by the segmenter, so a click costs the decoder only); a request made
while one is computed replaces any waiting one (only the latest prompt is computed next). Commit
runs :func:`~napari_sasvi.core.prompts.iter_prompt` in a worker with a progress bar, as
Re-propagate does; the corrections panel's Undo edit takes it back.

Keys (on the prompt layers, and on the viewer while prompting): click = positive point,
shift+click or right click = negative point, Enter = commit, Escape = clear, N = new object (an
instance store). It talks to the segment widget through the surface the corrections panel uses.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
from magicgui.widgets import ComboBox, Container, Label, PushButton

from ..core.errors import InputError, SasviError
from ..core.instances.types import NO_TRACK
from ..core.prompts import ObjectPrompt, check_prompt_on_store, segmenter_for
from ..core.store.sasvi_store import SasviStore
from ._cores import one_core_left
from ._corrections import _edit_tracker
from ._layout import narrow_combos, wrap_label
from ._prompt_commit import Message, start_commit
from ._prompt_layers import PromptLayers

KEYS_HELP = "click: + point, shift/right click: - point, box layer: drag a box; Enter commit, Esc clear, N new object"
SEGMENTERS = [("auto", "auto"), ("SAM2", "sam2"), ("classical", "grow")]


class PromptPanel(Container):
    """Clicks and boxes for one object on the frame shown (module docstring), below the segment
    widget ``seg``; ``viewer`` gets the prompt layers. ``latencies``: seconds from each change of
    the clicks or box to its mask set on the preview layer (main thread)."""

    def __init__(self, seg, viewer):
        super().__init__(labels=False, layout="vertical")
        self._seg, self._viewer = seg, viewer
        self.layers = PromptLayers(viewer, self._prompt_changed)
        self.latencies: list[float] = []
        self.last_mask = None  # the PromptMask shown
        self.last_summary = None
        self._frame = 0
        self._store = None  # re-read when prompting starts and after each commit
        self._stack = None  # (frames source, FrameStack)
        self._lane = None  # the preview / feature worker, one at a time
        self._commit_after_lane = False  # Enter pressed while a preview was computed
        self._waiting = None  # the request after it (only the latest)
        self._commit_worker = None
        self._progress = None
        self._keys: dict = {}
        self._tracker_lock = threading.Lock()  # one tracker build, shared by previews and commits

        self._start = PushButton(text="Start prompting", tooltip=KEYS_HELP)
        self._class = ComboBox(choices=[], tooltip="The class of the object prompted.")
        self._object = ComboBox(choices=[("new object", NO_TRACK)], tooltip="Instance stores: a new object or a track.")
        self._segmenter = ComboBox(
            choices=SEGMENTERS, value="auto",
            tooltip="auto: SAM2's image path with a SAM2 store, else the classical one (GrabCut / watershed).",
        )  # fmt: skip
        self._commit = PushButton(text="Commit", tooltip="Enter: write the mask and propagate it.")
        self._clear = PushButton(text="Clear", tooltip="Escape: no clicks, no box.")
        self._info = Label(value=f"Prompts: {KEYS_HELP}.")
        wrap_label(self._info)
        rows = [
            Container(widgets=[self._start, self._segmenter], layout="horizontal", labels=False),
            Container(widgets=[self._class, self._object], layout="horizontal", labels=False),
            Container(widgets=[self._commit, self._clear], layout="horizontal", labels=False),
        ]
        for r in rows:
            r.margins = (0, 0, 0, 0)
        self.extend([self._info, *rows])
        narrow_combos(self)
        for c in (self._class, self._object, self._segmenter):
            c.native.setMinimumContentsLength(8)  # two to a row in the dock's 300 px (the tooltip has it all)
        self._object.visible = False
        self._start.changed.connect(self.toggle)
        self._commit.changed.connect(self.commit)
        self._clear.changed.connect(self.clear)
        self._class.changed.connect(self._class_changed)
        self._object.changed.connect(self._object_changed)
        self._segmenter.changed.connect(self._segmenter_changed)

    # -- starting and stopping -------------------------------------------------------------------------
    @property
    def prompting(self) -> bool:
        return self.layers.shown

    def toggle(self, *_):
        return self.stop() if self.prompting else self.start()

    def start(self, *_) -> bool:
        """Add the prompt layers for the store shown and fetch the frame's features; False (and
        a message) when there is nothing to prompt yet."""
        seg = self._seg
        if seg.store is None or seg.labels_layer is None:
            return self._say(
                "No SASVi result to prompt on yet: Run first (or Run on a finished store to open it).", True
            )
        if seg.running:
            return self._say("A run is going: prompt once it has finished (or Cancel it).", True)
        if self.prompting:
            return True
        self._store = SasviStore.read(seg.store.path)
        self._fill_choices()
        _, h, w = self._store.labels.shape
        self.layers.add((h, w), seg.frames_layer)
        self._keys = self.layers.bind_keys({"Enter": self.commit, "Escape": self.clear, "N": self.new_object})
        self._viewer.dims.events.current_step.connect(self._frame_changed)
        self._viewer.layers.events.removed.connect(self._layer_removed)
        self._frame = seg.current_frame
        self._class_changed()
        self._start.text = "Stop prompting"
        self._say(f"Prompting on frame {self._frame}: {KEYS_HELP}.")
        self._request(None)  # the frame's features, so that the first click is fast
        return True

    def stop(self, *_) -> None:
        """Remove the prompt layers and the keys (also when the dock closes)."""
        if not self.prompting:
            return
        self._viewer.dims.events.current_step.disconnect(self._frame_changed)
        self._viewer.layers.events.removed.disconnect(self._layer_removed)
        self.layers.unbind_keys(self._keys)
        self._keys = {}
        self.layers.remove()
        self._waiting = None
        self._stack = None  # the next start reads the frames of the store shown then
        self._commit_after_lane = False
        self._start.text = "Start prompting"

    def _layer_removed(self, event):
        if self.layers.mine(event.value):
            self.stop()

    def _same_store(self) -> bool:
        """Whether the segment widget still shows the store prompting started on; if it opened
        another (a new Run), prompting stops: its frames, classes and tracks were the old store's."""
        shown = self._seg.store
        if self._store is None or (shown is not None and Path(shown.path) == Path(self._store.path)):
            return True
        self.stop()
        self._say("The widget shows another store now: press Start prompting again.", True)
        return False

    def _frame_changed(self, *_):
        if self._viewer.dims.ndim < 3 or not self._same_store():  # the video's layers are gone, or the store
            return
        t = self._seg.current_frame
        if t == self._frame or not 0 <= t < self._store.n_frames:
            return
        self._frame = t
        self._store = SasviStore.read(self._store.path)  # a run may have finished more frames since
        self.layers.clear()  # the clicks and the box were for the frame left
        self.last_mask = None
        self._request(None)

    # -- the object --------------------------------------------------------------------------------------
    def _fill_choices(self):
        store = self._store
        classes = store.classes
        self._class.choices = [(c.name, c.id) for c in classes if c.id != classes.no_label]
        instances = store.tracks is not None
        self._object.visible = instances
        if instances:
            table = store.track_table
            tracks = [(f"track {k}: {classes.by_id(v.class_id).name}", k) for k, v in sorted(table.items())]
            self._object.choices = [("new object", NO_TRACK), *tracks]
            self._object.value = NO_TRACK

    def store_changed(self):
        """An edit or an undo changed the store (the segment widget's ``tracks_edited``): read it
        again, and an instance store's tracks list with it."""
        if self._store is None or self._seg.store is None:
            return
        self._store = SasviStore.read(self._seg.store.path)
        if self._store.tracks is not None:
            self._fill_choices()
        self._pump()  # a prompt that waited for the edit

    def new_object(self, *_):
        """N: the next prompt is a new object (instance stores)."""
        if self._store is not None and self._store.tracks is not None:
            self._object.value = NO_TRACK
            self._say("A new object: click on it or draw its box.")

    def _object_changed(self, *_):
        k = self._object.value
        if self._store is not None and k not in (None, NO_TRACK) and k in self._store.track_table:
            self._class.value = self._store.track_table[k].class_id

    def _class_changed(self, *_):
        if self._store is not None and self._class.value is not None:
            self.layers.set_color(self._store.classes.colors_rgba()[self._class.value])

    def _segmenter_changed(self, *_):
        self._prompt_changed()

    def prompt(self) -> ObjectPrompt | None:
        """The prompt the layers and the choices make, or None (no click, no box)."""
        if self.layers.empty() or self._class.value is None:
            return None
        points, labels, box = self.layers.geometry()
        cls = int(self._class.value)
        if self._store is None or self._store.tracks is None:
            return ObjectPrompt(self._frame, cls, cls, points, labels, box)
        k = self._object.value
        if k in (None, NO_TRACK):
            k = max(self._store.track_table, default=NO_TRACK) + 1
            return ObjectPrompt(self._frame, k, cls, points, labels, box, new_track=True)
        return ObjectPrompt(self._frame, int(k), cls, points, labels, box)

    # -- the preview ---------------------------------------------------------------------------------------
    def _prompt_changed(self):
        t0 = time.perf_counter()
        prompt = self.prompt()
        if prompt is None:
            self.layers.show_mask(None)
            self.last_mask = None
            return
        try:
            check_prompt_on_store(self._store, prompt)  # the store as read at start: no I/O per click
        except SasviError as e:
            self.layers.show_mask(None)
            return self._say(str(e), True)
        self._request((prompt, t0))

    def _request(self, job):
        """Compute ``job`` ((prompt, t0), or None: the frame's features) next; a job waiting is
        replaced (only the latest prompt counts)."""
        if self._store is None or not self._same_store():
            return
        if self._seg.running:  # its tracker and the CPU are the run's: nothing is computed meanwhile
            return self._say("A run is going: prompts are computed once it has finished.", True)
        try:
            config = self._seg.run_config()
        except (SasviError, ValueError, OSError) as e:
            return self._say(str(e), True)
        self._waiting = (job, self._frame, self._segmenter.value, config)
        if self._lane is None:
            self._pump()

    def _pump(self):
        from napari.qt.threading import thread_worker

        if self._waiting is None or self._commit_worker is not None or self._seg.busy or not self.prompting:
            return  # an edit goes: the latest prompt waits for it (its end pumps again)
        (job, t, kind, config), self._waiting = self._waiting, None
        store, models = self._store, self._seg.models
        try:
            stack = self._frames()
        except SasviError as e:
            return self._say(str(e), True)

        def work():
            from ..core.background import wait_warm

            wait_warm()
            try:
                segmenter = self.segmenter(store, models, config, kind)
                image = stack.frame(t)
                with one_core_left():
                    if job is None:
                        return ("features", t, segmenter.features(t, image))
                    return ("mask", job, segmenter.segment(image, job[0]))
            except (SasviError, ValueError, OSError) as e:
                return Message(str(e))

        worker = thread_worker(work, start_thread=False)()
        worker.returned.connect(self._computed)
        worker.errored.connect(lambda e: self._say(str(e), True))
        worker.finished.connect(self._lane_done)
        self._lane = worker
        worker.start()

    def _lane_done(self):
        self._lane = None
        if self._commit_after_lane:  # Enter while a preview was computed: commit now, on its own thread
            self._commit_after_lane = False
            self.commit()
            return
        self._pump()

    def _computed(self, result):
        if isinstance(result, Message):
            self.layers.show_mask(None)
            return self._say(result, True)
        if result[0] == "features":
            _, t, secs = result
            if secs > 0:
                self._say(f"frame {t}: image features in {secs:.2f} s; click on an object.")
            return
        _, (prompt, t0), pm = result
        if not self.prompting or prompt != self.prompt() or prompt.frame != self._frame:
            return  # the clicks changed since: the next result shows the latest
        self.layers.show_mask(pm.mask)
        self.last_mask = pm
        latency = time.perf_counter() - t0
        self.latencies.append(latency)
        n = int(pm.mask.sum())
        empty = " (empty: add a positive click or a box)" if n == 0 else ""
        self._say(
            f"mask {n} px{empty}, score {pm.score:.2f}, {latency * 1000:.0f} ms; Enter commits{self._cleared(pm)}."
        )

    def _cleared(self, pm) -> str:
        """A class store has one mask a class: what a commit would clear of the class elsewhere on
        the frame (the other of two graspers, say), said before it is done."""
        if self._store.tracks is not None or self._seg.labels_layer is None:
            return ""
        cls = self._class.value
        gone = int(((np.asarray(self._seg.labels_layer.data[self._frame]) == cls) & ~pm.mask).sum())
        name = self._store.classes.by_id(cls).name
        return f" (and clears {gone} px of {name} outside the mask)" if gone else ""

    def segmenter(self, store, models, config, kind):
        """The segmenter of ``kind`` for ``store`` (worker thread): the store's own tracker, built
        once and memoised in ``models``, so SAM2's kept features last between clicks."""
        if kind == "grow":
            return segmenter_for(None, "grow")
        with self._tracker_lock:
            return segmenter_for(_edit_tracker(store, models, config), kind)

    def _frames(self):
        from ..core.inputs.frames import open_frames

        store = self._store
        path = store.frames_path
        source = path if path is not None and path.exists() else getattr(self._seg.frames_layer, "data", None)
        if source is None:
            raise SasviError("No frames layer: open the store's video first.")
        if self._stack is None or not (
            self._stack[0] is source or isinstance(source, Path) and self._stack[0] == source
        ):
            self._stack = (source, open_frames(source))
        return self._stack[1]

    # -- commit --------------------------------------------------------------------------------------------
    def clear(self, *_):
        """Escape: no clicks, no box, no preview."""
        self.layers.clear()
        self.last_mask = None
        self._waiting = None

    def commit(self, *_):
        """Write the prompt's mask and propagate it (a worker; returned for tests), or None and a
        message when there is nothing to commit or the store cannot take it (nothing written)."""
        seg = self._seg
        try:
            if seg.store is None or seg.labels_layer is None:
                raise SasviError("No SASVi result to prompt on yet: Run first.")
            if seg.running:
                raise SasviError("A run is going: wait for it, or Cancel it, before committing a prompt.")
            if self._commit_worker is not None or seg.busy:
                raise SasviError("An edit (a prompt's commit, or Re-propagate) is going: wait for it, or Cancel it.")
            if not self._same_store():
                return None
            if self._lane is not None:  # a preview uses the model now: commit when it ends (one at a time)
                self._commit_after_lane = True
                self._say("committing once the preview is computed...")
                return None
            prompt = self.prompt()
            if prompt is None:
                raise InputError("Nothing to commit: click on the object or draw a box around it first.")
            store = SasviStore.read(seg.store.path)  # as on disk now: the run may have gone on
            check_prompt_on_store(store, prompt)
            painted = getattr(seg.labels_layer.data, "changed", lambda: [])()
            if prompt.frame in painted:  # the paint would hide the prompt's frame, and be lost with it
                raise SasviError(
                    f"Frame {prompt.frame} of the SASVi layer is painted and not re-propagated yet: press "
                    "Re-propagate first, then prompt."
                )
            config = seg.run_config()
            self._frames()
            frames = self._stack[0]  # the commit reads its own frames (a stack is not shared between threads)
        except (SasviError, ValueError, OSError) as e:
            self._say(str(e), True)
            return None
        return start_commit(self, prompt, store, config, frames)

    def _say(self, text: str, error: bool = False):
        try:
            self._info.value = text
        except RuntimeError:  # the dock was deleted while a worker ran (the viewer closed)
            return False
        if error:
            from napari.utils.notifications import show_error

            show_error(f"SASVi: {text}")
        return False
