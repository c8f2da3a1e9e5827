"""The pixel-classifier overseer: a random forest on multi-scale intensity, edge and texture
features (scikit-image's trainable-segmentation features, scikit-learn's forest), trained in seconds
on the CPU from a few painted frames or scribbles, with no weights from anywhere.

A frame is resized so its longer side is ``work_side`` pixels (320 by default: the features of a
480p frame then take about 50 ms on 2 cores), its features are computed there, the forest gives
per-class probabilities, which are brought back to the frame size bilinearly; each pixel takes its
most probable class. Classes smaller than ``min_fraction`` of the frame are dropped (speckle would
otherwise look like a new class entering the scene). A class's score is its mean probability over
its mask.

The model file (``.skops``) is skops' format, not a pickle: :func:`load_pixel_model` lists the types
the file would build beyond those skops trusts by default (scikit-learn's estimators, numpy arrays,
builtins) and refuses it unless each is on a short allow-list, so a file from elsewhere cannot run
code; then it checks that the file holds our fields and a random forest.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..datasets import ClassTable
from ..errors import CheckpointError
from .base import ClassMask, OverseerResult

FORMAT = "napari-sasvi-pixel-classifier"
VERSION = 1
SUFFIX = ".skops"
#: the types a pixel-classifier file may hold (skops refuses anything else unless trusted)
_ALLOWED_TYPES = {
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._tree.Tree",
    "builtins.dict",
    "builtins.list",
    "builtins.tuple",
    "builtins.str",
    "builtins.int",
    "builtins.float",
    "builtins.bool",
    "builtins.NoneType",
    "numpy.ndarray",
    "numpy.dtype",
    "numpy.int64",
    "numpy.float64",
    "numpy.random.mtrand.RandomState",
    "numpy.random._mt19937.MT19937",
}


@dataclass(frozen=True)
class FeatureParams:
    """How pixels become feature vectors (skimage.feature.multiscale_basic_features)."""

    work_side: int = 320
    sigma_min: float = 1.0
    sigma_max: float = 16.0
    intensity: bool = True
    edges: bool = True
    texture: bool = True


def working_size(shape: tuple[int, int], side: int) -> tuple[int, int]:
    h, w = shape
    s = min(1.0, side / max(h, w))
    return max(1, round(h * s)), max(1, round(w * s))


def frame_features(frame: np.ndarray, params: FeatureParams) -> np.ndarray:
    """(h, w, F) float32 features of an (H, W, 3) uint8 RGB frame at the working size."""
    from skimage.feature import multiscale_basic_features
    from skimage.transform import resize

    img = np.asarray(frame, dtype=np.float32) / 255.0
    size = working_size(img.shape[:2], params.work_side)
    if size != img.shape[:2]:
        img = resize(img, size, order=1, anti_aliasing=True, preserve_range=True).astype(np.float32)
    return multiscale_basic_features(
        img,
        intensity=params.intensity,
        edges=params.edges,
        texture=params.texture,
        sigma_min=params.sigma_min,
        sigma_max=params.sigma_max,
        channel_axis=-1,
    ).astype(np.float32, copy=False)


def labels_at(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A label map brought to the working size by nearest neighbour (ids stay ids)."""
    from ..metrics.accuracy import resize_nearest

    return labels if labels.shape == size else resize_nearest(labels, size)


