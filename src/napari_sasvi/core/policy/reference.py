"""``reference`` mode's per-frame rules: the published loop's decisions, defects D2-D5 kept."""

from __future__ import annotations

import numpy as np

from .events import Event
from .prompts import mask_overlaps


class ReferenceRules:
    """Mixed into :class:`~.core.Policy`: the trigger of ``reference`` mode."""

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
            self._emit_duplicate(t, g, winner, best, runner)
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
