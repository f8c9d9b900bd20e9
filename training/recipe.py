"""The training recipe: setup -> train -> checkpoint -> validate -> cleanup.

One job: run a ``TrainConfig`` end to end, in one process or under ``torchrun`` (DDP or FSDP2;
gloo on CPU, nccl on GPU). Components are built in dependency order in ``setup`` (process group,
device, model, processor, optimizer and schedule, sources and the sample sequence, resume,
loader); ``train`` runs optimizer steps until ``max_steps``, saving and validating on the
configured cadences; ``cleanup`` releases everything.

One optimizer step on each rank: ``accum = global_batch / (ranks x micro_batch)`` micro-batches
(``training.mixture`` decides which samples); the total loss weight of the step is all-reduced
first, each micro-batch's ``sum(w * ce)`` is scaled by ``ranks / total`` before backward (DDP and
FSDP2 average gradients over ranks), gradients sync only on the last micro-batch, then clip,
AdamW, schedule. The reported loss is ``sum(w * ce) / total`` over the global batch, so it is the
same number whatever the rank count or accumulation.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, TextIO

import torch

from training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from training.config import TrainConfig
from training.data import STAT_KEYS, BatchStream, Source, render_training
from training.loss import weighted_sum
from training.mixture import Mixture
from training.model import build_optimizer, build_scheduler, load_model, load_processor, wrap_model
from training.packing import model_inputs
from training.progress import Progress, check_loggers

__all__ = ["Recipe", "run_evaluation"]


class Recipe:
    """One training run.

    Args:
        config: the run's settings.
        train_sources: the mixture's sources in ``config.data.train`` order (default: the
            published versions under ``config.data.root``).
        validation_sources: the validation sets' sources, likewise.
        render: messages -> training-layout text (default: ``schemas``' chat layout).
        stream: where progress lines go.
    """

    def __init__(self, config: TrainConfig, train_sources: Optional[Sequence[Source]] = None,
                 validation_sources: Optional[Sequence[Source]] = None,
                 render: Callable[[list], str] = render_training, stream: Optional[TextIO] = None):
        self.config = config
        self.train_sources, self.validation_sources = train_sources, validation_sources
        self.render, self.stream = render, stream or sys.stdout
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.counters: dict[str, int] = {}

    # ------------------------------------------------------------------ setup
    def setup(self) -> "Recipe":
        """Build every component; resume from the newest checkpoint when configured."""
        c = self.config
        if self.train_sources is None:  # first: a data mistake is said before a model is built
            from training.sources import open_sources

            self.train_sources = open_sources(c.data.root, c.data.train)
        self._build_common()
        self.optimizer = build_optimizer(self.model, c.optim)
        self.scheduler = build_scheduler(self.optimizer, c.optim, c.max_steps)
        self.mixture = Mixture([len(s) for s in self.train_sources], [e.weight for e in c.data.train],
                               c.data.seed, c.data.chunk)
        Path(c.run_dir).mkdir(parents=True, exist_ok=True)
        if c.checkpoint.resume == "auto" and (last := latest_checkpoint(c.run_dir)) is not None:
            state, notes = load_checkpoint(last, self.model, self.optimizer, self.scheduler, c)
            self.step, self.counters = state["step"], dict(state.get("counters", {}))
            self.notes += [f"resumed from {last} at step {self.step} (saved with {state['world_size']} "
                           f"ranks, now {self.world_size})"] + notes
        if self.rank == 0:
            (Path(c.run_dir) / "config.json").write_text(json.dumps(c.to_data(), indent=1, sort_keys=True))
        stream = BatchStream(self.train_sources, self.mixture, self.processor, c.data, c.loss, self.rank,
                             self.world_size, self.accum, c.micro_batch_size, self.step, self.render)
        self.loader = iter(torch.utils.data.DataLoader(
            stream, batch_size=None, num_workers=c.data.num_workers,
            prefetch_factor=2 if c.data.num_workers else None, persistent_workers=False))
        self.progress = Progress(c.run_dir, c.max_steps, self.step, self.rank == 0, c.log.tensorboard, c.log.wandb,
                                 c.log.wandb_project, self.stream, c.to_data())
        for note in self.notes:
            self._say(note)
        return self

    def setup_eval(self, checkpoint: Optional[Path]) -> "Recipe":
        """Build what validation needs and load a checkpoint's weights (None: the configured model)."""
        self._build_common()
        if checkpoint is not None:
            state, _ = load_checkpoint(checkpoint, self.model, None, None, None)
            self.step = state["step"]
        for note in self.notes:
            self._say(note)
        return self

    def _build_common(self) -> None:
        """Process group, device, threads, model (wrapped), processor, validation sources."""
        c = self.config
        self._init_distributed()
        if c.precision == "bf16" and self.device.type != "cuda":
            raise ValueError("precision=bf16 autocasts on GPU; on CPU use precision=fp32")
        per_step = self.world_size * c.micro_batch_size
        if c.global_batch_size % per_step:
            raise ValueError(f"global_batch_size {c.global_batch_size} is not a multiple of ranks x "
                             f"micro_batch_size = {self.world_size} x {c.micro_batch_size}")
        self.accum = c.global_batch_size // per_step
        check_loggers(c.log.tensorboard and self.rank == 0, c.log.wandb and self.rank == 0)
        if c.cpu_threads:
            torch.set_num_threads(c.cpu_threads)
        torch.manual_seed(c.seed)
        self.raw_model = load_model(c.model, seed=c.seed)
        self.processor = load_processor(c.model.path)
        self.model = wrap_model(self.raw_model, c, self.device)
        if self.validation_sources is None:
            from training.sources import EmptySource, open_sources

            self.validation_sources = open_sources(c.data.root, c.data.validation, missing_split_ok=True)
            self.notes += [f"validation set {s.reason}: reported as n/a (no data)"
                           for s in self.validation_sources if isinstance(s, EmptySource)]

    def _init_distributed(self) -> None:
        c = self.config
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if c.distributed == "none":
            if world > 1:
                raise ValueError(f"{world} processes were started but distributed=none; set distributed=ddp or fsdp2")
            self.rank, self.world_size = 0, 1
        else:
            import torch.distributed as dist

            if "RANK" not in os.environ:
                raise ValueError(f"distributed={c.distributed} needs torchrun (RANK/WORLD_SIZE are not set)")
            use_cuda = c.device == "cuda" or (c.device == "auto" and torch.cuda.is_available())
            if not dist.is_initialized():
                dist.init_process_group("nccl" if use_cuda else "gloo")
            self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        use_cuda = c.device == "cuda" or (c.device == "auto" and torch.cuda.is_available())
        if use_cuda:
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            self.device = torch.device("cuda", local)
        else:
            self.device = torch.device("cpu")

    def _say(self, line: str) -> None:
        if self.rank == 0:
            print(line, file=self.stream, flush=True)

    # ------------------------------------------------------------------ collectives
    def _all_sum(self, values: list[float]) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        if self.world_size > 1:
            import torch.distributed as dist

            dist.all_reduce(t)
        return t.tolist()

    def _sync_context(self, last: bool):
        if self.config.distributed == "ddp" and not last:
            return self.model.no_sync()
        if self.config.distributed == "fsdp2":
            self.model.set_requires_gradient_sync(last)
        return contextlib.nullcontext()

    def _autocast(self):
        if self.config.precision == "bf16":
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # ------------------------------------------------------------------ train
    def train_step(self) -> dict[str, Any]:
        """Run one optimizer step; return its log record (loss over the global batch)."""
        c = self.config
        micro_batches = [next(self.loader) for _ in range(self.accum)]
        for b in micro_batches:
            if b["step"] != self.step:  # pragma: no cover - a loader contract, checked loudly
                raise RuntimeError(f"loader delivered step {b['step']} while training step {self.step}")
        local_w = sum(float(b["weights"].sum()) for b in micro_batches)
        (total_w,) = self._all_sum([local_w])
        if total_w <= 0:
            raise RuntimeError(f"step {self.step}: no loss tokens in the global batch")
        self.model.train()
        loss_sum = 0.0
        for i, b in enumerate(micro_batches):
            with self._sync_context(i == len(micro_batches) - 1), self._autocast():
                logits = self.model(**model_inputs(b, self.device, c.model.attn_implementation)).logits
                part = weighted_sum(logits, b["targets"].to(self.device), b["weights"])
            (part * (self.world_size / total_w)).backward()
            loss_sum += float(part.detach())
        grad_norm = 0.0
        if c.optim.max_grad_norm > 0:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.optim.max_grad_norm))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        stats = [float(sum(b["stats"][k] for b in micro_batches)) for k in STAT_KEYS]
        summed = self._all_sum([loss_sum] + stats)
        for k, v in zip(STAT_KEYS, summed[1:]):
            self.counters[k] = self.counters.get(k, 0) + int(v)
        self._check_skips()
        self._record_reads(micro_batches)
        self.step += 1
        lrs = {g["name"]: g["lr"] for g in self.optimizer.param_groups}
        record = {"step": self.step, "loss": summed[0] / total_w, "grad_norm": grad_norm,
                  "lr": lrs.get("llm", next(iter(lrs.values()))), "loss_weight": total_w,
                  "epoch": self.mixture.epoch_of(self.step * c.global_batch_size)}
        self.history.append(record)
        return record

    def _check_skips(self) -> None:
        read = self.counters.get("read", 0)
        skipped = self.counters.get("replaced", 0)
        if read and skipped / read > self.config.data.max_skip_fraction:
            raise RuntimeError(f"{skipped} of {read} samples read were skipped by the length policy "
                               f"({self.counters}), more than data.max_skip_fraction="
                               f"{self.config.data.max_skip_fraction}")

    def _record_reads(self, micro_batches: list[dict[str, Any]]) -> None:
        """Append what this rank trained at this step to ``reads/rank{r}.jsonl`` (audit trail)."""
        path = Path(self.config.run_dir) / "reads" / f"rank{self.rank}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        rec = {"step": self.step, "indices": [b["indices"] for b in micro_batches],
               "keys": [b["keys"] for b in micro_batches]}
        with path.open("a") as f:
            f.write(json.dumps(rec) + "\n")

    def train(self, on_step: Optional[Callable[[int], None]] = None) -> list[dict[str, Any]]:
        """Train until ``max_steps``; checkpoint and validate on the configured cadences.

        Args:
            on_step: called with the step number after each step (and its checkpoint).

        Returns:
            The log records of the steps this process ran.
        """
        c = self.config
        while self.step < c.max_steps:
            record = self.train_step()
            self.progress.add_samples(c.global_batch_size)
            if self.step % c.log.every_steps == 0 or self.step == c.max_steps:
                self.progress.log(self.step, {k: v for k, v in record.items() if k != "step"})
            if self.step % c.checkpoint.every_steps == 0 or self.step == c.max_steps:
                self.save_checkpoint()
            if c.eval.every_steps and self.step % c.eval.every_steps == 0 and self.step < c.max_steps:
                self.validate()
            if on_step is not None:
                on_step(self.step)
        return self.history

    # ------------------------------------------------------------------ checkpoint / validate
    def save_checkpoint(self) -> Path:
        """Save the run's state after the current step (all ranks take part)."""
        return save_checkpoint(self.config.run_dir, self.step, self.model, self.optimizer, self.scheduler,
                               self.config, {"counters": self.counters, "history": self.history[-20:]},
                               self.config.checkpoint.keep)

    def validate(self) -> dict[str, Any]:
        """Validation loss and generation metrics of every validation set (all ranks take part)."""
        from training.evaluate import evaluate

        result = evaluate(self.model, self.raw_model, self.processor, self.config, self.validation_sources,
                          self.rank, self.world_size, self.device, self.render, step=self.step,
                          stream=self.stream)
        if self.rank == 0 and getattr(self, "progress", None) is not None:
            self.progress.log(self.step, {"val_loss": result["loss"]}, kind="validation")
        return result

    def cleanup(self) -> None:
        """Close logs and the process group."""
        if getattr(self, "progress", None) is not None:
            self.progress.close()
        if self.config.distributed != "none":
            import torch.distributed as dist

            if dist.is_initialized():
                dist.barrier()
                dist.destroy_process_group()

    def run(self) -> dict[str, Any]:
        """setup -> train -> validate -> cleanup; returns the final validation result (rank 0)."""
        started = time.perf_counter()
        try:
            self.setup()
            self.train()
            result = self.validate() if self.config.data.validation else {}
            result["train_seconds"] = time.perf_counter() - started
            return result
        finally:
            self.cleanup()


