"""The store's progress file: what it says is exactly the event log it was given, however the log
changes, and the log read back is the caller's to change."""

from __future__ import annotations

import json

import numpy as np

from napari_sasvi.core.datasets import SYNTHETIC
from napari_sasvi.core.store.sasvi_store import PROGRESS, SasviStore


def _on_disk(path):
    return json.loads((path / PROGRESS).read_text(encoding="utf-8"))


def test_progress_file_holds_the_log_as_given_whether_it_grows_or_changes(tmp_path):
    path = tmp_path / "s.zarr"
    store = SasviStore.open(path, n_frames=6, frame_size=(4, 5), classes=SYNTHETIC, signature={"k": 1})
    frame = np.zeros((4, 5), np.uint8)
    log: list[dict] = []
    for t in range(4):  # the pipeline's way: one log that grows, passed as a fresh list each frame
        log.append({"frame": t, "kind": "dropout_ignored", "reason": "r", "labels": [t, 2]})
        store.write_frame(t, frame, frame, list(log))
        assert _on_disk(path)["events"] == log and _on_disk(path)["frames_done"] == t + 1
    # a log whose earlier event is another object (an edit rewrote it): written whole, not stale
    changed = [dict(e) for e in log]
    changed[1] = {"frame": 1, "kind": "skipped", "reason": "user"}
    store.write_frame(4, frame, frame, changed)
    assert _on_disk(path)["events"] == changed
    store.save_snapshot({"frame": 4, "reason": "buffer", "state": {"n_events": 4}}, None)
    assert _on_disk(path)["events"] == changed and _on_disk(path)["snapshot"]["frame"] == 4
    store.mark_done(5, [])  # a shorter log
    assert _on_disk(path) == {**store._progress, "events": []}
    # the log read back is a copy: changing it changes nothing stored
    store.save_events(changed)
    got = store.events
    got[0]["kind"] = "tampered"
    got[0]["labels"].append(99)
    assert store.events == changed
    assert SasviStore.read(path).events == changed and SasviStore.read(path).frames_done == 5
