"""The segment widget's form: its choices (the one place for the form's constants), its child
widgets and what each choice shows, and the form read as a run: a
:class:`~napari_sasvi.core.config.RunConfig` and the video job (frames and replayed labels from the
viewer's layers). Cheap: nothing is built here.

:class:`~napari_sasvi._napari.widget.SegmentWidget` is this form with Run, Cancel, progress and
the events; it imports this module, never the other way round.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import napari
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, LineEdit, SpinBox

from ..core.config import DEVICES, ENCODINGS, MODES, OverseerConfig, PolicyConfig, RunConfig, TrackerConfig
from ..core.datasets import PRESETS
from ..core.errors import SasviError
from ..core.overseers import text as sam3_text
from ..core.weights import SAM2_CHECKPOINTS
from ._dataset import CHOOSE_DATASET, CLASS_TABLE_FILE, dataset_for_run
from ._layout import fit_dock, narrow_combos, section

#: the form starts from RunConfig's defaults (declared there once, shared with the CLI and Python)
DEFAULTS = RunConfig()
CONFIG_CHOICE = "config + checkpoint"
#: tracker choices beside the SAM2 models -> flow method
FLOW_CHOICES = {
    "optical flow (DIS, no weights)": "dis",
    "optical flow (DIS fast: 320 px, no refinement)": "dis-fast",
    "optical flow (Farneback, no weights)": "farneback",
}
HF_CHOICE = "transformers: SAM2.1 / EdgeTAM / SAM3 tracker"
REPLAY_LAYER, REPLAY_FOLDER = "replay: labels layer", "replay: folder / .npy / zarr"
NO_OVERSEER = "none: propagate the annotated frames"
#: where the annotated frames (anchors) come from
NO_ANCHORS, ANCHOR_LAYER, ANCHOR_FOLDER = "none", "labels layer (painted frames)", "folder (files named after frames)"
#: overseer choice -> architecture of a trained overseer
TRAINED = {"Mask R-CNN": "maskrcnn", "DETR": "detr", "Mask2Former": "mask2former", "Pixel classifier": "pixel"}
TEXT_CHOICE = "Text (SAM 3)"  # SAM 3 prompted with the class names: no trained overseer needed
#: what a run with each model imports first (warmed in the background once the form names it)
WARM_OVERSEER = {
    "maskrcnn": ["torchvision.models.detection"],
    "detr": ["transformers.models.detr.modeling_detr"],
    "mask2former": ["transformers.models.mask2former.modeling_mask2former"],
    "pixel": ["sklearn.ensemble", "skimage.feature"],
    "text": ["transformers.models.sam3.modeling_sam3"],
}
WARM_SAM2 = ["hydra.utils", "sam2.build_sam", "sam2.sam2_video_predictor"]
WARM_HF = ["transformers.models.sam2_video.modeling_sam2_video"]


def _tracker_choice(tracker: TrackerConfig) -> str:
    """The tracker list's entry for a tracker config (the list starts at the config's default)."""
    if tracker.kind == "flow":
        return next(name for name, method in FLOW_CHOICES.items() if method == (tracker.model or "dis"))
    if tracker.kind == "hf":
        return HF_CHOICE
    return tracker.model if tracker.model in SAM2_CHECKPOINTS else CONFIG_CHOICE


def _layers_of(viewer, kind: str):
    import napari.layers

    cls = {"image": napari.layers.Image, "labels": napari.layers.Labels}[kind]
    return [layer for layer in viewer.layers if isinstance(layer, cls)] if viewer is not None else []


class SegmentForm(Container):
    """The inputs of a run (frames, overseer, annotated frames, tracker, device, output store and
    the advanced SASVi settings), kept up to date with the viewer's layers; :meth:`run_config` and
    :meth:`_job` read them as a run."""

    def __init__(self, viewer: napari.viewer.Viewer):
        # labels=False here: each section below is a labelled container of its own, so a long label
        # in one section does not widen the others (see _layout.py)
        super().__init__(labels=False)
        self._viewer = viewer
        self._frames = ComboBox(label="frames", choices=lambda _: _layers_of(self._viewer, "image"))
        self._overseer = ComboBox(
            label="overseer",
            choices=[*TRAINED, TEXT_CHOICE, REPLAY_LAYER, REPLAY_FOLDER, NO_OVERSEER],
            value=REPLAY_LAYER,
            tooltip="Where the per-frame masks come from: a trained model, replayed labels, or none.",
        )
        self._overseer_layer = ComboBox(
            label="masks", choices=lambda _: _layers_of(self._viewer, "labels"), tooltip="The overseer's labels layer."
        )
        self._overseer_path = FileEdit(label="masks", mode="d", tooltip="The overseer's masks: a folder, .npy or zarr.")
        self._encoding = ComboBox(
            label="encoding",
            choices=list(ENCODINGS),
            value=DEFAULTS.overseer.masks_encoding,
            tooltip="How the replayed masks encode classes.",
        )
        self._anchor_src = ComboBox(
            label="from",
            choices=[NO_ANCHORS, ANCHOR_LAYER, ANCHOR_FOLDER],
            value=NO_ANCHORS,
            tooltip="Annotated frames (anchors): frames you painted, used as they are and propagated.",
        )
        self._anchor_layer = ComboBox(
            label="layer", choices=lambda _: _layers_of(self._viewer, "labels"), tooltip="Labels with painted frames."
        )
        self._anchor_path = FileEdit(label="files", mode="d", tooltip="Label files named after their frames.")
        self._overseer_ckpt = FileEdit(
            label="weights", mode="r", filter="*.pth *.pt *.skops", tooltip="The overseer checkpoint."
        )
        self._text_model = LineEdit(label="model", value=sam3_text.DEFAULT_MODEL, tooltip="SAM 3: Hub id or folder.")
        self._text_prompts = LineEdit(label="prompts", tooltip="Classes to prompt SAM 3 with, by name (empty: all).")
        self._published = CheckBox(
            label="published weights", value=False, tooltip="The published checkpoint for the dataset (downloads once)."
        )
        self._instances = CheckBox(
            label="instances",
            value=DEFAULTS.instances,
            tooltip=(
                "One track with its own id per object (two graspers are Grasper #1 and Grasper #2), not one mask "
                "per class: the overseer's instances are matched frame to frame and the SASVi policy runs per "
                "track; the store keeps the track ids and a track table, shown as a tracks layer and the tracks' "
                "centroids. Needs an overseer that gives objects (Mask R-CNN, DETR, Mask2Former, or instance "
                "labels replayed) and mode default."
            ),
        )
        # no silent default: the classes come from the input (see dataset_for_run) or the user's choice
        self._dataset = ComboBox(
            label="dataset",
            choices=[CHOOSE_DATASET, *PRESETS, CLASS_TABLE_FILE],
            value=CHOOSE_DATASET,
            tooltip="The class table. Left at 'choose...', Run takes it from the overseer or annotations layer "
            "(layers napari-sasvi made carry it) or from the output store; else it asks.",
        )
        self._classes_file = FileEdit(
            label="table", mode="r", filter="*.yaml *.yml *.json", tooltip="Class table file."
        )
        self._sam2 = ComboBox(
            label="tracker",
            choices=[*SAM2_CHECKPOINTS, CONFIG_CHOICE, HF_CHOICE, *FLOW_CHOICES],
            value=_tracker_choice(DEFAULTS.tracker),
            tooltip="What propagates the masks: a SAM2 model, a transformers tracker or optical flow (no weights).",
        )
        self._hf_model = LineEdit(
            label="model", value="facebook/sam2.1-hiera-tiny", tooltip="Model folder or Hugging Face repo id."
        )
        self._sam2_config = LineEdit(label="config", value="sam2.1_hiera_t", tooltip="SAM2 config name.")
        self._sam2_ckpt = FileEdit(label="weights", mode="r", filter="*.pt *.pth", tooltip="SAM2 checkpoint.")
        self._random = CheckBox(label="random weights", value=False, tooltip="Random weights (testing the plumbing).")
        self._image_size = SpinBox(
            label="image size",
            value=DEFAULTS.tracker.image_size or 0,
            min=0,
            max=2048,
            step=32,
            tooltip="The tracker's input size in px (0: the model's own).",
        )
        self._device = ComboBox(label="device", choices=list(DEVICES), value=DEFAULTS.device)
        self._out = FileEdit(
            label="output",
            mode="w",
            filter="*.zarr",
            value=Path.home() / "sasvi.zarr",
            tooltip="The output store (.zarr); Run again resumes it.",
        )
        self._out_suggested = True  # follows the frames layer until the user picks a path
        policy = DEFAULTS.policy
        self._mode = ComboBox(label="mode", choices=list(MODES), value=DEFAULTS.mode)
        self._lookahead = SpinBox(label="look-ahead", value=policy.lookahead, min=1, max=100)
        self._persistence = SpinBox(label="persistence", value=policy.persistence, min=0, max=50)
        self._overlap = FloatSpinBox(
            label="overlap", value=policy.overlap, min=0.05, max=1.0, step=0.05, tooltip="Overlap threshold."
        )
        self._buffer = SpinBox(label="re-seed every", value=policy.buffer, min=2, max=10000)
        self._min_visible = SpinBox(
            label="min visible", value=policy.min_visible, min=1, max=100000, tooltip="Min visible px."
        )
        self._consensus = CheckBox(label="consensus", value=policy.consensus, tooltip="Consensus with the overseer.")
        self._agree_iou = FloatSpinBox(label="agree IoU", value=policy.agree_iou, min=0.05, max=1.0, step=0.05)
        self._score_thr = FloatSpinBox(
            label="score thr", value=0.05, min=-1.0, max=1.0, step=0.05, tooltip="Overseer score threshold."
        )
        self._mask_thr = FloatSpinBox(
            label="mask thr", value=0.5, min=-50.0, max=50.0, step=0.1, tooltip="Overseer mask threshold."
        )
        self._batch = SpinBox(
            label="batch", value=DEFAULTS.overseer.batch_size, min=1, max=64, tooltip="Overseer batch size."
        )
        policy_widgets = [self._mode, self._lookahead, self._persistence, self._overlap, self._buffer]
        overseer_widgets = [self._score_thr, self._mask_thr, self._batch]
        self._advanced = [*policy_widgets, self._min_visible, self._consensus, self._agree_iou, *overseer_widgets]
        overseer = [self._overseer, self._overseer_layer, self._overseer_path, self._encoding, self._overseer_ckpt]
        overseer += [self._text_model, self._text_prompts]
        tracker = [self._sam2, self._sam2_config, self._sam2_ckpt, self._hf_model, self._random, self._image_size]
        classes = [self._published, self._dataset, self._classes_file]
        main = Container(labels=True, widgets=[self._frames, *overseer, *classes, *tracker, self._device, self._out])
        more = Container(
            labels=True, widgets=[self._anchor_src, self._anchor_layer, self._anchor_path, self._instances]
        )
        adv = Container(labels=True, widgets=self._advanced)
        main.margins = (0, 0, 0, 0)
        self.append(main)
        narrow_combos(main, more, adv)
        self._more_box = section("Annotations, instances", more)
        self._adv_box = section("Advanced", adv)
        self.native.layout().addWidget(self._more_box)
        self.native.layout().addWidget(self._adv_box)
        fit_dock(self.native)
        self._overseer.changed.connect(self._update_visibility)
        self._overseer.changed.connect(self._reference_thresholds)
        self._published.changed.connect(self._update_visibility)
        self._dataset.changed.connect(self._update_visibility)
        self._sam2.changed.connect(self._update_visibility)
        self._sam2.changed.connect(self._warm_up)
        self._overseer.changed.connect(self._warm_up)
        self._anchor_src.changed.connect(self._update_visibility)
        self._frames.changed.connect(self._suggest_out)
        self._out.changed.connect(self._out_edited)
        self._connected = False
        if viewer is not None:
            viewer.layers.events.inserted.connect(self._refresh_choices)
            viewer.layers.events.removed.connect(self._refresh_choices)
            self._connected = True
        self._update_visibility()
        self._suggest_out()

    # -- form ------------------------------------------------------------------------------------------
    def _refresh_choices(self, event=None):
        self._frames.reset_choices()
        self._overseer_layer.reset_choices()
        self._anchor_layer.reset_choices()

    def _update_visibility(self, *_):
        self._overseer_layer.visible = self._overseer.value == REPLAY_LAYER
        self._overseer_path.visible = self._overseer.value == REPLAY_FOLDER
        self._encoding.visible = self._overseer.value in (REPLAY_LAYER, REPLAY_FOLDER)
        self._anchor_layer.visible = self._anchor_src.value == ANCHOR_LAYER
        self._anchor_path.visible = self._anchor_src.value == ANCHOR_FOLDER
        trained = self._overseer.value in TRAINED
        pixel = TRAINED.get(self._overseer.value) == "pixel"
        self._published.visible = trained and not pixel
        self._overseer_ckpt.visible = trained and (pixel or not self._published.value)
        self._classes_file.visible = self._dataset.value == CLASS_TABLE_FILE
        custom = self._sam2.value == CONFIG_CHOICE
        self._image_size.visible = self._sam2.value not in FLOW_CHOICES and self._sam2.value != HF_CHOICE
        self._hf_model.visible = self._sam2.value == HF_CHOICE
        self._sam2_config.visible = self._sam2_ckpt.visible = self._random.visible = custom
        text = self._text_model.visible = self._text_prompts.visible = self._overseer.value == TEXT_CHOICE
        self._score_thr.visible = self._mask_thr.visible = (trained and not pixel) or text

    def _warm_up(self, *_):
        """As soon as the form names a model, its libraries import in the background (torch's
        import holds the GIL for a while wherever it runs; better now than at Run)."""
        from ..core.background import warm_imports

        modules = []
        if kind := {**TRAINED, TEXT_CHOICE: "text"}.get(self._overseer.value):
            modules += WARM_OVERSEER[kind]
        if self._sam2.value == HF_CHOICE:
            modules += WARM_HF
        elif self._sam2.value not in FLOW_CHOICES:
            modules += WARM_SAM2
        if modules:
            warm_imports(["torch", *modules])

    def _reference_thresholds(self, *_):
        """A new overseer type starts from the reference's thresholds for it."""
        from ..core.overseers.trained import DEFAULT_THRESHOLDS

        if self._overseer.value == TEXT_CHOICE:
            self._score_thr.value, self._mask_thr.value = sam3_text.DEFAULT_SCORE, sam3_text.DEFAULT_MASK
        elif TRAINED.get(self._overseer.value) in DEFAULT_THRESHOLDS:
            score, mask = DEFAULT_THRESHOLDS[TRAINED[self._overseer.value]]
            self._score_thr.value, self._mask_thr.value = score, mask

    def _suggest_out(self, *_):
        """The output store next to the input (``<video>_sasvi.zarr``), until the user picks one."""
        layer = self._frames.value
        if not self._out_suggested or layer is None:
            return
        src = (layer.metadata or {}).get("source")
        path = Path(src) if src else None
        target = (
            path.parent / f"{path.stem}_sasvi.zarr" if path is not None else Path.home() / f"{layer.name}_sasvi.zarr"
        )
        self._setting_out = True
        try:
            self._out.value = target
        finally:
            self._setting_out = False

    def use_overseer(self, kind: str, checkpoint, classes) -> None:
        """Choose a trained overseer (the train widget calls this when it has saved one): its type,
        its checkpoint and its classes (a preset by name, else a class table file beside it)."""
        import json

        self._overseer.value = next(name for name, k in TRAINED.items() if k == kind)
        self._published.value = False
        self._overseer_ckpt.value = Path(checkpoint)
        if classes.name in PRESETS and PRESETS[classes.name].ids == classes.ids:
            self._dataset.value = classes.name
        else:
            table = Path(checkpoint).with_name("classes.json")
            table.write_text(json.dumps(classes.to_dict(), indent=2))
            self._dataset.value = CLASS_TABLE_FILE
            self._classes_file.value = table
        self._update_visibility()

    def _out_edited(self, *_):
        if not getattr(self, "_setting_out", False):
            self._out_suggested = False

    def run_config(self):
        """The form as a :class:`~napari_sasvi.core.config.RunConfig` (cheap: nothing is built)."""
        return config_from_form(self)

    def _job(self):
        """The video to run (see :func:`job_from_form`)."""
        return job_from_form(self)

    def _disconnect(self):
        """Stop listening to the viewer (the dock was closed or removed)."""
        if self._connected:
            self._connected = False
            for ev, cb in (
                (self._viewer.layers.events.inserted, self._refresh_choices),
                (self._viewer.layers.events.removed, self._refresh_choices),
            ):
                ev.disconnect(cb)


