"""The trainer's settings: one frozen dataclass per concern, a docstring per field, validated.

One job: define every setting of ``molmo2-data train`` / ``eval`` / ``export`` and load them from
a YAML file plus ``key=value`` overrides (``training/configs/*.yaml``; each file begins with its
launch command). The loading rules (unknown keys are errors, types are checked) are in
``training.typed_config``. No environment variable overrides a setting.

Units that matter:

* batch sizes count **samples**; a sample is one media item (a clip or an image set) of one
  dataset with every record of that dataset on it, trained as one message tree;
* mixture weights count samples too (normalized over the mixture), not records;
* steps are optimizer steps; an epoch is defined by steps (``max_steps``), the data never ends.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

from training.typed_config import ConfigError, apply_overrides, diff, from_data, to_data

__all__ = [
    "ConfigError", "ModelConfig", "MixtureEntry", "DataConfig", "OptimConfig", "TaskWeight", "LossConfig",
    "CheckpointConfig", "EvalConfig", "LogConfig", "TrainConfig", "CONFIG_DIR", "config_path",
    "load_config", "replace", "RESUME_MAY_DIFFER", "resume_differences",
]

CONFIG_DIR = Path(__file__).parent / "configs"
"""The shipped configs (package data)."""


@dataclass(frozen=True)
class ModelConfig:
    """Which Molmo 2 to train and how it runs."""

    path: str
    """Folder of a Molmo 2 as ``save_pretrained`` writes it: config.json, tokenizer and processor
    files, and the weights when ``init`` is ``pretrained``."""
    init: Literal["pretrained", "random"] = "pretrained"
    """``pretrained``: ``from_pretrained(path)``; ``random``: fresh weights from path's config.json
    (or from ``arch``)."""
    arch: Optional[Literal["molmo2-4b", "molmo2-8b"]] = None
    """Released architecture to build instead of path's config.json (``init: random`` only)."""
    build_tiny: bool = False
    """Build the tiny offline Molmo 2 (``training.tiny``) into ``path`` when it holds none."""
    attn_implementation: Literal["sdpa", "eager"] = "sdpa"
    """Attention kernel. Packing and message trees pass a 4D mask, which flash attention cannot take."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass (less memory, about a third more compute)."""

    def __post_init__(self) -> None:
        if not self.path:
            raise ConfigError("model.path must name a folder")
        if self.arch is not None and self.init != "random":
            raise ConfigError("model.arch builds fresh weights; it needs model.init=random")


@dataclass(frozen=True)
class MixtureEntry:
    """One published dataset version in the mixture."""

    dataset: str
    """Dataset name as published (``VideoPoint``, ``Cap``, ...)."""
    version: str
    """Published version, e.g. ``1.0.0``."""
    split: Literal["train", "validation", "test"] = "train"
    """Split to read."""
    weight: float = 1.0
    """Share of the samples drawn from this entry (weights count samples, not records), normalized
    over the mixture."""

    def __post_init__(self) -> None:
        if self.weight <= 0:
            raise ConfigError(f"mixture weight of {self.dataset} {self.version} must be > 0, got {self.weight}")


