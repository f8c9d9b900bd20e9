"""Text normalization: the one rule for "the same text up to case, spaces and punctuation".

One job: ``normalize_text``, used where two texts must be compared as a reader would: the
multiple-choice rule of CapQA and SubtitleQA (wrong answers distinct from each other and from the
answer, ``schemas.dataset_types``), free-form QA matching and option reading (``schemas.metrics``)
and annotator agreement (``annotation.agreement``). Standard library only, so record validation
does not import the metrics' numeric stack.
"""
from __future__ import annotations

import re
import unicodedata

__all__ = ["normalize_text"]


def normalize_text(text: str) -> str:
    """NFKC, lowercase, punctuation removed, whitespace collapsed to single spaces, stripped.

    Args:
        text: any text.

    Returns:
        The normalized text: ``"  The DOG, it runs!\\n"`` -> ``"the dog it runs"``. Each
        punctuation character becomes a space, so ``"blue-green"`` reads ``"blue green"``.
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(" " if unicodedata.category(c).startswith("P") else c for c in text)
    return re.sub(r"\s+", " ", text).strip()
