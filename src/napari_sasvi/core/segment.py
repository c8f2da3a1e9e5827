"""One entry point over the engine: build the overseer and the tracker from plain options, find the
videos under an input, and run SASVi on each (what the CLI and the demo call)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .datasets import ClassTable
from .errors import InputError
from .frames import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, FrameStack, open_frames
from .policy import PolicyParams

TRACKERS = ("sam2", "flow", "hf")


@dataclass(frozen=True)
class TrackerSpec:
    """How to build the tracker.

    ``kind="sam2"``: a SAM2 model name (``model``), or a config with a checkpoint (or random
    weights). ``kind="flow"``: the optical-flow tracker; ``model`` is its flow method (``dis``, the
    default, or ``farneback``). ``kind="hf"``: a transformers video tracker (SAM2/SAM2.1, EdgeTAM,
    SAM3 tracker); ``model`` is a folder saved with ``save_pretrained`` or a Hub repository id.
    """

    model: str | None = None
    config: str | None = None
    checkpoint: str | None = None
    random_weights: bool = False
    image_size: int | None = None
    device: str = "auto"
    kind: str = "sam2"

    def build(self, legacy: bool):
        if self.kind == "flow":
            from .trackers.flow import FlowTracker

            return FlowTracker(method=self.model or "dis")
        if self.kind == "hf":
            from .trackers.hf import HFVideoTracker

            if not self.model:
                raise InputError(
                    "--tracker hf needs --tracker-model: a folder saved with save_pretrained, or a Hub repository "
                    "id (facebook/sam2.1-hiera-tiny, yonigozlan/EdgeTAM-hf, facebook/sam3) while online."
                )
            return HFVideoTracker.load(self.model, device=self.device)
        if self.kind != "sam2":
            raise InputError(f"Unknown tracker {self.kind!r}: use one of {', '.join(TRACKERS)}.")
        from .trackers.sam2 import SAM2Tracker

        if self.model is None and self.config is None:
            raise InputError(
                "Choose SAM2: --sam2-model NAME, or --sam2-config NAME_OR_PATH with --sam2-checkpoint FILE "
                "(or --tracker flow, which needs no weights)."
            )
        if self.model is None and self.checkpoint is None and not self.random_weights:
            raise InputError("--sam2-config needs --sam2-checkpoint FILE (or --sam2-random-weights for a test run).")
        return SAM2Tracker(
            model=self.model,
            config=self.config,
            checkpoint=self.checkpoint,
            device=self.device,
            legacy=legacy,
            image_size=self.image_size,
        )


def _has_frames(folder: Path) -> bool:
    with os.scandir(folder) as it:
        return any(e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS) for e in it)


def find_videos(root: str | os.PathLike) -> list[Path]:
    """The videos under ``root``: itself when it is a video file or a frame folder; otherwise its
    sub-folders holding frames and its video files, sorted by name."""
    root = Path(root)
    if not root.exists():
        raise InputError(f"{root} does not exist.")
    if root.is_file():
        return [root]
    if _has_frames(root):
        return [root]
    found = sorted(
        p
        for p in root.iterdir()
        if (p.is_dir() and _has_frames(p)) or (p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
    )
    if not found:
        raise InputError(f"No video under {root}: expected a frame folder, a video file, or a folder of those.")
    return found


def video_name(path: Path) -> str:
    return path.stem if path.is_file() else path.name


def frame_names(stack: FrameStack) -> list[str] | None:
    """File stems of a frame folder (the reference names its masks after them); None for videos."""
    files = getattr(stack.source, "files", None)
    return [f.stem for f in files] if files is not None else None


@dataclass(frozen=True)
class OverseerSpec:
    """How to get the overseer: ``replay`` (existing frame-wise predictions) or a trained model
    (``maskrcnn``, ``detr``, ``mask2former``) with its checkpoint file or published name."""

    kind: str = "replay"
    checkpoint: str | None = None
    score_threshold: float | None = None
    mask_threshold: float | None = None
    device: str = "auto"

    @property
    def is_replay(self) -> bool:
        return self.kind == "replay"

    def build_trained(self, classes: ClassTable):
        """Load the trained overseer (once; it is reused for every video)."""
        from .overseers.trained import load_overseer

        if self.checkpoint is None:
            raise InputError(
                f"--overseer {self.kind} needs --overseer-checkpoint: a .pth file or a published name "
                f"({classes.name}/{self.kind}, or 'published')."
            )
        return load_overseer(
            self.kind, self.checkpoint, classes, self.device, self.score_threshold, self.mask_threshold
        )


def build_replay_overseer(masks, classes: ClassTable, stack: FrameStack, encoding: str = "auto"):
    """The replay overseer of one video, its masks read and validated now (before any output)."""
    from .overseers.replay import ReplayOverseer

    if masks is None:
        raise InputError("--overseer replay needs --overseer-masks (a folder of label PNGs, a .npy or a zarr store).")
    return ReplayOverseer(masks, classes, frame_count=len(stack), frame_size=stack.frame_size, encoding=encoding)


def masks_for(video: Path, masks_root: Path | None, single: bool) -> Path | None:
    """The overseer masks of one video: the given path for a single video, else the sub-folder,
    ``.npy`` or ``.zarr`` named after the video."""
    if masks_root is None:
        return None
    if single:
        return masks_root
    name = video_name(video)
    for cand in (masks_root / name, masks_root / f"{name}.npy", masks_root / f"{name}.zarr"):
        if cand.exists():
            return cand
    raise InputError(f"No overseer masks for video {name!r} in {masks_root} (expected {masks_root / name}).")


def params_for(mode: str, classes: ClassTable, **overrides) -> PolicyParams:
    """Policy parameters for a dataset: the CaDIS merge and dummy id follow the class table."""
    kw = {k: v for k, v in overrides.items() if v is not None}
    kw.setdefault("merge_unlabelled", classes.name == "cadis")
    kw.setdefault("dummy_id", classes.dummy_id)
    return PolicyParams(mode=mode, **kw)


__all__ = [
    "OverseerSpec",
    "TrackerSpec",
    "find_videos",
    "frame_names",
    "masks_for",
    "open_frames",
    "params_for",
    "video_name",
]
