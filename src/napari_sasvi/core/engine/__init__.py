"""The engine: one span loop (:mod:`.span`) that a run (:mod:`.run`), an anchors run
(:mod:`.anchored`) and an edit (:mod:`.edit`) plan for, writing through a store session."""

from ..records import EditPlan, EditStarted, EditSummary, FrameDone, RunSummary, StoreOpened
from .anchored import iter_from_anchors
from .edit import EditRequest, check_tracker, iter_edit, plan_edit, run_edit, undo_edit
from .run import iter_sasvi, run_sasvi, run_signature
from .span import FrameRange, propagate_span

__all__ = [
    "EditPlan",
    "EditRequest",
    "EditStarted",
    "EditSummary",
    "FrameDone",
    "FrameRange",
    "RunSummary",
    "StoreOpened",
    "check_tracker",
    "iter_edit",
    "iter_from_anchors",
    "iter_sasvi",
    "plan_edit",
    "propagate_span",
    "run_edit",
    "run_sasvi",
    "run_signature",
    "undo_edit",
]
