"""The model side of a run: build or load Molmo 2, parameter groups, schedule, parallel wrapping.

One job: everything between a ``ModelConfig``/``OptimConfig`` and a model plus optimizer plus
scheduler ready for the training loop.

* Loading: ``Molmo2ForConditionalGeneration.from_pretrained(path)`` (``init: pretrained``), or a
  fresh model from path's ``config.json`` or from a released architecture (``arch``), seeded.
* Parts (for the three learning rates): ``model.vision_tower`` (vision encoder),
  ``model.multi_modal_projector`` (connector: pooling attention + projector MLP), everything else
  (language model and head). Norm weights and biases get no weight decay.
* Schedule: linear warmup from 0, then cosine to ``min_lr_ratio`` x peak at ``max_steps``.
* Parallelism under torchrun: DDP, or FSDP2 (``fully_shard`` on every decoder and ViT layer,
  then the root; bf16 parameters with float32 reductions when ``precision: bf16`` on GPU). Both run
  on CPU with gloo.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from training.config import ModelConfig, OptimConfig, TrainConfig

__all__ = ["ARCHITECTURES", "PUBLISHED_SIZES", "arch_config", "load_model", "load_processor", "part_of",
           "param_groups", "build_optimizer", "lr_factor", "build_scheduler", "wrap_model"]

_SIGLIP2 = dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=25, num_attention_heads=16,
                num_key_value_heads=16, head_dim=72, image_size=[378, 378], patch_size=14)
"""SigLIP 2 so400m/14 at 378 px, trimmed to the 25 layers the adapter reads (of 27)."""
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "molmo2-4b": dict(
        text=dict(hidden_size=2560, num_attention_heads=32, num_key_value_heads=8, head_dim=128,
                  num_hidden_layers=36, intermediate_size=9728, vocab_size=151936, additional_vocab_size=128,
                  rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}),
        adapter_intermediate=9728),
    "molmo2-8b": dict(
        text=dict(hidden_size=4096, num_attention_heads=32, num_key_value_heads=8, head_dim=128,
                  num_hidden_layers=36, intermediate_size=12288, vocab_size=151936, additional_vocab_size=128,
                  rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}),
        adapter_intermediate=12288),
}
"""Released Molmo 2 architectures (allenai/molmo2 ``model_configs.py`` Qwen3-4B/8B + SigLIP 2 and
``convert_molmo2_to_hf.py``: untied head, adapter MLP width = LLM MLP width, ViT layers [-3, -9])."""
PUBLISHED_SIZES = {"molmo2-4b": "Molmo2-4B: Qwen3-4B (4.0B) + SigLIP 2 so400m (0.4B)",
                   "molmo2-8b": "Molmo2-8B: Qwen3-8B (8.2B) + SigLIP 2 so400m (0.4B)"}
"""The published sizes the built parameter counts are printed beside."""


def arch_config(name: str) -> Any:
    """The ``Molmo2Config`` of a released architecture.

    Args:
        name: a key of ``ARCHITECTURES``.

    Raises:
        KeyError: unknown name (the known ones are listed).
    """
    from transformers import Molmo2Config

    if name not in ARCHITECTURES:
        raise KeyError(f"unknown architecture {name!r}; known: {sorted(ARCHITECTURES)}")
    arch = ARCHITECTURES[name]
    text = arch["text"]
    adapter = dict(vision_feature_layer=[24, 18], hidden_size=1152, num_attention_heads=16, num_key_value_heads=16,
                   head_dim=72, intermediate_size=arch["adapter_intermediate"], text_hidden_size=text["hidden_size"])
    return Molmo2Config(text_config=dict(text), vision_config=dict(_SIGLIP2), adapter_config=adapter,
                        tie_word_embeddings=False)


def load_processor(path: str | Path) -> Any:
    """``AutoProcessor.from_pretrained(path)`` (offline: a local folder)."""
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(str(path))


def load_model(cfg: ModelConfig, seed: int = 0) -> Any:
    """Load or build the Molmo 2 model on the CPU, in float32.

    Args:
        cfg: the model settings (``build_tiny`` builds the tiny folder first when missing).
        seed: torch seed of a fresh initialization.

    Returns:
        ``Molmo2ForConditionalGeneration`` in train mode.

    Raises:
        FileNotFoundError: ``path`` holds no ``config.json`` (and nothing is to be built).
    """
    from transformers import Molmo2Config, Molmo2ForConditionalGeneration
    from transformers.utils import logging

    logging.disable_progress_bar()
    path = Path(cfg.path)
    if cfg.build_tiny:
        from training.tiny import ensure_tiny

        ensure_tiny(path, with_weights=cfg.init == "pretrained")
    if cfg.arch is None and not (path / "config.json").is_file():
        raise FileNotFoundError(f"model.path {path} holds no config.json (a save_pretrained folder of Molmo 2)")
    if cfg.init == "pretrained":
        model = Molmo2ForConditionalGeneration.from_pretrained(
            str(path), attn_implementation=cfg.attn_implementation, dtype=torch.float32)
    else:
        config = arch_config(cfg.arch) if cfg.arch else Molmo2Config.from_pretrained(str(path))
        config._attn_implementation = cfg.attn_implementation
        torch.manual_seed(seed)
        model = Molmo2ForConditionalGeneration(config)
    if cfg.gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    return model.train()


def part_of(name: str) -> str:
    """``vision``, ``connector`` or ``llm`` for a parameter name of the (unwrapped) model."""
    name = name.removeprefix("module.").replace("_fsdp_wrapped_module.", "")
    if name.startswith("model.vision_tower."):
        return "vision"
    if name.startswith("model.multi_modal_projector."):
        return "connector"
    return "llm"


def param_groups(model: torch.nn.Module, cfg: OptimConfig) -> list[dict[str, Any]]:
    """AdamW parameter groups: one per (part, with/without weight decay), empty ones left out.

    Returns:
        Groups with ``params``, ``lr`` (the part's peak), ``weight_decay`` and ``name``.
    """
    peak = {"vision": cfg.lr_vision, "connector": cfg.lr_connector, "llm": cfg.lr_llm}
    buckets: dict[tuple[str, bool], list] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        no_decay = param.ndim < 2 or "norm" in name
        buckets.setdefault((part_of(name), no_decay), []).append(param)
    groups = []
    for (part, no_decay), params in sorted(buckets.items()):
        groups.append({"params": params, "lr": peak[part], "initial_lr": peak[part],
                       "weight_decay": 0.0 if no_decay else cfg.weight_decay,
                       "name": f"{part}{'-no_decay' if no_decay else ''}"})
    return groups


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """AdamW over ``param_groups``."""
    return torch.optim.AdamW(param_groups(model, cfg), betas=tuple(cfg.betas), eps=cfg.eps)


def lr_factor(step: int, cfg: OptimConfig, max_steps: int) -> float:
    """Fraction of the peak learning rate used for optimizer step ``step`` (0-based).

    Linear warmup over ``warmup_steps`` (step 0 gets ``1 / warmup_steps``), then cosine decay from
    1 to ``min_lr_ratio`` at ``max_steps``.
    """
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    span = max(1, max_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig, max_steps: int) -> Any:
    """A ``LambdaLR`` applying ``lr_factor`` to every group's peak."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, cfg, max_steps))


def wrap_model(model: torch.nn.Module, config: TrainConfig, device: torch.device) -> torch.nn.Module:
    """Move to ``device`` and wrap for the configured data parallelism.

    Args:
        model: the unwrapped model (CPU, float32).
        config: the run config (``distributed``, ``precision``).
        device: this rank's device.

    Returns:
        The model itself (``none``), a ``DistributedDataParallel``, or the model sharded in place
        by FSDP2's ``fully_shard``.
    """
    model.to(device)
    if config.distributed == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)
    if config.distributed == "fsdp2":
        import torch.distributed as dist
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mesh = init_device_mesh(device.type, (dist.get_world_size(),))
        kwargs: dict[str, Any] = {"mesh": mesh}
        if config.precision == "bf16" and device.type == "cuda":
            kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        for layer in model.model.vision_tower.layers:
            fully_shard(layer, **kwargs)
        for layer in model.model.language_model.layers:
            fully_shard(layer, **kwargs)
        fully_shard(model, **kwargs)
    return model