def run_evaluation(checkpoint: str | Path, overrides: Sequence[str] = (), out_dir: Optional[Path] = None,
                   stream: Optional[TextIO] = None,
                   validation_sources: Optional[Sequence[Source]] = None) -> dict[str, Any]:
    """``molmo2-data eval``: validate any checkpoint (or run folder) with its stored config.

    Args:
        checkpoint: a checkpoint folder or a run folder (its newest checkpoint).
        overrides: ``key=value`` changes to the stored config (``data.validation=...``,
            ``eval.max_samples=...``, ``model.path=...``).
        out_dir: where the metrics file goes (default: the checkpoint's ``metrics/``).
        stream: where the table is printed.
        validation_sources: instead of the published validation sets of the config.

    Returns:
        ``training.evaluate.evaluate``'s result.
    """
    from training.evaluate import evaluate
    from training.export import checkpoint_config, resolve_checkpoint

    ckpt = resolve_checkpoint(checkpoint)
    config = checkpoint_config(ckpt, overrides)
    recipe = Recipe(config, validation_sources=validation_sources, stream=stream)
    try:
        recipe.setup_eval(ckpt)
        return evaluate(recipe.model, recipe.raw_model, recipe.processor, config, recipe.validation_sources,
                        recipe.rank, recipe.world_size, recipe.device, recipe.render, step=recipe.step,
                        out_dir=out_dir or ckpt / "metrics", stream=recipe.stream)
    finally:
        recipe.cleanup()
