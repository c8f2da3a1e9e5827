"""``default`` mode's consensus between the overseer and the tracker (``PolicyParams.consensus``).

The published loop uses the overseer only when it restarts the tracker; between restarts the
tracker drifts and nothing pulls it back. Consensus looks at both on every frame, per class:

* **agreement**: the IoU between the class's propagated mask (the run's label map) and the
  overseer's mask on this frame; where the overseer gives a score below ``min_score`` for the
  class, it neither counts as a disagreement nor is taken (the tracker's mask stands);
* **re-prompt one class**: after ``disagree_frames`` consecutive frames below ``agree_iou`` the
  class alone is prompted again with the overseer's mask of this frame (a ``reprompt_class``
  event); the other classes keep their memory, and the frame is not recomputed (the tracker is
  prompted live, between two frames). A one-frame glitch of the overseer (a false blob, a class
  swap, a jittered edge) does not last two frames and changes nothing;
* **fade**: a tracked class the overseer misses for ``fade_after`` consecutive frames is removed
  from the tracker (a ``fade`` event) instead of being carried until the next re-seed; a one-frame
  dropout is still ignored (``dropout_ignored``);
* **the frames that waited**: the frames of a disagreement before its re-prompt take the
  overseer's mask of the class too, and the frames of a fade lose the class (the run writes each
  frame late enough for that: ``max(backfill, disagree_frames - 1, fade_after - 1)`` frames);
* **backfill**: a new class is added at the first frame of ``persistence + 1`` in a row where the
  overseer sees it; frames just before that, where the overseer already saw it but a gap broke the
  run, are filled with the overseer's mask of the class (a ``backfill`` event, at most ``backfill``
  frames back; the run writes frames that late).

Everything here reads the same look-ahead overseer cache as the rest of the policy; nothing is
random, so a resumed run decides the same.
"""

from __future__ import annotations

import numpy as np

from .events import Event, Prompt, SegmentStart


def iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.count_nonzero(a & b)
    union = np.count_nonzero(a | b)
    return inter / union if union else 1.0