@dataclass(frozen=True)
class DataConfig:
    """What is read and how it becomes token sequences."""

    root: str
    """Root folder (or fsspec URL) of the published datasets: ``<root>/<dataset>/<version>/``."""
    train: tuple[MixtureEntry, ...]
    """The training mixture."""
    validation: tuple[MixtureEntry, ...] = ()
    """Validation sets (each evaluated on its own; weights unused)."""
    seed: int = 0
    """Seed of the global sample sequence, which is a pure function of (seed, global index)."""
    chunk: int = 4096
    """Mixture chunk: every chunk of this many consecutive global indices holds each entry's
    share (largest-remainder rounding), shuffled; every entry needs at least one per chunk."""
    style: Literal["default", "random"] = "default"
    """Prompt style per sample: the dataset's default style, or one drawn per sample from its
    styles with (seed, global index)."""
    max_seq_len: int = 4096
    """Most tokens of one packed row (visual tokens included)."""
    too_long: Literal["truncate", "skip"] = "truncate"
    """A sample longer than ``max_seq_len``: its branches that do not fit are dropped first (each
    counted); if its first branch alone does not fit, ``truncate`` cuts the row at
    ``max_seq_len`` (the answer's tail loses its loss), ``skip`` leaves the sample out (counted).
    A sample whose visual tokens alone do not fit is always skipped and counted."""
    max_skip_fraction: float = 0.01
    """Training stops with an error once more than this fraction of read samples was skipped."""
    message_tree: bool = True
    """Train the records of a sample as one message tree (visual tokens once, one branch per
    record); otherwise each record is its own example with its own copy of the visual tokens."""
    packing: bool = True
    """Pack the examples of a micro-batch into as few rows of ``max_seq_len`` as fit (first fit,
    longest first); otherwise one example per row."""
    num_workers: int = 0
    """Data-loader worker processes per rank (0: load in the training process)."""

    def __post_init__(self) -> None:
        if not self.train:
            raise ConfigError("data.train must list at least one mixture entry")
        if self.max_seq_len < 16:
            raise ConfigError(f"data.max_seq_len must be >= 16, got {self.max_seq_len}")
        if self.chunk < len(self.train):
            raise ConfigError(f"data.chunk ({self.chunk}) must be >= the number of mixture entries")
        if self.num_workers < 0 or not 0 <= self.max_skip_fraction <= 1:
            raise ConfigError("data.num_workers must be >= 0 and data.max_skip_fraction in [0, 1]")


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with one learning rate per part, linear warmup, cosine decay, clipping."""

    lr_connector: float = 5e-6
    """Peak learning rate of the adapter (pooling attention and projector). Molmo 2 SFT: 5e-6."""
    lr_vision: float = 5e-6
    """Peak learning rate of the vision encoder (ViT). Molmo 2 SFT: 5e-6."""
    lr_llm: float = 1e-5
    """Peak learning rate of the language model (embeddings, layers, head). Molmo 2 SFT: 1e-5."""
    weight_decay: float = 0.0
    """AdamW weight decay (not applied to norms and biases)."""
    betas: tuple[float, float] = (0.9, 0.95)
    """AdamW betas."""
    eps: float = 1e-6
    """AdamW epsilon."""
    warmup_steps: int = 200
    """Linear warmup from 0 to the peak, in optimizer steps."""
    min_lr_ratio: float = 0.0
    """Cosine decay ends at this fraction of the peak at ``max_steps``."""
    max_grad_norm: float = 1.0
    """Clip the global gradient norm to this (0 turns clipping off)."""

    def __post_init__(self) -> None:
        if min(self.lr_connector, self.lr_vision, self.lr_llm) < 0 or self.warmup_steps < 0:
            raise ConfigError("optim: learning rates and warmup_steps must be >= 0")
        if not 0 <= self.min_lr_ratio <= 1 or self.max_grad_norm < 0:
            raise ConfigError("optim: min_lr_ratio must be in [0, 1] and max_grad_norm >= 0")


@dataclass(frozen=True)
class TaskWeight:
    """Loss weighting of one dataset's messages (Molmo 2's ``MessageWeight``)."""

    weight: float = 1.0
    """Multiplies every loss token of the dataset's messages."""
    root_length: Optional[bool] = None
    """Override of ``loss.root_length`` for this dataset (None: keep it)."""
    root_subsegments: Optional[bool] = None
    """Override of ``loss.root_subsegments`` for this dataset (None: keep it)."""


@dataclass(frozen=True)
class LossConfig:
    """Molmo 2's token weighting (allenai/molmo2 ``text_preprocessor.py``); off by default.

    With weighting on, a branch's loss tokens get ``2 / sqrt(n)`` (n = its loss tokens) when
    ``root_length``, times ``1 / sqrt(k)`` (k = branches of its tree) when ``root_subsegments``,
    times its dataset's ``weight``. The loss is sum(weight x token loss) / sum(weight) over the
    global batch (all micro-batches and ranks), so it does not depend on how the batch is split.
    """

    weighting: bool = False
    """Turn the weighting on (off: every loss token weighs 1)."""
    root_length: bool = True
    """Weight each branch by 2 / sqrt(its loss tokens)."""
    root_subsegments: bool = True
    """Weight each branch by 1 / sqrt(branches of its message tree)."""
    task_weights: dict[str, TaskWeight] = field(default_factory=dict)
    """Per dataset name; Molmo 2 SFT: pointing and tracking 0.2, captions 0.1, both without the
    length and branch factors."""


@dataclass(frozen=True)
class CheckpointConfig:
    """When and how runs are saved and resumed."""

    every_steps: int = 500
    """Save every this many optimizer steps (and at the end)."""
    keep: int = 2
    """Keep the newest this many checkpoints (0 keeps all)."""
    resume: Literal["auto", "never"] = "auto"
    """``auto``: continue from the newest checkpoint in ``run_dir`` when there is one."""

    def __post_init__(self) -> None:
        if self.every_steps < 1 or self.keep < 0:
            raise ConfigError("checkpoint.every_steps must be >= 1 and checkpoint.keep >= 0")


@dataclass(frozen=True)
class EvalConfig:
    """Validation during and after training."""

    every_steps: int = 0
    """Validate every this many steps (0: only at the end)."""
    max_samples: int = 64
    """Samples per validation set (0: all)."""
    generate: bool = True
    """Also generate answers and compute the task metrics (pointing, counting, tracking, ...)."""
    max_new_tokens: int = 64
    """Longest generated answer."""
    point_distance: float = 0.05
    """A predicted point matches a true one within this distance (normalized image units)."""

    def __post_init__(self) -> None:
        if self.every_steps < 0 or self.max_samples < 0 or self.max_new_tokens < 1:
            raise ConfigError("eval: every_steps and max_samples must be >= 0, max_new_tokens >= 1")


