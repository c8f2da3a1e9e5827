"""What an edit checks before it changes anything: the corrected frame's labels and the tracker
(see :mod:`.edit`)."""

from __future__ import annotations

import json

import numpy as np

from ..errors import InputError
from ..inputs.labels import UNLABELLED


# -- checks ---------------------------------------------------------------------------------------------
def check_mask(mask: np.ndarray, store) -> np.ndarray:
    classes = store.classes
    h, w = store.labels.shape[1:]
    mask = np.asarray(mask)
    if mask.shape != (h, w):
        raise InputError(f"The corrected frame is {mask.shape[1]}x{mask.shape[0]} pixels but the store's are {w}x{h}.")
    allowed = set(classes.ids) | {classes.no_label, UNLABELLED}
    bad = sorted(set(np.unique(mask).tolist()) - allowed)
    if bad:
        raise InputError(
            f"The corrected frame holds label(s) {', '.join(map(str, bad[:8]))} that are not classes of "
            f"{classes.name} (ids {min(classes.ids)}-{max(classes.ids)}, no label {classes.no_label}): "
            "paint with the table's ids."
        )
    return mask.astype(np.uint8)


def _comparable(desc: dict) -> str:
    """A tracker's description as the check compares it: the device may differ (the same model)."""
    return json.dumps({k: v for k, v in desc.items() if k != "device"}, sort_keys=True, default=str)


def check_tracker(store, tracker, other_tracker: bool = False) -> bool:
    """Whether ``tracker`` is the one the store was made with. Another one is an
    :class:`InputError` naming both, unless ``other_tracker`` (then False is returned, and the
    edit log records it)."""
    made = store.signature.get("tracker") or {}
    given = tracker.describe()
    if _comparable(made) == _comparable(given):
        return True
    if other_tracker:
        return False
    raise InputError(
        f"{store.path} was made with the tracker {describe_tracker(made)}; this edit would use "
        f"{describe_tracker(given)}. Edit with the store's own tracker (napari-sasvi edit rebuilds it from the "
        "store), or ask for the other one explicitly (--other-tracker; it is recorded in the edit log)."
    )


def describe_tracker(desc: dict) -> str:
    """A tracker's description in a few words: ``flow (dis)``, ``sam2 (sam2.1_hiera_tiny, 1024 px)``."""
    kind = desc.get("type", "?")
    what = [str(desc[k]) for k in ("method", "model", "config", "checkpoint") if desc.get(k)]
    if desc.get("image_size"):
        what.append(f"{desc['image_size']} px")
    if desc.get("predictor") == "legacy":
        what.append("legacy predictor")
    return f"{kind} ({', '.join(what)})" if what else kind


__all__ = ["check_mask", "check_tracker", "describe_tracker"]
