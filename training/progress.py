"""Progress of a run: one console line and one JSON line per logged step; TensorBoard/W&B on request.

One job: report step, loss, learning rate, samples/s and ETA where a person (console) and a
program (``<run_dir>/progress.jsonl``) can read them. Only rank 0 writes. TensorBoard and W&B are
used only when the config asks for them, and asking without the package installed is an error
at start-up, not a silent no-op.
"""
from __future__ import annotations

import datetime
import json
import sys
import time
from pathlib import Path
from typing import Any, Optional, TextIO

__all__ = ["Progress", "check_loggers"]


def check_loggers(tensorboard: bool, wandb: bool) -> None:
    """Raise ``RuntimeError`` when a requested logger's package is not installed."""
    import importlib.util

    if tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise RuntimeError("log.tensorboard=true needs the tensorboard package (pip install tensorboard)")
    if wandb and importlib.util.find_spec("wandb") is None:
        raise RuntimeError("log.wandb=true needs the wandb package (pip install wandb)")


def _eta(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(max(0.0, seconds))))


class Progress:
    """Console and JSON-lines progress of rank 0.

    Args:
        run_dir: where ``progress.jsonl`` goes.
        max_steps: the run's last step (for the ETA).
        start_step: the first step of this process (after a resume).
        enabled: False on ranks other than 0 (everything is a no-op).
        tensorboard, wandb: also log there (packages checked by ``check_loggers``).
        wandb_project: the W&B project.
        stream: the console stream.
    """

    def __init__(self, run_dir: str | Path, max_steps: int, start_step: int = 0, enabled: bool = True,
                 tensorboard: bool = False, wandb: bool = False, wandb_project: str = "molmo2-data",
                 stream: Optional[TextIO] = None, config: Optional[dict] = None):
        self.enabled, self.max_steps, self.stream = enabled, max_steps, stream or sys.stdout
        self.start_time = self.last_time = time.perf_counter()
        self.start_step = self.last_step = start_step
        self.samples_since = 0
        self._tb = self._wandb = None
        self.path = Path(run_dir) / "progress.jsonl"
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(Path(run_dir) / "tensorboard"))
        if wandb:
            import wandb as wb

            self._wandb = wb.init(project=wandb_project, dir=str(run_dir), config=config or {})

    def add_samples(self, n: int) -> None:
        """Count samples trained since the last logged step."""
        self.samples_since += n

    def log(self, step: int, values: dict[str, Any], kind: str = "train") -> None:
        """Write one record (``step`` = optimizer steps done) and print its line."""
        if not self.enabled:
            return
        now = time.perf_counter()
        record: dict[str, Any] = {"kind": kind, "step": step, **values}
        if kind == "train":
            dt = max(1e-9, now - self.last_time)
            record["samples_per_s"] = self.samples_since / dt
            per_step = (now - self.start_time) / max(1, step - self.start_step)
            record["eta_s"] = per_step * (self.max_steps - step)
            self.last_time, self.last_step, self.samples_since = now, step, 0
        record["elapsed_s"] = now - self.start_time
        with self.path.open("a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
        if kind == "train":
            epoch = f"  epoch {record['epoch']:.2f}" if "epoch" in record else ""
            line = (f"step {step}/{self.max_steps}{epoch}  loss {record['loss']:.4f}  lr {record.get('lr', 0):.2e}  "
                    f"samples/s {record['samples_per_s']:.1f}  ETA {_eta(record['eta_s'])}")
        else:
            line = f"{kind} step {step}: " + "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                                      for k, v in values.items())
        print(line, file=self.stream, flush=True)
        numbers = {f"{kind}/{k}": v for k, v in record.items() if isinstance(v, (int, float)) and k != "step"}
        if self._tb is not None:
            for k, v in numbers.items():
                self._tb.add_scalar(k, v, step)
        if self._wandb is not None:
            self._wandb.log(numbers, step=step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
