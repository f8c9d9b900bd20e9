"""Shared pieces of the trainer tests: the tiny offline Molmo 2, frames, and plain forwards.

One job: build the tiny model folder once per test process (``training.tiny``), and give tests
small synthetic media and a reference per-token loss computed by running one example alone.
"""
from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from training.packing import collate, plan_rows
from training.processing import Example


@functools.lru_cache(maxsize=None)
def tiny_model_dir() -> Path:
    """The tiny Molmo 2 folder with seeded weights, built once per process."""
    from training.tiny import save_tiny

    root = Path(tempfile.mkdtemp(prefix="tiny-molmo2-"))
    atexit.register(shutil.rmtree, root, True)
    return save_tiny(root / "tiny", with_weights=True)


@functools.lru_cache(maxsize=None)
def tiny_processor():
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_model_dir())


def tiny_model():
    """A fresh copy of the tiny model in eval mode (float32)."""
    from transformers import Molmo2ForConditionalGeneration
    from transformers.utils import logging

    logging.disable_progress_bar()
    return Molmo2ForConditionalGeneration.from_pretrained(tiny_model_dir()).eval()


def frames(n: int, seed: int = 0, size: tuple[int, int] = (40, 60)) -> list[Image.Image]:
    """``n`` seeded noise images of ``size`` (height, width)."""
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)) for _ in range(n)]


def chat(*turns: str, root: str = "<|video|>") -> str:
    """A training-layout text: ``root`` then alternating user/assistant turns."""
    out = root
    for i in range(0, len(turns), 2):
        if i:
            out += "\n"
        out += f"<|im_start|>user\n{turns[i]}<|im_end|>\n<|im_start|>assistant\n{turns[i + 1]}<|im_end|>"
    return out


def forward_losses(model, examples: list[Example], rows: list[list[int]]) -> torch.Tensor:
    """Per-label-token losses of one collated forward (row-major label order)."""
    from training.loss import token_losses
    from training.packing import MODEL_KEYS

    batch = collate(examples, rows, pad_id=0)
    inputs = {k: batch[k] for k in MODEL_KEYS if k in batch}
    with torch.no_grad():
        logits = model(**inputs, logits_to_keep=batch["loss_positions"]).logits
    return token_losses(logits, batch["targets"])


def reference_losses(model, processor, text: str, media, branch_labels: list[bool]) -> torch.Tensor:
    """Per-label-token losses of ``text`` run the plain way: processor output straight into the model.

    No 4D mask, no packing, the model's own causal mask and visual block; ``branch_labels`` marks
    the label tokens of the conversation part (from ``encode_branch``), which must line up with the
    processor's tokens of the whole text (checked).
    """
    from transformers.video_utils import VideoMetadata

    from training.loss import token_losses

    kwargs = {}
    if media is not None and media.kind == "video":
        kwargs = dict(videos=[media.frames], video_metadata=[VideoMetadata(
            total_num_frames=len(media.frames), fps=1.0, frames_indices=list(media.times))], do_sample_frames=False)
    elif media is not None:
        kwargs = dict(images=media.frames)
    out = processor(text=text, return_tensors="pt", **kwargs)
    ids = out["input_ids"][0]
    labels = torch.zeros(len(ids), dtype=torch.bool)
    labels[len(ids) - len(branch_labels):] = torch.tensor(branch_labels)
    with torch.no_grad():
        logits = model(**out).logits[0]
    keep = torch.zeros_like(labels)
    keep[:-1] = labels[1:]
    return token_losses(logits[keep], ids[labels])
