"""The SASVi re-prompting policy: when to (re)prompt the tracker, with which labels and prompts.

Free of torch and SAM2: it sees overseer results (class id -> bool mask) through a look-ahead
function and, in ``default`` mode, which objects the tracker still sees. The driver
(:mod:`.pipeline`) asks :meth:`Policy.start_segment` what to prompt at a segment start and
:meth:`Policy.step` after every propagated frame whether to go on or restart there.

``reference`` mode reproduces section 2 of the SASVi reference decision for decision (see
``docs/policy.md``), defects D2-D5 included. ``default`` mode fixes them:

* D2: a label is *new* only if the tracker does not see it (a one-frame overseer dropout of a
  tracked class does not restart anything);
* D3: no deferred trigger;
* D4: point prompts never silently vanish (masks under ``n_points`` pixels use all their pixels)
  and every point lies inside its mask;
* D5: overseer results are never modified (merges and erasures work on copies);
* D8: new objects are added to the running tracker (no reset), which the current SAM2 predictor
  allows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Mode = Literal["default", "reference"]
#: Overseer result of one frame: class id -> bool mask (H, W), only classes with pixels.
Masks = dict[int, np.ndarray]
#: Look-ahead access: frame index -> overseer masks, or None past the end of the video.
Lookup = Callable[[int], "Masks | None"]


@dataclass(frozen=True)
class PolicyParams:
    """Parameters of the re-prompting policy; defaults are the reference's values.

    Attributes:
        mode: ``reference`` (the published behaviour) or ``default`` (defects fixed).
        lookahead: frames of overseer look-ahead (t .. t+lookahead-1) for duplicate resolution.
        persistence: a new label must also be present in the next ``persistence`` frames.
        overlap: overlap ratio above which two masks are duplicates (both ways) or a partial
            duplicate (one way).
        buffer: frames after which a segment is re-seeded from the overseer.
        n_points: k-means points sampled in a new label's mask for a point prompt.
        tie_ratio: runner-up score / winner score at or above which a duplicate group is a tie
            (recorded as an event; the reference's nnU-Net tie-breaker is dead code).
        merge_unlabelled: CaDIS only: at a restart, unlabelled overseer pixels take the class the
            previous SASVi output had there.
        dummy_id: object id of the empty mask prompted when nothing is in view.
        new_prompt: ``default`` mode: prompt new labels with their ``mask`` or with ``points``.
        min_visible: ``default`` mode: pixels below which the tracker is taken not to see a class.
        seed: random state of the k-means point sampling.
    """

    mode: Mode = "default"
    lookahead: int = 10
    persistence: int = 3
    overlap: float = 0.70
    buffer: int = 25
    n_points: int = 20
    tie_ratio: float = 0.95
    merge_unlabelled: bool = False
    dummy_id: int = 0
    new_prompt: Literal["mask", "points"] = "mask"
    min_visible: int = 20
    seed: int = 0

    def __post_init__(self):
        if self.mode not in ("default", "reference"):
            raise ValueError(f"mode must be 'default' or 'reference', got {self.mode!r}")
        if self.lookahead < 1 or self.persistence < 0 or self.buffer < 2 or not 0 < self.overlap <= 1:
            raise ValueError("lookahead >= 1, persistence >= 0, buffer >= 2 and 0 < overlap <= 1 are required")


@dataclass(frozen=True)
class Prompt:
    """One prompt for one object at one frame: a mask, or points (N, 2) as (x, y) with labels."""

    obj_id: int
    kind: Literal["mask", "points"]
    mask: np.ndarray | None = None
    points: np.ndarray | None = None
    point_labels: np.ndarray | None = None


@dataclass(frozen=True)
class SegmentStart:
    """What the tracker must do at frame ``frame``: reset (or not), drop objects, add prompts."""

    frame: int
    reset: bool
    prompts: tuple[Prompt, ...]
    remove: tuple[int, ...] = ()


@dataclass(frozen=True)
class Event:
    """A decision of the policy. ``kind``: restart, trigger_deferred, duplicate, partial_duplicate,
    tie, dropout_ignored, no_prompt (D4), dummy, add_objects."""

    frame: int
    kind: str
    reason: str = ""
    mask_labels: tuple[int, ...] = ()
    point_labels: tuple[int, ...] = ()
    labels: tuple[int, ...] = ()

    def to_dict(self) -> dict:
        d = {"frame": self.frame, "kind": self.kind, "reason": self.reason}
        if self.kind in ("restart", "add_objects"):
            d["mask_labels"] = list(self.mask_labels)
            d["point_labels"] = list(self.point_labels)
        if self.labels:
            d["labels"] = list(self.labels)
        return d


def mask_overlaps(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(|a & b| / |a|, |a & b| / |b|); 0 where a mask is empty."""
    inter = float(np.count_nonzero(a & b))
    na, nb = float(np.count_nonzero(a)), float(np.count_nonzero(b))
    return (inter / na if na else 0.0, inter / nb if nb else 0.0)


def kmeans_points(mask: np.ndarray, k: int, seed: int = 0, iters: int = 20) -> np.ndarray:
    """k-means centroids of a mask's pixel coordinates, as (k, 2) float (x, y).

    Deterministic in ``seed`` (k-means++ initialisation, Lloyd iterations). Requires at least k
    pixels; the caller decides what happens below that.
    """
    ys, xs = np.nonzero(mask)
    pts = np.stack([xs, ys], axis=1).astype(np.float64)
    rng = np.random.default_rng(seed)
    centres = [pts[rng.integers(len(pts))]]
    d2 = ((pts - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        total = d2.sum()
        idx = rng.choice(len(pts), p=d2 / total) if total > 0 else rng.integers(len(pts))
        centres.append(pts[idx])
        d2 = np.minimum(d2, ((pts - pts[idx]) ** 2).sum(1))
    c = np.array(centres)
    for _ in range(iters):
        # assign in chunks so memory stays small for large masks
        assign = np.empty(len(pts), np.int64)
        for i in range(0, len(pts), 65536):
            chunk = pts[i : i + 65536]
            assign[i : i + 65536] = ((chunk[:, None, :] - c[None]) ** 2).sum(2).argmin(1)
        new = np.array([pts[assign == j].mean(0) if np.any(assign == j) else c[j] for j in range(k)])
        if np.allclose(new, c):
            break
        c = new
    return c


def snap_to_mask(points: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Move each (x, y) point to the nearest pixel of ``mask`` (fix for D4's centroids that fall
    outside non-convex masks)."""
    ys, xs = np.nonzero(mask)
    pix = np.stack([xs, ys], 1).astype(np.float64)
    out = points.copy()
    for i, p in enumerate(points):
        xi, yi = int(round(p[0])), int(round(p[1]))
        if 0 <= yi < mask.shape[0] and 0 <= xi < mask.shape[1] and mask[yi, xi]:
            continue
        out[i] = pix[((pix - p) ** 2).sum(1).argmin()]
    return out


@dataclass
class _State:
    old: set[int] = field(default_factory=set)
    prompt_new: list[int] = field(default_factory=list)
    negatives: set[int] = field(default_factory=set)
    skip_next_trigger: bool = False
    current: set[int] = field(default_factory=set)
    buffer: int = 0
    segment_start: int = 0
    tracked: set[int] = field(default_factory=set)  # default mode: objects in the tracker
    added: dict[int, int] = field(default_factory=dict)  # default mode: label -> frame last prompted


class Policy:
    """The re-prompting policy (see the module docstring). One instance drives one video.

    Args:
        params: the policy's parameters.
        lookup: frame -> overseer masks (None past the end). Results of one frame must be the same
            object on every call (a cache): ``reference`` mode mutates them in place (D5).
        no_label: value of unlabelled pixels in label maps (for the CaDIS merge).
    """

    def __init__(self, params: PolicyParams, lookup: Lookup, no_label: int = 255):
        self.p = params
        self.lookup = lookup
        self.no_label = no_label
        self.s = _State()
        self.events: list[Event] = []

    @property
    def reference(self) -> bool:
        return self.p.mode == "reference"

    def _labels(self, t: int) -> set[int] | None:
        res = self.lookup(t)
        return None if res is None else set(res)

    def _emit(self, event: Event) -> Event:
        self.events.append(event)
        return event

    # -- segment start ------------------------------------------------------------------------------
    def start_segment(self, s: int, reason: str, previous_output: np.ndarray | None = None) -> SegmentStart:
        """The prompts at a segment start (s = 0, a forced re-seed, or a trigger).

        Args:
            previous_output: the SASVi label map the previous segment produced at frame s (used by
                the CaDIS merge); None at s = 0.
        """
        st = self.s
        results = self.lookup(s) or {}
        P = results if self.reference else {c: m.copy() for c, m in results.items()}
        prompts: list[Prompt] = []
        point_labels: list[int] = []
        mask_labels: list[int] = []
        remove: tuple[int, ...] = ()
        if s > 0 and not self.reference:
            return self._reseed_default(s, reason, P, previous_output)
        if s > 0:
            if self.p.merge_unlabelled and previous_output is not None:
                self._merge_unlabelled(P, previous_output, st.old & st.current)
            for label in dict.fromkeys(st.prompt_new):  # de-duplicate, keep order
                if label not in P:
                    continue
                pts = self._points_for(P[label], s, label)
                if pts is not None:
                    prompts.append(Prompt(label, "points", points=pts, point_labels=np.ones(len(pts), np.int32)))
                    point_labels.append(label)
                erase = P[label]
                for other in P:
                    if other != label:
                        P[other] &= ~erase  # in place on the cache in reference mode (D5)
            tracked_before = set(st.old)
            st.skip_next_trigger = self.reference  # D3: the first trigger after a restart waits a frame
            st.old = ((st.old & st.current) | set(st.prompt_new)) - st.negatives
            mask_classes = [c for c in sorted(P) if c in tracked_before and c not in st.negatives]
        else:
            mask_classes = sorted(P)
            st.old = set(P)
        for c in mask_classes:
            prompts.append(Prompt(c, "mask", mask=P[c]))
            mask_labels.append(c)
        if not prompts:
            prompts.append(Prompt(self.p.dummy_id, "mask", mask=None))
            self._emit(Event(s, "dummy", "nothing to prompt: empty mask for the dummy id", labels=(self.p.dummy_id,)))
        if not self.reference:
            remove = tuple(sorted(st.negatives & st.tracked))
            st.tracked = (st.tracked | {p.obj_id for p in prompts}) - set(remove)
        self._emit(Event(s, "restart", reason, tuple(mask_labels), tuple(point_labels)))
        st.prompt_new = []
        st.negatives = set()
        st.buffer = self.p.buffer
        st.segment_start = s
        return SegmentStart(frame=s, reset=True, prompts=tuple(prompts), remove=remove)

    def _reseed_default(self, s: int, reason: str, P: Masks, previous_output: np.ndarray | None) -> SegmentStart:
        """``default`` mode's periodic reset: every tracked class is re-seeded with the overseer's
        mask, or, where the overseer misses it at s but the tracker still saw it, with the
        tracker's own last mask (a dropout on the re-seed frame loses nothing)."""
        st = self.s
        if self.p.merge_unlabelled and previous_output is not None:
            self._merge_unlabelled(P, previous_output, st.tracked & st.current)
        wanted = ((st.tracked - {self.p.dummy_id}) | set(st.prompt_new) | (st.tracked & set(P))) - st.negatives
        prompts: list[Prompt] = []
        carried: list[int] = []
        for c in sorted(wanted):
            if c in P:
                prompts.append(Prompt(c, "mask", mask=P[c]))
            elif previous_output is not None:
                mine = previous_output == c
                if np.count_nonzero(mine) >= self.p.min_visible:
                    prompts.append(Prompt(c, "mask", mask=mine))
                    carried.append(c)
        if carried:
            self._emit(
                Event(
                    s,
                    "carried_over",
                    "overseer misses them at the re-seed; the tracker's mask is kept",
                    labels=tuple(carried),
                )
            )
        if not prompts:
            prompts.append(Prompt(self.p.dummy_id, "mask", mask=None))
            self._emit(Event(s, "dummy", "nothing to prompt: empty mask for the dummy id", labels=(self.p.dummy_id,)))
        ids = tuple(p.obj_id for p in prompts if p.mask is not None)
        self._emit(Event(s, "restart", reason, ids, ()))
        st.tracked = {p.obj_id for p in prompts}
        st.old = set(ids)
        st.prompt_new = []
        st.negatives = set()
        st.buffer = self.p.buffer
        st.segment_start = s
        return SegmentStart(frame=s, reset=True, prompts=tuple(prompts))

    def _merge_unlabelled(self, P: Masks, previous: np.ndarray, keep: set[int]) -> None:
        covered = np.zeros(previous.shape, bool)
        for m in P.values():
            covered |= m
        hole = ~covered
        for c in keep:
            add = hole & (previous == c)
            if c in P and add.any():
                P[c] |= add  # in place: on the cache in reference mode (D5), on a copy otherwise

    def _points_for(self, mask: np.ndarray, s: int, label: int) -> np.ndarray | None:
        n = int(np.count_nonzero(mask))
        k = self.p.n_points
        if self.reference:
            if n < k:  # D4: the reference silently adds no prompt
                self._emit(Event(s, "no_prompt", f"mask of {n} < {k} pixels gets no point prompt", labels=(label,)))
                return None
            return kmeans_points(mask, k, self.p.seed)
        if n == 0:
            return None
        if n < k:
            ys, xs = np.nonzero(mask)
            return np.stack([xs, ys], 1).astype(np.float64)
        return snap_to_mask(kmeans_points(mask, k, self.p.seed), mask)

    # -- per frame ------------------------------------------------------------------------------------
    def step(self, t: int, visible: Mapping[int, int] | None = None) -> str | None:
        """Decide after the tracker produced frame t. Returns the reason to restart at t, or None.

        Args:
            visible: ``default`` mode: object id -> pixel count in the tracker's output at t.
        """
        st = self.s
        if t == 0:
            st.old = self._labels(0) or set()
            st.current = set(st.old)
            return None
        current = self._labels(t) or set()
        st.current = current
        if self.reference:
            # the reference recomputes the labels to prompt and the duplicates to drop on every
            # frame: a restart uses those of its own frame only (none at a forced re-seed), and a
            # deferred trigger's labels are not carried to the next frame
            st.prompt_new, st.negatives = [], set()
        # every frame t > 0 counts, a later segment's first frame included: the first forced
        # re-seed is at frame `buffer`, later ones `buffer - 1` frames after their segment start
        st.buffer -= 1
        if st.buffer <= 0:
            return "buffer"
        if self.reference:
            return self._trigger_reference(t, current)
        return self._trigger_default(t, current, visible or {})

    def _persistent_new(self, t: int, candidates: set[int]) -> set[int]:
        new = set(candidates)
        for k in range(1, self.p.persistence + 1):
            nxt = self._labels(t + k)
            if nxt is None:
                break  # near the end the window shrinks
            new &= nxt
        return new

    def _duplicates(self, t: int, new: set[int], current: set[int]) -> tuple[list[set[int]], set[int]]:
        """Duplicate groups (union-find over mutual overlaps) and partial duplicates among ``new``."""
        res = self.lookup(t) or {}
        parent: dict[int, int] = {}

        def find(x: int) -> int:
            parent.setdefault(x, x)
            while parent[x] != x:
                x = parent[x]
            return x

        partial: set[int] = set()
        for n in sorted(new):
            for o in sorted(current):
                if o == n:
                    continue
                s1, s2 = mask_overlaps(res[n], res[o])
                if s1 >= self.p.overlap and s2 >= self.p.overlap:
                    parent[find(n)] = find(o)
                elif s1 >= self.p.overlap:
                    partial.add(n)
        groups: dict[int, set[int]] = {}
        for x in list(parent):
            groups.setdefault(find(x), set()).add(x)
        return [g for g in groups.values() if len(g) > 1], partial

    def _resolve_group(self, t: int, group: set[int]) -> tuple[int, float, float]:
        """Winner of a duplicate group over the look-ahead window, with winner and runner-up scores."""
        members = sorted(group)
        score = dict.fromkeys(members, 0.0)
        for f in range(t, t + self.p.lookahead):
            res = self.lookup(f)
            if res is None:
                break
            present = [m for m in members if m in res]
            area = {m: float(np.count_nonzero(res[m])) for m in present}
            if len(present) == 1:
                score[present[0]] += area[present[0]]
            else:
                for i, a in enumerate(present):
                    for b in present[i + 1 :]:
                        s1, s2 = mask_overlaps(res[a], res[b])
                        if s1 >= self.p.overlap and s2 >= self.p.overlap:
                            score[a] += area[a]
                            score[b] += area[b]
        ranked = sorted(members, key=lambda m: (-score[m], m))
        runner = score[ranked[1]] if len(ranked) > 1 else 0.0
        return ranked[0], score[ranked[0]], runner

    def _classify_new(self, t: int, new: set[int], current: set[int], known: set[int]) -> None:
        """``default`` mode's duplicate handling (union-find groups, per-pair scores, lowest id on a
        tie); appends to prompt_new / negatives. Reference mode: :meth:`_classify_reference`."""
        st = self.s
        groups, partial = self._duplicates(t, new, current)
        grouped: set[int] = set().union(*groups) if groups else set()
        for g in groups:
            winner, best, runner = self._resolve_group(t, g)
            losers = tuple(sorted(g - {winner}))
            self._emit(Event(t, "duplicate", f"winner {winner}", labels=(winner, *losers)))
            if best > 0 and runner >= self.p.tie_ratio * best:
                self._emit(
                    Event(
                        t, "tie", f"runner-up {runner:.0f} >= {self.p.tie_ratio} x {best:.0f}", labels=tuple(sorted(g))
                    )
                )
            if winner not in known:
                st.prompt_new.append(winner)
            st.negatives |= set(losers)
        for n in sorted(partial - grouped):
            self._emit(Event(t, "partial_duplicate", "lies inside a bigger mask", labels=(n,)))
        for n in sorted(new):
            if n not in grouped and n not in partial and n not in known:
                st.prompt_new.append(n)

    def _trigger_reference(self, t: int, current: set[int]) -> str | None:
        st = self.s
        if current != st.old:
            new = self._persistent_new_reference(t, current, st.old)
            if new:
                self._classify_reference(t, new, sorted(current), st.old)
                if st.prompt_new:
                    if st.skip_next_trigger:
                        st.skip_next_trigger = False
                        self._emit(
                            Event(
                                t,
                                "trigger_deferred",
                                "first trigger after a restart waits a frame",
                                labels=tuple(dict.fromkeys(st.prompt_new)),
                            )
                        )
                        return None
                    return "new labels " + ",".join(str(x) for x in dict.fromkeys(st.prompt_new))
                st.skip_next_trigger = False
            st.old = st.old & current
        return None

    # The reference visits new labels, duplicate pairs and group members in the iteration order of
    # the Python sets it builds from sorted label lists. That order decides which of two overlapping
    # labels prompted at one restart keeps the overlap after the erasure (and so whether the other
    # keeps >= n_points pixels), so reference mode evaluates the same set expressions.
    def _persistent_new_reference(self, t: int, current: set[int], old: set[int]) -> list[int]:
        new = list(set(sorted(current)) - old)
        for k in range(1, self.p.persistence + 1):
            nxt = self._labels(t + k)
            if nxt is None or k >= self.p.lookahead:
                break  # the window (t .. t+lookahead-1, shorter at the end) bounds the check
            new = list(set(new) & set(sorted(nxt)))
        return new

    def _classify_reference(self, t: int, new: list[int], current: list[int], old: set[int]) -> None:
        """The reference's duplicate handling: pairs are grown into groups (a pair touching a group
        adds its other member to every group it touches; groups are not merged), each group is
        resolved on its own, and the losers are the grouped labels that won no group."""
        st = self.s
        res = self.lookup(t) or {}
        ov = self.p.overlap
        groups: list[list[int]] = []
        partial: list[int] = []
        for n in new:
            for o in current:
                s1, s2 = mask_overlaps(res[n], res[o])
                if o != n and s1 >= ov and s2 >= ov:
                    touched = [g for g in groups if set(g) & {o, n}]
                    for g in touched:
                        g.extend(x for x in (o, n) if x not in g)
                    if not touched:
                        groups.append([o, n])
                elif s1 >= ov and s2 < ov:
                    partial.append(n)
        winners: list[int] = []
        for g in groups:
            winner, best, runner = self._resolve_group_reference(t, g)
            winners.append(winner)
            losers = tuple(sorted(set(g) - {winner}))
            self._emit(Event(t, "duplicate", f"winner {winner}", labels=(winner, *losers)))
            if best > 0 and runner >= self.p.tie_ratio * best:
                self._emit(
                    Event(
                        t, "tie", f"runner-up {runner:.0f} >= {self.p.tie_ratio} x {best:.0f}", labels=tuple(sorted(g))
                    )
                )
            if winner not in old:
                st.prompt_new.append(winner)
        grouped = {x for g in groups for x in g}
        st.negatives = grouped - set(winners)
        for n in sorted(set(partial) - grouped):
            self._emit(Event(t, "partial_duplicate", "lies inside a bigger mask", labels=(n,)))
        for n in list((set(new) - grouped) - set(partial)):
            if n not in old:
                st.prompt_new.append(n)

    def _resolve_group_reference(self, t: int, group: list[int]) -> tuple[int, float, float]:
        """The reference's group score over the look-ahead: per frame, a lone present member adds
        its area; with several present, every member of at least one mutual-overlap pair adds its
        area once. The winner is the first best-scored member in the order scores were first
        given; members that never scored cannot win."""
        score: dict[int, float] = {}
        for f in range(t, t + self.p.lookahead):
            res = self.lookup(f)
            if res is None:
                break
            present = list(set(group) & set(sorted(res)))
            if len(present) == 1:
                scoring = present
            else:
                pairs = []
                for i, a in enumerate(present):
                    for b in present[i + 1 :]:
                        s1, s2 = mask_overlaps(res[a], res[b])
                        if s1 >= self.p.overlap and s2 >= self.p.overlap:
                            pairs += [a, b]
                scoring = list(dict.fromkeys(pairs))
            for m in scoring:
                score[m] = score.get(m, 0.0) + float(np.count_nonzero(res[m]))
        if not score:  # cannot happen for a group found at t; keep a defined answer
            return group[0], 0.0, 0.0
        winner = max(score, key=score.__getitem__)
        runner = max((v for m, v in score.items() if m != winner), default=0.0)
        return winner, score[winner], runner

    def _trigger_default(self, t: int, current: set[int], visible: Mapping[int, int]) -> str | None:
        st = self.s
        st.prompt_new, st.negatives = [], set()  # no deferral (D3): decisions are made per frame
        seen = {obj for obj, n in visible.items() if n >= self.p.min_visible}
        # a label prompted in the last `persistence` frames gets time before it is prompted again:
        # the tracker may lose a freshly added object to a neighbour's stronger logits, and
        # re-prompting it at once would loop on one frame
        grace = {c for c, f in st.added.items() if t - f <= self.p.persistence}
        candidates = current - seen - grace
        dropped = (st.old - current) & seen
        if dropped:
            self._emit(
                Event(
                    t,
                    "dropout_ignored",
                    "overseer misses a class the tracker still sees",
                    labels=tuple(sorted(dropped)),
                )
            )
        if not candidates:
            st.old = current | seen
            return None
        new = self._persistent_new(t, candidates)
        self._classify_new(t, new, current, seen)
        st.old = current | seen
        if st.prompt_new:
            return "new labels " + ",".join(str(x) for x in dict.fromkeys(st.prompt_new))
        if st.negatives & st.tracked:
            return "drop duplicates " + ",".join(str(x) for x in sorted(st.negatives & st.tracked))
        st.negatives = set()
        return None

    # -- default mode: adding objects without a reset ------------------------------------------------
    def add_objects(self, t: int, reason: str) -> SegmentStart:
        """``default`` mode: prompts for the new labels at t, added to the running tracker without a
        reset (D8); duplicates that lost are removed from it."""
        st = self.s
        P = {c: m.copy() for c, m in (self.lookup(t) or {}).items()}
        prompts: list[Prompt] = []
        mask_labels: list[int] = []
        point_labels: list[int] = []
        labels = list(dict.fromkeys(st.prompt_new))
        for label in labels:
            if label not in P:
                continue
            if self.p.new_prompt == "points":
                pts = self._points_for(P[label], t, label)
                if pts is None:
                    continue
                prompts.append(Prompt(label, "points", points=pts, point_labels=np.ones(len(pts), np.int32)))
                point_labels.append(label)
            else:
                prompts.append(Prompt(label, "mask", mask=P[label]))
                mask_labels.append(label)
        remove = tuple(sorted(st.negatives & st.tracked))
        st.tracked = (st.tracked | {p.obj_id for p in prompts}) - set(remove)
        st.added.update({p.obj_id: t for p in prompts})
        self._emit(Event(t, "add_objects", reason, tuple(mask_labels), tuple(point_labels), labels=remove))
        st.prompt_new = []
        st.negatives = set()
        st.buffer += 1  # the tracker re-yields frame t, and step(t) must not count it twice
        return SegmentStart(frame=t, reset=False, prompts=tuple(prompts), remove=remove)

    # -- resuming -------------------------------------------------------------------------------------
    def export_state(self) -> dict:
        """The bookkeeping as JSON-able data (saved at every resumable segment start)."""
        st = self.s
        return {
            "old": sorted(st.old),
            "prompt_new": list(st.prompt_new),
            "negatives": sorted(st.negatives),
            "skip_next_trigger": st.skip_next_trigger,
            "current": sorted(st.current),
            "buffer": st.buffer,
            "segment_start": st.segment_start,
            "tracked": sorted(st.tracked),
            "n_events": len(self.events),
            "added": {str(k): v for k, v in st.added.items()},
        }

    def restore_state(self, state: dict, events: list[Event]) -> None:
        self.s = _State(
            old=set(state["old"]),
            prompt_new=list(state["prompt_new"]),
            negatives=set(state["negatives"]),
            skip_next_trigger=bool(state["skip_next_trigger"]),
            current=set(state["current"]),
            buffer=int(state["buffer"]),
            segment_start=int(state["segment_start"]),
            tracked=set(state["tracked"]),
            added={int(k): int(v) for k, v in state.get("added", {}).items()},
        )
        self.events = list(events[: state["n_events"]])


def event_from_dict(d: dict) -> Event:
    return Event(
        frame=int(d["frame"]),
        kind=d["kind"],
        reason=d.get("reason", ""),
        mask_labels=tuple(d.get("mask_labels", ())),
        point_labels=tuple(d.get("point_labels", ())),
        labels=tuple(d.get("labels", ())),
    )
