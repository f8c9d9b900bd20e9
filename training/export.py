"""Checkpoints out of the trainer: find them, read their config, export a ``save_pretrained`` folder.

One job: turn a training checkpoint into what the rest of the world loads: a folder that
``AutoModelForImageTextToText.from_pretrained`` and ``AutoProcessor.from_pretrained`` read as is,
offline, holding the model (safetensors, float32), the tokenizer, the image and video processors,
and the processor's chat template, which is ``schemas.chat``'s rendering of the released Molmo 2
template (so ``apply_chat_template`` gives the released layout). The generation config ends
answers at ``<|im_end|>``. The folder is written under a temporary name and renamed when complete.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence

from training.checkpoint import latest_checkpoint, load_checkpoint, read_trainer_state
from training.config import TrainConfig
from training.model import load_model, load_processor
from training.typed_config import apply_overrides, from_data

__all__ = ["resolve_checkpoint", "checkpoint_config", "export_checkpoint"]


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint folder, or a run folder's newest checkpoint.

    Raises:
        FileNotFoundError: neither a checkpoint nor a run folder with one.
    """
    path = Path(path)
    if (path / "trainer.json").is_file():
        return path
    found = latest_checkpoint(path)
    if found is None:
        raise FileNotFoundError(f"{path} is neither a checkpoint folder (trainer.json) nor a run folder with one")
    return found


def checkpoint_config(checkpoint: Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """The config a checkpoint was trained with, with ``key=value`` overrides applied."""
    return from_data(TrainConfig, apply_overrides(read_trainer_state(checkpoint)["config"], list(overrides)))


def export_checkpoint(checkpoint: str | os.PathLike, out: str | os.PathLike,
                      overrides: Sequence[str] = (), config: Optional[TrainConfig] = None) -> Path:
    """Write ``out`` as a ``save_pretrained`` folder of the checkpoint's model and processor.

    Args:
        checkpoint: a checkpoint folder or a run folder (its newest checkpoint).
        out: the folder to write (replaced if it exists).
        overrides: ``key=value`` changes to the stored config (e.g. ``model.path=...`` when the
            model folder moved).
        config: use this config instead of the stored one.

    Returns:
        The written folder.
    """
    from transformers.utils import logging

    from schemas.chat import chat_template

    logging.disable_progress_bar()
    ckpt = resolve_checkpoint(checkpoint)
    config = config or checkpoint_config(ckpt, overrides)
    # the architecture from the model folder (or arch); the weights come from the checkpoint
    model = load_model(replace(config.model, init="random", build_tiny=False, gradient_checkpointing=False))
    load_checkpoint(ckpt, model, None, None, None)
    processor = load_processor(config.model.path)
    processor.chat_template = chat_template()
    tok = processor.tokenizer
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.bos_token_id = tok.bos_token_id
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        model.eval().save_pretrained(stage)
        processor.save_pretrained(stage)
        if out.exists():
            shutil.rmtree(out)
        os.replace(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out
