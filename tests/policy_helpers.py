"""Test helpers: an overseer that returns given (possibly overlapping) masks, and a fake tracker
that keeps every object's last prompt as its mask (for the policy's bookkeeping only)."""

from __future__ import annotations

import itertools

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


def run(per_frame, mode="reference", tmp_path=None, table=TABLE, **params):
    from napari_sasvi.core.engine import run_sasvi
    from napari_sasvi.core.policy import PolicyParams

    n = len(per_frame)
    frames = np.zeros((n, H, W, 3), np.uint8)
    tracker = FakeTracker(incremental=(mode == "default"))
    overseer = DictOverseer(per_frame)
    summary = run_sasvi(
        frames, overseer, tracker, str(tmp_path / f"{mode}.zarr"), table, PolicyParams(mode=mode, **params)
    )
    return summary, tracker, overseer


def restarts(summary):
    return [(e["frame"], e["mask_labels"], e["point_labels"]) for e in summary.events if e["kind"] == "restart"]


def kinds(summary, kind):
    return [e for e in summary.events if e["kind"] == kind]


# -- the published loop, transcribed ------------------------------------------------------------------
def _ratios(a, b):
    inter = np.sum(np.logical_and(a == 1, b == 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / np.sum(a == 1), inter / np.sum(b == 1)  # nan for an empty mask, as published


def _published_choose(window, group, overlap):
    """choose_duplicate_label (eval_sasvi.py l. 242-287) without the dead nnU-Net branch."""
    selections = {}
    for res in window:
        matching = list(set(group) & set(sorted(set(res.keys()))))
        if len(matching) == 0:
            continue
        if len(matching) == 1:
            selections[matching[0]] = selections.get(matching[0], 0) + np.sum(res[matching[0]] == 1)
        else:
            temp = []
            for a, b in itertools.combinations(matching, 2):
                s1, s2 = _ratios(res[a], res[b])
                if s1 >= overlap and s2 >= overlap:
                    temp += [a, b]
            for item in list(dict.fromkeys(temp)):
                selections[item] = selections.get(item, 0) + np.sum(res[item] == 1)
    return max(selections, key=selections.get)


def published_restarts(per_frame, n_points=20, future=10, buffer=25, overlap=0.70):
    """A line-by-line transcription of the bookkeeping of sasvi_inference (eval_sasvi.py l. 525-776,
    SASVi commit ba87d22), kept independent of napari_sasvi's policy: the tracker is left out (it
    decides nothing here), a point prompt "exists" when k-means would not raise (>= n_points
    pixels), the CaDIS merge is off. The overseer cache is edited in place as published.

    Returns [(frame, sorted mask-prompted labels, sorted point-prompted labels)] per restart.
    """
    cache = {t: {c: m.copy() for c, m in d.items() if m.any()} for t, d in enumerate(per_frame)}
    n = len(per_frame)
    out = []
    break_endless_loop = False
    old_label = current_label = prompt_label_list = negative_duplicate_list = yet_another = None
    idx = 0
    while idx < n:
        buffer_length = buffer
        per_obj_input_mask = cache[idx]
        points = []
        if idx > 0:
            for obj_id in prompt_label_list:
                if np.count_nonzero(per_obj_input_mask[obj_id]) >= n_points:
                    points.append(obj_id)
                false_positions = per_obj_input_mask[obj_id].copy()
                for other in per_obj_input_mask:
                    if other != obj_id:
                        per_obj_input_mask[other][false_positions] = False
            yet_another = old_label
            break_endless_loop = True
            negative_duplicate_list = [x for xs in negative_duplicate_list for x in xs]
            old_label = list(
                ((set(old_label) & set(current_label)) | set(prompt_label_list)) - set(negative_duplicate_list)
            )
        masks = [o for o in per_obj_input_mask if idx == 0 or (o in yet_another and o not in negative_duplicate_list)]
        out.append((idx, sorted(masks), sorted(set(points))))

        restarted = False
        while idx < n:  # propagate_in_video: one pass per output frame
            window = [cache[idx + k] for k in range(min(future, n - idx))]
            duplicate_list, negative_duplicate_list, partial_duplicate_list, prompt_label_list = [], [], [], []
            unique_lable_n = [sorted(set(res.keys())) for res in window]
            if idx == 0:
                old_label = unique_lable_n[0]
            else:
                current_label = unique_lable_n[0]
                buffer_length -= 1
                if buffer_length == 0:
                    restarted = True
                    break
                if old_label != current_label:
                    new_obj_label = list(set(current_label) - set(old_label))
                    for unique_l in unique_lable_n[1:4]:
                        new_obj_label = list(set(new_obj_label) & set(unique_l))
                    if new_obj_label:
                        for new_obj in new_obj_label:
                            for obj in current_label:
                                s1, s2 = _ratios(window[0][new_obj], window[0][obj])
                                if s1 >= overlap and s2 >= overlap and obj != new_obj:
                                    if not duplicate_list:
                                        duplicate_list.append([obj, new_obj])
                                    else:
                                        common = False
                                        for sublist in duplicate_list:
                                            if list(set(sublist) & set([obj, new_obj])):
                                                common = True
                                                missing = list(set([obj, new_obj]) - set(sublist))
                                                if missing:
                                                    sublist.append(missing[0])
                                        if not common:
                                            duplicate_list.append([obj, new_obj])
                                elif s1 >= overlap and s2 < overlap:
                                    partial_duplicate_list.append(new_obj)
                        if duplicate_list:
                            negative_duplicate_list = duplicate_list
                            for sublist in duplicate_list:
                                prompt_label = _published_choose(window, sublist, overlap)
                                if prompt_label not in old_label:
                                    prompt_label_list.append(prompt_label)
                                negative_duplicate_list = [
                                    [x for x in sl if x != prompt_label] for sl in negative_duplicate_list
                                ]
                        if new_obj_label:
                            flat = [x for xs in duplicate_list for x in xs]
                            single_label = list((set(new_obj_label) - set(flat)) - set(partial_duplicate_list))
                            for ixn in single_label:
                                if ixn not in old_label:
                                    prompt_label_list.append(ixn)
                        if prompt_label_list:
                            if break_endless_loop:
                                break_endless_loop = False
                                idx += 1
                                continue
                            restarted = True
                            break
                        break_endless_loop = False
                old_label = list(set(old_label) & set(current_label)) + prompt_label_list
            idx += 1
        if not restarted:
            break
    return out


# -- driving the policy without a store, and random overseer sequences -------------------------------
def drive_reference(per_frame, **params):
    """Policy in ``reference`` mode driven as :func:`~napari_sasvi.core.engine.iter_sasvi` drives it
    (start_segment at s, step(t) for t = s, s+1, ...; a reason restarts at t), over an in-memory cache.
    Returns the restarts as [(frame, sorted mask labels, sorted point labels)]."""
    from napari_sasvi.core.policy import Policy, PolicyParams

    cache = {t: {c: m.copy() for c, m in d.items() if m.any()} for t, d in enumerate(per_frame)}
    policy = Policy(PolicyParams(mode="reference", **params), cache.get)
    n, s, reason = len(per_frame), 0, "start"
    while True:
        policy.start_segment(s, reason)
        restart_at = None
        for t in range(s, n):
            reason = policy.step(t)
            if reason is not None:
                assert not (s > 0 and t == s), "reference mode never re-triggers on the frame just prompted"
                restart_at = t
                break
        if restart_at is None:
            break
        s = restart_at
    return [(e.frame, sorted(e.mask_labels), sorted(e.point_labels)) for e in policy.events if e.kind == "restart"]


IDS = (1, 2, 3, 5, 9, 10, 12)  # ids >= 8 make Python's set order differ from sorted order


def random_dropout_scene(seed, n=50, dropout=0.2, crowded=False):
    """Classes entering and leaving, each missing on a frame with probability ``dropout``.

    Default: random boxes (chance overlaps, tiny masks, a near-copy of class 2 as class 10 and a
    corner of class 1 as class 12 half of the time). ``crowded``: classes 1, 9 and 10 are near
    copies of one box (groups of three duplicates), 5 lies inside them, masks randomly cropped.
    """
    rng = np.random.default_rng(seed)
    if crowded:
        shapes = {
            1: box(5, 5, 25, 35),
            9: box(5, 5, 24, 35),
            10: box(6, 5, 25, 36),
            2: box(20, 30, 40, 60),
            3: box(0, 40, 12, 60),
            5: box(8, 8, 12, 12),
            12: box(18, 25, 30, 45),
        }
    else:
        shapes = {}
        for c in IDS:
            y0, x0 = rng.integers(0, H - 8), rng.integers(0, W - 8)
            shapes[c] = box(y0, x0, y0 + rng.integers(3, 20), x0 + rng.integers(3, 30))
        if rng.random() < 0.5:
            shapes[10] = shapes[2] | box(0, 0, 1, 3)
        if rng.random() < 0.5:
            ys, xs = np.nonzero(shapes[1])
            shapes[12] = shapes[1] & box(ys.min(), xs.min(), ys.min() + 3, xs.min() + 4)
    span = {c: sorted(rng.integers(0, n, 2)) for c in IDS}
    for c in (1, 2) if crowded else (1, 2, 3):
        span[c] = [0, n - 1]
    frames = []
    for t in range(n):
        d = {}
        for c in IDS:
            first, last = span[c]
            if first <= t <= last and rng.random() >= dropout:
                m = shapes[c]
                if crowded and rng.random() < 0.3:
                    m = m & ~box(int(rng.integers(0, H)), 0, H, W)
                if m.any():
                    d[c] = m
        frames.append(d)
    return frames
