"""SAM 3 with text prompts as a frame-wise overseer (``overseer.kind text``).

The transformers SAM 3 image model (``Sam3Model`` with its ``Sam3Processor``) finds every instance
of a noun phrase on an image. Each class of the run's class table is one phrase: its name, or the
words ``overseer.prompts`` gives it (``"grasper, L-hook Electrocautery=hook"``). Per frame, the
instances of a phrase scoring above ``overseer.score_threshold`` (default 0.5; SAM 3's score is
its query's probability times the phrase's presence probability) are one detection each
(:meth:`TextOverseer.predict_instances`, instance mode) or, OR-ed, the class's mask scored by the
best of them (:meth:`TextOverseer.predict`), as a trained overseer's are; SASVi's policy takes it
from there.

Cost: the image encoder (a ViT-L at 1008 px, most of SAM 3's 0.84 B parameters) runs once per frame
and its features serve every phrase; the phrases are encoded once, when the overseer is built; per
frame only the DETR encoder/decoder and the mask head run once per phrase (batched).

The model is a Hub repository id (``facebook/sam3``, the default; gated: its licence must be
accepted on the Hub and the user logged in) downloaded into the Hugging Face cache by transformers
when online, or a folder written by ``save_pretrained``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from ..datasets import ClassTable
from ..devices import resolve_device
from ..errors import CheckpointError, InputError
from ..instances.types import Instance
from ..weights import sha256_of
from .base import OverseerResult, merge_instances

log = logging.getLogger(__name__)

#: the Hub repository used when no model is given
DEFAULT_MODEL = "facebook/sam3"
#: the thresholds when none is given: instance score (probability) and mask probability
DEFAULT_SCORE, DEFAULT_MASK = 0.5, 0.5
#: frames per image-encoder pass (the ViT-L at 1008 px takes about 1.5 GiB of activations a frame in bfloat16)
FORWARD_BATCH = 4
#: files of a model folder whose bytes decide its predictions (hashed into the store's signature)
_MODEL_FILES = ("config.json", "*.safetensors", "*.bin", "preprocessor_config.json", "processor_config.json")


def parse_prompts(prompts: str | None, classes: ClassTable) -> dict[int, str]:
    """Class id -> its text prompt.

    ``prompts`` is None (every class but the table's ignored ones, prompted with its name) or a
    comma-separated list of class names (matched case-insensitively), each optionally
    ``NAME=WORDS`` to prompt that class with other words. An unknown name is an :class:`InputError`
    listing the table's names.
    """
    if prompts is None:
        return {c.id: c.name for c in classes if c.id not in classes.ignore_ids}
    by_name = {c.name.casefold(): c for c in classes}
    out: dict[int, str] = {}
    for entry in (e.strip() for e in str(prompts).split(",")):
        if not entry:
            continue
        name, _, words = (p.strip() for p in entry.partition("="))
        cls = by_name.get(name.casefold())
        if cls is None:
            names = ", ".join(c.name for c in classes)
            raise InputError(
                f"overseer.prompts: {name!r} is not a class of the {classes.name} class table; its classes are: "
                f"{names} (write class names, or NAME=WORDS to prompt a class with other words)."
            )
        if cls.id in out:
            raise InputError(f"overseer.prompts: class {cls.name!r} is given twice; give each class once.")
        out[cls.id] = words or cls.name
    if not out:
        raise InputError("overseer.prompts is empty: give class names separated by commas (or leave it out: all).")
    return out


class TextOverseer:
    """SAM 3 prompted with one phrase per class (see the module docstring).

    Build it with :func:`load_text_overseer`, or from a loaded ``Sam3Model`` and ``Sam3Processor``.
    """

    needs_frames = True

    def __init__(
        self,
        model,
        processor,
        classes: ClassTable,
        prompts: Mapping[int, str] | None = None,
        device: str = "auto",
        score_threshold: float | None = None,
        mask_threshold: float | None = None,
        source: str | None = None,
        model_sha256: str | None = None,
        revision: str | None = None,
    ):
        self.classes = classes
        self.prompts = dict(prompts) if prompts is not None else parse_prompts(None, classes)
        if not self.prompts:
            raise InputError(f"The {classes.name} class table has no class to prompt SAM 3 with.")
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.processor = processor
        self.score_threshold = DEFAULT_SCORE if score_threshold is None else float(score_threshold)
        self.mask_threshold = DEFAULT_MASK if mask_threshold is None else float(mask_threshold)
        self.source = source
        self.model_sha256 = model_sha256
        self.revision = revision
        self.name = f"SAM 3 text ({classes.name})"
        self._ids = list(self.prompts)
        self._text = self._encode_text([self.prompts[c] for c in self._ids])
        self.vision_passes = 0  # frames through the image encoder (once each)

    def with_options(
        self,
        classes: ClassTable,
        prompts: Mapping[int, str],
        score_threshold: float | None,
        mask_threshold: float | None,
    ) -> TextOverseer:
        """The same loaded model with other classes, prompts or thresholds (no reload)."""
        return TextOverseer(
            self.model, self.processor, classes, prompts, str(self.device), score_threshold, mask_threshold,
            self.source, self.model_sha256, self.revision,
        )  # fmt: skip

    # -- the Overseer protocol -------------------------------------------------------------------------
    def describe(self) -> dict:
        return {
            "type": "text",
            "model": self.source,
            "model_sha256": self.model_sha256,
            "revision": self.revision,
            "prompts": [[int(c), self.prompts[c]] for c in self._ids],
            "thresholds": {"score": self.score_threshold, "mask": self.mask_threshold},
            "classes": self.classes.name,
        }

    def predict(self, frames: Sequence[np.ndarray] | None, indices: Sequence[int]) -> list[OverseerResult]:
        """Each class's instances merged into one mask (their union), scored by the best of them."""
        return [merge_instances(found) for found in self.predict_instances(frames, indices)]

    def predict_instances(self, frames: Sequence[np.ndarray] | None, indices: Sequence[int]) -> list[list[Instance]]:
        """Each instance SAM 3 finds for a class's phrase, on its own (any order)."""
        import torch

        if frames is None:
            raise ValueError("the text overseer needs the frames")
        out: list[list[Instance]] = []
        with torch.inference_mode(), self._autocast():
            for i in range(0, len(frames), FORWARD_BATCH):
                out.extend(self._predict_batch([np.asarray(f) for f in frames[i : i + FORWARD_BATCH]]))
        return out

    # -- helpers ---------------------------------------------------------------------------------------
    def _autocast(self):
        import torch

        # bfloat16 on CUDA only: the CPU's bfloat16 kernels are slower than float32 for these sizes
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _encode_text(self, phrases: list[str]):
        """The phrases' text features (once per overseer: they do not change between frames)."""
        import torch

        enc = self.processor(text=phrases, return_tensors="pt")
        ids, mask = enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)
        with torch.inference_mode(), self._autocast():
            feats = self.model.get_text_features(input_ids=ids, attention_mask=mask, return_dict=True)
        return feats, mask

    def _predict_batch(self, batch: list[np.ndarray]) -> list[list[Instance]]:
        from transformers.models.sam3.modeling_sam3 import Sam3VisionEncoderOutput

        pixels = self.processor(images=batch, return_tensors="pt")["pixel_values"].to(self.device)
        vision = self.model.get_vision_features(pixel_values=pixels)
        self.vision_passes += len(batch)
        text, text_mask = self._text
        k = len(self._ids)
        results = []
        for b, frame in enumerate(batch):
            # this frame's features for each of the k phrases: a view, not a copy
            one = Sam3VisionEncoderOutput(
                fpn_hidden_states=tuple(h[b : b + 1].expand(k, *h.shape[1:]) for h in vision.fpn_hidden_states),
                fpn_position_encoding=tuple(p[b : b + 1].expand(k, *p.shape[1:]) for p in vision.fpn_position_encoding),
            )
            res = self.model(vision_embeds=one, text_embeds=text, attention_mask=text_mask)
            results.append(self._instances(res, frame.shape[:2]))
        return results

    def _instances(self, res, size: tuple[int, int]) -> list[Instance]:
        """The processor's post-processing (scores, masks at the frame size) as :class:`Instance`s."""
        out = SimpleNamespace(
            pred_logits=res.pred_logits.float(),
            pred_boxes=res.pred_boxes.float(),
            pred_masks=res.pred_masks.float(),
            presence_logits=None if res.presence_logits is None else res.presence_logits.float(),
        )
        post = self.processor.post_process_instance_segmentation(
            out,
            threshold=self.score_threshold,
            mask_threshold=self.mask_threshold,
            target_sizes=[size] * len(self._ids),
        )
        found: list[Instance] = []
        for cid, r in zip(self._ids, post, strict=True):
            for m, s in zip(r["masks"].bool().cpu().numpy(), r["scores"].tolist(), strict=True):
                if m.any():
                    found.append(Instance(cid, m, float(s)))
        return found


