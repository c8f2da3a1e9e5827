"""Sequences, seeded overseer noise models and scoring for ``bench_consensus.py``.

Every sequence is read into memory as (T, H, W, 3) uint8 frames and a (T, H, W) uint8 ground truth
in the class ids of its table (255 where nothing is annotated: CholecSeg8k's white border, and every
pixel of Endoscapes' unannotated frames). Frames whose longer side is over 480 px are downscaled to
480 (area for frames, nearest for labels) to keep the runs short.

Class tables: CholecSeg8k and the synthetic sample use the presets. DAVIS gets a small table of its
own: 0 background (also the no-label value, not scored, as CholecSeg8k's black background), 1 the
annotated object (the one scored class: Dice over the foreground, the usual DAVIS figure) and
2 ``other object``, a class that no ground truth holds, there only so that the ``swap`` noise model
has a second class to swap the object into. Endoscapes: 0 background (no-label, not scored) and its
six COCO categories 1-6; instance masks are painted into one semantic map, larger instances first.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from napari_sasvi.core.datasets import CHOLECSEG8K, SYNTHETIC, ClassInfo, ClassTable
from napari_sasvi.core.inputs.coco_labels import decode_rle
from napari_sasvi.core.metrics.accuracy import macro, overlap_counts
from napari_sasvi.core.metrics.temporal import temporal_consistency

MAX_SIDE = 480
SEED = 0
UNLABELLED = 255

DAVIS = ClassTable(
    name="davis",
    classes=(
        ClassInfo(0, "background", (0, 0, 0)),
        ClassInfo(1, "object", (255, 64, 64)),
        ClassInfo(2, "other object (swap target)", (64, 64, 255)),
    ),
    no_label=0,
    ignore_ids=frozenset({0}),
    dummy_id=0,
    source_values={0: 0, 255: 1},
)

ENDOSCAPES = ClassTable(
    name="endoscapes",
    classes=(
        ClassInfo(0, "background", (0, 0, 0)),
        ClassInfo(1, "cystic_plate", (255, 160, 0)),
        ClassInfo(2, "calot_triangle", (0, 200, 200)),
        ClassInfo(3, "cystic_artery", (255, 0, 0)),
        ClassInfo(4, "cystic_duct", (255, 255, 0)),
        ClassInfo(5, "gallbladder", (255, 160, 165)),
        ClassInfo(6, "tool", (170, 255, 0)),
    ),
    no_label=0,
    ignore_ids=frozenset({0}),
    dummy_id=0,
)

SEQUENCES = {
    "cholecseg8k": "cholecseg8k_surgicalsam2_frames561-633",
    "blackswan": "davis2016_eor-vos_blackswan",
    "bmx-trees": "davis2016_eor-vos_bmx-trees",
    "car-shadow": "davis2016_osvos-tf_car-shadow",
    "endoscapes": "endoscapes_surgicalsam2_video4_21725-24700",
    "synthetic": None,
}


@dataclass
class Sequence:
    """One clip in memory. ``scored``: the frames with ground truth (all but Endoscapes')."""

    name: str
    frames: np.ndarray
    gt: np.ndarray
    table: ClassTable
    scored: list[int]
    source_size: tuple[int, int]
    swap_extra: tuple[int, ...] = ()
    notes: list[str] = field(default_factory=list)

    @property
    def sparse(self) -> bool:
        return len(self.scored) < len(self.frames)

    @property
    def size(self) -> tuple[int, int]:
        return self.frames.shape[1:3]

    def gt_ids(self) -> list[int]:
        """Scored classes present in the ground truth of the scored frames (the Dice macro)."""
        present = set(np.unique(self.gt[self.scored]).tolist())
        return [c for c in self.table.scored_ids() if c in present]

    def rng(self, tag: str) -> np.random.Generator:
        """A generator seeded by (SEED, sequence, tag): the same noise on every run."""
        return np.random.default_rng([SEED, zlib.crc32(self.name.encode()), zlib.crc32(tag.encode())])


def score(seq: Sequence, labels: np.ndarray, frames: list[int] | None = None) -> dict:
    """Dice over ``frames`` (default: those with ground truth) and T-IoU over the whole output."""
    frames = seq.scored if frames is None else frames
    ids = seq.gt_ids()
    dice = overlap_counts((labels[t] for t in frames), (seq.gt[t] for t in frames), ids).dice()
    tab = seq.table
    ignore = set(tab.ignore_ids) | {tab.no_label, UNLABELLED}
    t = temporal_consistency(labels, None, ignore=ignore, no_label=tab.no_label).macro
    return {"dice": macro(dice, ids), "t_iou": t["t_iou"], "per_class": {int(c): dice[c] for c in ids if c in dice}}


def _downscale(frames: list[np.ndarray], labels: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    h, w = frames[0].shape[:2]
    s = MAX_SIDE / max(h, w)
    if s < 1:
        size = (round(w * s), round(h * s))
        frames = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]
        labels = [cv2.resize(lab, size, interpolation=cv2.INTER_NEAREST) for lab in labels]
    return np.stack(frames), np.stack(labels)


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _grey(path: Path) -> np.ndarray:
    a = np.asarray(Image.open(path))
    return a[..., 0] if a.ndim == 3 else a


def _cholecseg8k(root: Path) -> Sequence:
    lut = np.full(256, UNLABELLED, np.uint8)
    for grey, c in CHOLECSEG8K.source_values.items():
        lut[grey] = c
    masks = sorted((root / "masks").glob("*.png"))  # 72 of the 73 frames have one: those 72
    frames = [_rgb(root / "frames" / m.name) for m in masks]
    f, g = _downscale(frames, [lut[_grey(m)] for m in masks])
    return Sequence("cholecseg8k", f, g, CHOLECSEG8K, list(range(len(f))), frames[0].shape[:2])


def _davis(name: str, root: Path) -> Sequence:
    masks = sorted((root / "masks").glob("*.png"))
    frames = [_rgb(root / "frames" / f"{m.stem}.jpg") for m in masks]
    f, g = _downscale(frames, [(_grey(m) > 127).astype(np.uint8) for m in masks])
    return Sequence(name, f, g, DAVIS, list(range(len(f))), frames[0].shape[:2], swap_extra=(2,))


def _endoscapes(root: Path) -> Sequence:
    coco = json.loads((root / "annotations_coco_rle.json").read_text())
    index = {}
    for line in (root / "files.csv").read_text().splitlines()[1:]:
        idx, _, image_id, _ = line.split(",")
        index[int(image_id)] = int(idx)
    paths = sorted((root / "frames").glob("*.jpg"))
    frames = [_rgb(p) for p in paths]
    h, w = frames[0].shape[:2]
    labels = [np.full((h, w), UNLABELLED, np.uint8) for _ in paths]
    by_frame: dict[int, list] = {}
    for ann in coco["annotations"]:
        by_frame.setdefault(index[ann["image_id"]], []).append(ann)
    for t, anns in by_frame.items():
        lab = np.zeros((h, w), np.uint8)  # an annotated frame: unannotated pixels are background
        for ann in sorted(anns, key=lambda a: -a["area"]):  # small instances painted last stay visible
            m = decode_rle(ann["segmentation"])  # the library's COCO RLE reader
            if int(m.sum()) != int(ann["area"]):
                raise SystemExit(f"Endoscapes annotation {ann['id']}: decoded area {m.sum()} != {ann['area']}")
            lab[m] = ann["category_id"]
        labels[t] = lab
    f, g = _downscale(frames, labels)
    return Sequence("endoscapes", f, g, ENDOSCAPES, sorted(by_frame), (h, w))


def _synthetic() -> Sequence:
    from napari_sasvi.core.synthetic import SyntheticVideo

    video = SyntheticVideo(seed=SEED)
    frames = np.stack([video.frame(t) for t in range(video.n_frames)])
    gt = np.stack([video.labels(t) for t in range(video.n_frames)])
    return Sequence("synthetic", frames, gt, SYNTHETIC, list(range(len(frames))), frames.shape[1:3])


def load(name: str, data: Path) -> Sequence:
    """A sequence by its short name (the keys of :data:`SEQUENCES`)."""
    if name == "synthetic":
        seq = _synthetic()
    elif name == "cholecseg8k":
        seq = _cholecseg8k(data / SEQUENCES[name])
    elif name == "endoscapes":
        seq = _endoscapes(data / SEQUENCES[name])
    else:
        seq = _davis(name, data / SEQUENCES[name])
    return seq


# -- noise models: ground truth in, a frame-wise overseer's label maps out --------------------------------


def _scale(seq: Sequence) -> float:
    """Pixel sizes are given at 480p (short side 480): this sequence's short side / 480."""
    return min(seq.size) / 480


def _seq_classes(seq: Sequence) -> list[int]:
    """Classes a noise model may invent: those of the sequence's ground truth, and its swap extras."""
    return sorted(set(seq.gt_ids()) | set(seq.swap_extra))


def _present(lab: np.ndarray, seq: Sequence) -> list[int]:
    scored = set(seq.table.scored_ids())
    return [int(c) for c in np.unique(lab) if int(c) in scored]


def dropout(seq: Sequence, gt: np.ndarray, rng: np.random.Generator, p: float = 0.10) -> np.ndarray:
    """Missed detections: each scored class present in a frame is dropped from it with probability
    ``p``; its pixels become the table's no-label value (CholecSeg8k and DAVIS: background 0; the
    synthetic sample: unlabelled 255), as a frame-wise model that misses a class would leave them."""
    out = gt.copy()
    for t in range(len(out)):
        for c in _present(gt[t], seq):
            if rng.random() < p:
                out[t][gt[t] == c] = seq.table.no_label
    return out


def blobs(seq: Sequence, gt: np.ndarray, rng: np.random.Generator, p: float = 0.15, radius: float = 0.05):
    """False positives: on a fraction ``p`` of the frames, a disk of radius ``radius`` x the short side
    at a random place, of a class drawn from those of the sequence (present in that frame or not)."""
    out = gt.copy()
    h, w = gt.shape[1:]
    r = max(2, round(radius * min(h, w)))
    y, x = np.ogrid[0:h, 0:w]
    classes = _seq_classes(seq)
    for t in range(len(out)):
        if classes and rng.random() < p:
            cy, cx = int(rng.integers(r, h - r)), int(rng.integers(r, w - r))
            out[t][(y - cy) ** 2 + (x - cx) ** 2 <= r * r] = int(rng.choice(classes))
    return out


def jitter(seq: Sequence, gt: np.ndarray, rng: np.random.Generator, amplitude: float = 3.0) -> np.ndarray:
    """Boundary jitter: every frame's labels resampled (nearest) through a smooth random displacement
    field of up to ``amplitude`` px at 480p (scaled to the sequence's size), a new field per frame:
    an 8 x 14 grid of uniform [-1, 1] offsets, bicubically upsampled (as ``bench_anchors.corrupt``)."""
    import cv2

    t_n, h, w = gt.shape
    amp = amplitude * _scale(seq)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty_like(gt)
    for t in range(t_n):
        coarse = rng.uniform(-1, 1, (2, 8, 14)).astype(np.float32)
        fy, fx = (cv2.resize(c, (w, h), interpolation=cv2.INTER_CUBIC) * amp for c in coarse)
        out[t] = cv2.remap(gt[t], x + fx, y + fy, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
    return out


def swap(seq: Sequence, gt: np.ndarray, rng: np.random.Generator, p: float = 0.05) -> np.ndarray:
    """Class confusions: on a fraction ``p`` of the frames, every pixel of one present class is
    relabelled as another class of the sequence (DAVIS: the object becomes class 2, ``other object``,
    a class of the table that no ground truth holds)."""
    out = gt.copy()
    classes = _seq_classes(seq)
    for t in range(len(out)):
        if rng.random() >= p:
            continue
        present = _present(gt[t], seq)
        if not present:
            continue
        c = int(rng.choice(present))
        others = [k for k in classes if k != c]
        if others:
            out[t][gt[t] == c] = int(rng.choice(others))
    return out


def mixed(seq: Sequence, gt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """All four at once at lower rates: jitter of 2 px, then swaps (p 0.03), dropouts (p 0.05) and
    blobs (p 0.08, radius 4 % of the short side)."""
    out = jitter(seq, gt, rng, amplitude=2.0)
    out = swap(seq, out, rng, p=0.03)
    out = dropout(seq, out, rng, p=0.05)
    return blobs(seq, out, rng, p=0.08, radius=0.04)


def pixel(seq: Sequence, work: Path) -> np.ndarray:
    """The pixel classifier (random forest, the project's defaults) trained on three ground-truth
    frames (first, middle and last of the frames with ground truth: 0, n/2, n-1 on a dense
    sequence), predicting every frame as the ``pixel`` overseer would (classes under its
    ``min_fraction`` and the table's ignored classes left as no-label)."""
    import sklearn

    from napari_sasvi.core.overseers.base import result_to_label_map
    from napari_sasvi.core.overseers.pixel import PixelOverseer, load_pixel_model
    from napari_sasvi.core.progress import drain
    from napari_sasvi.core.training.data import from_arrays
    from napari_sasvi.core.training.forest import PixelParams, iter_train_pixel

    s = seq.scored
    train = sorted({s[0], s[len(s) // 2], s[-1]})
    painted = np.full_like(seq.gt, UNLABELLED)
    painted[train] = seq.gt[train]
    work.mkdir(parents=True, exist_ok=True)
    # the predictions are cached under a hash of everything they depend on (about 0.6 s a frame here)
    key = hashlib.blake2b(digest_size=8)
    for part in (seq.frames, painted, np.asarray(seq.table.ids), sklearn.__version__.encode()):
        key.update(part.tobytes() if isinstance(part, np.ndarray) else part)
    cached = work / f"pixel-{key.hexdigest()}.npy"
    seq.notes.append(f"pixel classifier trained on frames {train}")
    if cached.exists():
        return np.load(cached)
    data = from_arrays(seq.frames, painted, seq.table, name=seq.name)
    result = drain(iter_train_pixel(data, work / "pixel.skops", PixelParams(seed=SEED)))
    overseer = PixelOverseer(load_pixel_model(result.checkpoint))
    out = np.empty_like(seq.gt)
    for t in range(len(out)):
        (res,) = overseer.predict([seq.frames[t]], [t])
        out[t] = result_to_label_map(res, seq.size, seq.table.no_label)
    np.save(cached, out)
    return out


NOISE = {"dropout": dropout, "blobs": blobs, "jitter": jitter, "swap": swap, "mixed": mixed}
OVERSEERS = ("gt", *NOISE, "pixel")


def make_overseer(seq: Sequence, kind: str, work: Path) -> np.ndarray:
    """The overseer's label maps (T, H, W) for ``kind`` (one of :data:`OVERSEERS`)."""
    if kind == "gt":
        return seq.gt.copy()
    if kind == "pixel":
        return pixel(seq, work / seq.name)
    return NOISE[kind](seq, seq.gt, seq.rng(kind))
