"""The run's consensus inside an edit, for the classes the user left as the overseer had them.

A correction is the user's word. Where the corrected frame agrees with the store's overseer on a
class (IoU at least the run's ``agree_iou``), the user confirmed the overseer for that class, and
the edit's span keeps the tracker on the overseer as the run did (:mod:`~napari_sasvi.core.policy.consensus`):
the overseer's mask is written where the two match, and the class is re-prompted from it after
``disagree_frames`` disagreeing frames. A class the user changed follows the tracker alone: the
overseer was wrong there, and would be wrong again on the next frames. A pin prompts from the
overseer, so every class is confirmed. Runs made without consensus get none in their edits.
"""

from __future__ import annotations

import numpy as np

from ..policy import PolicyParams
from ..policy.consensus import iou


def run_policy(store) -> PolicyParams:
    """The store's run's policy parameters: its recorded config, else its signature, else defaults
    (a stored run without the consensus fields ran without consensus)."""
    src = (store.config or {}).get("policy") or store.signature.get("params") or {}
    fields = PolicyParams.__dataclass_fields__
    kw = {k: v for k, v in src.items() if k in fields and k != "mode" and v is not None}
    kw.setdefault("consensus", False)
    return PolicyParams(**kw)


class EditConsensus:
    """Per frame of an edit: the classes to write as the overseer has them, and those to re-prompt."""

    def __init__(self, store, frame: int, prompt: np.ndarray):
        self.p = run_policy(store)
        ov = np.asarray(store.overseer[frame])
        ids = [c for c in store.classes.ids if c != store.classes.no_label]
        agrees = {c for c in ids if (prompt == c).any() and iou(prompt == c, ov == c) >= self.p.agree_iou}
        self.confirmed = agrees if self.p.consensus else set()
        self.disagree: dict[int, int] = {}
        self.reprompted: list[dict] = []

    def step(self, t: int, labels: np.ndarray, ov: np.ndarray) -> tuple[dict[int, np.ndarray], list[int]]:
        """({class: overseer mask} to write at t, [classes to re-prompt at t with it])."""
        take: dict[int, np.ndarray] = {}
        again: list[int] = []
        for c in sorted(self.confirmed):
            o = ov == c
            if not o.any():
                self.disagree.pop(c, None)
                continue
            a = iou(labels == c, o)
            if self.p.take_overseer and a >= self.p.match_iou:
                take[c] = o
            if a >= self.p.agree_iou:
                self.disagree.pop(c, None)
                continue
            self.disagree[c] = self.disagree.get(c, 0) + 1
            if self.disagree[c] >= self.p.disagree_frames:
                again.append(c)
                take[c] = o
                self.disagree.pop(c)
                self.reprompted.append({"frame": int(t), "class": int(c)})
        return take, again
