"""The SASVi run's planner for the span engine: the policy's decisions at segment starts and after
every frame, frames written in order (``lag`` frames late with consensus, so decisions reach back).
See :mod:`.run`."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Generator

import numpy as np

from ..overseers.base import OverseerCache, result_to_label_map
from ..policy import Policy, SegmentStart
from .span import Amend, Reprompt, amended_labels

log = logging.getLogger(__name__)


class RunPlanner:
    """The SASVi policy as the span engine's planner (see the module docstring).

    With consensus (``default`` mode), decisions between restarts are applied live (:class:`Amend`)
    and every frame is written ``params.backfill`` frames late, so a class added at frame t can be
    filled into the frames just before it (the policy's backfill)."""

    def __init__(self, session, policy: Policy, cache: OverseerCache, classes, params, annotated, previous, background):
        self.store, self.policy, self.cache = session.store, policy, cache
        self.classes, self.params, self.annotated = classes, params, annotated
        # the frames go to the session's run sink, each recording the event log as it is then
        self.sink = session.run_sink(lambda: self.events_out, background=background)
        self.previous = previous
        self.on_disk = self.done = self.store.frames_done
        self.lag = max(params.backfill, params.disagree_frames - 1, params.fade_after - 1) if policy.live else 0
        self.pending: deque[list] = deque()  # [t, labels, overseer map] written `lag` frames late
        self.first = True
        self.last_prompt_frame = -1
        self.size = self.store.labels.shape[1:]
        # the event log as dicts, converted once each: the log only grows during a run (events are
        # frozen), and converting all of it for every frame would cost O(events) a frame
        self._dicts: list[dict] = []
        self.events_out = self.events_so_far()

    def events_so_far(self) -> list[dict]:
        if len(self._dicts) > len(self.policy.events):  # never expected; rebuild rather than trust it
            self._dicts.clear()
        self._dicts.extend(e.to_dict() for e in self.policy.events[len(self._dicts) :])
        return list(self._dicts)  # a copy: the store keeps what it is given

    def _new_events(self, n_before: int):
        yield from self.policy.events[n_before:]

    def prompt(self, s: int, reason: str) -> Generator:
        n_before = len(self.policy.events)
        if self.first or reason in ("buffer", "anchor") or self.params.mode != "default":
            # a segment start with a reset: resumable from here
            yield from self.write_pending(upto=None)  # the snapshot records the frames done so far
            yield from self.sink.flush()
            if s > 0 or self.done == 0:
                keep = self.previous if (self.params.merge_unlabelled or self.params.mode == "default") else None
                state = self.snapshot_state(s)
                self.store.save_snapshot({"frame": s, "reason": reason, "state": state}, keep)
            seg: SegmentStart = self.policy.start_segment(s, reason, self.previous)
        else:  # default mode: the new objects join the running tracker
            seg = self.policy.add_objects(s, reason)
        self.first = False
        yield from self._new_events(n_before)
        self.last_prompt_frame = seg.frame if not seg.reset or seg.frame > 0 else -1
        return seg

    def step(self, i: int, t: int, labels: np.ndarray, logits) -> Generator:
        default = self.params.mode == "default"
        live = self.policy.live
        # objects that are no class (the dummy; in instance mode the dummy is 0, the no-track value)
        # are never painted: they count as unseen
        ids = self.classes.ids
        visible = (
            {obj: int(np.count_nonzero(labels == obj)) if obj in ids else 0 for obj in logits} if default else None
        )
        n_before = len(self.policy.events)
        reason = self.policy.step(t, visible, labels if live else None)
        yield from self._new_events(n_before)
        restart = reason is not None and not (live and reason not in ("buffer", "anchor"))
        if restart and t == self.last_prompt_frame:
            # a decision to prompt again at the very frame just prompted cannot make progress
            # (the tracker's answer would be the same): go on instead of looping
            log.warning("frame %d: %s ignored, the frame was just prompted", t, reason)
            reason, restart = None, False
        if restart:
            self.previous = labels
            return Reprompt(reason)
        amend = None
        if reason is not None:  # consensus: applied live, frame t is not recomputed
            n_before = len(self.policy.events)
            amend = self.policy.amend(t, reason)
            yield from self._new_events(n_before)
        if amend is not None or (live and self.policy.take):
            labels = self._amended(t, labels, logits, amend)
        if t >= self.on_disk:
            self.pending.append(self._entry(t, labels))
        for f, masks in (self.policy.fill if amend is not None else {}).items():
            self._fill(f, masks)
        yield from self.write_pending(upto=t - self.lag)
        self.cache.release_before(t - self.lag)
        return Amend(amend) if amend is not None else None

    def _entry(self, t: int, labels: np.ndarray) -> list:
        """What frame t waits with until it is written: [t, labels, the overseer's label map]."""
        no_label = self.classes.no_label
        if self.annotated is not None and t in self.annotated.masks:  # an annotated frame is the user's
            labels = self.annotated.exact(t, no_label)
        return [t, labels, result_to_label_map(self.cache.masks(t) or {}, self.size, no_label)]

    def _put(self, entry: list) -> Generator:
        yield from self.sink.put(*entry)

    def snapshot_state(self, s: int) -> dict:
        """What a resumed run restores at segment start s (the policy's bookkeeping)."""
        return self.policy.export_state()

    def _amended(self, t: int, labels: np.ndarray, logits, seg: SegmentStart | None) -> np.ndarray:
        """Frame t's labels as the tracker gives them once prompted live at t (removed objects
        gone, a prompted object exactly its mask; points: the overseer's mask), with the classes
        the policy takes from the overseer at t (``policy.take``) as the overseer has them, except
        where the tracker shows a class it carries through the overseer's miss or glitch (a class
        not taken: the overseer's mask of another class may cover it, as a dropout leaves it to the
        background)."""
        res = self.cache.masks(t) or {}
        prompted = {}
        for p in seg.prompts if seg is not None else ():
            m = p.mask if p.kind == "mask" else res.get(p.obj_id)
            if m is not None:
                prompted[p.obj_id] = m
        taken = {c: res[c] for c in self.policy.take if c in res and c in logits}
        remove = set(seg.remove) if seg is not None else set()
        return amended_labels(labels, logits, self.classes, prompted, taken, remove)

    def _fill(self, f: int, masks: dict[int, np.ndarray | None]) -> None:
        """Frame f, if it is still waiting to be written (never an annotated frame), with each
        class of ``masks`` replaced by its mask (None: removed): pixels the class loses take the
        overseer's label there."""
        if self.annotated is not None and f in self.annotated.masks:
            return
        for entry in self.pending:
            if entry[0] == f:
                labels, overseer = entry[1].copy(), entry[2]
                for c, m in masks.items():
                    was = labels == c
                    labels[was] = overseer[was]
                    if m is not None:
                        labels[m] = c
                entry[1] = labels

    def write_pending(self, upto: int | None) -> Generator:
        """Write the waiting frames up to frame ``upto`` (None: all)."""
        while self.pending and (upto is None or self.pending[0][0] <= upto):
            entry = self.pending.popleft()
            self.events_out = self.events_so_far()
            yield from self._put(entry)
            self.done = entry[0] + 1


__all__ = ["RunPlanner"]
