"""One frozen, validated, serialisable description of a SASVi run, and the registries it names.

A :class:`RunConfig` says everything a run needs besides its inputs and output: the class table,
the overseer, the tracker, the policy's parameters, the device, the exports. It round-trips
through JSON and YAML (:meth:`RunConfig.to_dict`, :meth:`RunConfig.from_dict`,
:meth:`RunConfig.save`, :meth:`RunConfig.load`). Options are named by dotted config names
(``tracker.kind``, ``overseer.masks``, ``policy.buffer``); core error messages use these names, and
the CLI shows them as its flags.

Every option is declared here once, with its type, its range and its default: the CLI's flags, the
widget's form and Python callers pass only what the user set and take the rest from these types
(``RunConfig()`` is "all defaults"). The policy's numbers are :class:`PolicyParams`'s own.

Validation is pydantic v2's: the types are frozen *pydantic dataclasses* rather than
``BaseModel``s so that they stay real dataclasses (``dataclasses.replace``, ``asdict``, ``fields``
and hashing work as before, and the engine memoises models keyed by these values), while every
construction, ``replace`` included, is validated: YAML's ``"8"`` is taken as 8, ``"eight"``, an
out-of-range number or an unknown key is refused. pydantic's report is turned into a one-line
:class:`InputError` naming the dotted key (``overseer.batch_size: expected an integer, got
'eight'``). pydantic rather than msgspec or attrs+cattrs: it is installed already (napari and npe2
depend on it) and its constrained types (``Field(ge=1)``) keep each range beside its option.

Registries: :data:`DATASETS` (class table presets), :data:`OVERSEERS`, :data:`TRACKERS`,
:data:`DEVICES`, :data:`MODES`, :data:`ENCODINGS`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, ValidationError, field_validator
from pydantic.dataclasses import dataclass
from pydantic_core import PydanticCustomError

from .datasets import PRESETS, ClassTable, get_class_table
from .devices import DEVICES
from .errors import InputError
from .fsutil import atomic_write_text
from .inputs.labels import ENCODINGS
from .instances.identity import IdentityParams
from .policy import PolicyParams

DATASETS: tuple[str, ...] = tuple(PRESETS)
#: overseer kind -> what it is
OVERSEERS: dict[str, str] = {
    "replay": "existing frame-wise predictions (overseer.masks) act as the overseer",
    "maskrcnn": "Mask R-CNN (torchvision), the published SASVi layout",
    "detr": "DETR (transformers DetrForSegmentation), the published SASVi layout",
    "mask2former": "Mask2Former (transformers), the published SASVi layout",
    "pixel": "a pixel classifier (random forest, .skops) trained by napari-sasvi train --overseer pixel",
    "text": "SAM 3 (transformers) prompted with the class names (or overseer.prompts); overseer.checkpoint: its model",
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

#: lax types ("8" is 8, 1 is 1.0) but no unknown keys
_PYDANTIC = ConfigDict(extra="forbid")


# -- option types ----------------------------------------------------------------------------------
def _one_of(allowed: tuple[str, ...], prefix: bool = False):
    """A name from a registry (``prefix``: before a ``:``, as ``cuda:1``)."""

    def check(value: str) -> str:
        if (value.split(":")[0] if prefix else value) not in allowed:
            raise PydanticCustomError("choice", "is not one of {allowed}", {"allowed": ", ".join(allowed)})
        return value

    return AfterValidator(check)


def _fspath(value: Any) -> Any:
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def _multiple_of_32(value: int | None) -> int | None:
    # SAM2's Hiera backbone downsamples by 32: other sizes do not tile its feature maps
    if value is not None and (value < 32 or value % 32):
        raise PydanticCustomError("multiple_of_32", "must be a positive multiple of 32, got {value}", {"value": value})
    return value


#: a file or folder: a ``Path`` is kept as its string, so that configs stay JSON
PathName = Annotated[str, BeforeValidator(_fspath)]
Encoding = Annotated[str, _one_of(ENCODINGS)]
_POLICY = PolicyParams()  # the policy's defaults are its own
_IDENTITY = IdentityParams()


# -- sections --------------------------------------------------------------------------------------
def _one_line_errors(section: str):
    """Make a pydantic dataclass raise one-line :class:`InputError`s naming dotted keys (its options
    are under ``section``; "" for :class:`RunConfig`) instead of pydantic's multi-line report."""

    def wrap(cls):
        init = cls.__init__

        @functools.wraps(init)
        def __init__(self, *args, **kwargs):
            try:
                init(self, *args, **kwargs)
            except ValidationError as e:
                raise _input_error(e, (section,) if section else ()) from None

        cls.__init__ = __init__
        return cls

    return wrap


