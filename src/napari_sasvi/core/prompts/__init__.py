"""Prompting without a trained overseer: clicks and boxes on a frame become an object's mask
(SAM2's image path, or a classical method offline), committed as an edit of a store and kept in
it, so a session's prompts can be exported and replayed (:mod:`.files`).

Modules: :mod:`.types` (a prompt and its checks), :mod:`.grow` (GrabCut / watershed from clicks and
boxes), :mod:`.segmenters` (clicks and boxes to a mask), :mod:`.commit` (a prompt as an edit),
:mod:`.files` (prompt files).
"""

from .commit import check_prompt_on_store, iter_prompt, prompt_label_map
from .files import PromptReplay, export_prompts, iter_replay, read_prompt_file, write_prompt_file
from .segmenters import GrowSegmenter, PromptMask, Sam2ImageSegmenter, segmenter_for
from .types import ObjectPrompt, check_prompt

__all__ = [
    "GrowSegmenter",
    "ObjectPrompt",
    "PromptMask",
    "PromptReplay",
    "Sam2ImageSegmenter",
    "check_prompt",
    "check_prompt_on_store",
    "export_prompts",
    "iter_prompt",
    "iter_replay",
    "prompt_label_map",
    "read_prompt_file",
    "segmenter_for",
    "write_prompt_file",
]
