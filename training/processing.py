"""From a decoded sample to token sequences with labels: the real ``Molmo2Processor``, no sampling.

One job: turn one sample (a clip's frames or an image set, and the conversations of every
record on it, already rendered in the training layout) into :class:`Example` objects: a *root*
(BOS, the expanded visual tokens and the subtitle block, with the pixel tensors) and one *branch*
per conversation (its tokens and which of them carry loss). Packing them into rows and masks is
``training.packing``; weights are ``training.loss``.

Facts this relies on (../shared/reference/molmo2-model.md):

* The frames given are the frames used: ``do_sample_frames=False`` and ``VideoMetadata(fps=1,
  frames_indices=<the clip's stored sample times>)``, so the processor prints each frame's time as
  ``f"{t:.1f}"`` of the stored time (the tests compare the token stream with the clip's times).
* The processor prepends ``bos_token or eos_token`` to the text; the root carries it.
* Every visual placeholder comes before the first ``<|im_start|>`` (training layout of
  ``schemas.chat.render_chat``), so a rendered text splits there into root and conversation, and
  the conversations of one media item share one root.
* Labels: the tokens of each answer and its closing ``<|im_end|>`` (the text after each
  ``<|im_start|>assistant\\n`` up to and including the next ``<|im_end|>``), found from the
  tokenizer's character offsets; never a visual token, the prompt or padding (checked here).
* Visual inputs are kept in the image path's form for every modality (video frames are crops
  with grid ``[frames x rows, cols, 0, 0]``), so images and videos fold into one forward.

Longer than ``max_seq_len`` (``DataConfig.too_long``): branches that do not fit are dropped
(counted ``dropped_branches``); when even the first does not fit, ``truncate`` cuts it at the
limit (counted ``truncated``) and ``skip`` leaves the sample out (counted ``skipped_too_long``); a
root that alone does not fit leaves the sample out (counted ``skipped_visual_too_long``).
"""
from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import torch

__all__ = ["ASSISTANT_OPEN", "END", "Branch", "Example", "Media", "split_root", "answer_spans",
           "encode_branch", "encode_root", "build_examples", "check_labels"]

ASSISTANT_OPEN = "<|im_start|>assistant\n"
END = "<|im_end|>"
_TURN_OPEN = "<|im_start|>"


@dataclass
class Media:
    """The pixels of one media item: a clip's sampled frames with their times, or images."""

    kind: str
    """``video`` or ``images``."""
    frames: list
    """PIL images: the clip's frames in time order, or the images in prompt order."""
    times: Optional[list[float]] = None
    """Video only: each frame's time in seconds from the clip start (``Clip.timestamps``)."""

    def __post_init__(self) -> None:
        if self.kind not in ("video", "images"):
            raise ValueError(f"media kind must be 'video' or 'images', got {self.kind!r}")
        if self.kind == "video" and (self.times is None or len(self.times) != len(self.frames)):
            raise ValueError(f"a video needs one time per frame: {len(self.frames)} frames, "
                             f"{None if self.times is None else len(self.times)} times")


@dataclass
class Branch:
    """One conversation after the root: its tokens and which carry loss."""

    ids: list[int]
    labels: list[bool]
    """True where the token is an answer token or an answer's closing ``<|im_end|>``."""
    dataset: str
    weight: float = 1.0
    """Loss weight of each of its label tokens (``training.loss.branch_weight``)."""

    @property
    def n_labels(self) -> int:
        return sum(self.labels)


@dataclass
class Example:
    """A root and the branches that follow it (a message tree; one branch when unrolled)."""

    key: str
    dataset: str
    root_ids: list[int]
    root_mm: list[int]
    """``mm_token_type_ids`` of the root (1 on visual tokens)."""
    pixel_values: Optional[torch.Tensor]
    """``(crops, patches, patch_pixels)``; video frames are crops."""
    pooling: Optional[torch.Tensor]
    """``(visual tokens, pool)`` int64 indices into this example's flattened patches, -1 = none."""
    grids: Optional[torch.Tensor]
    """``(items, 4)`` image-path grids whose token counts sum to the pooling rows."""
    branches: list[Branch] = field(default_factory=list)
    n_tree: int = 1
    """Branches of the sample's tree this example came from (for the 1/sqrt weighting)."""
    index: int = -1
    """Global index of the sample in the run's sample sequence (-1 outside a run)."""

    def __len__(self) -> int:
        return len(self.root_ids) + sum(len(b.ids) for b in self.branches)


def split_root(text: str) -> tuple[str, str]:
    """Split a training-layout text into (placeholders + subtitle block, conversation).

    Raises:
        ValueError: no ``<|im_start|>`` in the text.
    """
    i = text.find(_TURN_OPEN)
    if i < 0:
        raise ValueError(f"no {_TURN_OPEN} in the rendered conversation: {text[:80]!r}")
    return text[:i], text[i:]


def answer_spans(conversation: str) -> list[tuple[int, int]]:
    """Character spans of every answer with its closing ``<|im_end|>``.

    Raises:
        ValueError: an assistant turn without a closing ``<|im_end|>``.
    """
    spans, pos = [], 0
    while (i := conversation.find(ASSISTANT_OPEN, pos)) >= 0:
        start = i + len(ASSISTANT_OPEN)
        end = conversation.find(END, start)
        if end < 0:
            raise ValueError(f"answer at character {start} has no closing {END}")
        spans.append((start, end + len(END)))
        pos = end + len(END)
    return spans