@_one_line_errors("overseer")
@dataclass(frozen=True, config=_PYDANTIC)
class OverseerConfig:
    """The overseer.

    Attributes:
        kind: one of :data:`OVERSEERS`.
        checkpoint: trained overseers: a ``.pth`` file, or a published name (``cadis/maskrcnn``,
            ``published``); text: a Hub id (None: ``facebook/sam3``) or a ``save_pretrained`` folder.
        masks: replay: a folder of label files, a ``.npy`` or a zarr store (for a root of videos, a
            folder with one entry per video, named like it).
        masks_encoding: replay: how the mask files store classes (:data:`ENCODINGS`).
        anchors: annotated frames, a folder of label files for some frames named after them (for a
            root of videos, one sub-folder per video), read like ``masks``. With an overseer they
            replace it at those frames and SASVi re-prompts there; kind ``none``: propagated alone.
        anchors_encoding: how the anchor files store classes (:data:`ENCODINGS`).
        score_threshold, mask_threshold: trained overseers; None: the reference's values (text: 0.5, 0.5).
        prompts: text: the classes to prompt, comma-separated names (``NAME=WORDS``: other words); None: all.
        batch_size: frames per overseer call over the look-ahead window.
    """

    kind: Annotated[str, _one_of(tuple(OVERSEERS))] = "replay"
    checkpoint: PathName | None = None
    masks: PathName | None = None
    masks_encoding: Encoding = "auto"
    anchors: PathName | None = None
    anchors_encoding: Encoding = "auto"
    score_threshold: float | None = None
    mask_threshold: float | None = None
    prompts: str | None = None
    batch_size: Annotated[int, Field(ge=1)] = 8


@_one_line_errors("tracker")
@dataclass(frozen=True, config=_PYDANTIC)
class TrackerConfig:
    """The video tracker.

    Attributes:
        kind: one of :data:`TRACKERS`; ``flow`` by default: it runs offline, with no weights.
        model: sam2: an official model name (``sam2.1_hiera_tiny``, downloaded when online); flow:
            ``dis`` (None), ``dis-fast`` or ``farneback``; hf: a ``save_pretrained`` folder or a Hub id.
        config: sam2: a config name or YAML path (with ``checkpoint``, or ``random_weights``).
        checkpoint: sam2: a checkpoint file for ``config``.
        random_weights: sam2: no checkpoint (tests, demos).
        image_size: sam2: override the input size (a positive multiple of 32); None: the model's.
    """

    kind: Annotated[str, _one_of(tuple(TRACKERS))] = "flow"
    model: PathName | None = None
    config: PathName | None = None
    checkpoint: PathName | None = None
    random_weights: bool = False
    image_size: Annotated[int | None, AfterValidator(_multiple_of_32)] = None


@_one_line_errors("policy")
@dataclass(frozen=True, config=_PYDANTIC)
class PolicyConfig:
    """The re-prompting policy's parameters (see :class:`PolicyParams`, whose defaults, the
    reference's values, these are). None, as older configs wrote it, is that default."""

    lookahead: Annotated[int, Field(ge=1)] = _POLICY.lookahead
    persistence: Annotated[int, Field(ge=0)] = _POLICY.persistence
    overlap: Annotated[float, Field(gt=0, le=1)] = _POLICY.overlap
    buffer: Annotated[int, Field(ge=2)] = _POLICY.buffer
    min_visible: Annotated[int, Field(ge=0)] = _POLICY.min_visible
    consensus: bool = _POLICY.consensus
    agree_iou: Annotated[float, Field(gt=0, le=1)] = _POLICY.agree_iou
    disagree_frames: Annotated[int, Field(ge=1)] = _POLICY.disagree_frames
    fade_after: Annotated[int, Field(ge=1)] = _POLICY.fade_after
    backfill: Annotated[int, Field(ge=0)] = _POLICY.backfill
    take_overseer: bool = _POLICY.take_overseer
    match_iou: Annotated[float, Field(gt=0, le=1)] = _POLICY.match_iou
    min_score: Annotated[float, Field(ge=0, le=1)] = _POLICY.min_score

    @field_validator("*", mode="before")
    @classmethod
    def _none_is_default(cls, value, info):
        return getattr(_POLICY, info.field_name) if value is None else value


@_one_line_errors("export")
@dataclass(frozen=True, config=_PYDANTIC)
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

    png: PathName | None = None
    npz: bool = False
    size: tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]] | None = (299, 299)
    overwrite: bool = False
    events_json: PathName | None = None


