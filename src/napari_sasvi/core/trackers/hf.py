"""The SAM2 family through transformers: SAM2 / SAM2.1 (``Sam2VideoModel``), EdgeTAM
(``EdgeTamVideoModel``) and the SAM3 tracker (``Sam3TrackerVideoModel``), behind the same tracker
interface as the ``sam2`` package's predictor.

The model and its processor come from a local folder in Hugging Face format
(``from_pretrained(path)``) or a Hub repository id, downloaded by transformers into its cache when
online (``facebook/sam2.1-hiera-tiny``, ``yonigozlan/EdgeTAM-hf``, ``facebook/sam3``, ...).
:meth:`HFVideoTracker.random` builds one from its configuration with random weights (tests).

Frames are fed from the lazy frame stack in streaming fashion: each frame is preprocessed when the
propagation reaches it, added to the inference session, and frames and per-frame outputs that the
memory no longer reads are dropped, so memory stays flat over a long video.

Live prompts: while :meth:`HFVideoTracker.propagate` is suspended right after yielding frame t,
``add_mask(t, ...)`` / ``add_points(t, ...)`` run that one object on frame t (its cached image
features; a conditioning frame, as a first prompt would be) and ``remove_objects`` drops objects
from the session; the others' outputs and memory are untouched, and the propagation goes on at
t + 1. Each object keeps its newest ``max_cond`` conditioning frames.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, InputError

#: family -> (config model_type, model class, processor class) in transformers
FAMILIES = {
    "sam2": ("sam2_video", "Sam2VideoModel", "Sam2VideoProcessor"),
    "edgetam": ("edgetam_video", "EdgeTamVideoModel", "Sam2VideoProcessor"),
    "sam3": ("sam3_tracker_video", "Sam3TrackerVideoModel", "Sam3TrackerVideoProcessor"),
}
#: config model_type -> family (image-model checkpoints of the same weights load into the video model)
_TYPES = {
    "sam2_video": "sam2",
    "sam2": "sam2",
    "edgetam_video": "edgetam",
    "edgetam": "edgetam",
    "sam3_tracker_video": "sam3",
    "sam3_tracker": "sam3",
    "sam3_video": "sam3",
    "sam3": "sam3",
}


def _family_of(name_or_path: str, family: str | None) -> str:
    if family is not None:
        if family not in FAMILIES:
            raise InputError(f"Unknown tracker family {family!r}: use one of {', '.join(FAMILIES)}.")
        return family
    from transformers import AutoConfig

    try:
        cfg = AutoConfig.from_pretrained(name_or_path)
    except (OSError, ValueError) as e:
        where = "folder" if Path(name_or_path).exists() else "Hub repository (offline?)"
        raise CheckpointError(
            f"Cannot read the model configuration of {name_or_path} as a {where}: {str(e).splitlines()[0]}. "
            "Give a folder saved with save_pretrained (config.json, weights, processor files) or a repository id "
            "such as facebook/sam2.1-hiera-tiny while online."
        ) from e
    fam = _TYPES.get(cfg.model_type)
    if fam is None:
        raise CheckpointError(
            f"{name_or_path} is a {cfg.model_type!r} model; the hf tracker takes SAM2/SAM2.1, EdgeTAM or SAM3 "
            "tracker checkpoints."
        )
    return fam


#: conditioning frames kept per object (as SAM2Tracker's, for the same reason: SAM2.1's training)
MAX_COND = 2


class HFVideoTracker:
    """A transformers video tracker (incremental: objects can join a running segment).

    ``max_cond``: conditioning frames kept per object, the newest (live re-prompts add one each).
    """

    incremental = True
    #: prompts between two frames of a propagation (at the frame just yielded) take effect from
    #: the next frame; nothing is recomputed
    live_prompts = True

    def __init__(
        self,
        model,
        processor,
        device: str = "auto",
        name: str | None = None,
        keep: int | None = None,
        max_cond: int = MAX_COND,
    ):
        import torch

        from ..devices import resolve_device

        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.processor = processor
        if type(model).__name__ == "EdgeTamVideoModel":
            _even_out_score_shapes(self.model)
        self.name = name
        self.dtype = torch.float32
        cfg = model.config
        # frames whose outputs the memory still reads: num_maskmem frames back (+1 for safety)
        self.keep = keep if keep is not None else int(getattr(cfg, "num_maskmem", 7)) + 1
        self.frames = None
        self.encodes: dict[int, int] = {}
        self.session = None
        self._pending_masks: dict[int, tuple[int, np.ndarray]] = {}
        self._pending_points: dict[int, tuple[int, np.ndarray, np.ndarray]] = {}
        if int(max_cond) < 1:
            raise InputError(f"max_cond must be at least 1, got {max_cond}.")
        self.max_cond = int(max_cond)
        self._at: int | None = None  # the frame a suspended propagation has just yielded
        # EdgeTAM encodes a frame's memory inside its per-object step; SAM2 and SAM3 after it, batched
        step = type(self.model)._run_single_frame_inference
        self._encodes_inside = "run_mem_encoder" in inspect.signature(step).parameters

    # -- construction --------------------------------------------------------------------------------
    @classmethod
    def load(cls, name_or_path: str, device: str = "auto", family: str | None = None) -> HFVideoTracker:
        """From a folder saved with ``save_pretrained`` or a Hub repository id."""
        import transformers

        fam = _family_of(str(name_or_path), family)
        _, model_cls, proc_cls = FAMILIES[fam]
        try:
            model = getattr(transformers, model_cls).from_pretrained(name_or_path)
            processor = getattr(transformers, proc_cls).from_pretrained(name_or_path)
        except (OSError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"Cannot load the {fam} tracker from {name_or_path}: {str(e).splitlines()[0]}") from e
        return cls(model, processor, device=device, name=str(name_or_path))

    @classmethod
    def random(
        cls, family: str = "sam2", device: str = "cpu", seed: int = 0, image_size: int | None = None, **config
    ) -> HFVideoTracker:
        """Built from the family's default configuration with random weights (tests, benchmarks);
        ``image_size`` (a multiple of 64) shrinks the input and every size that follows from it."""
        import torch
        import transformers

        if family not in FAMILIES:
            raise InputError(f"Unknown tracker family {family!r}: use one of {', '.join(FAMILIES)}.")
        _, model_cls, proc_cls = FAMILIES[family]
        torch.manual_seed(seed)
        cfg = getattr(transformers, model_cls.replace("Model", "Config"))(**config)
        if image_size is not None:
            _resize_config(cfg, family, image_size)
        model = getattr(transformers, model_cls)(cfg)
        processor = default_processor(family, image_size)
        return cls(model, processor, device=device, name=f"{family} (random weights)")

    # -- Tracker protocol ------------------------------------------------------------------------------
    def bind(self, frames) -> None:
        self.frames = frames
        self.session = self.processor.init_video_session(inference_device=self.device, dtype=self.dtype)
        self.session.video_height, self.session.video_width = frames.frame_size
        self._pending_masks.clear()
        self._pending_points.clear()
        self.encodes = {}  # a tracker is reused across videos (Models): counts and cache are per video
        self._last = None

    def reset(self) -> None:
        self.session.reset_tracking_data()
        self._pending_masks.clear()
        self._pending_points.clear()

    def add_mask(self, frame: int, obj_id: int, mask: np.ndarray | None) -> None:
        h, w = self.frames.frame_size
        m = np.zeros((h, w), bool) if mask is None else np.asarray(mask, bool)
        self._pending_points.pop(int(obj_id), None)
        self._pending_masks[int(obj_id)] = (int(frame), m)
        self._live(int(frame), int(obj_id))

    def add_points(self, frame: int, obj_id: int, points_xy: np.ndarray, labels: np.ndarray) -> None:
        self._pending_masks.pop(int(obj_id), None)
        pts = np.asarray(points_xy, np.float32).reshape(-1, 2)
        self._pending_points[int(obj_id)] = (int(frame), pts, np.asarray(labels, np.int32).reshape(-1))
        self._live(int(frame), int(obj_id))

    def remove_objects(self, obj_ids: Iterable[int]) -> None:
        """Drop the objects from the session; the others keep their indices' order, prompts,
        outputs and memory."""
        drop = {int(i) for i in obj_ids}
        for i in drop:
            self._pending_masks.pop(i, None)
            self._pending_points.pop(i, None)
        _drop_objects(self.session, drop)

    def propagate(self, start: int) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        import torch

        h, w = self.frames.frame_size
        with torch.inference_mode():
            self._ensure_frame(start)
            self._submit(start)
        for t in range(start, len(self.frames)):
            with torch.inference_mode():  # per frame: the caller's code between frames runs outside it
                self._ensure_frame(t)
                if not self.session.obj_ids:
                    out = {}
                else:
                    res = self.model(inference_session=self.session, frame_idx=t)
                    masks = self.processor.post_process_masks(
                        [res.pred_masks], original_sizes=[[h, w]], binarize=False
                    )[0]
                    logits = masks[:, 0].float().cpu().numpy()
                    out = {int(o): logits[k] for k, o in enumerate(res.object_ids)}
                self._last = (t, out)
                self._release(t)
            self._at = t
            try:
                yield t, out
            finally:
                self._at = None

    def describe(self) -> dict:
        cfg = self.model.config
        return {
            "type": "hf",
            "model_class": type(self.model).__name__,
            "model": self.name,
            "image_size": getattr(cfg, "image_size", None),
            "device": str(self.device),
        }

    # -- internals -----------------------------------------------------------------------------------
    def _live(self, frame: int, obj_id: int) -> None:
        """While a propagation is suspended at frame t: run the prompt given at t for this one
        object now, as a conditioning frame, from frame t's cached image features."""
        import torch

        if self._at is None:
            return
        if frame != self._at:
            raise RuntimeError(
                f"A prompt at frame {frame} while the propagation is at frame {self._at}: live prompts go to "
                "the frame just yielded; stop the propagation to prompt another frame."
            )
        s, t = self.session, frame
        with torch.inference_mode():
            self._submit(t)  # the processor resizes the prompt into the session's inputs
            s.obj_with_new_inputs = []  # handled here, not by the next frame's forward
            idx = s.obj_id_to_idx(obj_id)
            s.frames_tracked_per_obj[idx].pop(t, None)  # a conditioning frame, as a first prompt
            s.output_dict_per_obj[idx]["non_cond_frame_outputs"].pop(t, None)
            points = s.point_inputs_per_obj[idx].get(t)
            masks = s.mask_inputs_per_obj[idx].get(t) if points is None else None
            kw = {"run_mem_encoder": True} if self._encodes_inside else {}
            out = self.model._run_single_frame_inference(
                inference_session=s,
                frame_idx=t,
                obj_idx=idx,
                batch_size=1,
                is_init_cond_frame=True,
                point_inputs=points,
                mask_inputs=masks,
                reverse=False,
                **kw,
            )
            s.store_output(idx, t, output_value=out, is_conditioning_frame=True)
            if not self._encodes_inside and self.model.num_maskmem > 0:
                self.model._batch_encode_memories(
                    inference_session=s,
                    frame_idx=t,
                    objects_needing_memory_encoding=[idx],
                    high_res_masks_for_memory=[out["high_res_masks"]],
                    object_score_logits_for_memory=[out["object_score_logits"]],
                    is_mask_from_pts_per_obj=[True],
                )
            self._cap_cond(idx)

    def _cap_cond(self, idx: int) -> None:
        """Keep the object's newest ``max_cond`` conditioning frames; an older one becomes an
        ordinary memory frame of its frame (released when out of reach) and its prompt is forgotten."""
        s = self.session
        per = s.output_dict_per_obj[idx]
        cond = per["cond_frame_outputs"]
        for f in sorted(cond)[: max(0, len(cond) - self.max_cond)]:
            per["non_cond_frame_outputs"].setdefault(f, cond.pop(f))
            s.mask_inputs_per_obj[idx].pop(f, None)
            s.point_inputs_per_obj[idx].pop(f, None)
            s.frames_tracked_per_obj[idx][f] = {"reverse": False}

    def _ensure_frame(self, t: int) -> None:
        frames = self.session.processed_frames
        if frames is not None and t in frames:
            return
        inputs = self.processor(images=self.frames.frame(t), return_tensors="pt")
        self.session.add_new_frame(inputs["pixel_values"], frame_idx=t)
        self.encodes[t] = self.encodes.get(t, 0) + 1

    def _submit(self, start: int) -> None:
        """Hand the prompts of frame ``start`` to the session. transformers remembers only the
        objects of its latest call as having new inputs, so all are handed over, then listed."""
        h, w = self.frames.frame_size
        prompted: list[int] = []
        for obj, (f, pts, lab) in list(self._pending_points.items()):
            if f != start:
                continue
            self.processor.add_inputs_to_inference_session(
                self.session,
                frame_idx=start,
                obj_ids=[obj],
                input_points=[[pts.tolist()]],
                input_labels=[[lab.tolist()]],
                original_size=(h, w),
            )
            prompted.append(obj)
            del self._pending_points[obj]
        masks = [(o, m) for o, (f, m) in self._pending_masks.items() if f == start]
        if masks:
            self.processor.add_inputs_to_inference_session(
                self.session, frame_idx=start, obj_ids=[o for o, _ in masks], input_masks=[m for _, m in masks]
            )
            for o, _ in masks:
                del self._pending_masks[o]
                prompted.append(o)
        if prompted:
            self.session.obj_with_new_inputs = list(dict.fromkeys(prompted))

    def _release(self, t: int) -> None:
        """Drop frames and outputs the memory no longer reads (before t - keep); prompted
        (conditioning) outputs stay."""
        cutoff = t - self.keep
        frames = self.session.processed_frames or {}
        for f in [f for f in frames if f < cutoff]:
            del frames[f]
        for per in self.session.output_dict_per_obj.values():
            non_cond = per["non_cond_frame_outputs"]
            for f in [f for f in non_cond if f < cutoff]:
                del non_cond[f]
        for per in self.session.frames_tracked_per_obj.values():
            for f in [f for f in per if f < cutoff]:
                del per[f]

    def memory_frames(self) -> int:
        return len(self.session.processed_frames or {}) + sum(
            len(p["non_cond_frame_outputs"]) for p in self.session.output_dict_per_obj.values()
        )