class ConsensusRules:
    """Mixed into :class:`~.core.Policy` (``default`` mode with ``consensus``)."""

    @property
    def live(self) -> bool:
        """Whether decisions after a frame are applied live (no reset, no recomputed frame)."""
        return self.p.mode == "default" and self.p.consensus

    def _consensus(self, t: int, current: set[int], labels: np.ndarray) -> str | None:
        """Per tracked class: agreement with the overseer at t, re-prompt and fade decisions.
        Returns a reason when something is to be done at t."""
        st = self.s
        res = self.lookup(t) or {}
        busy = set(st.prompt_new) | st.negatives
        reprompt: list[tuple[int, float]] = []
        fade: list[int] = []
        self.retro = {}
        self.take = set()
        score = self.scores(t) if self.scores is not None else {}
        # every class, the dummy id too (it may be a class of the table: a background); not the no-label
        # value (no object: in tables where it is an id, its "mask" is everything nobody claims)
        for c in sorted(st.tracked - busy - {self.no_label}):
            if c not in current:
                st.disagree.pop(c, None)
                st.missing[c] = st.missing.get(c, 0) + 1
                if st.missing[c] >= self.p.fade_after:
                    fade.append(c)
                    for f in range(t - st.missing[c] + 1, t):  # it was gone there already
                        self.retro.setdefault(f, {})[c] = None
                continue
            st.missing.pop(c, None)
            a = iou(labels == c, res[c])
            if score.get(c, 1.0) < self.p.min_score:  # an unsure overseer: the tracker's word stands
                st.disagree.pop(c, None)
                continue
            if self.p.take_overseer and a >= self.p.match_iou:
                self.take.add(c)
            if a >= self.p.agree_iou:
                st.disagree.pop(c, None)
                continue
            st.disagree[c] = st.disagree.get(c, 0) + 1
            if st.disagree[c] >= self.p.disagree_frames:
                reprompt.append((c, a))
                for f in range(t - st.disagree[c] + 1, t):  # the disagreement lasted: the overseer was right
                    m = (self.lookup(f) or {}).get(c)
                    if m is not None:
                        self.retro.setdefault(f, {})[c] = m
        if reprompt:
            worst = ", ".join(f"{c}: {a:.2f}" for c, a in reprompt)
            self._emit(
                Event(
                    t,
                    "reprompt_class",
                    f"IoU with the overseer < {self.p.agree_iou} for {self.p.disagree_frames} frames ({worst})",
                    labels=tuple(c for c, _ in reprompt),
                )
            )
        if fade:
            self._emit(Event(t, "fade", f"the overseer missed it for {self.p.fade_after} frames", labels=tuple(fade)))
        st.reprompt = [c for c, _ in reprompt]
        st.fade = fade
        if not reprompt and not fade:
            return None
        parts = []
        if reprompt:
            parts.append("re-prompt " + ",".join(str(c) for c in st.reprompt))
        if fade:
            parts.append("fade " + ",".join(str(c) for c in fade))
        return "; ".join(parts)

    def amend(self, t: int, reason: str) -> SegmentStart:
        """The live prompts at t (no reset): new classes and re-prompted classes with the overseer's
        masks, duplicates that lost and faded classes removed."""
        st = self.s
        res = self.lookup(t) or {}
        prompts: list[Prompt] = []
        new = [c for c in dict.fromkeys(st.prompt_new) if c in res]
        for c in new:
            if self.p.new_prompt == "points":
                pts = self._points_for(res[c], t, c)
                if pts is not None:
                    prompts.append(Prompt(c, "points", points=pts, point_labels=np.ones(len(pts), np.int32)))
            else:
                prompts.append(Prompt(c, "mask", mask=res[c].copy()))
        prompts += [Prompt(c, "mask", mask=res[c].copy()) for c in st.reprompt if c in res and c not in new]
        remove = tuple(sorted((st.negatives | set(st.fade)) & st.tracked))
        if new or st.negatives:
            added = tuple(p.obj_id for p in prompts if p.obj_id in new)
            self._emit(
                Event(
                    t,
                    "add_objects",
                    reason,
                    tuple(c for c in added if self.p.new_prompt == "mask"),
                    tuple(c for c in added if self.p.new_prompt == "points"),
                    labels=tuple(sorted(st.negatives & st.tracked)),
                )
            )
        self.fill = self._backfill(t, new) if new and self.p.backfill > 0 else {}
        for f, masks in self.retro.items():
            self.fill.setdefault(f, {}).update(masks)
        self.retro = {}
        st.tracked = (st.tracked | {p.obj_id for p in prompts}) - set(remove)
        st.added.update({c: t for c in new})
        for c in remove:
            st.disagree.pop(c, None)
            st.missing.pop(c, None)
        for c in st.reprompt:
            st.disagree.pop(c, None)
        st.prompt_new, st.negatives, st.reprompt, st.fade = [], set(), [], []
        return SegmentStart(frame=t, reset=False, prompts=tuple(prompts), remove=remove)

    def _backfill(self, t: int, new: list[int]) -> dict[int, dict[int, np.ndarray]]:
        """Frame -> {class: mask} for the frames before t where the overseer already saw a class
        added at t: walking back from t - 1, over one-frame gaps (filled with the mask of the
        frame after), to at most ``backfill`` frames back and never before the segment start."""
        st = self.s
        fill: dict[int, dict[int, np.ndarray]] = {}
        for c in new:
            later = (self.lookup(t) or {}).get(c)
            frames: list[int] = []
            gap = 0
            for f in range(t - 1, max(st.segment_start, t - self.p.backfill) - 1, -1):
                res = self.lookup(f) or {}
                if c in res:
                    if gap:  # a one-frame gap between two sightings: the mask of the frame after it
                        fill.setdefault(f + 1, {})[c] = later
                        frames.append(f + 1)
                    later, gap = res[c], 0
                    fill.setdefault(f, {})[c] = later
                    frames.append(f)
                elif gap:
                    break
                else:
                    gap = 1
            if frames:
                self._emit(Event(t, "backfill", f"frames {min(frames)}..{max(frames)}", labels=(c,)))
        return fill
