"""The ``segment`` command's policy options (``--mode``, ``--buffer``, the consensus step's ...)."""

from __future__ import annotations

import argparse

from .core.config import MODES


def add_policy_options(p: argparse.ArgumentParser, _option) -> None:
    """The policy group; ``_option(group, flag, config key, help, **kw)`` adds one flag."""
    pol = p.add_argument_group("policy")
    _option(
        pol,
        "--mode",
        "mode",
        "reference: the published behaviour decision for decision; default: its defects fixed",
        choices=list(MODES),
    )
    _option(pol, "--lookahead", "policy.lookahead", "overseer look-ahead frames", type=int)
    _option(pol, "--persistence", "policy.persistence", "frames a new class must persist", type=int)
    _option(pol, "--overlap", "policy.overlap", "duplicate overlap threshold", type=float)
    _option(pol, "--buffer", "policy.buffer", "frames between forced re-seeds", type=int)
    _option(
        pol, "--min-visible", "policy.min_visible", "default mode: pixels below which a class counts as lost", type=int
    )
    _option(
        pol,
        "--consensus",
        "policy.consensus",
        "default mode: compare the tracker with the overseer on every frame and class (re-prompt one class, "
        "fade, backfill); --no-consensus: re-prompts at new classes and re-seeds only",
        action=argparse.BooleanOptionalAction,
    )
    _option(
        pol, "--agree-iou", "policy.agree_iou", "consensus: IoU below which tracker and overseer disagree", type=float
    )
    _option(
        pol,
        "--disagree-frames",
        "policy.disagree_frames",
        "consensus: disagreeing frames in a row before the class is re-prompted",
        type=int,
    )
    _option(
        pol,
        "--fade-after",
        "policy.fade_after",
        "consensus: frames the overseer misses a class before it fades",
        type=int,
    )
    _option(
        pol, "--backfill", "policy.backfill", "consensus: frames a new class is filled backwards (0: none)", type=int
    )
    _option(
        pol,
        "--take-overseer",
        "policy.take_overseer",
        "consensus: write a class with the overseer's mask where the two match (--no-take-overseer: the tracker's)",
        action=argparse.BooleanOptionalAction,
    )
    _option(
        pol,
        "--match-iou",
        "policy.match_iou",
        "consensus: IoU at which the overseer's mask is the object's",
        type=float,
    )

    _option(
        pol,
        "--min-score",
        "policy.min_score",
        "consensus: the overseer's score below which it does not overrule the tracker",
        type=float,
    )

    ins = p.add_argument_group("instances")
    _option(
        ins,
        "--instances",
        "instances",
        "one track per object with a stable id (the overseer's instances: Mask R-CNN, DETR, Mask2Former or instance "
        "label files), not one mask per class; the store gets a tracks array and a track table",
        action=argparse.BooleanOptionalAction,
    )
    _option(ins, "--track-iou", "identity.match_iou", "instances: IoU that continues a live track", type=float)
    _option(ins, "--track-grace", "identity.grace", "instances: frames a track lives on without a detection", type=int)
    _option(
        ins, "--reid-frames", "identity.reid_frames", "instances: frames within which an ended track keeps its id",
        type=int,
    )  # fmt: skip
    _option(ins, "--reid-iou", "identity.reid_iou", "instances: IoU at which an ended track is recognised", type=float)


#: config key -> flag, for messages about the policy options ("instances" is left out: the word is
#: in file names (instances.json) and prose, which must not read as the flag)
POLICY_FLAGS = {
    "policy.lookahead": "--lookahead",
    "policy.persistence": "--persistence",
    "policy.overlap": "--overlap",
    "policy.buffer": "--buffer",
    "policy.min_visible": "--min-visible",
    "policy.consensus": "--consensus",
    "policy.agree_iou": "--agree-iou",
    "policy.disagree_frames": "--disagree-frames",
    "policy.fade_after": "--fade-after",
    "policy.backfill": "--backfill",
    "policy.take_overseer": "--take-overseer",
    "policy.match_iou": "--match-iou",
    "policy.min_score": "--min-score",
    "identity.match_iou": "--track-iou",
    "identity.grace": "--track-grace",
    "identity.reid_frames": "--reid-frames",
    "identity.reid_iou": "--reid-iou",
}
