"""Overseer checkpoints across transformers releases: the key renames (in one table) and strict
loading (through :mod:`..state_dict`) with errors that name the keys that do not fit.

The published SASVi checkpoints are plain ``state_dict``s saved in early 2025 with transformers 4.x.
transformers 5 renamed parts of DETR and of the Swin backbone of Mask2Former; the tensors are the
same. :data:`RENAMES` maps the 4.x names to the current ones; :data:`DERIVED_BUFFERS` lists saved
buffers that current releases recompute instead of loading; :data:`UNUSED_PARAMETERS` lists
parameters that current releases create but never use (so a 4.x file cannot hold them).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..errors import CheckpointError
from ..state_dict import state_dict_mismatch

#: (pattern of an old key, replacement): applied in order to a key the model does not know
RENAMES: dict[str, list[tuple[str, str]]] = {
    "detr": [
        (r"^(detr\.model\.backbone)\.conv_encoder\.model\.", r"\1.model."),
        (r"^bbox_attention\.([qk])_linear\.", r"bbox_attention.\1_proj."),
        (r"\.(self_attn|encoder_attn)\.out_proj\.", r".\1.o_proj."),
        (r"^(detr\.model\.(?:en|de)coder\.layers\.\d+)\.(fc[12])\.", r"\1.mlp.\2."),
        (r"^mask_head\.lay1\.", "mask_head.conv1.conv."),
        (r"^mask_head\.gn1\.", "mask_head.conv1.norm."),
        (r"^mask_head\.lay2\.", "mask_head.conv2.conv."),
        (r"^mask_head\.gn2\.", "mask_head.conv2.norm."),
        *[(rf"^mask_head\.adapter{i}\.", f"mask_head.fpn_stages.{i - 1}.fpn_adapter.") for i in (1, 2, 3)],
        *[(rf"^mask_head\.lay{i + 2}\.", f"mask_head.fpn_stages.{i - 1}.refine.conv.") for i in (1, 2, 3)],
        *[(rf"^mask_head\.gn{i + 2}\.", f"mask_head.fpn_stages.{i - 1}.refine.norm.") for i in (1, 2, 3)],
        (r"^mask_head\.out_lay\.", "mask_head.output_conv."),
    ],
    "mask2former": [
        (r"^(model\.pixel_level_module\.encoder)\.(embeddings|encoder)\.", r"\1.swin.\2."),
        (r"\.attention\.self\.query\.", ".attention.q_proj."),
        (r"\.attention\.self\.key\.", ".attention.k_proj."),
        (r"\.attention\.self\.value\.", ".attention.v_proj."),
        (r"\.attention\.output\.dense\.", ".attention.o_proj."),
        (
            r"\.attention\.self\.relative_position_bias_table$",
            ".attention.relative_position_bias.relative_position_bias_table",
        ),
        (r"(\.blocks\.\d+)\.intermediate\.dense\.", r"\1.mlp.fc1."),
        (r"(\.blocks\.\d+)\.output\.dense\.", r"\1.mlp.fc2."),
    ],
    "maskrcnn": [],
}

#: saved buffers a current model recomputes from its config (dropped when the model lacks them)
DERIVED_BUFFERS = {"mask2former": [r"\.attention\.self\.relative_position_index$"]}

#: parameters a current model has but never uses in the forward pass (kept as initialised when a
#: checkpoint lacks them): the final layer norm of Swin, which the backbone does not apply
UNUSED_PARAMETERS = {"mask2former": [r"^model\.pixel_level_module\.encoder\.swin\.layernorm\.(weight|bias)$"]}


def map_keys(arch: str, state: Mapping, model_keys: set[str]) -> tuple[dict, list[str]]:
    """Rename the keys of ``state`` the model does not know by :data:`RENAMES`; drop derived
    buffers the model lacks. Returns the new dict and the list of renames done (old -> new)."""
    rules = [(re.compile(p), r) for p, r in RENAMES.get(arch, [])]
    derived = [re.compile(p) for p in DERIVED_BUFFERS.get(arch, [])]
    out: dict = {}
    renamed: list[str] = []
    for k, v in state.items():
        if k in model_keys:
            out[k] = v
            continue
        if any(p.search(k) for p in derived):
            continue
        new = k
        for pat, rep in rules:
            new = pat.sub(rep, new)
        if new != k and new in model_keys and new not in state:
            out[new] = v
            renamed.append(f"{k} -> {new}")
        else:
            out[k] = v
    return out, renamed


def load_state_dict_strict(model, arch: str, state: Mapping, source: str = "checkpoint") -> list[str]:
    """Load ``state`` into ``model`` strictly after the key mapping; every key must match in name and
    shape, except :data:`UNUSED_PARAMETERS`. Returns the renames done. Raises
    :class:`CheckpointError` listing the keys that do not match."""
    own = model.state_dict()
    mapped, renamed = map_keys(arch, state, set(own))
    unused = [re.compile(p) for p in UNUSED_PARAMETERS.get(arch, [])]
    problem = state_dict_mismatch(own, mapped, allowed_missing=lambda k: any(p.search(k) for p in unused))
    if problem:
        raise CheckpointError(
            f"The checkpoint does not fit the {arch} overseer: check the overseer type and dataset.\n"
            f"  {source}: {problem}.\n  Or check that the file was saved from the same architecture."
        )
    model.load_state_dict(mapped, strict=False)  # strictness checked above, with the unused keys allowed
    return renamed
