"""The policy object: one instance drives one video; the two modes' rules live in
:mod:`.reference` and :mod:`.default`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from .consensus import ConsensusRules
from .default import DefaultRules
from .events import Event, Prompt, SegmentStart
from .params import Lookup, Masks, PolicyParams
from .prompts import kmeans_points, snap_to_mask
from .reference import ReferenceRules


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
    # consensus (default mode): consecutive disagreeing / missing frames, decisions at t
    disagree: dict[int, int] = field(default_factory=dict)
    missing: dict[int, int] = field(default_factory=dict)
    reprompt: list[int] = field(default_factory=list)
    fade: list[int] = field(default_factory=list)


class Policy(ReferenceRules, DefaultRules, ConsensusRules):
    """The re-prompting policy (see the module docstring). One instance drives one video.

    Args:
        params: the policy's parameters.
        lookup: frame -> overseer masks (None past the end). Results of one frame must be the same
            object on every call (a cache): ``reference`` mode mutates them in place (D5).
        scores: frame -> class id -> the overseer's confidence (consensus; None: 1 for every class).
        no_label: value of unlabelled pixels in label maps (for the CaDIS merge).
        known: frame -> whether the overseer has a word there (sparse annotations replayed: only
            their frames); on other frames only the re-seed count goes on. None: every frame.
    """

    def __init__(
        self,
        params: PolicyParams,
        lookup: Lookup,
        no_label: int = 255,
        anchors: frozenset[int] = frozenset(),
        scores: Callable[[int], Mapping[int, float]] | None = None,
        known: Callable[[int], bool] | None = None,
    ):
        self.p = params
        self.lookup = lookup
        self.scores = scores  # frame -> class -> the overseer's confidence (consensus); None: all sure
        self.no_label = no_label
        self.known = known
        self.anchors = frozenset(anchors)  # annotated frames: a full re-prompt from them, always
        self.s = _State()
        self.events: list[Event] = []
        # consensus: frame -> {class: its mask there (None: not there)} for frames before the last
        # amend (filled backwards, a disagreement's frames, a fade's frames); and those found at t
        self.fill: dict[int, dict[int, np.ndarray | None]] = {}
        self.retro: dict[int, dict[int, np.ndarray | None]] = {}
        self.take: set[int] = set()  # consensus: classes written with the overseer's mask at this frame

    @property
    def reference(self) -> bool:
        return self.p.mode == "reference"

    def _labels(self, t: int) -> set[int] | None:
        res = self.lookup(t)
        return None if res is None else set(res)

    def _emit(self, event: Event) -> Event:
        self.events.append(event)
        return event

    def _emit_duplicate(self, t: int, group, winner: int, best: float, runner: float) -> None:
        """A resolved duplicate group (both modes), and a tie when the runner-up comes close."""
        losers = tuple(sorted(set(group) - {winner}))
        self._emit(Event(t, "duplicate", f"winner {winner}", labels=(winner, *losers)))
        if best > 0 and runner >= self.p.tie_ratio * best:
            reason = f"runner-up {runner:.0f} >= {self.p.tie_ratio} x {best:.0f}"
            self._emit(Event(t, "tie", reason, labels=tuple(sorted(group))))

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
        if s > 0 and s in self.anchors:
            return self._start_from_anchor(s, P)
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

    def _start_from_anchor(self, s: int, P: Masks) -> SegmentStart:
        """An annotated frame: reset, and every class of the annotation prompted with its mask
        (as at frame 0); what the tracker carried is replaced by the user's word."""
        st = self.s
        prompts = [Prompt(c, "mask", mask=P[c]) for c in sorted(P)]
        if not prompts:
            prompts.append(Prompt(self.p.dummy_id, "mask", mask=None))
            self._emit(Event(s, "dummy", "nothing to prompt: empty mask for the dummy id", labels=(self.p.dummy_id,)))
        ids = tuple(p.obj_id for p in prompts if p.mask is not None)
        self._emit(Event(s, "restart", "anchor", ids, ()))
        st.old = set(ids)
        st.current = set(ids)
        st.tracked = {p.obj_id for p in prompts}
        st.added = {}
        st.disagree, st.missing = {}, {}
        st.prompt_new, st.negatives = [], set()
        st.skip_next_trigger = False
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
    def step(self, t: int, visible: Mapping[int, int] | None = None, labels: np.ndarray | None = None) -> str | None:
        """Decide after the tracker produced frame t. Returns the reason to restart at t, or None.
        With :attr:`live` (default mode with consensus), a reason other than ``buffer`` or
        ``anchor`` is applied live with :meth:`amend` instead of a restart.

        Args:
            visible: ``default`` mode: object id -> pixel count in the tracker's output at t.
            labels: consensus: the run's label map at t (the tracker's classes composed).
        """
        st = self.s
        self.take = set()
        if t == 0:
            st.old = self._labels(0) or set()
            st.current = set(st.old)
            return None
        current = self._labels(t) or set()
        st.current = current
        if t in self.anchors and t != st.segment_start:
            return "anchor"
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
        if self.known is not None and not self.known(t):
            return None  # no word of the overseer here: nothing to compare, nothing new
        if self.reference:
            return self._trigger_reference(t, current)
        reason = self._trigger_default(t, current, visible or {})
        if self.live and labels is not None:
            more = self._consensus(t, current, labels)
            reason = "; ".join(r for r in (reason, more) if r) or None
        return reason

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
            "disagree": {str(k): v for k, v in st.disagree.items()},
            "missing": {str(k): v for k, v in st.missing.items()},
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
            disagree={int(k): int(v) for k, v in state.get("disagree", {}).items()},
            missing={int(k): int(v) for k, v in state.get("missing", {}).items()},
        )
        self.events = list(events[: state["n_events"]])
