"""One frozen, serialisable description of a SASVi run, and the registries it names.

A :class:`RunConfig` says everything a run needs besides its inputs and output: the class table,
the overseer, the tracker, the policy's parameters, the device, the exports. It round-trips
through JSON and YAML (:meth:`RunConfig.to_dict`, :meth:`RunConfig.from_dict`,
:meth:`RunConfig.save`, :meth:`RunConfig.load`). Options are named by dotted config names
(``tracker.kind``, ``overseer.masks``, ``policy.buffer``); core error messages use these names, and
the CLI shows them as its flags.

Registries: :data:`DATASETS` (class table presets), :data:`OVERSEERS`, :data:`TRACKERS`,
:data:`DEVICES`, :data:`MODES`, :data:`ENCODINGS`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .datasets import PRESETS, ClassTable, get_class_table
from .devices import DEVICES
from .errors import InputError
from .inputs.labels import ENCODINGS
from .policy import PolicyParams

DATASETS: tuple[str, ...] = tuple(PRESETS)
#: overseer kind -> what it is
OVERSEERS: dict[str, str] = {
    "replay": "existing frame-wise predictions (overseer.masks) act as the overseer",
    "maskrcnn": "Mask R-CNN (torchvision), the published SASVi layout",
    "detr": "DETR (transformers DetrForSegmentation), the published SASVi layout",
    "mask2former": "Mask2Former (transformers), the published SASVi layout",
    "pixel": "a pixel classifier (random forest, .skops) trained by napari-sasvi train --overseer pixel",
    "none": "no overseer: the tracker propagates the annotated frames (overseer.anchors) forward and backward",
}
TRAINED_OVERSEERS = ("maskrcnn", "detr", "mask2former", "pixel")
#: tracker kind -> what it is
TRACKERS: dict[str, str] = {
    "sam2": "SAM2 from the sam2 package (tracker.model, or tracker.config with tracker.checkpoint)",
    "flow": "optical flow carries the prompts (no weights, CPU; tracker.model: dis, dis-fast or farneback)",
    "hf": "SAM2/SAM2.1, EdgeTAM or the SAM3 tracker through transformers (tracker.model)",
}
MODES = ("default", "reference")


@dataclass(frozen=True)
class OverseerConfig:
    """The overseer.

    Attributes:
        kind: one of :data:`OVERSEERS`.
        checkpoint: trained overseers: a ``.pth`` file, or a published name (``cadis/maskrcnn``,
            ``published``).
        masks: replay: a folder of label files, a ``.npy`` or a zarr store (for a root of videos, a
            folder with one entry per video, named like it).
        masks_encoding: replay: how the mask files store classes (:data:`ENCODINGS`).
        anchors: annotated frames, a folder of label files for some frames named after them (for a
            root of videos, one sub-folder per video), read like ``masks``. With an overseer they
            replace it at those frames and SASVi re-prompts there; kind ``none``: propagated alone.
        anchors_encoding: how the anchor files store classes (:data:`ENCODINGS`).
        score_threshold, mask_threshold: trained overseers; None: the reference's values.
        batch_size: frames per overseer call over the look-ahead window.
    """

    kind: str = "replay"
    checkpoint: str | None = None
    masks: str | None = None
    masks_encoding: str = "auto"
    anchors: str | None = None
    anchors_encoding: str = "auto"
    score_threshold: float | None = None
    mask_threshold: float | None = None
    batch_size: int = 8


@dataclass(frozen=True)
class TrackerConfig:
    """The video tracker.

    Attributes:
        kind: one of :data:`TRACKERS`.
        model: sam2: an official model name (``sam2.1_hiera_tiny``, downloaded when online); flow:
            ``dis``, ``dis-fast`` or ``farneback``; hf: a ``save_pretrained`` folder or a Hub id.
        config: sam2: a config name or YAML path (with ``checkpoint``, or ``random_weights``).
        checkpoint: sam2: a checkpoint file for ``config``.
        random_weights: sam2: no checkpoint (tests, demos).
        image_size: sam2: override the input size (a multiple of 32).
    """

    kind: str = "flow"
    model: str | None = None
    config: str | None = None
    checkpoint: str | None = None
    random_weights: bool = False
    image_size: int | None = None


@dataclass(frozen=True)
class PolicyConfig:
    """The re-prompting policy's parameters; None: the reference's value (see :class:`PolicyParams`)."""

    lookahead: int | None = None
    persistence: int | None = None
    overlap: float | None = None
    buffer: int | None = None
    min_visible: int | None = None


@dataclass(frozen=True)
class ExportConfig:
    """Exports written after each video.

    Attributes:
        png: a folder for ``<frame>_rgb_mask.png`` palette PNGs (for a root of videos, one
            sub-folder per video); None: no export.
        npz: also ``<frame>_binary_mask.npz``.
        size: (W, H) of the exported masks; None: the frame size.
        overwrite: replace mask files already in ``png``.
        events_json: write the re-prompt events (a JSON list; for a root, a dict per video) here.
    """

    png: str | None = None
    npz: bool = False
    size: tuple[int, int] | None = (299, 299)
    overwrite: bool = False
    events_json: str | None = None


@dataclass(frozen=True)
class RunConfig:
    """Everything a SASVi run needs besides its inputs and output (see the module docstring).

    Attributes:
        dataset: a class table preset (:data:`DATASETS`) or the path of a class table file.
        mode: ``default`` (defects fixed) or ``reference`` (the published decisions).
        device: one of :data:`DEVICES`.
    """

    dataset: str = "synthetic"
    mode: str = "default"
    device: str = "auto"
    overseer: OverseerConfig = field(default_factory=OverseerConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    export: ExportConfig = field(default_factory=ExportConfig)

    def __post_init__(self):
        checks = (
            ("mode", self.mode, MODES),
            ("device", self.device.split(":")[0], DEVICES),
            ("overseer.kind", self.overseer.kind, tuple(OVERSEERS)),
            ("overseer.masks_encoding", self.overseer.masks_encoding, ENCODINGS),
            ("overseer.anchors_encoding", self.overseer.anchors_encoding, ENCODINGS),
            ("tracker.kind", self.tracker.kind, tuple(TRACKERS)),
        )
        for name, value, allowed in checks:
            if value not in allowed:
                raise InputError(f"{name} {value!r} is not one of {', '.join(allowed)}.")
        if self.overseer.batch_size < 1:
            raise InputError(f"overseer.batch_size must be 1 or more, got {self.overseer.batch_size}.")
        if self.overseer.kind == "replay" and self.overseer.checkpoint:
            raise InputError(
                "overseer.checkpoint is for a trained overseer: add overseer.kind maskrcnn|detr|mask2former|pixel."
            )
        if self.overseer.kind != "replay" and self.overseer.masks:
            raise InputError(f"overseer.masks is for overseer.kind replay; {self.overseer.kind} predicts the masks.")
        if self.tracker.kind != "sam2" and (self.tracker.config or self.tracker.checkpoint):
            raise InputError(f"tracker.config/tracker.checkpoint are for tracker.kind sam2, not {self.tracker.kind}.")
        self.policy_params()  # parameter ranges checked now, not mid-run

    # -- derived ------------------------------------------------------------------------------------
    def class_table(self) -> ClassTable:
        return get_class_table(self.dataset)

    def policy_params(self, classes: ClassTable | None = None) -> PolicyParams:
        """The policy's parameters: the CaDIS merge and the dummy id follow the class table."""
        kw = {k: v for k, v in dataclasses.asdict(self.policy).items() if v is not None}
        if classes is not None:
            kw.setdefault("merge_unlabelled", classes.name == "cadis")
            kw.setdefault("dummy_id", classes.dummy_id)
        try:
            return PolicyParams(mode=self.mode, **kw)
        except ValueError as e:
            raise InputError(f"policy: {e}") from e

    # -- serialising --------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if d["export"]["size"] is not None:
            d["export"]["size"] = list(d["export"]["size"])
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunConfig:
        """A config from a (possibly partial) dict; an unknown key is an error that names it."""
        sections = {
            "overseer": OverseerConfig,
            "tracker": TrackerConfig,
            "policy": PolicyConfig,
            "export": ExportConfig,
        }
        top = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - top)
        if unknown:
            raise InputError(f"Unknown run option(s) {', '.join(unknown)}: use {', '.join(sorted(top))}.")
        kw: dict[str, Any] = {}
        for key, value in d.items():
            if key in sections:
                sub = sections[key]
                names = {f.name for f in dataclasses.fields(sub)}
                value = dict(value or {})
                bad = sorted(set(value) - names)
                if bad:
                    raise InputError(
                        f"Unknown option(s) {', '.join(f'{key}.{b}' for b in bad)}: "
                        f"{key} takes {', '.join(sorted(names))}."
                    )
                if key == "export" and value.get("size") is not None:
                    value["size"] = tuple(int(v) for v in value["size"])
                kw[key] = sub(**value)
            else:
                kw[key] = value
        return cls(**kw)

    def replace(self, **options: Any) -> RunConfig:
        """A copy with options changed, by dotted name: ``cfg.replace(**{"tracker.kind": "sam2"})``
        or section-wise: ``cfg.replace(tracker={"kind": "sam2"})``."""
        d = self.to_dict()
        for key, value in options.items():
            if "." in key:
                section, name = key.split(".", 1)
                if section not in d or not isinstance(d[section], dict):
                    raise InputError(f"Unknown run option {key}.")
                d[section][name] = value
            elif isinstance(value, Mapping) and isinstance(d.get(key), dict):
                d[key].update(value)
            else:
                d[key] = value
        return RunConfig.from_dict(d)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the config as YAML (``.yaml``/``.yml``) or JSON."""
        from .fsutil import atomic_write_text

        path = Path(path)
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        else:
            text = json.dumps(self.to_dict(), indent=2)
        atomic_write_text(path, text)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> RunConfig:
        """Read a config written by :meth:`save` (or by hand; missing options take their defaults)."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"Run config {path} does not exist.")
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
        if not isinstance(data, Mapping):
            raise InputError(f"{path}: a run config is a mapping of options (dataset, overseer, tracker, ...).")
        return cls.from_dict(data)


__all__ = [
    "DATASETS",
    "DEVICES",
    "ENCODINGS",
    "MODES",
    "OVERSEERS",
    "TRACKERS",
    "ExportConfig",
    "OverseerConfig",
    "PolicyConfig",
    "RunConfig",
    "TrackerConfig",
]
