"""SAM2 as a streaming tracker through the ``sam2`` package.

Frames come from the lazy :class:`~napari_sasvi.core.inputs.frames.FrameStack` (no JPEG folder, no
whole-video tensor): the inference state's ``images`` is a lazy sequence that decodes and
normalises a frame when SAM2 asks for it. After every propagated frame, outputs older than SAM2's
memory reach (``num_maskmem`` frames of mask memory, ``max_obj_ptrs_in_encoder`` frames of object
pointers) are released, so RAM and GPU memory stay flat however long the video is.

``legacy=True`` builds ``sam2.sam2_video_predictor_legacy.SAM2VideoPredictor`` (what the published
SASVi code ran: objects only before tracking starts, hence a reset at every restart); otherwise
the current predictor, which adds objects to a running segment.

Live prompts (the current predictor): while :meth:`SAM2Tracker.propagate` is suspended right after
yielding frame t, ``add_mask(t, ...)``, ``add_points(t, ...)`` and ``remove_objects`` change the
objects; resuming continues at t + 1. A prompted object gets a conditioning frame at t (its mask
run through SAM2 on frame t's cached image features, so no frame is encoded twice), consolidated
before t + 1 as SAM2 does before any propagation; the other objects' outputs and memory are
untouched. Each object keeps at most ``max_cond`` conditioning frames (the newest): SAM2 attends
to every conditioning frame of an object, so re-prompting it every few frames would otherwise
grow its memory and the attention cost without bound.

The model (configs, building, checkpoints) is in :mod:`.sam2_model`, the lazy frames in
:mod:`.sam2_frames`; both are importable from here as before.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..weights import SAM2_CHECKPOINTS, SAM2_CONFIG_OF, fetch
from .sam2_frames import LazyImages
from .sam2_model import (
    build_sam2_predictor,
    cap_cond_frames,
    config_path,
    identify_sam2_checkpoint,
    load_sam2_checkpoint,
    prompt_mask_as_cond,
)

log = logging.getLogger(__name__)

#: conditioning frames kept per object (see ``SAM2Tracker``'s ``max_cond``)
MAX_COND = 2

__all__ = [
    "SAM2Tracker",
    "build_sam2_predictor",
    "config_path",
    "identify_sam2_checkpoint",
    "load_sam2_checkpoint",
]


class SAM2Tracker:
    """The ``sam2`` package's video predictor behind the :class:`~.base.Tracker` interface.

    Args:
        model: a model name (``sam2.1_hiera_tiny``: the official checkpoint, downloaded into the
            user cache when online), or None with ``config`` (+ ``checkpoint``).
        config: a config name or YAML path (with ``checkpoint``; without it, random weights).
        legacy: use the predictor the published SASVi code ran (reset at every restart).
        image_size: override the model's input size (a multiple of 32; tests use 256 or less).
        keep: frames of outputs kept behind the current frame; default: what SAM2's memory reads.
        batch_objects: the current predictor: run the objects that share their memory frames
            through memory attention, the mask decoder and the memory encoder in one batch per
            frame (as the legacy predictor does), instead of one object at a time. Objects still
            join a running segment without a reset; the image features are computed once per frame.
        ahead: while propagating, decode and normalise the next frame in a worker thread while
            SAM2 computes the current one (the same tensors, so the same labels).
        max_cond: conditioning frames kept per object (the current predictor), the newest; an
            older one becomes an ordinary memory frame, dropped when it falls out of reach. The
            default, 2, is what SAM2.1 was trained with (``num_init_cond_frames_for_train: 2``
            and at most 2 corrected frames per clip in its training configs).
    """

    #: prompts between two frames of a propagation (the current predictor; not the legacy one)
    live_prompts = True

    def __init__(
        self,
        model: str | None = None,
        config: str | None = None,
        checkpoint: str | os.PathLike | None = None,
        device: str = "auto",
        legacy: bool = False,
        image_size: int | None = None,
        keep: int | None = None,
        predictor=None,
        batch_objects: bool = True,
        ahead: bool = True,
        max_cond: int = MAX_COND,
    ):
        if model is not None:
            if model not in SAM2_CHECKPOINTS:
                raise InputError(f"Unknown SAM2 model {model!r}: use one of {', '.join(SAM2_CHECKPOINTS)}.")
            config = config or SAM2_CONFIG_OF[model]
            checkpoint = checkpoint or fetch(SAM2_CHECKPOINTS[model])
        if config is None:
            raise InputError("Give a SAM2 model name, or a config (and checkpoint).")
        self.model_name = model
        self.config = str(config)
        self.checkpoint = str(checkpoint) if checkpoint is not None else None
        self.checkpoint_sha256 = None
        self.legacy = legacy
        self.incremental = not legacy
        self.live_prompts = not legacy
        if int(max_cond) < 1:
            raise InputError(f"max_cond must be at least 1, got {max_cond}.")
        self.max_cond = int(max_cond)
        self._at: int | None = None  # the frame a suspended propagation has just yielded
        self._changed = False  # prompts or removals while suspended there
        self.batch_objects = bool(batch_objects) and not legacy
        self.ahead = bool(ahead)
        self.batches: dict[int, int] = {}  # batch size -> forward passes of that size (tests, benchmarks)
        if predictor is None:
            import torch

            # random weights (no checkpoint, tests) are seeded so that two runs build the same model
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                predictor = build_sam2_predictor(self.config, None, device, image_size, legacy)
            if checkpoint is not None:
                self.checkpoint_sha256 = load_sam2_checkpoint(predictor, checkpoint)
        self.predictor = predictor
        self.device = next(predictor.parameters()).device
        self.image_size = predictor.image_size
        self.keep = (
            keep
            if keep is not None
            else max(predictor.num_maskmem, getattr(predictor, "max_obj_ptrs_in_encoder", 16)) + 1
        )
        self._quiet_sam2_progress()
        self.state: dict | None = None
        self.images: LazyImages | None = None
        self.encodes: dict[int, int] = {}

    @staticmethod
    def _quiet_sam2_progress() -> None:
        # sam2's propagate_in_video wraps its loop in tqdm; our callers report progress themselves
        import sam2.sam2_video_predictor as cur
        import sam2.sam2_video_predictor_legacy as leg

        for mod in (cur, leg):
            mod.tqdm = _passthrough

    def _autocast(self):
        import torch

        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # -- state -------------------------------------------------------------------------------------
    def bind(self, frames) -> None:
        import torch

        self.frames = frames
        self.images = LazyImages(frames, self.image_size, self.device)
        self.encodes = self.images.encodes
        h, w = frames.frame_size
        st: dict[str, Any] = {
            "images": self.images,
            "num_frames": len(frames),
            "offload_video_to_cpu": True,
            "offload_state_to_cpu": False,
            "video_height": h,
            "video_width": w,
            "device": self.device,
            "storage_device": self.device,
            "point_inputs_per_obj": {},
            "mask_inputs_per_obj": {},
            "cached_features": {},
            "constants": {},
            "obj_id_to_idx": OrderedDict(),
            "obj_idx_to_id": OrderedDict(),
            "obj_ids": [],
            "output_dict_per_obj": {},
            "temp_output_dict_per_obj": {},
        }
        if self.legacy:
            st["output_dict"] = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
            st["consolidated_frame_inds"] = {"cond_frame_outputs": set(), "non_cond_frame_outputs": set()}
            st["tracking_has_started"] = False
            st["frames_already_tracked"] = {}
        else:
            st["frames_tracked_per_obj"] = {}
        self.state = st
        del torch

    def reset(self) -> None:
        import torch

        with torch.inference_mode():
            self.predictor.reset_state(self.state)

    def add_mask(self, frame: int, obj_id: int, mask: np.ndarray | None) -> None:
        import torch

        self._live_check(int(frame))
        h, w = self.frames.frame_size
        m = np.zeros((h, w), bool) if mask is None else np.asarray(mask, bool)
        if m.shape != (h, w):
            raise InputError(f"A mask prompt of {m.shape} for frames of {(h, w)}.")
        with torch.inference_mode(), self._autocast():
            if self.legacy:
                self.predictor.add_new_mask(self.state, frame_idx=frame, obj_id=int(obj_id), mask=torch.from_numpy(m))
            else:
                prompt_mask_as_cond(self.predictor, self.state, int(frame), int(obj_id), torch.from_numpy(m))

    def add_points(self, frame: int, obj_id: int, points_xy: np.ndarray, labels: np.ndarray) -> None:
        import torch

        self._live_check(int(frame))
        with torch.inference_mode(), self._autocast():
            if not self.legacy:  # a conditioning frame, as a mask prompt makes (prompt_mask_as_cond)
                idx = self.predictor._obj_id_to_idx(self.state, int(obj_id))
                self.state["frames_tracked_per_obj"][idx].pop(int(frame), None)
            self.predictor.add_new_points_or_box(
                self.state,
                frame_idx=frame,
                obj_id=int(obj_id),
                points=np.asarray(points_xy, np.float32),
                labels=np.asarray(labels, np.int32),
                clear_old_points=True,
                normalize_coords=True,
            )

    def remove_objects(self, obj_ids: Iterable[int]) -> None:
        import torch

        self._live_check(None)
        with torch.inference_mode():
            for i in obj_ids:
                if i in self.state["obj_id_to_idx"]:
                    self.predictor.remove_object(self.state, int(i), need_output=False)

    def propagate(self, start: int) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        import torch

        frames = self._frames_from(start)
        self.images.ahead = self.ahead
        try:
            while True:
                # inference mode and autocast only while SAM2 computes a frame: the caller's code
                # between frames (the policy, a trained overseer filling its batch) runs as it
                # would without them
                with torch.inference_mode(), self._autocast():
                    try:
                        t, obj_ids, masks = next(frames)
                    except StopIteration:
                        return
                    logits = None if masks is None else masks[:, 0].float().cpu().numpy()
                out = {} if logits is None else {int(o): logits[k] for k, o in enumerate(obj_ids)}
                self._release(t)
                self._at, self._changed = t, False
                yield t, out
                self._at = None
                if self._changed:  # live prompts at t: go on from t + 1 with the objects as they are now
                    frames.close()
                    frames = self._frames_from(t + 1)
        finally:
            self._at = None
            self.images.stop()  # no worker outlives the propagation that started it

    def _live_check(self, frame: int | None) -> None:
        """A prompt (``frame``) or removal (None) while a propagation is suspended must be live:
        at the frame just yielded, with the current predictor."""
        if self._at is None:
            return
        if self.legacy:
            raise RuntimeError("The legacy SAM2 predictor takes no prompts during a propagation: stop it first.")
        if frame is not None and frame != self._at:
            raise RuntimeError(
                f"A prompt at frame {frame} while the propagation is at frame {self._at}: live prompts go to "
                "the frame just yielded; stop the propagation to prompt another frame."
            )
        self._changed = True

    def _frames_from(self, start: int):
        """SAM2's per-frame outputs (t, object ids, masks at video resolution) from ``start``."""
        import torch

        st = self.state
        if self.legacy:
            return self.predictor.propagate_in_video(st, start_frame_idx=start)
        if not st["obj_ids"]:  # every object removed: nothing to compute, nothing encoded
            return ((t, [], None) for t in range(start, st["num_frames"]))
        with torch.inference_mode(), self._autocast():
            # prompts since the last propagation become memory (SAM2's own consolidation, which its
            # propagation would run first anyway), then each object's conditioning frames are capped
            self.predictor.propagate_in_video_preflight(st)
            cap_cond_frames(st, self.max_cond)
        if self.batch_objects:
            return self._propagate_batched(start)
        return self.predictor.propagate_in_video(st, start_frame_idx=start)

    def _propagate_batched(self, start: int):
        """The current predictor's forward propagation, with the objects that have the same memory
        frames (conditioning and tracked frames: objects prompted together) batched into one
        ``_run_single_frame_inference`` per frame. Objects prompted at other frames form groups of
        their own; an object's outputs are stored per object as the predictor keeps them, so
        prompting, adding and removing objects work as before."""
        import torch

        pred, st = self.predictor, self.state
        obj_ids = st["obj_ids"]
        n_obj = len(obj_ids)
        for t in range(start, st["num_frames"]):
            masks: list = [None] * n_obj
            groups: dict[tuple, list[int]] = {}
            for i in range(n_obj):
                od = st["output_dict_per_obj"][i]
                if t in od["cond_frame_outputs"]:
                    masks[i] = od["cond_frame_outputs"][t]["pred_masks"].to(st["device"], non_blocking=True)
                    if pred.clear_non_cond_mem_around_input:
                        pred._clear_obj_non_cond_mem_around_input(st, t, i)
                else:
                    key = (tuple(sorted(od["cond_frame_outputs"])), tuple(sorted(od["non_cond_frame_outputs"])))
                    groups.setdefault(key, []).append(i)
                st["frames_tracked_per_obj"][i][t] = {"reverse": False}
            for members in groups.values():
                b = len(members)
                self.batches[b] = self.batches.get(b, 0) + 1
                if b == 1:
                    output_dict = st["output_dict_per_obj"][members[0]]
                else:
                    output_dict = _merged_outputs([st["output_dict_per_obj"][i] for i in members])
                out, pred_masks = pred._run_single_frame_inference(
                    inference_state=st,
                    output_dict=output_dict,
                    frame_idx=t,
                    batch_size=b,
                    is_init_cond_frame=False,
                    point_inputs=None,
                    mask_inputs=None,
                    reverse=False,
                    run_mem_encoder=True,
                )
                for k, i in enumerate(members):
                    st["output_dict_per_obj"][i]["non_cond_frame_outputs"][t] = _slice_output(out, k, b)
                    masks[i] = pred_masks[k : k + 1]
            all_masks = torch.cat(masks, dim=0) if n_obj > 1 else masks[0]
            _, video_res_masks = pred._get_orig_video_res_output(st, all_masks)
            yield t, obj_ids, video_res_masks

    def _release(self, t: int) -> None:
        """Drop outputs SAM2's memory no longer reads (frames before t - keep)."""
        cutoff = t - self.keep
        st = self.state
        dicts = [d for d in st["output_dict_per_obj"].values()]
        if self.legacy:
            dicts.append(st["output_dict"])
            st["consolidated_frame_inds"]["non_cond_frame_outputs"] = {
                f for f in st["consolidated_frame_inds"]["non_cond_frame_outputs"] if f >= cutoff
            }
            for f in [f for f in st["frames_already_tracked"] if f < cutoff]:
                del st["frames_already_tracked"][f]
        else:
            for per in st["frames_tracked_per_obj"].values():
                for f in [f for f in per if f < cutoff]:
                    del per[f]
        for d in dicts:
            non_cond = d["non_cond_frame_outputs"]
            for f in [f for f in non_cond if f < cutoff]:
                del non_cond[f]

    def memory_frames(self) -> int:
        """How many frame outputs the state holds now (tests check it stays bounded)."""
        st = self.state
        n = sum(
            len(d["non_cond_frame_outputs"]) + len(d["cond_frame_outputs"]) for d in st["output_dict_per_obj"].values()
        )
        if self.legacy:
            n += len(st["output_dict"]["non_cond_frame_outputs"]) + len(st["output_dict"]["cond_frame_outputs"])
        return n

    def describe(self) -> dict:
        return {
            "type": "sam2",
            "predictor": "legacy" if self.legacy else "current",
            "model": self.model_name,
            "config": Path(self.config).name if self.config else None,
            "checkpoint": Path(self.checkpoint).name if self.checkpoint else None,
            "checkpoint_sha256": self.checkpoint_sha256,
            "image_size": self.image_size,
            "device": str(self.device),
        }