def config_from_form(w):
    """The form as a :class:`~napari_sasvi.core.config.RunConfig` (cheap: nothing is built)."""
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
    elif choice == TEXT_CHOICE:
        overseer = OverseerConfig(
            kind="text", checkpoint=w._text_model.value.strip() or None, prompts=w._text_prompts.value.strip() or None,
            score_threshold=round(w._score_thr.value, 4), mask_threshold=round(w._mask_thr.value, 4),
            batch_size=w._batch.value,
        )  # fmt: skip
    elif choice == REPLAY_LAYER and w._instances.value:
        raise SasviError(
            "instances: a labels layer holds class ids, not objects. Replay instance label files (choose "
            f"'{REPLAY_FOLDER}': instance PNGs + instances.json, COCO or LabelMe JSON) or a trained overseer."
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
    dataset = dataset_for_run(
        w._dataset.value,
        w._classes_file.value,
        Path(w._out.value),
        [
            w._overseer_layer.value if choice == REPLAY_LAYER else None,
            w._anchor_layer.value if src == ANCHOR_LAYER else None,
        ],
        from_labels=w._instances.value and choice == REPLAY_FOLDER,
    )
    return RunConfig(
        dataset=dataset,
        mode=w._mode.value,
        device=w._device.value,
        instances=w._instances.value,
        overseer=overseer,
        tracker=tracker,
        policy=PolicyConfig(
            lookahead=w._lookahead.value,
            persistence=w._persistence.value,
            overlap=round(w._overlap.value, 4),
            buffer=w._buffer.value,
            min_visible=w._min_visible.value,
            consensus=w._consensus.value,
            agree_iou=round(w._agree_iou.value, 4),
        ),
    )


def job_from_form(w):
    """The video to run: the frames layer (read from its file or folder when our reader opened
    it, so that the store records where the frames are) and the replayed labels layer."""
    from ..core.inputs.videos import VideoJob

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
