"""Checkpoints of a run: save everything needed to continue exactly, and load it back safely.

One job: write and read ``<run_dir>/checkpoints/step-NNNNNNNN/``:

* ``state/``: model and optimizer state through ``torch.distributed.checkpoint`` (DCP) with
  ``get_state_dict``/``set_state_dict``, so plain, DDP and FSDP2 runs write the same thing, and a
  checkpoint loads on another number of ranks (DCP reshards);
* ``rng-rank{r}.pt``: each rank's torch, numpy and Python random states (and CUDA's);
* ``trainer.json`` (written last, by rank 0; its presence marks the checkpoint complete): the
  step, the scheduler state, the data position (the next step: the sample sequence is a pure
  function of it), counters, the world size, and the run's config.

A checkpoint is written under ``step-NNNNNNNN.tmp`` and renamed when complete, so a run killed
while saving leaves the previous checkpoint as the newest. Resuming compares the saved config
with the current one and refuses, naming every differing key, unless the key may differ
(``training.config.RESUME_MAY_DIFFER``: rank layout, cadences, ``max_steps``).
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import warnings
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from training.config import TrainConfig, resume_differences

__all__ = ["ResumeError", "checkpoint_dir", "latest_checkpoint", "save_checkpoint", "load_checkpoint",
           "read_trainer_state"]


class ResumeError(RuntimeError):
    """A checkpoint does not match the current run's config."""


def _dist():
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def _barrier() -> None:
    if (dist := _dist()) is not None:
        dist.barrier()


@contextlib.contextmanager
def _single_process_quiet():
    """Silence DCP's warning that it saves in one process when no process group exists (intended)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        yield


def checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step-{step:08d}"


def latest_checkpoint(run_dir: str | Path) -> Optional[Path]:
    """The newest complete checkpoint of a run, or None."""
    root = Path(run_dir) / "checkpoints"
    done = sorted(p for p in root.glob("step-????????") if (p / "trainer.json").is_file()) if root.is_dir() else []
    return done[-1] if done else None


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: str | Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, config: TrainConfig, extra: dict[str, Any], keep: int = 0) -> Path:
    """Save a checkpoint of every rank's state after ``step`` optimizer steps (collective).

    Args:
        run_dir: the run folder.
        step: optimizer steps done (the data position: the next step to run).
        model, optimizer, scheduler: the training state (model wrapped or not).
        config: the run config (stored for the resume check).
        extra: JSON data kept with it (counters, losses).
        keep: keep only this many newest checkpoints (0: all).

    Returns:
        The checkpoint folder.
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    dist = _dist()
    rank = dist.get_rank() if dist else 0
    world = dist.get_world_size() if dist else 1
    final = checkpoint_dir(run_dir, step)
    stage = final.with_name(final.name + ".tmp")
    if rank == 0:
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir(parents=True)
    _barrier()
    model_sd, optim_sd = get_state_dict(model, optimizer)
    with _single_process_quiet():
        dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=str(stage / "state"))
    torch.save(_rng_state(), stage / f"rng-rank{rank}.pt")
    _barrier()
    if rank == 0:
        state = {"step": step, "world_size": world, "scheduler": scheduler.state_dict(),
                 "config": config.to_data(), **extra}
        (stage / "trainer.json").write_text(json.dumps(state, indent=1, sort_keys=True, default=_json_default))
        if final.exists():
            shutil.rmtree(final)
        os.replace(stage, final)
        if keep:
            complete = sorted(p for p in final.parent.glob("step-????????") if (p / "trainer.json").is_file())
            for old in complete[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
    _barrier()
    return final


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, torch.Tensor):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def read_trainer_state(path: str | Path) -> dict[str, Any]:
    """The ``trainer.json`` of a checkpoint folder."""
    return json.loads((Path(path) / "trainer.json").read_text())


def load_checkpoint(path: str | Path, model: torch.nn.Module, optimizer: Optional[torch.optim.Optimizer],
                    scheduler: Any, config: Optional[TrainConfig]) -> tuple[dict[str, Any], list[str]]:
    """Load a checkpoint into the (already wrapped) model, optimizer and scheduler (collective).

    Args:
        path: a checkpoint folder.
        model, optimizer, scheduler: to load into (optimizer and scheduler may be None: weights only).
        config: the current config to check against (None: no check, e.g. ``eval``).

    Returns:
        ``(trainer state, notes)``; notes say what could not be restored exactly (RNG states of
        ranks the checkpoint did not have).

    Raises:
        ResumeError: the configs differ in a key that must match; the message lists them all.
        FileNotFoundError: not a complete checkpoint.
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict

    path = Path(path)
    if not (path / "trainer.json").is_file():
        raise FileNotFoundError(f"{path} is not a complete checkpoint (no trainer.json)")
    state = read_trainer_state(path)
    if config is not None:
        differs = resume_differences(state["config"], config)
        if differs:
            lines = "\n".join(f"  {k}: {old!r} in the checkpoint, {new!r} now" for k, old, new in differs)
            raise ResumeError(f"cannot resume from {path}: the config differs in\n{lines}\n"
                              f"(start a new run_dir, or set checkpoint.resume=never)")
    if optimizer is None:
        model_sd = get_state_dict(model, [])[0]
        with _single_process_quiet():
            dcp.load({"model": model_sd}, checkpoint_id=str(path / "state"))
        set_state_dict(model, [], model_state_dict=model_sd, optim_state_dict={},
                       options=StateDictOptions(strict=True))
    else:
        model_sd, optim_sd = get_state_dict(model, optimizer)
        sd = {"model": model_sd, "optim": optim_sd}
        with _single_process_quiet():
            dcp.load(sd, checkpoint_id=str(path / "state"))
        set_state_dict(model, optimizer, model_state_dict=sd["model"], optim_state_dict=sd["optim"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    dist = _dist()
    rank = dist.get_rank() if dist else 0
    notes = []
    rng_file = path / f"rng-rank{rank}.pt"
    if rng_file.is_file():
        _set_rng_state(torch.load(rng_file, weights_only=False))
    else:
        seed = (config.seed if config else 0) + 1000 * state["step"] + rank
        torch.manual_seed(seed)
        notes.append(f"rank {rank}: no RNG state in the checkpoint (saved with {state['world_size']} ranks); "
                     f"seeded with {seed}")
    return state, notes
