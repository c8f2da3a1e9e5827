"""Sample data: two-line adapters over :class:`~napari_sasvi.core.synthetic.SyntheticVideo`."""

from __future__ import annotations

from ..core.datasets import ClassTable
from ..core.synthetic import SyntheticVideo


def labels_layer_kwargs(classes: ClassTable, name: str) -> dict:
    """Keyword arguments of a labels layer that shows ``classes`` in their colours and names."""
    from napari.utils.colormaps import DirectLabelColormap

    return {
        "name": name,
        "colormap": DirectLabelColormap(color_dict=classes.colors_rgba()),
        "features": {"index": list(classes.ids), "class": [c.name for c in classes]},
        "metadata": {"classes": classes.to_dict()},
        "opacity": 0.5,
    }


def synthetic_sample(n_frames: int = 120, seed: int = 0, noisy: bool = False):
    """Frames, ground truth and (with ``noisy``) overseer-like labels, all lazy."""
    video = SyntheticVideo(n_frames=n_frames, seed=seed)
    layers = [
        (video.frames_dask(), {"name": "Synthetic surgical video", "rgb": True, "contrast_limits": (0, 255)}, "image"),
        (video.labels_dask(), labels_layer_kwargs(video.classes, "Ground truth"), "labels"),
    ]
    if noisy:
        layers.append((video.noisy_labels_dask(), labels_layer_kwargs(video.classes, "Noisy overseer"), "labels"))
    return layers


def make_synthetic_sample():
    return synthetic_sample()


def make_noisy_sample():
    return synthetic_sample(noisy=True)