@dataclass(frozen=True)
class LogConfig:
    """Progress output."""

    every_steps: int = 10
    """Print and log a progress line every this many steps."""
    tensorboard: bool = False
    """Also write TensorBoard events (needs the tensorboard package)."""
    wandb: bool = False
    """Also log to Weights & Biases (needs the wandb package and its login)."""
    wandb_project: str = "molmo2-data"
    """W&B project name."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs."""

    run_dir: str
    """Folder of the run: checkpoints, progress.jsonl, metrics, the resolved config."""
    model: ModelConfig
    """The model."""
    data: DataConfig
    """The data."""
    max_steps: int
    """Optimizer steps of the whole run."""
    global_batch_size: int
    """Samples per optimizer step over all ranks."""
    micro_batch_size: int = 1
    """Samples per forward pass on one rank; gradient accumulation = global / (micro x ranks)."""
    seed: int = 0
    """Seed of model initialization and of dropout."""
    precision: Literal["fp32", "bf16"] = "fp32"
    """``bf16``: autocast to bfloat16 on GPU (weights and optimizer stay float32)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """``auto``: cuda when available."""
    distributed: Literal["none", "ddp", "fsdp2"] = "none"
    """Data parallelism under torchrun (gloo on CPU, nccl on GPU)."""
    cpu_threads: int = 0
    """Torch CPU threads per process (0: torch's default). Small models on a busy or small CPU run
    several times faster with 1: idle threads spin while waiting for each other."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimizer and schedule."""
    loss: LossConfig = field(default_factory=LossConfig)
    """Loss weighting."""
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    """Checkpoints and resume."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Validation."""
    log: LogConfig = field(default_factory=LogConfig)
    """Progress output."""

    def __post_init__(self) -> None:
        if self.cpu_threads < 0:
            raise ConfigError(f"cpu_threads must be >= 0, got {self.cpu_threads}")
        if self.max_steps < 1 or self.global_batch_size < 1 or self.micro_batch_size < 1:
            raise ConfigError("max_steps, global_batch_size and micro_batch_size must be >= 1")
        if self.global_batch_size % self.micro_batch_size:
            raise ConfigError(f"global_batch_size ({self.global_batch_size}) must be a multiple of "
                              f"micro_batch_size ({self.micro_batch_size})")
        if self.model.arch is not None and self.model.build_tiny:
            raise ConfigError("model.arch and model.build_tiny exclude each other")

    def to_data(self) -> dict[str, Any]:
        """Plain nested data (what ``load_config`` reads back)."""
        return to_data(self)


RESUME_MAY_DIFFER = ("run_dir", "max_steps", "micro_batch_size", "device", "distributed", "cpu_threads", "data.num_workers",
                     "model.gradient_checkpointing", "model.attn_implementation", "checkpoint.", "eval.", "log.")
"""Keys (or prefixes ending in ``.``) that may change between a checkpoint and its resume; any
other difference makes resuming refuse, naming each key."""


def resume_differences(saved: dict[str, Any], current: TrainConfig) -> list[tuple[str, Any, Any]]:
    """Differences between a checkpoint's config and the current one that forbid resuming.

    Args:
        saved: the config stored in the checkpoint (plain data).
        current: the config of this run.

    Returns:
        ``[(key, saved value, current value)]`` for every key outside ``RESUME_MAY_DIFFER``.
    """
    out = []
    for key, old, new in diff(saved, current.to_data()):
        if any(key == k or (k.endswith(".") and key.startswith(k)) for k in RESUME_MAY_DIFFER):
            continue
        out.append((key, old, new))
    return out


def config_path(name_or_path: str) -> Path:
    """Resolve a shipped config name (``tiny-cpu``) or a path to a YAML file.

    Raises:
        ConfigError: neither a file nor a shipped name (the names are listed).
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = CONFIG_DIR / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    names = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    raise ConfigError(f"config {name_or_path!r} is neither a file nor a shipped config ({', '.join(names)})")


def load_config(name_or_path: str, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML config, apply ``key=value`` overrides, check everything.

    Args:
        name_or_path: a shipped config name or a YAML path.
        overrides: ``dotted.key=value`` strings (values parsed as YAML).

    Returns:
        The validated ``TrainConfig``.

    Raises:
        ConfigError: unreadable file, unknown key, wrong type, or a broken rule; the message
            names the key.
    """
    import yaml

    path = config_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping at the top level")
    data = apply_overrides(data, list(overrides or []))
    return from_data(TrainConfig, data)


def replace(config: TrainConfig, **changes: Any) -> TrainConfig:
    """``dataclasses.replace`` for nested keys: ``replace(c, **{"data.seed": 1})``."""
    data = apply_overrides(config.to_data(), [f"{k}={_yaml(v)}" for k, v in changes.items()])
    return from_data(TrainConfig, data)


def _yaml(value: Any) -> str:
    import json

    return json.dumps(to_data(value)) if not isinstance(value, str) else json.dumps(value)

