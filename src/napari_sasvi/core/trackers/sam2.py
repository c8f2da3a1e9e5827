"""SAM2 as a streaming tracker through the ``sam2`` package.

Frames come from the lazy :class:`~napari_sasvi.core.frames.FrameStack` (no JPEG folder, no
whole-video tensor): the inference state's ``images`` is a lazy sequence that decodes and
normalises a frame when SAM2 asks for it. After every propagated frame, outputs older than SAM2's
memory reach (``num_maskmem`` frames of mask memory, ``max_obj_ptrs_in_encoder`` frames of object
pointers) are released, so RAM and GPU memory stay flat however long the video is.

``legacy=True`` builds ``sam2.sam2_video_predictor_legacy.SAM2VideoPredictor`` (what the published
SASVi code ran: objects only before tracking starts, hence a reset at every restart); otherwise
the current predictor, which adds objects to a running segment.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..devices import resolve_device
from ..errors import CheckpointError, InputError
from ..state_dict import read_state_dict, state_dict_mismatch
from ..weights import SAM2_CHECKPOINTS, SAM2_CONFIG_OF, fetch, sha256_of

log = logging.getLogger(__name__)

_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_STD = np.array([0.229, 0.224, 0.225], np.float32)


def config_path(name_or_path: str) -> Path:
    """A SAM2 config file from a name (``sam2.1_hiera_t``, ``sam2_hiera_l``, a model name such as
    ``sam2.1_hiera_tiny``) or a YAML path."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            raise InputError(f"SAM2 config {p} does not exist.")
        return p
    import sam2

    name = SAM2_CONFIG_OF.get(name_or_path, name_or_path)
    root = Path(sam2.__file__).parent / "configs"
    for sub in ("sam2.1", "sam2"):
        cand = root / sub / f"{name}.yaml"
        if cand.is_file():
            return cand
    known = sorted(q.stem for q in root.glob("sam2*/*.yaml"))
    raise InputError(f"Unknown SAM2 config {name_or_path!r}: use one of {', '.join(known)} or a YAML path.")


def build_sam2_predictor(
    config: str,
    checkpoint: str | os.PathLike | None,
    device: str = "auto",
    image_size: int | None = None,
    legacy: bool = False,
):
    """Build a SAM2 video predictor from a config with no network access and load a checkpoint
    (``{"model": state_dict}``, ``weights_only=True``, strict keys). ``checkpoint=None`` keeps
    random weights (tests)."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(config_path(config))
    target = (
        "sam2.sam2_video_predictor_legacy.SAM2VideoPredictor"
        if legacy
        else "sam2.sam2_video_predictor.SAM2VideoPredictor"
    )
    OmegaConf.update(cfg, "model._target_", target, force_add=True)
    # the reference's settings: non-overlapping objects; the package's usual post-processing
    for key, value in (
        ("model.non_overlap_masks", True),
        ("model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability", True),
        ("model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta", 0.05),
        ("model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh", 0.98),
        ("model.binarize_mask_from_pts_for_mem_enc", True),
        ("model.fill_hole_area", 0),  # needs sam2's optional CUDA extension; off for portability
    ):
        OmegaConf.update(cfg, key, value, force_add=True)
    if image_size is not None:
        if image_size % 32:
            raise InputError(f"image_size must be a multiple of 32, got {image_size}.")
        OmegaConf.update(cfg, "model.image_size", image_size, force_add=True)
        side = image_size // 16
        for att in ("self_attention", "cross_attention"):
            OmegaConf.update(cfg, f"model.memory_attention.layer.{att}.feat_sizes", [side, side], force_add=True)
    OmegaConf.resolve(cfg)
    model = instantiate(cfg.model, _recursive_=True)
    if checkpoint is not None:
        load_sam2_checkpoint(model, checkpoint)
    dev = resolve_device(device)
    return model.to(dev).eval()


def identify_sam2_checkpoint(state: dict) -> str | None:
    """The official config a SAM2 state dict was trained with (``sam2.1_hiera_t``, ...), read off
    its Hiera width and depth and SAM2.1's extra parameters; None when no config fits."""
    import sam2
    from omegaconf import OmegaConf

    proj = state.get("image_encoder.trunk.patch_embed.proj.weight")
    if proj is None:
        return None
    blocks = {k.split(".")[3] for k in state if k.startswith("image_encoder.trunk.blocks.")}
    v21 = "no_obj_embed_spatial" in state
    root = Path(sam2.__file__).parent / "configs"
    for sub in ("sam2.1", "sam2") if v21 else ("sam2",):
        for cfg_file in sorted((root / sub).glob("*.yaml")):
            trunk = OmegaConf.load(cfg_file).model.image_encoder.trunk
            if int(trunk.embed_dim) == int(proj.shape[0]) and sum(trunk.stages) == len(blocks):
                return cfg_file.stem
    return None


