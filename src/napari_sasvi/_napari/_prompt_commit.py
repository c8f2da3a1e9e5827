"""A prompt's commit in a worker (the "Clicks and boxes" panel, :mod:`._prompts`): the prompt goes
through the edit engine (:func:`~napari_sasvi.core.prompts.iter_prompt`) with a progress bar; the
segment widget's Cancel stops it between frames (the frames written stay; Undo edit restores them)."""

from __future__ import annotations

from ..core.errors import SasviError
from ..core.progress import Returning
from ..core.prompts import iter_prompt
from ._corrections import _edit_tracker


class Message(str):
    """A worker's result that is a message for the user (an error), not a summary."""


def start_commit(panel, prompt, store, config, frames):
    """Start the worker that commits ``prompt`` to ``store`` for ``panel``; returns it."""
    from napari.qt.threading import thread_worker

    from ..core.engine import EditStarted, FrameDone

    seg = panel._seg
    kind, models = panel._segmenter.value, seg.models
    cancelled = seg.start_work()  # Cancel stops the propagation between frames; frames written stay

    def work():
        import sys

        from ..core.background import frozen_heap, wait_warm

        heap = frozen_heap()
        heap.freeze()
        try:
            wait_warm()
            segmenter = panel.segmenter(store, models, config, kind)
            with panel._tracker_lock:
                tracker = _edit_tracker(store, models, config)
            if "torch" in sys.modules:
                seg.limit_torch_threads()  # leave a core to napari (restored when it ends)
            run = Returning(iter_prompt(store.path, frames, tracker, prompt, segmenter=segmenter, cancel=cancelled))
            yield from run
            return run.value
        except (SasviError, ValueError, OSError) as e:
            return Message(str(e))
        finally:
            heap.release()

    def on_item(item):
        if isinstance(item, EditStarted):
            _start_bar(panel, item)
        elif isinstance(item, FrameDone):
            if panel._progress is not None:
                panel._progress.update(item.done - panel._progress.n)
            if seg.current_frame == item.frame:
                seg.labels_layer.refresh()

    def on_done(result):
        if isinstance(result, Message):
            return panel._say(result, True)
        panel.last_summary = s = result
        state = "cancelled" if s.cancelled else "committed"
        panel._say(
            f"prompt {state}: edit {s.edit_id}, frames {s.start}-{s.start + s.written - 1} recomputed in "
            f"{s.seconds:.1f} s; Undo edit takes it back."
        )
        if panel.prompting and panel.prompt() == prompt:  # clicks made meanwhile (another frame) stay
            panel.clear()

    def on_finished():
        _close_bar(panel)
        panel._commit_worker = None
        try:
            seg.work_finished()
            panel._commit.enabled = True
            seg.tracks_edited()  # calls store_changed, which pumps a prompt that waited
            seg.show_events()
        except RuntimeError:  # the dock was closed meanwhile: its Qt widgets are gone
            return

    worker = thread_worker(work, start_thread=False)()
    worker.yielded.connect(on_item)
    worker.returned.connect(on_done)
    worker.errored.connect(lambda e: panel._say(str(e), True))
    worker.finished.connect(on_finished)
    panel._commit_worker = worker
    panel._commit.enabled = False
    panel._say(f"committing the prompt on frame {prompt.frame}...")
    worker.start()
    return worker


def _start_bar(panel, item):
    from napari.utils import progress

    _close_bar(panel)
    plan = item.plan
    panel._progress = progress(total=plan.n_frames, desc=f"SASVi prompt at frame {plan.frame}")


def _close_bar(panel):
    if panel._progress is not None:
        panel._progress.close()
        panel._progress = None
