"""Identity across frames: the overseer's detections of each frame become tracks with stable ids.

:class:`IdentityCache` stands where the class overseer's :class:`~..overseers.base.OverseerCache`
stands in a class run: the policy reads ``masks(t)`` (track id -> mask) and ``scores(t)`` from it,
so every rule of SASVi (new objects, persistence, duplicates, consensus, fades) applies per track.

Frame by frame, in order:

1. Detections are matched to the live tracks (seen within ``grace`` frames) by mask IoU with
   each track's last mask moved by its last velocity, same class only: a Hungarian assignment
   (``scipy.optimize.linear_sum_assignment``) keeps pairs with IoU >= ``match_iou``.
2. Detections left over are matched the same way to tracks that ended (unseen for more than
   ``grace`` frames, at most ``reid_frames``) with IoU >= ``reid_iou``: they get their id back.
3. A detection still left over starts a track only if a detection of its class continues it
   (IoU >= ``match_iou`` frame to frame) over the next ``persistence`` frames; otherwise it gets
   no id and the policy never sees it (a one-frame false positive). A new track that lies mostly
   (``split_overlap`` of its area) inside a track matched on the same frame records that track as
   its parent (a split).

A detection that carries its object's id from the file it was read from (``source_id``: instance
label files, COCO track ids, LabelMe groups; not a model's detections) keeps that identity: one
track per (class, source id). The first time a file's object is seen it is matched like any
detection (an annotated frame among a detector's takes over the track the detector had for that
object) or starts a track at once (no persistence check: the file's word); from then on the track
is bound to it and continues with it only.

The assignment of frame t is a function of the detections of frames 0 .. t + persistence only, so
a resumed run (which restores the state before its segment start, :meth:`export_state`) assigns
the same ids as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from .masks import box as _box
from .masks import centroid as _centroid
from .masks import mask_iou, shift_mask
from .types import Instance, InstanceOverseer, rle_decode, rle_encode


@dataclass(frozen=True)
class IdentityParams:
    """How detections become tracks (see the module docstring).

    Attributes:
        match_iou: IoU of a detection with a live track's predicted mask at or above which it may
            continue that track.
        grace: frames a track without a detection stays live (its motion carried forward).
        reid_frames: frames after its last detection within which an ended track may come back
            with its id.
        reid_iou: IoU with an ended track's predicted mask at or above which a detection takes its id.
        persistence: frames a new detection must be continued before it starts a track (the
            policy's ``persistence``).
        split_overlap: fraction of a new track's first mask inside a track matched on the same
            frame above which that track is recorded as its parent.
        max_shift: pixels a track's mask is moved at most per frame of prediction.
        unique_class: where a class has one live track and, left after matching, one detection,
            they are the same object however far it moved (an instrument whose tip sweeps across
            the view between two frames overlaps nothing of itself); also in the persistence
            check of a new track. The rule can be wrong where one object of a class leaves as
            another enters on the very same frame.
        merge_cover: a detection matched to one track that also holds this fraction of another
            live, unmatched track of its class (as predicted) is a merge of the two and continues
            neither (1: no such check).
    """

    match_iou: float = 0.3
    grace: int = 5
    reid_frames: int = 50
    reid_iou: float = 0.2
    persistence: int = 3
    split_overlap: float = 0.5
    max_shift: int = 40
    unique_class: bool = True
    merge_cover: float = 0.5

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class _Track:
    """A track's memory (immutable: checkpoints share it)."""

    id: int
    class_id: int
    mask: np.ndarray  # its last detection
    seen: int  # frame of that detection
    vy: float = 0.0  # centroid velocity (pixels per frame) from its last two detections
    vx: float = 0.0
    cy: float = 0.0
    cx: float = 0.0


class IdentityCache:
    """Track ids for an instance overseer's detections (see the module docstring).

    ``masks(t)`` is track id -> bool mask at t (the same dict on every call; None outside the
    video), ``scores(t)`` track id -> the detection's score, ``class_of`` track id -> class id,
    ``parent`` track id -> the track it split from. Detections are computed in batches of
    ``batch_size`` frames, each frame once (``computed``).
    """

    def __init__(
        self,
        overseer: InstanceOverseer,
        n_frames: int,
        read_frame: Callable[[int], np.ndarray] | None = None,
        batch_size: int = 8,
        params: IdentityParams | None = None,
    ):
        self.overseer = overseer
        self.n_frames = n_frames
        self.read_frame = read_frame
        self.batch_size = max(1, batch_size)
        self.p = params or IdentityParams()
        self._raw: dict[int, list[Instance]] = {}
        self._boxes: dict[int, list] = {}
        self._masks: dict[int, dict[int, np.ndarray]] = {}
        self._scores: dict[int, dict[int, float]] = {}
        self.computed: dict[int, int] = {}
        self.class_of: dict[int, int] = {}
        self.parent: dict[int, int] = {}
        self._tracks: dict[int, _Track] = {}
        self._next_id = 1
        self._by_source: dict[tuple[int, int], int] = {}  # (class, source id) -> track id
        self._next_frame = 0  # the first frame not assigned yet
        # the tracker's own masks of a frame not assigned yet (observe): sparse annotations are
        # matched to them rather than to the masks of the last annotated frame, far back
        self._observed: tuple[int, dict[int, np.ndarray]] | None = None
        self._bound: set[int] = set()  # tracks bound to a file's object (at the frame being assigned)

    # -- the overseer's detections -------------------------------------------------------------
    def detections(self, t: int) -> list[Instance]:
        """Frame t's detections as the overseer gave them (those with pixels)."""
        if t not in self._raw:
            idx = [i for i in range(t, min(t + self.batch_size, self.n_frames)) if i not in self._raw]
            frames = [self.read_frame(i) for i in idx] if self.overseer.needs_frames and self.read_frame else None
            for i, found in zip(idx, self.overseer.predict_instances(frames, idx), strict=True):
                kept = [d for d in found if d.mask.any()]
                self._raw[i] = kept
                self._boxes[i] = [_box(d.mask) for d in kept]
                self.computed[i] = self.computed.get(i, 0) + 1
        return self._raw[t]

    # -- what the policy reads -----------------------------------------------------------------
    def masks(self, t: int) -> dict[int, np.ndarray] | None:
        if not 0 <= t < self.n_frames:
            return None
        while self._next_frame <= t:
            self._assign(self._next_frame)
        return self._masks[t]

    __call__ = masks

    def scores(self, t: int) -> dict[int, float]:
        return {} if self.masks(t) is None else dict(self._scores[t])

    def release_before(self, t: int) -> None:
        for d in (self._raw, self._boxes, self._masks, self._scores):
            for i in [i for i in d if i < t]:
                del d[i]

    @property
    def known_ids(self) -> set[int]:
        return set(self.class_of)

    # -- assignment ----------------------------------------------------------------------------
    def observe(self, t: int, track_map: np.ndarray) -> None:
        """The run's track-id map at t (the tracker's masks). Frames assigned from now on match a
        track's detection against the tracker's mask of it too (moved by the track's velocity
        from t to the frame): the tracker follows an object through fast motion and occlusion,
        where its last detection may lie far back."""
        self._observed = (t, {int(k): track_map == k for k in np.unique(track_map) if k != 0})

    def _predicted(self, tr: _Track, t: int) -> list[np.ndarray]:
        """Where track ``tr`` may be at t: its last detection moved by its velocity, and the
        tracker's latest mask of it (:meth:`observe`) moved the same way; a detection matches the
        better of the two."""
        out = [self._moved(tr, tr.mask, tr.seen, t)]
        if self._observed is not None:
            o, masks = self._observed
            if tr.id in masks and tr.seen < o <= t:
                out.append(self._moved(tr, masks[tr.id], o, t))
        return out

    def _moved(self, tr: _Track, mask: np.ndarray, since: int, t: int) -> np.ndarray:
        gap = t - since
        cap = self.p.max_shift * gap
        dy = int(round(float(np.clip(tr.vy * gap, -cap, cap))))
        dx = int(round(float(np.clip(tr.vx * gap, -cap, cap))))
        return shift_mask(mask, dy, dx)

    def _match(self, t: int, free: list[int], tracks: list[_Track], min_iou: float) -> dict[int, int]:
        """Hungarian assignment of detections ``free`` (indices into frame t's) to ``tracks``."""
        if not free or not tracks:
            return {}
        from scipy.optimize import linear_sum_assignment  # scipy loads in ~0.2 s: only once instances meet

        dets = self._raw[t]
        preds = [[(m, _box(m)) for m in self._predicted(tr, t)] for tr in tracks]
        iou = np.zeros((len(free), len(tracks)))
        for i, d in enumerate(free):
            for j, tr in enumerate(tracks):
                if dets[d].class_id == tr.class_id and self._may_take(dets[d], tr):
                    iou[i, j] = max(mask_iou(dets[d].mask, m, self._boxes[t][d], b) for m, b in preds[j])
        rows, cols = linear_sum_assignment(-iou)
        return {free[r]: tracks[c].id for r, c in zip(rows, cols, strict=True) if iou[r, c] >= min_iou}

    def _may_take(self, det: Instance, tr: _Track) -> bool:
        """Whether ``det`` may continue ``tr``: not a file's object on a track bound to another."""
        return det.source_id is None or tr.id not in self._bound

    def _persists(self, t: int, det: Instance, tracked: set[int]) -> bool:
        """Whether a detection of t is continued over the next ``persistence`` frames: a detection
        of its class overlapping it frame to frame, or, for a class no live track has
        (``tracked``: the classes that have one), the class's only detection there."""
        mask, box = det.mask, _box(det.mask)
        for k in range(1, self.p.persistence + 1):
            if t + k >= self.n_frames:
                break  # near the end the window shrinks (as the policy's)
            nxt = self.detections(t + k)
            best, best_i = 0.0, -1
            for i, d in enumerate(nxt):
                if d.class_id == det.class_id:
                    v = mask_iou(mask, d.mask, box, self._boxes[t + k][i])
                    if v > best:
                        best, best_i = v, i
            if best < self.p.match_iou:
                same = [i for i, d in enumerate(nxt) if d.class_id == det.class_id]
                if not (self.p.unique_class and len(same) == 1 and det.class_id not in tracked):
                    return False
                best_i = same[0]  # the class's only detection there: the same object, however far it moved
            mask, box = nxt[best_i].mask, self._boxes[t + k][best_i]
        return True

    def _merges(self, t: int, ids: dict[int, int], live: list[_Track]) -> set[int]:
        """Detections that cover another live track of their class as well as their own (two
        crossing instruments seen as one): they continue neither track (the tracker carries both)
        and start none. A detection covers a track when it holds ``merge_cover`` of the track's
        predicted mask."""
        if self.p.merge_cover >= 1:
            return set()
        dets, out = self._raw[t], set()
        matched = set(ids.values())
        for d, k in ids.items():
            for tr in live:
                if tr.id == k or tr.id in matched or tr.class_id != dets[d].class_id:
                    continue
                pred = self._moved(tr, tr.mask, tr.seen, t)
                area = np.count_nonzero(pred)
                if area and np.count_nonzero(pred & dets[d].mask) >= self.p.merge_cover * area:
                    out.add(d)
        return out

    def _assign(self, t: int) -> None:
        dets = self.detections(t)
        ids: dict[int, int] = {}
        for d, det in enumerate(dets):  # identities the files give, for objects they gave before
            key = None if det.source_id is None else (det.class_id, int(det.source_id))
            if key in self._by_source:
                ids[d] = self._by_source[key]
        # a track bound to a file's object takes no other file's object (a detector's detections of
        # it, yes); tracks continued above are taken
        self._bound = set(self._by_source.values())
        taken = set(ids.values())
        live = [tr for tr in self._tracks.values() if t - tr.seen <= self.p.grace and tr.id not in taken]
        ended = [
            tr for tr in self._tracks.values()
            if self.p.grace < t - tr.seen <= self.p.reid_frames and tr.id not in taken
        ]  # fmt: skip
        free = [d for d in range(len(dets)) if d not in ids]
        ids |= self._match(t, free, sorted(live, key=lambda tr: tr.id), self.p.match_iou)
        free = [d for d in free if d not in ids]
        if self.p.unique_class:  # a class's only live track takes the class's only detection left
            left = [tr for tr in live if tr.id not in ids.values()]
            for c in sorted({dets[d].class_id for d in free}):
                ds = [d for d in free if dets[d].class_id == c]
                ts = [tr for tr in left if tr.class_id == c]
                all_live = [tr for tr in live if tr.class_id == c]
                if len(ds) == 1 and len(ts) == 1 and len(all_live) == 1 and self._may_take(dets[ds[0]], ts[0]):
                    ids[ds[0]] = ts[0].id
            free = [d for d in free if d not in ids]
        ids |= self._match(t, free, sorted(ended, key=lambda tr: tr.id), self.p.reid_iou)
        merged = {d for d in self._merges(t, ids, live) if dets[d].source_id is None}  # a file's objects are
        for d in merged:  # its word, never a merge
            del ids[d]
        matched_masks = {ids[d]: dets[d].mask for d in ids}
        for d in range(len(dets)):
            if d in ids or d in merged:
                continue
            if dets[d].source_id is None and not self._persists(t, dets[d], {tr.class_id for tr in live}):
                continue  # a file's object needs no persistence
            new = self._next_id
            self._next_id += 1
            ids[d] = new
            self.class_of[new] = dets[d].class_id
            area = np.count_nonzero(dets[d].mask)
            for other, m in sorted(matched_masks.items()):
                if self.class_of[other] == dets[d].class_id and np.count_nonzero(m & dets[d].mask) >= (
                    self.p.split_overlap * area
                ):
                    self.parent[new] = other
                    break
        for d, k in ids.items():  # a file's object now has its track: bound to it from here on
            if dets[d].source_id is not None:
                self._by_source.setdefault((dets[d].class_id, int(dets[d].source_id)), k)
        masks: dict[int, np.ndarray] = {}
        scores: dict[int, float] = {}
        for d, k in sorted(ids.items(), key=lambda kv: kv[1]):
            det = dets[d]
            masks[k] = det.mask
            scores[k] = float(det.score)
            cy, cx = _centroid(det.mask)
            old = self._tracks.get(k)
            vy = vx = 0.0
            if old is not None:
                gap = max(1, t - old.seen)
                vy, vx = (cy - old.cy) / gap, (cx - old.cx) / gap
            self._tracks[k] = _Track(k, det.class_id, det.mask, t, vy, vx, cy, cx)
        for k in [k for k, tr in self._tracks.items() if t - tr.seen > self.p.reid_frames]:
            del self._tracks[k]  # past re-identification: forgotten
        self._masks[t], self._scores[t] = masks, scores
        self._next_frame = t + 1

    # -- resuming ------------------------------------------------------------------------------
    def export_state(self, t: int) -> dict:
        """Everything needed to go on from frame t exactly as this cache would (JSON-able): its
        memory now and the frames from t on that it has assigned already (t must not be released)."""
        self.masks(t)  # assigned up to t at least
        rle = {id(m): rle_encode(m) for f in range(t, self._next_frame) for m in self._masks[f].values()}
        rle.update({id(tr.mask): rle_encode(tr.mask) for tr in self._tracks.values() if id(tr.mask) not in rle})
        return {
            "frame": t,
            "next_frame": self._next_frame,
            "next_id": self._next_id,
            "by_source": [[c, s, k] for (c, s), k in sorted(self._by_source.items())],
            "tracks": [
                {
                    "id": tr.id, "class_id": tr.class_id, "seen": tr.seen, "mask": rle[id(tr.mask)],
                    "v": [tr.vy, tr.vx], "c": [tr.cy, tr.cx],
                }
                for tr in sorted(self._tracks.values(), key=lambda tr: tr.id)
            ],
            "assigned": [
                {"frame": f, "ids": sorted(self._masks[f]), "masks": [rle[id(self._masks[f][k])] for k in sorted(self._masks[f])],
                 "scores": [self._scores[f][k] for k in sorted(self._masks[f])]}
                for f in range(t, self._next_frame)
            ],
            "class_of": {str(k): v for k, v in sorted(self.class_of.items())},
            "parent": {str(k): v for k, v in sorted(self.parent.items())},
            "observed": None if self._observed is None else {
                "frame": self._observed[0],
                "tracks": {str(k): rle_encode(m) for k, m in sorted(self._observed[1].items())},
            },
        }  # fmt: skip

    def restore_state(self, state: dict) -> None:
        """Continue as the cache that :meth:`export_state` described (nothing of this one is assigned yet)."""
        self._tracks = {
            int(d["id"]): _Track(
                int(d["id"]), int(d["class_id"]), rle_decode(d["mask"]), int(d["seen"]),
                float(d["v"][0]), float(d["v"][1]), float(d["c"][0]), float(d["c"][1]),
            )
            for d in state["tracks"]
        }  # fmt: skip
        self._next_id = int(state["next_id"])
        self._by_source = {(int(c), int(s)): int(k) for c, s, k in state.get("by_source", [])}
        self.class_of = {int(k): int(v) for k, v in state["class_of"].items()}
        self.parent = {int(k): int(v) for k, v in state["parent"].items()}
        self._masks, self._scores, self._observed = {}, {}, None
        if state.get("observed"):
            o = state["observed"]
            self._observed = (int(o["frame"]), {int(k): rle_decode(m) for k, m in o["tracks"].items()})
        for a in state["assigned"]:
            f = int(a["frame"])
            self._masks[f] = {int(k): rle_decode(m) for k, m in zip(a["ids"], a["masks"], strict=True)}
            self._scores[f] = {int(k): float(v) for k, v in zip(a["ids"], a["scores"], strict=True)}
        self._next_frame = int(state["next_frame"])

    def __len__(self) -> int:
        return len(self._raw)


__all__ = ["IdentityCache", "IdentityParams", "mask_iou", "shift_mask"]
