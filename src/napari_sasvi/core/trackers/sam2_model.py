"""SAM2's model: its config files, building a video predictor from one without the network, and
loading an official-format checkpoint into it strictly (a checkpoint that fits another config is
named as such).

:class:`~napari_sasvi.core.trackers.sam2.SAM2Tracker` builds its predictor here, and prompts the
current predictor's inference state with the two helpers at the end (a mask prompt as a
conditioning frame, the cap on conditioning frames per object).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..devices import resolve_device
from ..errors import CheckpointError, InputError
from ..state_dict import read_state_dict, state_dict_mismatch
from ..weights import SAM2_CONFIG_OF, sha256_of


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


def prompt_mask_as_cond(predictor, state: dict, frame: int, obj_id: int, mask) -> None:
    """Prompt ``obj_id`` at ``frame`` with a bool mask (H, W) tensor, as the current predictor's
    ``add_new_mask`` does for a frame the object was never tracked on, also where it was: the
    frame becomes one of the object's conditioning frames, its output the mask itself (SAM2.1's
    ``use_mask_input_as_output_without_sam``). ``add_new_mask`` would keep a mask on a tracked
    frame as a non-conditioning correction, which the next propagation from that frame recomputes
    and so discards. Unlike ``add_new_mask``, no masks of all objects at video resolution are made
    (nobody reads them here). The output waits in the object's temporary outputs until
    ``propagate_in_video_preflight`` encodes it into memory; frame ``frame``'s image features come
    from SAM2's cache when it was the last frame computed (a live prompt), so it is not encoded
    again."""
    import torch

    idx = predictor._obj_id_to_idx(state, obj_id)
    m = mask[None, None].float().to(state["device"])
    size = predictor.image_size
    if m.shape[-2:] != (size, size):  # as add_new_mask resizes it
        m = torch.nn.functional.interpolate(m, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        m = (m >= 0.5).float()
    state["mask_inputs_per_obj"][idx][frame] = m
    state["point_inputs_per_obj"][idx].pop(frame, None)
    state["frames_tracked_per_obj"][idx].pop(frame, None)
    temp = state["temp_output_dict_per_obj"][idx]
    temp["non_cond_frame_outputs"].pop(frame, None)
    out, _ = predictor._run_single_frame_inference(
        inference_state=state,
        output_dict=state["output_dict_per_obj"][idx],
        frame_idx=frame,
        batch_size=1,
        is_init_cond_frame=True,
        point_inputs=None,
        mask_inputs=m,
        reverse=False,
        run_mem_encoder=False,  # encoded with the others' outputs by the preflight, as SAM2 does
    )
    temp["cond_frame_outputs"][frame] = out


def cap_cond_frames(state: dict, max_cond: int) -> None:
    """Keep each object's newest ``max_cond`` conditioning frames (after the preflight moved new
    prompts into the outputs). An older one becomes a non-conditioning output of its frame, so it
    is still read as a recent memory until the tracker releases it, and its prompt is forgotten."""
    for idx, outputs in state["output_dict_per_obj"].items():
        cond = outputs["cond_frame_outputs"]
        for f in sorted(cond)[: max(0, len(cond) - max_cond)]:
            outputs["non_cond_frame_outputs"].setdefault(f, cond.pop(f))
            state["mask_inputs_per_obj"][idx].pop(f, None)
            state["point_inputs_per_obj"][idx].pop(f, None)
            state["frames_tracked_per_obj"][idx][f] = {"reverse": False}