@dataclass
class PixelModel:
    """A trained forest and what it needs to run: its classes, feature settings and post-processing."""

    forest: object
    classes: ClassTable
    features: FeatureParams
    min_fraction: float = 0.001
    trained_on: dict | None = None

    @property
    def class_ids(self) -> list[int]:
        return [int(c) for c in self.forest.classes_]

    def probabilities(self, frame: np.ndarray) -> np.ndarray:
        """(C, H, W) float32 class probabilities at the frame size, C in :attr:`class_ids` order."""
        import torch
        import torch.nn.functional as F

        f = frame_features(frame, self.features)
        h, w = f.shape[:2]
        p = self.forest.predict_proba(f.reshape(-1, f.shape[-1])).astype(np.float32)
        p = torch.from_numpy(p.T.reshape(1, -1, h, w).copy())
        H, W = np.asarray(frame).shape[:2]
        if (h, w) != (H, W):
            p = F.interpolate(p, size=(H, W), mode="bilinear", align_corners=False)
        return p[0].numpy()

    def predict_labels(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(H, W) uint8 class ids and (H, W) float32 probability of the chosen class."""
        p = self.probabilities(frame)
        best = p.argmax(0)
        ids = np.asarray(self.class_ids, np.uint8)
        return ids[best], np.take_along_axis(p, best[None], 0)[0]

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model as ``.skops`` atomically; returns the path."""
        import skops.io as sio

        from ..fsutil import atomic_write_bytes

        path = Path(path)
        if path.suffix != SUFFIX:
            path = path.with_suffix(SUFFIX)
        blob = {
            "format": FORMAT,
            "version": VERSION,
            "classes": self.classes.to_dict(),
            "features": asdict(self.features),
            "min_fraction": float(self.min_fraction),
            "trained_on": self.trained_on or {},
            "forest": self.forest,
        }
        atomic_write_bytes(path, sio.dumps(blob))
        return path


def load_pixel_model(path: str | os.PathLike) -> PixelModel:
    """Read a ``.skops`` pixel classifier written by :meth:`PixelModel.save`.

    Raises:
        CheckpointError: not a file of ours, or it would build a type outside the allow-list.
    """
    import skops.io as sio

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"{path}: no such pixel-classifier file. Train one with `napari-sasvi train --overseer pixel`."
        )
    data = path.read_bytes()
    try:
        types = set(sio.get_untrusted_types(data=data))
    except Exception as e:  # noqa: BLE001 - skops raises many kinds on a file that is not its format
        raise CheckpointError(
            f"{path} is not a pixel-classifier file (.skops written by napari-sasvi train): {e}"
        ) from e
    foreign = sorted(types - _ALLOWED_TYPES)
    if foreign:
        raise CheckpointError(
            f"{path} would build types a pixel classifier does not hold ({', '.join(foreign[:5])}); it was not "
            "written by napari-sasvi and is not loaded."
        )
    blob = sio.loads(data, trusted=sorted(types))
    from sklearn.ensemble import RandomForestClassifier

    missing = [k for k in ("format", "classes", "features", "forest") if not isinstance(blob, dict) or k not in blob]
    if missing or blob.get("format") != FORMAT or not isinstance(blob["forest"], RandomForestClassifier):
        raise CheckpointError(
            f"{path} is a skops file but not a napari-sasvi pixel classifier "
            f"({'no ' + ', '.join(missing) if missing else 'it holds no random forest'})."
        )
    if int(blob.get("version", 0)) > VERSION:
        raise CheckpointError(f"{path} was written by a newer napari-sasvi (format {blob['version']}); upgrade.")
    return PixelModel(
        forest=blob["forest"],
        classes=ClassTable.from_dict(blob["classes"]),
        features=FeatureParams(**blob["features"]),
        min_fraction=float(blob.get("min_fraction", 0.001)),
        trained_on=blob.get("trained_on") or {},
    )


class PixelOverseer:
    """A :class:`PixelModel` as the SASVi overseer (the Overseer protocol)."""

    needs_frames = True

    def __init__(self, model: PixelModel, checkpoint: str | None = None, checkpoint_sha256: str | None = None):
        self.model = model
        self.classes = model.classes
        self.checkpoint = checkpoint
        self.checkpoint_sha256 = checkpoint_sha256
        self.name = f"pixel classifier ({model.classes.name})"
        self._keep = set(model.classes.ids) - set(model.classes.ignore_ids) - {model.classes.no_label}

    def describe(self) -> dict:
        return {
            "type": "pixel",
            "checkpoint": self.checkpoint,
            "checkpoint_sha256": self.checkpoint_sha256,
            "features": asdict(self.model.features),
            "min_fraction": self.model.min_fraction,
            "classes": self.classes.name,
            "trained_on": self.model.trained_on,
        }

    def predict(self, frames: Sequence[np.ndarray] | None, indices: Sequence[int]) -> list[OverseerResult]:
        if frames is None:
            raise ValueError("the pixel classifier needs the frames")
        out = []
        for frame in frames:
            labels, prob = self.model.predict_labels(np.asarray(frame))
            min_px = self.model.min_fraction * labels.size
            res: OverseerResult = {}
            for c in np.unique(labels).tolist():
                if c not in self._keep:
                    continue
                m = labels == c
                n = int(np.count_nonzero(m))
                if n and n >= min_px:
                    res[int(c)] = ClassMask(m, float(prob[m].mean()))
            out.append(res)
        return out


def load_pixel_overseer(path: str | os.PathLike, classes: ClassTable | None = None) -> PixelOverseer:
    """The overseer of a ``.skops`` file; with ``classes``, refuse a model of other classes."""
    from ..weights import sha256_of

    model = load_pixel_model(path)
    if classes is not None and classes.ids != model.classes.ids:
        raise CheckpointError(
            f"{Path(path).name} was trained for the {model.classes.name!r} classes (ids {model.classes.ids}), "
            f"not {classes.name!r} (ids {classes.ids}). Choose the class table it was trained with."
        )
    return PixelOverseer(model, checkpoint=str(path), checkpoint_sha256=sha256_of(path))
