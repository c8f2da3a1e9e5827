"""grow_mask: a mask from clicks or a box with no model (GrabCut, marker watershed)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from napari_sasvi.core.errors import InputError
from napari_sasvi.core.prompts.grow import grow_mask

H, W = 120, 160


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def scene(objects: list[tuple[int, int, int]], seed: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    """A textured greenish background with textured reddish discs (cx, cy, r); the discs' masks."""
    rng = np.random.default_rng(seed)
    img = np.empty((H, W, 3), np.float64)
    img[:] = (60, 140, 70)
    img += rng.normal(0, 12, (H, W, 3))
    yy, xx = np.mgrid[:H, :W]
    masks = []
    for cx, cy, r in objects:
        m = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        tex = 20 * np.sin(xx / 3.0) * np.cos(yy / 4.0)  # stripes: the object is not flat
        img[m] = np.array([200, 70, 60]) + tex[m, None] + rng.normal(0, 12, (np.count_nonzero(m), 3))
        masks.append(m)
    return np.clip(img, 0, 255).astype(np.uint8), masks


def tight_box(m: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(m)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def test_box_around_the_object():
    img, (disc,) = scene([(80, 60, 30)])
    mask = grow_mask(img, box=tight_box(disc))
    assert mask.dtype == bool and mask.shape == (H, W)
    assert dice(mask, disc) > 0.9


def test_box_wider_than_the_object():
    img, (disc,) = scene([(80, 60, 25)])
    x0, y0, x1, y1 = tight_box(disc)
    mask = grow_mask(img, box=(x0 - 15, y0 - 15, x1 + 15, y1 + 15))
    assert dice(mask, disc) > 0.9


def test_one_positive_click():
    img, (disc,) = scene([(80, 60, 30)])
    mask = grow_mask(img, np.array([[80.0, 60.0]]), np.array([1]))
    assert dice(mask, disc) > 0.8
    assert not mask[0].any() and not mask[:, 0].any()  # the border is background


def test_clicks_on_two_objects_keep_both():
    img, (a, b) = scene([(40, 60, 20), (120, 60, 20)])
    mask = grow_mask(img, np.array([[40, 60], [120, 60]]), np.array([1, 1]))
    assert dice(mask, a | b) > 0.8


def test_a_negative_click_removes_an_object_the_box_includes():
    img, (a, b) = scene([(45, 60, 22), (118, 60, 18)])  # same colour; b the smaller
    box = tight_box(a | b)
    both = grow_mask(img, box=box)
    assert dice(both, a) > 0.9 and not (both & b).any()  # a box alone keeps its largest component
    without_b = grow_mask(img, np.array([[118, 60]]), np.array([0]), box=box)
    assert dice(without_b, a) > 0.9
    assert not (without_b & b).any()
    # a negative click on the larger disc leaves the smaller one
    without_a = grow_mask(img, np.array([[45, 60]]), np.array([0]), box=box)
    assert dice(without_a, b) > 0.9


def test_a_negative_click_splits_a_component_with_a_positive_click():
    img, (a, b) = scene([(55, 60, 24), (98, 60, 24)])  # two discs of one colour that overlap
    both = a | b
    mask = grow_mask(img, np.array([[45, 60], [110, 60]]), np.array([1, 0]), box=tight_box(both))
    assert mask[60, 45] and not mask[60, 110]
    assert dice(mask, both) < 0.85 and np.count_nonzero(mask & a) > 0.7 * np.count_nonzero(a)


def test_positive_click_with_a_box():
    img, (disc,) = scene([(80, 60, 30)])
    mask = grow_mask(img, np.array([[80, 60]]), np.array([1]), box=tight_box(disc))
    assert dice(mask, disc) > 0.9


def test_deterministic():
    img, (a, b) = scene([(45, 60, 22), (118, 60, 18)], seed=3)
    box = tight_box(a | b)
    pts, lab = np.array([[45, 60], [118, 60]]), np.array([1, 0])
    first = grow_mask(img, pts, lab, box=box)
    cv2.setRNGSeed(123)  # OpenCV's generator left elsewhere by another caller must not matter
    cv2.randu(np.zeros(5), 0, 1)
    second = grow_mask(img, pts, lab, box=box)
    assert np.array_equal(first, second)
    assert np.array_equal(grow_mask(img, box=box), grow_mask(img, box=box))
    assert np.array_equal(grow_mask(img, pts[:1], lab[:1]), grow_mask(img, pts[:1], lab[:1]))


def test_box_corners_in_any_order_and_past_the_edge():
    img, (disc,) = scene([(80, 60, 30)])
    x0, y0, x1, y1 = tight_box(disc)
    ref = grow_mask(img, box=(x0, y0, x1, y1))
    assert np.array_equal(grow_mask(img, box=(x1, y1, x0, y0)), ref)
    edge, (d2,) = scene([(20, 60, 30)])  # the disc is cut by the frame's left edge
    x0, y0, x1, y1 = tight_box(d2)
    assert dice(grow_mask(edge, box=(x0 - 40, y0, x1, y1)), d2) > 0.9


def test_labels_default_to_positive():
    img, (disc,) = scene([(80, 60, 30)])
    assert np.array_equal(grow_mask(img, np.array([[80, 60]])), grow_mask(img, np.array([[80, 60]]), np.array([1])))


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({}, "positive click"),
        ({"points_xy": np.array([[10, 10]]), "point_labels": np.array([0])}, "positive click"),
        ({"points_xy": np.array([[W, 10]]), "point_labels": np.array([1])}, "outside the frame"),
        ({"points_xy": np.array([[10, -3]]), "point_labels": np.array([1])}, "outside the frame"),
        ({"points_xy": np.array([[10, 10]]), "point_labels": np.array([1, 0])}, "one label"),
        ({"points_xy": np.array([[10, 10]]), "point_labels": np.array([2])}, "1 (positive) or 0"),
        ({"points_xy": np.array([10, 10, 20])}, "(N, 2)"),
        ({"points_xy": np.array([[np.nan, 10]])}, "NaN"),
        ({"box": (10, 10, 10, 50)}, "zero area"),
        ({"box": (10, 20, 60, 20.2)}, "zero area"),
        ({"box": (W + 5, 10, W + 50, 50)}, "outside the frame"),
        ({"box": (-50, -50, -10, -10)}, "outside the frame"),
        ({"box": (1, 2, 3)}, "four finite numbers"),
    ],
)
def test_bad_prompts(kwargs, words):
    img, _ = scene([(80, 60, 30)])
    with pytest.raises(InputError) as err:
        grow_mask(img, **kwargs)
    assert words in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((H, W), np.uint8),
        np.zeros((H, W, 4), np.uint8),
        np.zeros((H, W, 3), np.float32),
        np.zeros((H, W, 3), np.uint16),
    ],
)
def test_bad_image(image):
    with pytest.raises(InputError, match=r"\(H, W, 3\) uint8"):
        grow_mask(image, box=(10, 10, 50, 50))