def _drop_objects(session, drop: set[int]) -> None:
    """Remove objects from a transformers video session (SAM2, EdgeTAM and SAM3 sessions keep the
    same per-object tables, keyed by a dense index): the rest are re-indexed in their order."""
    keep = [o for o in session.obj_ids if o not in drop]
    if len(keep) == len(session.obj_ids):
        return
    old = [session._obj_id_to_idx[o] for o in keep]
    for table in (
        session.point_inputs_per_obj,
        session.mask_inputs_per_obj,
        session.output_dict_per_obj,
        session.frames_tracked_per_obj,
    ):
        kept = [table[i] for i in old]
        table.clear()
        table.update(enumerate(kept))
    session._obj_id_to_idx.clear()
    session._obj_id_to_idx.update((o, i) for i, o in enumerate(keep))
    session._obj_idx_to_id.clear()
    session._obj_idx_to_id.update(enumerate(keep))
    session.obj_ids = keep
    session.obj_with_new_inputs = [o for o in session.obj_with_new_inputs if o not in drop]


def _even_out_score_shapes(model) -> None:
    """EdgeTAM (transformers 5.x) returns the object score of a point-prompted object as (1, 1, 1)
    and of a mask-prompted one as (1, 1); a frame with both kinds of prompts then fails when it
    concatenates them. Both mean one score per object: give them one shape, on this model only."""
    run = model._run_single_frame_inference

    def run_single_frame_inference(*args, **kwargs):
        out = run(*args, **kwargs)
        score = out.get("object_score_logits")
        if score is not None and score.dim() > 2:
            out["object_score_logits"] = score.reshape(score.shape[0], -1)[:, :1]
        return out

    model._run_single_frame_inference = run_single_frame_inference


