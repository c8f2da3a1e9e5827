"""Per-object logits -> one label map: the highest logit above the threshold, ties to the lower id."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sasvi.core.trackers.base import compose_labels


def _painted_in_descending_order(logits, shape, no_label, class_ids, threshold=0.0):
    """The reference's rule, written the slow way: every object painted where it is above the
    threshold and at the maximum, from the highest id down, so the lowest id is painted last."""
    out = np.full(shape, no_label, np.uint8)
    ids = sorted((i for i in logits if i in set(class_ids)), reverse=True)
    if not ids:
        return out
    stack = np.stack([logits[i] for i in ids])
    best = stack.max(0)
    for k, i in enumerate(ids):
        out[(stack[k] > threshold) & (stack[k] >= best)] = i
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_labels_follow_the_reference_rule_with_ties_nan_and_a_dummy(seed):
    rng = np.random.default_rng(seed)
    shape = (40, 50)
    # few distinct values: many exact ties, some at the threshold itself
    logits = {i: rng.choice([-3.0, 0.0, 0.5, 2.0, 2.0, 7.0], shape).astype(np.float32) for i in (9, 2, 5, 14)}
    logits[5][rng.random(shape) < 0.02] = np.nan
    class_ids = [2, 5, 9]  # 14 is the dummy: never painted
    got = compose_labels(logits, shape, 255, class_ids)
    np.testing.assert_array_equal(got, _painted_in_descending_order(logits, shape, 255, class_ids))
    assert 14 not in got and {2, 5, 9, 255} >= set(np.unique(got).tolist())
    tie = (logits[2] == logits[9]) & (logits[2] == np.fmax(logits[5], -np.inf)) & (logits[2] > 0)
    assert tie.any() and (got[tie] == 2).all()  # three-way ties go to the lowest id
    assert (got[np.isnan(logits[5])] == 255).all()
    for thr in (0.5, 2.0):
        np.testing.assert_array_equal(
            compose_labels(logits, shape, 0, class_ids, thr),
            _painted_in_descending_order(logits, shape, 0, class_ids, thr),
        )


def test_no_object_leaves_the_no_label_value():
    assert (compose_labels({}, (3, 4), 7, [1, 2]) == 7).all()
    assert (compose_labels({3: np.ones((3, 4), np.float32)}, (3, 4), 7, [1, 2]) == 7).all()
