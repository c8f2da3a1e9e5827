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

from .core import Policy
from .events import Event, Prompt, SegmentStart, event_from_dict
from .params import Lookup, Masks, Mode, PolicyParams
from .prompts import kmeans_points, mask_overlaps, snap_to_mask

__all__ = [
    "Event",
    "Lookup",
    "Masks",
    "Mode",
    "Policy",
    "PolicyParams",
    "Prompt",
    "SegmentStart",
    "event_from_dict",
    "kmeans_points",
    "mask_overlaps",
    "snap_to_mask",
]