def load_sam2_checkpoint(model, checkpoint: str | os.PathLike) -> str:
    """Load an official-format checkpoint (``{"model": state_dict}``) strictly; returns its sha256."""
    path = Path(checkpoint)
    state = read_state_dict(path, "SAM2")
    problem = state_dict_mismatch(model.state_dict(), state)
    if problem:
        fits = identify_sam2_checkpoint(state)
        hint = (
            f"This is a {fits} checkpoint: set tracker.config {fits}."
            if fits
            else "It fits none of the official configs: pass the YAML config it was trained with."
        )
        raise CheckpointError(
            f"SAM2 checkpoint {path.name} does not fit the chosen config. {hint}\n  {path}: {problem}."
        )
    model.load_state_dict(state, strict=True)
    return sha256_of(path)


class _LazyImages:
    """What SAM2's inference state calls ``images``: frame t as a normalised (3, S, S) tensor,
    decoded when SAM2 asks for it; counts how often each frame is requested (= encoded).

    With ``ahead`` set (the tracker sets it while it propagates), a worker thread decodes and
    normalises frame t + 1 while SAM2 computes frame t (PIL releases the GIL; on a GPU the main
    thread waits for the device meanwhile). The tensor is the same as without it; a frame read
    ahead and never asked for costs a decode, and its read error (a corrupt frame) is raised only
    when SAM2 asks for that frame."""

    def __init__(self, frames, image_size: int, device, cache: int = 2):
        self.frames = frames
        self.size = image_size
        self.device = device
        self.encodes: dict[int, int] = {}
        self._cache: OrderedDict[int, Any] = OrderedDict()
        self._cache_size = cache
        self.ahead = False
        self._next: tuple[int, Future] | None = None
        self._pool: ThreadPoolExecutor | None = None

    def __len__(self) -> int:
        return len(self.frames)

    def _load(self, t: int):
        import torch
        from PIL import Image

        rgb = self.frames.frame(int(t))
        # SAM2's own loader: PIL resize to S x S (bicubic), [0, 1], ImageNet normalisation
        img = np.asarray(Image.fromarray(rgb).resize((self.size, self.size)), np.float32) / 255.0
        img = (img - _MEAN) / _STD
        return torch.from_numpy(img.transpose(2, 0, 1).copy())

    def __getitem__(self, t: int):
        t = int(t)
        self.encodes[t] = self.encodes.get(t, 0) + 1
        tensor = self._cache.get(t)
        if tensor is None:
            nxt = self._next
            if nxt is not None and nxt[0] == t:
                self._next = None
                tensor = nxt[1].result()  # a read error is raised here, when the frame is needed
            else:
                self.drop()
                tensor = self._load(t)
            self._cache[t] = tensor
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        self._read_ahead(t + 1)
        return tensor

    def _read_ahead(self, t: int) -> None:
        if not self.ahead or t >= len(self) or t in self._cache:
            return
        if self._next is not None:
            if self._next[0] == t:
                return
            self.drop()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="sasvi-sam2-ahead")
        self._next = (t, self._pool.submit(self._load, t))

    def drop(self) -> None:
        """Forget the frame read ahead (waiting for the worker); its error, if any, belongs to a
        frame nobody asked for."""
        if self._next is not None:
            fut = self._next[1]
            self._next = None
            if not fut.cancel():
                fut.exception()

    def stop(self) -> None:
        """No more reading ahead: forget the frame read ahead and end the worker thread."""
        self.ahead = False
        self.drop()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


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
    """

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
        self.images: _LazyImages | None = None
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
        self.images = _LazyImages(frames, self.image_size, self.device)
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

        h, w = self.frames.frame_size
        m = np.zeros((h, w), bool) if mask is None else np.asarray(mask, bool)
        with torch.inference_mode(), self._autocast():
            self.predictor.add_new_mask(self.state, frame_idx=frame, obj_id=int(obj_id), mask=torch.from_numpy(m))

    def add_points(self, frame: int, obj_id: int, points_xy: np.ndarray, labels: np.ndarray) -> None:
        import torch

        with torch.inference_mode(), self._autocast():
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

        with torch.inference_mode():
            for i in obj_ids:
                if i in self.state["obj_id_to_idx"]:
                    self.predictor.remove_object(self.state, int(i), need_output=False)

    def propagate(self, start: int) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        import torch

        frames = (
            self._propagate_batched(start)
            if self.batch_objects
            else self.predictor.propagate_in_video(self.state, start_frame_idx=start)
        )
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
                    logits = masks[:, 0].float().cpu().numpy()
                out = {int(o): logits[k] for k, o in enumerate(obj_ids)}
                self._release(t)
                yield t, out
        finally:
            self.images.stop()  # no worker outlives the propagation that started it

    def _propagate_batched(self, start: int):
        """The current predictor's forward propagation, with the objects that have the same memory
        frames (conditioning and tracked frames: objects prompted together) batched into one
        ``_run_single_frame_inference`` per frame. Objects prompted at other frames form groups of
        their own; an object's outputs are stored per object as the predictor keeps them, so
        prompting, adding and removing objects work as before."""
        import torch

        pred, st = self.predictor, self.state
        pred.propagate_in_video_preflight(st)
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