def encode_branch(tokenizer: Any, conversation: str, dataset: str) -> Branch:
    """Tokenize a conversation and mark its answer tokens.

    Args:
        tokenizer: a fast tokenizer (character offsets needed).
        conversation: the text from the first ``<|im_start|>`` on (training layout).
        dataset: the dataset the conversation belongs to (for per-task weights).

    Returns:
        The branch; no special tokens are added.

    Raises:
        ValueError: a token straddles an answer boundary, or there is no answer.
    """
    enc = tokenizer(conversation, add_special_tokens=False, return_offsets_mapping=True)
    spans = answer_spans(conversation)
    if not spans:
        raise ValueError("conversation has no assistant answer to train on")
    labels = []
    for a, b in enc["offset_mapping"]:
        inside = any(s <= a and b <= e for s, e in spans)
        if not inside and any(a < e and s < b for s, e in spans):
            raise ValueError(f"token at characters {a}-{b} straddles an answer boundary")
        labels.append(inside)
    return Branch(ids=list(enc["input_ids"]), labels=labels, dataset=dataset)


def encode_root(processor: Any, root_text: str, media: Optional[Media]) -> tuple[list[int], list[int], Any, Any, Any]:
    """Run the processor on the root text with the media.

    Args:
        processor: a ``Molmo2Processor``.
        root_text: placeholders (and subtitle block), without BOS.
        media: the pixels, or None for a text-only root.

    Returns:
        ``(ids, mm_token_type_ids, pixel_values, pooling, grids)`` with the visual parts in the
        image path's form (None for text only).
    """
    kwargs: dict[str, Any] = {"return_tensors": "pt"}
    if media is not None and media.kind == "video":
        from transformers.video_utils import VideoMetadata

        meta = VideoMetadata(total_num_frames=len(media.frames), fps=1.0,
                             frames_indices=[float(t) for t in media.times])
        kwargs.update(videos=[list(media.frames)], video_metadata=[meta], do_sample_frames=False)
    elif media is not None:
        kwargs.update(images=list(media.frames))
    out = processor(text=root_text, **kwargs)
    ids = out["input_ids"][0].tolist()
    mm = out["mm_token_type_ids"][0].tolist()
    if "pixel_values_videos" in out:
        grids = out["video_grids"]
        grids = torch.stack([grids[:, 0] * grids[:, 1], grids[:, 2], torch.zeros_like(grids[:, 0]),
                             torch.zeros_like(grids[:, 0])], dim=-1)
        return ids, mm, out["pixel_values_videos"], out["video_token_pooling"].long(), grids
    if "pixel_values" in out:
        return ids, mm, out["pixel_values"], out["image_token_pooling"].long(), out["image_grids"].long()
    return ids, mm, None, None, None


def check_labels(example: Example, vocab_size: int) -> None:
    """Assert labels sit only on text-vocabulary tokens of branches (never visual, never root).

    Raises:
        AssertionError: naming the sample key and the offending position.
    """
    for b_i, branch in enumerate(example.branches):
        for pos, (tok, lab) in enumerate(zip(branch.ids, branch.labels)):
            if lab and tok >= vocab_size:
                raise AssertionError(f"{example.key}: label on token {tok} >= vocab_size {vocab_size} "
                                     f"(branch {b_i}, position {pos})")


def build_examples(processor: Any, key: str, dataset: str, texts: Sequence[str],
                   media_per_text: Sequence[Optional[Media]], max_seq_len: int, too_long: str = "truncate",
                   message_tree: bool = True, stats: Optional[collections.Counter] = None,
                   index: int = -1) -> list[Example]:
    """Encode the rendered conversations of one sample into examples.

    Conversations whose root (placeholder text and media) is the same share one root; with
    ``message_tree`` they become branches of one example, otherwise one example each.

    Args:
        processor: the ``Molmo2Processor``.
        key: the sample key (named in errors).
        dataset: the sample's dataset.
        texts: one training-layout text per record (``schemas.chat.render_chat``).
        media_per_text: the media each text refers to (the same object for a shared root).
        max_seq_len: the row length limit.
        too_long: ``truncate`` or ``skip`` (see the module docstring).
        message_tree: share roots as trees, or unroll.
        stats: counter of dropped/truncated/skipped events, updated in place.
        index: the sample's global index.

    Returns:
        The examples (empty when the sample was skipped).
    """
    stats = stats if stats is not None else collections.Counter()
    groups: dict[tuple[str, int], list[str]] = {}
    medias: dict[tuple[str, int], Optional[Media]] = {}
    for text, media in zip(texts, media_per_text):
        root, conv = split_root(text)
        gkey = (root, id(media))
        groups.setdefault(gkey, []).append(conv)
        medias[gkey] = media
    n_tree = len(texts)
    examples = []
    for (root_text, _), convs in groups.items():
        ids, mm, pixels, pooling, grids = encode_root(processor, root_text, medias[(root_text, _)])
        if len(ids) >= max_seq_len:
            stats["skipped_visual_too_long"] += 1
            return []
        branches = [encode_branch(processor.tokenizer, c, dataset) for c in convs]
        kept, total = [], len(ids)
        for b in branches:
            room = max_seq_len - total if message_tree else max_seq_len - len(ids)
            if len(b.ids) <= room:
                kept.append(b)
                total += len(b.ids) if message_tree else 0
            elif not kept and too_long == "truncate":
                kept.append(Branch(b.ids[:room], b.labels[:room], b.dataset))
                stats["truncated"] += 1
                total += room if message_tree else 0
            elif not kept:
                stats["skipped_too_long"] += 1
                return []
            else:
                stats["dropped_branches"] += 1
        n_tree -= len(branches) - len(kept)
        parts = [kept] if message_tree else [[b] for b in kept]
        for part in parts:
            examples.append(Example(key=key, dataset=dataset, root_ids=ids, root_mm=mm, pixel_values=pixels,
                                    pooling=pooling, grids=grids, branches=part, index=index))
    for ex in examples:
        ex.n_tree = n_tree
    return examples
