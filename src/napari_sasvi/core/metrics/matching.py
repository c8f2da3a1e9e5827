"""Which ground-truth frame scores which prediction frame (``evaluate frames``).

Ground truth often covers some frames only (CholecSeg8k's clip: 72 masks for 73 frames;
Endoscapes: one frame in 30). The rules, in order:

1. **By position** when the ground truth has as many frames as the prediction: frame t against
   ground-truth frame t, as a label folder covering every frame has always been read (names are not
   compared; both are in frame order).
2. **By name** otherwise, each ground-truth file on its own, by the first of these that finds a frame:

   a. the same stem: ``0012.png`` for the frame ``0012.jpg``;
   b. a frame's stem followed by ``_``, ``-``, ``.`` or a space begins the file's stem:
      ``frame_561_endo_watershed_mask.png`` for ``frame_561_endo.png``;
   c. the same frame number: the last integer in the file's name (the number frame folders are
      sorted by) against the last integer in each frame's name, or against the frame's index where
      the prediction has no file names (an array, a store made from a video file).

   A file that two frames fit (under the first of a-c that finds any), two files that find one
   frame, and a file that finds none are errors that name the file: nothing is dropped silently.

Under either rule, ground-truth frames without any labelled pixel (COCO images without
annotations, label files that are 255 everywhere) are left out: there is nothing to score there.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..inputs.frames import frame_sort_key

_SEPARATORS = "_-. "


@dataclass(frozen=True)
class FrameMatch:
    """The frames to score.

    Attributes:
        pairs: (prediction frame, ground-truth frame) pairs, in prediction frame order.
        rule: ``position`` or ``name``.
        n_frames: the prediction's frame count.
        how: for ``name``, how many files each sub-rule matched (``stem``, ``stem prefix``,
            ``frame number``).
    """

    pairs: tuple[tuple[int, int], ...]
    rule: str
    n_frames: int
    how: tuple[tuple[str, int], ...] = ()

    @property
    def n_scored(self) -> int:
        return len(self.pairs)

    def describe(self) -> str:
        """``scored 72 of 73 frames (ground truth matched by name: 72 by stem)``."""
        by = f"matched by {self.rule}"
        if self.how:
            by += ": " + ", ".join(f"{n} by {what}" for what, n in self.how)
        return f"scored {self.n_scored} of {self.n_frames} frames (ground truth {by})"


def frame_number(name: str) -> int | None:
    """The last integer in a file name's stem (``frame_561_endo.png`` -> 561), or None."""
    k = frame_sort_key(name)[0]
    return None if k == float("inf") else int(k)


def _index(keys: Sequence) -> dict:
    out: dict = {}
    for t, k in enumerate(keys):
        if k is not None:
            out.setdefault(k, []).append(t)
    return out


def match_frames(
    pred_names: Sequence[str] | None,
    n_pred: int,
    gt_names: Sequence[str] | None,
    labelled: Sequence[bool],
    where: str,
) -> FrameMatch:
    """Pair ground-truth frames with prediction frames by the rules of this module.

    Args:
        pred_names: the prediction frames' file names, or None where it has none.
        n_pred: the prediction's frame count.
        gt_names: the ground truth's file (or COCO image) names, or None.
        labelled: per ground-truth frame, whether it holds any labelled pixel.
        where: the video's name, for messages.

    Raises:
        InputError: no labelled ground-truth frame; counts differ and the ground truth has no
            names; a file that matches no frame, or more than one; two files for one frame.
    """
    n_gt = len(labelled)
    gt_frames = [g for g in range(n_gt) if labelled[g]]
    if not gt_frames:
        raise InputError(
            f"{where}: no frame of the ground truth holds a label ({n_gt} frames, unlabelled everywhere): "
            "nothing to score. Check --gt-encoding and the ground truth's files."
        )
    if n_gt == n_pred:
        return FrameMatch(tuple((g, g) for g in gt_frames), "position", n_pred)
    if gt_names is None:
        raise InputError(
            f"{where}: the prediction has {n_pred} frames, the ground truth {n_gt}, and the ground truth has no "
            "file names to match them by.\n  Give it as a folder of label files named after their frames "
            "(0012.png for frame 0012.jpg), or with one label map per frame."
        )

    def frame(t: int) -> str:
        return pred_names[t] if pred_names is not None else f"frame {t}"

    stems = _index([Path(n).stem for n in pred_names]) if pred_names is not None else {}
    numbers = _index([frame_number(n) for n in pred_names] if pred_names is not None else range(n_pred))
    pairs: dict[int, int] = {}
    how: Counter[str] = Counter()
    unmatched: list[str] = []
    for g in gt_frames:
        name = gt_names[g]
        stem = Path(name).stem
        prefixed = sorted({t for i, ch in enumerate(stem) if ch in _SEPARATORS for t in stems.get(stem[:i], ())})
        number = frame_number(name)
        candidates = (
            ("stem", stems.get(stem, [])),
            ("stem prefix", prefixed),
            ("frame number", numbers.get(number, []) if number is not None else []),
        )
        what, found = next(((w, f) for w, f in candidates if f), ("", []))
        if not found:
            unmatched.append(name)
            continue
        if len(found) > 1:
            shown = ", ".join(frame(t) for t in found[:3]) + (", ..." if len(found) > 3 else "")
            raise InputError(
                f"{where}: the ground-truth file {name} matches {len(found)} prediction frames by {what} ({shown}).\n"
                "  Rename the ground-truth files after the frames' file names (or the frames), so that each "
                "names one frame."
            )
        t = found[0]
        if t in pairs:
            raise InputError(
                f"{where}: the ground-truth files {gt_names[pairs[t]]} and {name} both match the frame {frame(t)}.\n"
                "  Keep one ground-truth file per frame."
            )
        pairs[t] = g
        how[what] += 1
    if unmatched:
        frames = f"{frame(0)} ... {frame(n_pred - 1)}" if n_pred > 1 else frame(0)
        more = f" and {len(unmatched) - 1} more" if len(unmatched) > 1 else ""
        raise InputError(
            f"{where}: the ground-truth file {unmatched[0]}{more} matches no prediction frame ({n_pred} frames: "
            f"{frames}) by name or frame number.\n  Name each ground-truth file after its frame (its stem, or the "
            "frame number as the last integer in the name), or remove files of other videos; nothing was scored."
        )
    order = ("stem", "stem prefix", "frame number")
    return FrameMatch(tuple(sorted(pairs.items())), "name", n_pred, tuple((w, how[w]) for w in order if how[w]))


__all__ = ["FrameMatch", "frame_number", "match_frames"]