def _folder_sha256(folder: Path) -> str:
    """One sha256 over the files of a model folder that decide its predictions (name and content)."""
    h = hashlib.sha256()
    files = sorted({f for pattern in _MODEL_FILES for f in folder.glob(pattern) if f.is_file()})
    for f in files:
        h.update(f"{f.name}:{sha256_of(f)}\n".encode())
    return h.hexdigest()


def _is_hub_id(name: str) -> bool:
    """``owner/name`` that is not a path here (as ``facebook/sam3``)."""
    return re.fullmatch(r"[\w-][\w.-]*/[\w.-]+", name) is not None and not Path(name).expanduser().exists()


def load_sam3(name_or_path: str | os.PathLike | None):
    """``(model, processor, source, model_sha256, revision)`` of SAM 3 from a Hub id or a folder.

    A Hub id is downloaded by transformers into the Hugging Face cache when online; offline, or
    for a gated repository the user has no access to, the error says what to do.
    """
    from transformers import Sam3Model, Sam3Processor

    source = os.fspath(name_or_path) if name_or_path else DEFAULT_MODEL
    folder = Path(source).expanduser()
    if not _is_hub_id(source) and not folder.is_dir():
        raise CheckpointError(
            f"SAM 3 model folder {source} does not exist: give a folder written by save_pretrained, or a Hub "
            f"repository id such as {DEFAULT_MODEL} while online."
        )
    where = str(folder) if folder.is_dir() else source
    try:
        model, info = Sam3Model.from_pretrained(where, output_loading_info=True)
        processor = Sam3Processor.from_pretrained(where)
    except (OSError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        hub = (
            ""
            if folder.is_dir()
            else f" {source} comes from the Hugging Face Hub: it needs the network once (then the cache, "
            "HF_HUB_CACHE, serves it offline); facebook/sam3 is gated: accept its licence on "
            "https://huggingface.co/facebook/sam3 and log in (`hf auth login`, or set HF_TOKEN). Or give a folder "
            "written by save_pretrained."
        )
        raise CheckpointError(f"Cannot load SAM 3 from {source}: {first}.{hub}") from e
    # transformers fills weights missing from a checkpoint at random and only logs it: a SAM 3 whose
    # text encoder was left random answers no prompt (facebook/sam3 discussion 263), so refuse it
    missing = sorted(info.get("missing_keys") or []) + sorted(info.get("mismatched_keys") or [])
    if missing:
        shown = ", ".join(map(str, missing[:3])) + (f", ... ({len(missing)} in all)" if len(missing) > 3 else "")
        raise CheckpointError(
            f"SAM 3 from {source} lacks weights the model needs ({shown}): it is not a transformers Sam3Model "
            "checkpoint, or one of another transformers release. Give a folder written by Sam3Model.save_pretrained."
        )
    if folder.is_dir():
        return model, processor, str(folder.resolve()), _folder_sha256(folder), None
    return model, processor, source, None, getattr(model.config, "_commit_hash", None)


def load_text_overseer(
    model: str | os.PathLike | None,
    classes: ClassTable,
    device: str = "auto",
    prompts: str | None = None,
    score_threshold: float | None = None,
    mask_threshold: float | None = None,
    reuse: object = None,
) -> TextOverseer:
    """The text overseer of ``classes`` (``prompts``: see :func:`parse_prompts`), SAM 3 loaded from
    ``model`` (a Hub id, default :data:`DEFAULT_MODEL`, or a folder). ``reuse``: an overseer built
    before; if it is a :class:`TextOverseer` of the same model and device, its model is kept."""
    wanted = parse_prompts(prompts, classes)  # a wrong class name is refused before any download
    source = os.fspath(model) if model else DEFAULT_MODEL
    folder = Path(source).expanduser()
    key = str(folder.resolve()) if folder.is_dir() else source
    if isinstance(reuse, TextOverseer) and reuse.source == key and reuse.device == resolve_device(device):
        return reuse.with_options(classes, wanted, score_threshold, mask_threshold)
    sam3, processor, src, sha, revision = load_sam3(source)
    return TextOverseer(
        sam3, processor, classes, wanted, device, score_threshold, mask_threshold,
        source=src, model_sha256=sha, revision=revision,
    )  # fmt: skip


__all__ = ["DEFAULT_MODEL", "TextOverseer", "load_sam3", "load_text_overseer", "parse_prompts"]
