"""The policy's parameters and the shapes of what it reads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

Mode = Literal["default", "reference"]
#: Overseer result of one frame: class id -> bool mask (H, W), only classes with pixels.
Masks = dict[int, np.ndarray]
#: Look-ahead access: frame index -> overseer masks, or None past the end of the video.
Lookup = Callable[[int], "Masks | None"]


@dataclass(frozen=True)
class PolicyParams:
    """Parameters of the re-prompting policy; defaults are the reference's values.

    Attributes:
        mode: ``reference`` (the published behaviour) or ``default`` (defects fixed).
        lookahead: frames of overseer look-ahead (t .. t+lookahead-1) for duplicate resolution.
        persistence: a new label must also be present in the next ``persistence`` frames.
        overlap: overlap ratio above which two masks are duplicates (both ways) or a partial
            duplicate (one way).
        buffer: frames after which a segment is re-seeded from the overseer.
        n_points: k-means points sampled in a new label's mask for a point prompt.
        tie_ratio: runner-up score / winner score at or above which a duplicate group is a tie
            (recorded as an event; the reference's nnU-Net tie-breaker is dead code).
        merge_unlabelled: CaDIS only: at a restart, unlabelled overseer pixels take the class the
            previous SASVi output had there.
        dummy_id: object id of the empty mask prompted when nothing is in view.
        new_prompt: ``default`` mode: prompt new labels with their ``mask`` or with ``points``.
        min_visible: ``default`` mode: pixels below which the tracker is taken not to see a class.
        seed: random state of the k-means point sampling.
        consensus: ``default`` mode: compare the tracker with the overseer on every frame and
            class (:mod:`.consensus`): re-prompt a class alone where they disagree for a while,
            fade a class the overseer stopped seeing, fill a new class into the frames before it
            was added. False: ``default`` mode as it was before (re-prompts at new classes and
            re-seeds only).
        agree_iou: consensus: IoU between a class's propagated mask and the overseer's below which
            the two disagree on that frame.
        disagree_frames: consensus: consecutive disagreeing frames after which the class is
            re-prompted from the overseer (2: a one-frame overseer glitch is ignored).
        fade_after: consensus: consecutive frames the overseer misses a tracked class after which
            the class fades out of the tracker (2 or more: a one-frame dropout is ignored).
        take_overseer: consensus: a class whose tracked mask matches the overseer's (IoU at least
            ``match_iou``: the same object) is written with the overseer's mask on that frame; the
            tracker's mask is written where they do not match (a glitch of the overseer, until it
            lasts ``disagree_frames``) and where the overseer misses the class. False: the
            tracker's mask always (re-prompted as above).
        match_iou: consensus: IoU at or above which the overseer's mask is the tracked object's.
        min_score: consensus: the overseer's confidence in a class (its score, where it gives one)
            below which a disagreement is not counted and its mask is not taken: an unsure
            overseer does not overrule the tracker.
        backfill: consensus: frames before a new class was added that are filled with it where the
            overseer already saw it (the frames the persistence check waited on); the run writes
            each frame this many frames late. 0: no fill, no delay.
    """

    mode: Mode = "default"
    lookahead: int = 10
    persistence: int = 3
    overlap: float = 0.70
    buffer: int = 25
    n_points: int = 20
    tie_ratio: float = 0.95
    merge_unlabelled: bool = False
    dummy_id: int = 0
    new_prompt: Literal["mask", "points"] = "mask"
    min_visible: int = 20
    seed: int = 0
    consensus: bool = True
    agree_iou: float = 0.90
    disagree_frames: int = 2
    fade_after: int = 3
    backfill: int = 4
    take_overseer: bool = True
    match_iou: float = 0.5
    min_score: float = 0.5

    def __post_init__(self):
        if self.mode not in ("default", "reference"):
            raise ValueError(f"mode must be 'default' or 'reference', got {self.mode!r}")
        if self.lookahead < 1 or self.persistence < 0 or self.buffer < 2 or not 0 < self.overlap <= 1:
            raise ValueError("lookahead >= 1, persistence >= 0, buffer >= 2 and 0 < overlap <= 1 are required")
        if (
            not 0 < self.agree_iou <= 1
            or not 0 < self.match_iou <= 1
            or not 0 <= self.min_score <= 1
            or self.disagree_frames < 1
            or self.fade_after < 1
            or self.backfill < 0
        ):
            raise ValueError(
                "0 < agree_iou <= 1, 0 < match_iou <= 1, 0 <= min_score <= 1, disagree_frames >= 1, fade_after >= 1 and backfill >= 0 are required"
            )
