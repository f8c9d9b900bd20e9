"""A tiny, offline Molmo2Processor for tests: the trainer's ``training.tiny``, nothing downloaded.

One job: give the chat-template tests (``tests/conftest.py`` fixture ``tiny_molmo2_processor``)
the same tiny tokenizer and processors the trainer builds (``training/tiny.py`` says how: a
byte-level BPE trained locally with Qwen 3's chat tokens inside the text vocabulary and Molmo 2's
ten visual tokens added in the released order; 56 px crops; no frame sampling), with a chat
template attached.
"""
from __future__ import annotations

from typing import Optional

from training.tiny import CHAT_TOKENS as TEXT_SPECIALS
from training.tiny import TINY_CROP as CROP_PX
from training.tiny import VISUAL_TOKENS as VISUAL_SPECIALS
from training.tiny import build_tokenizer

__all__ = ["TEXT_SPECIALS", "VISUAL_SPECIALS", "CROP_PX", "PATCH_PX", "build_tokenizer", "build_processor",
           "special_token_ids"]

PATCH_PX = 14


def special_token_ids(tokenizer) -> dict[str, int]:
    """Ids of the chat and visual special tokens (for a model config's ``image_patch_id`` etc.)."""
    return {tok: tokenizer.convert_tokens_to_ids(tok) for tok in TEXT_SPECIALS + VISUAL_SPECIALS}


def build_processor(chat_template: Optional[str] = None):
    """The tiny ``Molmo2Processor`` of ``training.tiny``, with ``chat_template`` attached (None: none)."""
    from training.tiny import build_processor as build

    processor = build(build_tokenizer())
    processor.chat_template = chat_template
    return processor
