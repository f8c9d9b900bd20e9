"""DDP and FSDP2 on CPU (gloo) under torchrun: each rank reads different samples, both finish,
the losses equal one process's, and a 2-rank checkpoint resumes exactly on 1 rank."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_train_recipe import _progress, _run
from tests.train_helpers import tiny_model_dir

ROOT = Path(__file__).resolve().parents[1]


def _torchrun(run_dir: Path, *overrides: str) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "tests.train_runner", str(run_dir), "--model-dir", str(tiny_model_dir()), *overrides]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _reads(run_dir: Path, rank: int) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "reads" / f"rank{rank}.jsonl").read_text().splitlines()]


def _check_ranks_read_different_samples(run_dir: Path, steps: int) -> None:
    r0, r1 = _reads(run_dir, 0), _reads(run_dir, 1)
    assert [r["step"] for r in r0] == [r["step"] for r in r1] == list(range(steps))  # neither stopped early
    for a, b in zip(r0, r1):
        ia = {g for micro in a["indices"] for g in micro}
        ib = {g for micro in b["indices"] for g in micro}
        assert ia and ib and not ia & ib  # disjoint slices of the global sequence
        assert ia | ib == set(range(4 * a["step"], 4 * a["step"] + 4))  # together: the step's global batch


def test_ddp_two_ranks_then_resume_on_one_rank(tmp_path):
    one, _ = _run(tmp_path / "one", "eval.generate=false")  # 1 rank: micro 2 x accumulation 2
    want = {h["step"]: h["loss"] for h in one.history}
    ddp = tmp_path / "ddp"
    _torchrun(ddp, "distributed=ddp", "max_steps=4", "checkpoint.every_steps=2", "eval.generate=false")
    _check_ranks_read_different_samples(ddp, 4)  # 4 steps x 4 samples > 6 samples: crosses epochs
    got = _progress(ddp)
    for step in range(1, 5):
        assert got[step] == pytest.approx(want[step], rel=1e-5), step
    # the 2-rank checkpoint of step 2 resumes on 1 rank and gives the same losses
    resumed_dir = tmp_path / "resumed"
    shutil.copytree(ddp / "checkpoints" / "step-00000002", resumed_dir / "checkpoints" / "step-00000002")
    resumed, _ = _run(resumed_dir, "eval.generate=false")
    assert "saved with 2 ranks, now 1" in resumed.notes[0]
    assert "no RNG state" not in " ".join(resumed.notes)  # rank 0's RNG state was there
    for h in resumed.history:
        assert h["loss"] == pytest.approx(want[h["step"]], rel=1e-5), h
    assert [h["step"] for h in resumed.history] == [3, 4, 5, 6]


def test_fsdp2_two_ranks_train_validate_and_finish(tmp_path):
    one, one_result = _run(tmp_path / "one", "max_steps=3", "eval.max_samples=2")
    fsdp = tmp_path / "fsdp"
    _torchrun(fsdp, "distributed=fsdp2", "max_steps=3", "eval.max_samples=2", "checkpoint.every_steps=2")
    _check_ranks_read_different_samples(fsdp, 3)
    got = _progress(fsdp)
    for h in one.history:
        assert got[h["step"]] == pytest.approx(h["loss"], rel=1e-5), h
    results = [json.loads((fsdp / f"result-rank{r}.json").read_text()) for r in (0, 1)]
    assert results[0]["loss"] == pytest.approx(one_result["loss"], rel=1e-5) == results[1]["loss"]
    metrics = json.loads((fsdp / "metrics" / "metrics-step-00000003.json").read_text())
    assert all(s["items"] > 0 for s in metrics["sets"].values())
    # the sharded checkpoint of step 2 resumes in one plain process (DCP reshards)
    resumed_dir = tmp_path / "resumed"
    shutil.copytree(fsdp / "checkpoints" / "step-00000002", resumed_dir / "checkpoints" / "step-00000002")
    resumed, _ = _run(resumed_dir, "max_steps=3", "eval.generate=false")
    assert [h["step"] for h in resumed.history] == [3]
    assert resumed.history[0]["loss"] == pytest.approx(one.history[2]["loss"], rel=1e-5)