@_one_line_errors("identity")
@dataclass(frozen=True, config=_PYDANTIC)
class IdentityConfig:
    """Instance mode (``instances: true``): how detections become tracks with stable ids (see
    :class:`~.instances.identity.IdentityParams`)."""

    match_iou: Annotated[float, Field(gt=0, le=1)] = _IDENTITY.match_iou
    grace: Annotated[int, Field(ge=0)] = _IDENTITY.grace
    reid_frames: Annotated[int, Field(ge=0)] = _IDENTITY.reid_frames
    reid_iou: Annotated[float, Field(gt=0, le=1)] = _IDENTITY.reid_iou


#: ``dataset`` value for instance label files that bring their own classes (DAVIS-style palette
#: PNGs: "object k" per id; LabelMe names; COCO categories), one table per video
FROM_LABELS = "from-labels"

_SECTIONS: dict[str, type] = {
    "overseer": OverseerConfig,
    "tracker": TrackerConfig,
    "policy": PolicyConfig,
    "export": ExportConfig,
    "identity": IdentityConfig,
}


@_one_line_errors("")
@dataclass(frozen=True, config=_PYDANTIC)
class RunConfig:
    """Everything a SASVi run needs besides its inputs and output (see the module docstring).

    Attributes:
        dataset: a class table preset (:data:`DATASETS`), the path of a class table file, or
            :data:`FROM_LABELS` (instances replayed from label files that bring their classes).
        mode: ``default`` (defects fixed) or ``reference`` (the published decisions).
        device: one of :data:`DEVICES` (``cuda:1`` names a GPU).
        instances: one track per object with a stable id (the overseer's instances), not one mask
            per class; ``identity`` says how detections become tracks.
    """

    dataset: PathName = "synthetic"
    mode: Annotated[str, _one_of(MODES)] = "default"
    device: Annotated[str, _one_of(DEVICES, prefix=True)] = "auto"
    overseer: OverseerConfig = dataclasses.field(default_factory=OverseerConfig)
    tracker: TrackerConfig = dataclasses.field(default_factory=TrackerConfig)
    policy: PolicyConfig = dataclasses.field(default_factory=PolicyConfig)
    export: ExportConfig = dataclasses.field(default_factory=ExportConfig)
    instances: bool = False
    identity: IdentityConfig = dataclasses.field(default_factory=IdentityConfig)

    def __post_init__(self):
        """Checks across options (each option's type and range are checked by its type)."""
        if self.overseer.kind == "replay" and self.overseer.checkpoint:
            raise InputError(
                "overseer.checkpoint is for a trained overseer: add overseer.kind maskrcnn|detr|mask2former|pixel|text."
            )
        if self.overseer.prompts is not None and self.overseer.kind != "text":
            raise InputError(f"overseer.prompts is for overseer.kind text, not {self.overseer.kind}.")
        if self.overseer.kind != "replay" and self.overseer.masks:
            raise InputError(f"overseer.masks is for overseer.kind replay; {self.overseer.kind} predicts the masks.")
        if self.tracker.kind != "sam2" and (self.tracker.config or self.tracker.checkpoint):
            raise InputError(f"tracker.config/tracker.checkpoint are for tracker.kind sam2, not {self.tracker.kind}.")
        if self.dataset == FROM_LABELS and not (self.instances and self.overseer.kind == "replay"):
            raise InputError(
                f"dataset {FROM_LABELS} takes the class table from instance label files: it needs instances: true and "
                "overseer.kind replay (DAVIS-style palette PNGs: one class per object, in the palette's colours)."
            )
        if self.instances and self.mode != "default":
            raise InputError("instances: true needs mode default (reference mode is the published, class-wise method).")
        if self.instances and self.overseer.kind == "pixel":
            raise InputError(
                f"instances: true needs an overseer that gives objects; overseer.kind {self.overseer.kind} does not "
                "(use maskrcnn, detr, mask2former, text, or replay instance labels)."
            )
        self.policy_params()  # parameter ranges checked now, not mid-run

    # -- derived ------------------------------------------------------------------------------------
    def class_table(self) -> ClassTable | None:
        """The run's class table; None for ``dataset: from-labels`` (each video's instance labels give
        their own: :data:`FROM_LABELS`)."""
        return None if self.dataset == FROM_LABELS else get_class_table(self.dataset)

    def policy_params(self, classes: ClassTable | None = None) -> PolicyParams:
        """The policy's parameters: the CaDIS merge and the dummy id follow the class table."""
        kw: dict[str, Any] = dataclasses.asdict(self.policy)
        if classes is not None:
            kw.update(merge_unlabelled=classes.name == "cadis", dummy_id=classes.dummy_id)
        try:
            return PolicyParams(mode=self.mode, **kw)
        except ValueError as e:
            raise InputError(f"policy: {e}") from e

    def identity_params(self) -> IdentityParams | None:
        """Instance mode's parameters (None: a class run)."""
        return IdentityParams(**dataclasses.asdict(self.identity)) if self.instances else None

    # -- serialising --------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if d["export"]["size"] is not None:
            d["export"]["size"] = list(d["export"]["size"])
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunConfig:
        """A config from a (possibly partial) dict; a wrong key or value is an :class:`InputError`
        that names it."""
        if not isinstance(d, Mapping) or not all(isinstance(k, str) for k in d):
            raise InputError("A run config is a mapping of options (dataset, mode, overseer, tracker, ...).")
        # an empty section (`overseer:` alone in YAML) takes every default
        return cls(**{k: {} if k in _SECTIONS and v is None else v for k, v in d.items()})

    def replace(self, **options: Any) -> RunConfig:
        """A copy with options changed, by dotted name: ``cfg.replace(**{"tracker.kind": "sam2"})``
        or section-wise: ``cfg.replace(tracker={"kind": "sam2"})``."""
        d = self.to_dict()
        for key, value in options.items():
            if "." in key:
                section, name = key.split(".", 1)
                if section not in _SECTIONS:
                    raise InputError(f"{key}: unknown run option; sections are {', '.join(_SECTIONS)}.")
                d[section][name] = value
            elif isinstance(value, Mapping) and key in _SECTIONS:
                d[key].update(value)
            else:
                d[key] = value
        return RunConfig.from_dict(d)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the config as YAML (``.yaml``/``.yml``) or JSON."""
        path = Path(path)
        if path.suffix.lower() in (".yaml", ".yml"):
            text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        else:
            text = json.dumps(self.to_dict(), indent=2)
        atomic_write_text(path, text)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> RunConfig:
        """Read a config written by :meth:`save` (or by hand; missing options take their defaults).
        Errors name the file and the option."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"Run config {path} does not exist.")
        text = path.read_text(encoding="utf-8")
        try:
            data = yaml.safe_load(text) if path.suffix.lower() in (".yaml", ".yml") else json.loads(text)
        except (yaml.YAMLError, ValueError) as e:  # json.JSONDecodeError is a ValueError
            mark = getattr(e, "problem_mark", None)
            where = f", line {mark.line + 1}" if mark is not None else ""
            fmt = "JSON" if path.suffix.lower() == ".json" else "YAML"
            raise InputError(f"{path}: not valid {fmt} ({str(e).splitlines()[0]}{where}).") from None
        try:
            return cls.from_dict({} if data is None else data)
        except InputError as e:
            raise InputError(f"{path}: {e}") from None