def _merged_outputs(dicts: list[dict]) -> dict:
    """One output dict for a batch of objects whose per-object dicts have the same frames: each
    frame's tensors concatenated along the batch dimension (what the legacy predictor keeps)."""
    import torch

    def merge(entries: list[dict]) -> dict:
        first = entries[0]
        b = len(entries)
        out = {}
        for name in ("maskmem_features", "pred_masks", "obj_ptr", "object_score_logits"):
            vals = [e[name] for e in entries]
            out[name] = None if vals[0] is None else torch.cat(vals, dim=0)
        pos = first["maskmem_pos_enc"]  # the same for every object and frame (a cached constant)
        out["maskmem_pos_enc"] = None if pos is None else [x[:1].expand(b, *x.shape[1:]) for x in pos]
        return out

    return {
        key: {f: merge([d[key][f] for d in dicts]) for f in dicts[0][key]}
        for key in ("cond_frame_outputs", "non_cond_frame_outputs")
    }


def _slice_output(out: dict, k: int, b: int) -> dict:
    """Object k's share of a batched frame output (views; the batch is kept alive by them)."""
    sliced = {}
    for name, v in out.items():
        if v is None:
            sliced[name] = None
        elif name == "maskmem_pos_enc":
            sliced[name] = [x[k : k + 1] for x in v]
        else:
            sliced[name] = v[k : k + 1]
    return sliced


def _passthrough(iterable, *args, **kwargs):
    return iterable