def _resize_config(cfg, family: str, size: int) -> None:
    """Make a family's default config take ``size`` x ``size`` frames (SAM2 and EdgeTAM: a multiple
    of 64; SAM3: of 28), and for SAM3 a small ViT (2 layers, width 64): for tests and benchmarks."""
    vision = cfg.vision_config
    if family == "sam3":
        grid = size // 14  # ViT patches; the neck gives 4x, 2x and 1x that grid
        vit = vision.backbone_config
        vit.image_size = vit.pretrain_image_size = size
        vit.hidden_size, vit.intermediate_size, vit.num_hidden_layers, vit.num_attention_heads = 64, 128, 2, 2
        vit.window_size, vit.global_attn_indexes = grid // 2, [1]
        sizes = [[4 * grid, 4 * grid], [2 * grid, 2 * grid], [grid, grid]]
    else:
        s = size // 4  # the backbone's first feature map (stride 4), then strides 8 and 16
        vision.backbone_config.image_size = [size, size]
        sizes = [[s, s], [s // 2, s // 2], [s // 4, s // 4]]
    vision.backbone_feature_sizes = sizes
    cfg.image_size = size
    cfg.prompt_encoder_config.image_size = size
    cfg.memory_attention_rope_feat_sizes = list(sizes[-1])


def default_processor(family: str, image_size: int | None = None):
    """The family's processor with its default settings (or another input size), without the Hub."""
    import transformers
    from transformers.models.sam2_video.video_processing_sam2_video import Sam2VideoVideoProcessor

    size = {"height": image_size, "width": image_size} if image_size else None
    kw = {"size": size} if size else {}
    if family == "sam3":
        from transformers.models.sam3.image_processing_sam3 import Sam3ImageProcessor

        return transformers.Sam3TrackerVideoProcessor(Sam3ImageProcessor(**kw), Sam2VideoVideoProcessor(**kw))
    from transformers.models.sam2.image_processing_sam2 import Sam2ImageProcessor

    return transformers.Sam2VideoProcessor(Sam2ImageProcessor(**kw), Sam2VideoVideoProcessor(**kw))


def save_pretrained(tracker: HFVideoTracker, folder: str | os.PathLike) -> Path:
    """Write the tracker's model and processor in Hugging Face format (loadable by :meth:`load`)."""
    folder = Path(folder)
    tracker.model.save_pretrained(folder)
    tracker.processor.save_pretrained(folder)
    return folder