# -- pydantic's report as one line -----------------------------------------------------------------
_EXPECTED = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "string": "a string",
    "tuple": "a list",
    "dataclass": "a mapping of options",
}
_BOUNDS = {
    "greater_than_equal": "{ge} or more",
    "greater_than": "more than {gt}",
    "less_than_equal": "{le} or less",
    "less_than": "less than {lt}",
}


def _options_of(section: tuple[str, ...]) -> list[str]:
    cls = _SECTIONS[section[0]] if section else RunConfig
    return [f.name for f in dataclasses.fields(cls)]


def _input_error(e: ValidationError, prefix: tuple[str, ...]) -> InputError:
    """pydantic's errors as one line: ``overseer.batch_size: expected an integer, got 'eight'``."""
    lines = []
    for err in e.errors(include_url=False):
        ctx, kind, got = err.get("ctx") or {}, err["type"], err.get("input")
        if kind == "value_error" and isinstance(ctx.get("error"), InputError):
            return ctx["error"]  # a check across options (RunConfig.__post_init__), in its own words
        loc = (*prefix, *(p for p in err["loc"] if isinstance(p, str)))  # list indices dropped
        key = ".".join(loc)
        if kind == "choice":
            lines.append(f"{key} {got!r} is not one of {ctx['allowed']}")
        elif kind in ("unexpected_keyword_argument", "extra_forbidden"):
            where = f"{loc[0]} takes" if len(loc) > 1 else "a run config takes"
            lines.append(f"{key}: unknown option; {where} {', '.join(_options_of(loc[:-1]))}")
        elif kind.endswith(("_type", "_parsing")) or kind == "int_from_float":
            what = _EXPECTED.get(kind.split("_")[0], kind.split("_")[0])
            lines.append(f"{key}: expected {what}, got {got!r}")
        elif kind in _BOUNDS:
            lines.append(f"{key}: must be {_BOUNDS[kind].format(**ctx)}, got {got!r}")
        elif kind in ("too_short", "too_long") or (kind == "missing" and isinstance(err["loc"][-1], int)):
            lines.append(f"{key}: wrong number of values, got {got!r}")
        else:
            lines.append(f"{key}: {err['msg'][:1].lower()}{err['msg'][1:]}")
    return InputError("; ".join(lines) + ".")


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
