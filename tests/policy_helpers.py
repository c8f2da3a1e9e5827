"""Test helpers: an overseer that returns given (possibly overlapping) masks, and a fake tracker
that keeps every object's last prompt as its mask (for the policy's bookkeeping only)."""

from __future__ import annotations

import numpy as np

from napari_sasvi.core.datasets import ClassTable
from napari_sasvi.core.overseers.base import ClassMask

H, W = 40, 60
TABLE = ClassTable.from_dict(
    {
        "name": "toy",
        "no_label": 255,
        "classes": [{"id": i, "name": f"c{i}", "color": [i * 20, 100, 50]} for i in range(10)],
    }
)


def box(y0, x0, y1, x1):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


class DictOverseer:
    needs_frames = False
    name = "dict"

    def __init__(self, per_frame):
        self.per_frame = per_frame
        self.calls = []

    def predict(self, frames, indices):
        self.calls.append(list(indices))
        return [{c: ClassMask(m.copy(), 1.0) for c, m in self.per_frame[t].items()} for t in indices]

    def describe(self):
        return {"type": "dict", "n": len(self.per_frame)}


class FakeTracker:
    def __init__(self, incremental=False):
        self.incremental = incremental
        self.encodes = {}
        self.log = []
        self.objects = {}

    def bind(self, frames):
        self.n = len(frames)

    def reset(self):
        self.log.append(("reset",))
        self.objects = {}

    def add_mask(self, frame, obj_id, mask):
        self.log.append(("mask", frame, obj_id))
        self.objects[obj_id] = np.zeros((H, W), bool) if mask is None else np.asarray(mask, bool).copy()

    def add_points(self, frame, obj_id, pts, labels):
        self.log.append(("points", frame, obj_id, len(pts)))
        m = np.zeros((H, W), bool)
        for x, y in np.round(pts).astype(int):
            m[max(0, y - 1) : y + 2, max(0, x - 1) : x + 2] = True
        self.objects[obj_id] = m

    def remove_objects(self, ids):
        for i in ids:
            self.log.append(("remove", i))
            self.objects.pop(i, None)

    def propagate(self, start):
        for t in range(start, self.n):
            self.encodes[t] = self.encodes.get(t, 0) + 1
            yield t, {o: np.where(m, 1.0, -1.0).astype(np.float32) for o, m in self.objects.items()}

    def describe(self):
        return {"type": "fake"}


def run(per_frame, mode="reference", tmp_path=None, **params):
    from napari_sasvi.core.pipeline import run_sasvi
    from napari_sasvi.core.policy import PolicyParams

    n = len(per_frame)
    frames = np.zeros((n, H, W, 3), np.uint8)
    tracker = FakeTracker(incremental=(mode == "default"))
    overseer = DictOverseer(per_frame)
    summary = run_sasvi(
        frames, overseer, tracker, str(tmp_path / f"{mode}.zarr"), TABLE, PolicyParams(mode=mode, **params)
    )
    return summary, tracker, overseer


def restarts(summary):
    return [(e["frame"], e["mask_labels"], e["point_labels"]) for e in summary.events if e["kind"] == "restart"]


def kinds(summary, kind):
    return [e for e in summary.events if e["kind"] == kind]
