"""The segment widget's form as a run: a :class:`~napari_sasvi.core.config.RunConfig` and the
video job (frames and replayed labels from the viewer's layers). Cheap: nothing is built here."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..core.errors import SasviError
from .widget import (
    ANCHOR_FOLDER,
    ANCHOR_LAYER,
    CONFIG_CHOICE,
    FLOW_CHOICES,
    HF_CHOICE,
    NO_ANCHORS,
    NO_OVERSEER,
    REPLAY_FOLDER,
    REPLAY_LAYER,
    TRAINED,
)


def config_from_form(w):
    """The form as a :class:`~napari_sasvi.core.config.RunConfig` (cheap: nothing is built)."""
    from ..core.config import OverseerConfig, PolicyConfig, RunConfig, TrackerConfig

    choice = w._overseer.value
    overseer = OverseerConfig(
        kind="replay",
        masks=str(w._overseer_path.value) if choice == REPLAY_FOLDER else None,
        masks_encoding=w._encoding.value,
        batch_size=w._batch.value,
    )
    if choice in TRAINED:
        pixel = TRAINED[choice] == "pixel"
        ckpt = "published" if w._published.value and not pixel else str(w._overseer_ckpt.value)
        if ckpt != "published" and not Path(ckpt).is_file():
            raise SasviError(
                f"Overseer checkpoint {ckpt} is not a file: choose the .skops file SASVi train overseer saved."
                if pixel
                else f"Overseer checkpoint {ckpt} is not a file: choose the .pth file, or tick 'published checkpoint'."
            )
        overseer = OverseerConfig(
            kind=TRAINED[choice],
            checkpoint=ckpt,
            score_threshold=round(w._score_thr.value, 4),
            mask_threshold=round(w._mask_thr.value, 4),
            batch_size=w._batch.value,
        )
    elif choice == REPLAY_LAYER and w._overseer_layer.value is None:
        raise SasviError("No labels layer to replay as the overseer: add one, pick a folder or a trained model.")
    elif choice == NO_OVERSEER:
        overseer = OverseerConfig(kind="none")
        if w._anchor_src.value == NO_ANCHORS:
            raise SasviError(
                "No overseer: pick the annotated frames (a labels layer with some frames painted, or a folder)."
            )
    src = w._anchor_src.value
    if src == ANCHOR_LAYER and w._anchor_layer.value is None:
        raise SasviError("No labels layer of annotated frames: add one and paint some frames, or pick a folder.")
    if src == ANCHOR_FOLDER:
        folder = Path(str(w._anchor_path.value))
        if not folder.is_dir():
            raise SasviError(f"Annotation files: {folder} is not a folder of label files named after their frames.")
        overseer = replace(overseer, anchors=str(folder))
    if w._sam2.value in FLOW_CHOICES:
        tracker = TrackerConfig(kind="flow", model=FLOW_CHOICES[w._sam2.value])
    elif w._sam2.value == HF_CHOICE:
        tracker = TrackerConfig(kind="hf", model=w._hf_model.value.strip())
    elif w._sam2.value == CONFIG_CHOICE:
        tracker = TrackerConfig(
            kind="sam2",
            config=w._sam2_config.value,
            checkpoint=None if w._random.value else str(w._sam2_ckpt.value),
            random_weights=w._random.value,
            image_size=w._image_size.value or None,
        )
    else:
        tracker = TrackerConfig(kind="sam2", model=w._sam2.value, image_size=w._image_size.value or None)
    dataset = str(w._classes_file.value) if w._dataset.value == "class table file" else w._dataset.value
    return RunConfig(
        dataset=dataset,
        mode=w._mode.value,
        device=w._device.value,
        overseer=overseer,
        tracker=tracker,
        policy=PolicyConfig(
            lookahead=w._lookahead.value,
            persistence=w._persistence.value,
            overlap=round(w._overlap.value, 4),
            buffer=w._buffer.value,
            min_visible=w._min_visible.value,
        ),
    )


def job_from_form(w):
    """The video to run: the frames layer (read from its file or folder when our reader opened
    it, so that the store records where the frames are) and the replayed labels layer."""
    from ..core.segment import VideoJob

    frames_layer = w._frames.value
    if frames_layer is None:
        raise SasviError("No frames layer: open a video or a frame folder first (File > Open).")
    meta = frames_layer.metadata or {}
    src = meta.get("source") if meta.get("sasvi_frames") else None
    frames = src if src and Path(src).exists() else frames_layer.data
    masks = None
    if w._overseer.value == REPLAY_LAYER:
        masks = w._overseer_layer.value.data
    elif w._overseer.value == REPLAY_FOLDER:
        masks = str(w._overseer_path.value)
    anchors = None
    if w._anchor_src.value == ANCHOR_LAYER and w._anchor_layer.value is not None:
        anchors = w._anchor_layer.value.data
    elif w._anchor_src.value == ANCHOR_FOLDER:
        anchors = str(w._anchor_path.value)
    return VideoJob(name=frames_layer.name, frames=frames, store=Path(w._out.value), masks=masks, anchors=anchors)
