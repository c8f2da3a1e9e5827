"""``default`` mode's rules: new labels are those the tracker does not see, added without a
reset; periodic re-seeds keep what the overseer misses."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .events import Event, Prompt, SegmentStart
from .params import Masks
from .prompts import mask_overlaps


class DefaultRules:
    """Mixed into :class:`~.core.Policy`: the re-seed, trigger and object adding of ``default`` mode."""

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
        st.disagree = {}  # consensus: every class starts again from the overseer's mask (or its own)
        st.missing = {c: n for c, n in st.missing.items() if c in st.tracked}
        st.prompt_new = []
        st.negatives = set()
        st.buffer = self.p.buffer
        st.segment_start = s
        return SegmentStart(frame=s, reset=True, prompts=tuple(prompts))

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
            self._emit_duplicate(t, g, winner, best, runner)
            if winner not in known:
                st.prompt_new.append(winner)
            st.negatives |= set(losers)
        for n in sorted(partial - grouped):
            self._emit(Event(t, "partial_duplicate", "lies inside a bigger mask", labels=(n,)))
        for n in sorted(new):
            if n not in grouped and n not in partial and n not in known:
                st.prompt_new.append(n)

    def _trigger_default(self, t: int, current: set[int], visible: Mapping[int, int]) -> str | None:
        st = self.s
        st.prompt_new, st.negatives = [], set()  # no deferral (D3): decisions are made per frame
        seen = {obj for obj, n in visible.items() if n >= self.p.min_visible}
        if self.live:  # consensus: an object as small as the overseer's mask of it is seen too
            res = self.lookup(t) or {}
            seen |= {o for o, n in visible.items() if o in res and 0 < n and 2 * n >= np.count_nonzero(res[o])}
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
