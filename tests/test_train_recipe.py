"""The recipe end to end on the tiny model: overfitting, validation, kill and resume, resume refusal."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.train_helpers import synthetic_sources, tiny_config, tiny_model_dir
from training.checkpoint import ResumeError, latest_checkpoint
from training.evaluate import METRIC_ROWS
from training.recipe import Recipe

ROOT = Path(__file__).resolve().parents[1]


def _run(run_dir, *overrides, sources=None):
    train, validation = sources or synthetic_sources()
    recipe = Recipe(tiny_config(run_dir, *overrides), train, validation, stream=open(os.devnull, "w"))
    recipe.setup()
    try:
        recipe.train()
        result = recipe.validate()
    finally:
        recipe.cleanup()
    return recipe, result


def _progress(run_dir) -> dict[int, float]:
    lines = Path(run_dir, "progress.jsonl").read_text().splitlines()
    return {r["step"]: r["loss"] for r in map(json.loads, lines) if r["kind"] == "train"}


def test_tiny_training_overfits_a_small_set_and_validation_writes_every_metric(tmp_path):
    recipe, result = _run(tmp_path / "run", "max_steps=30", "checkpoint.every_steps=30", "eval.max_samples=2",
                          sources=synthetic_sources(n_video=3, n_images=1))
    losses = [h["loss"] for h in recipe.history]
    assert len(losses) == 30 and losses[-1] < 0.5 * losses[0], losses
    written = json.loads(Path(tmp_path, "run", "metrics", "metrics-step-00000030.json").read_text())
    assert written["thresholds"]["point_distance_value"] == 0.05
    for name, entry in written["sets"].items():
        assert entry["loss"] is not None and entry["items"] > 0
        assert set(entry["metrics"]) == {k for k, _ in METRIC_ROWS}
        for metric in ("precision", "recall", "f1"):
            assert 0.0 <= entry["metrics"]["pointing"][metric] <= 1.0
        assert set(entry["metrics"]["counting"]) == {"exact", "close"}
        assert entry["metrics"]["tracking"] == {}  # no track data: printed as n/a (no data)
    reads = [json.loads(line) for line in Path(tmp_path, "run", "reads", "rank0.jsonl").read_text().splitlines()]
    assert [r["step"] for r in reads] == list(range(30))
    progress = [json.loads(line) for line in Path(tmp_path, "run", "progress.jsonl").read_text().splitlines()]
    assert {"loss", "lr", "samples_per_s", "eta_s", "step"} <= set(progress[0])


def test_kill_and_resume_gives_the_uninterrupted_losses(tmp_path):
    straight, _ = _run(tmp_path / "straight", "eval.generate=false")
    want = {h["step"]: h["loss"] for h in straight.history}
    run_dir = tmp_path / "killed"
    cmd = [sys.executable, "-m", "tests.train_runner", str(run_dir), "eval.generate=false", "--hang-after-step", "4",
           "--model-dir", str(tiny_model_dir())]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.time() + 120
    while not (run_dir / "hanging").exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.time() < deadline, "the run never reached step 4"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert latest_checkpoint(run_dir).name == "step-00000003"  # step 4 ran but was never saved
    resumed, _ = _run(run_dir, "eval.generate=false")
    assert resumed.notes and "resumed from" in resumed.notes[0] and "at step 3" in resumed.notes[0]
    got = {h["step"]: h["loss"] for h in resumed.history}
    assert sorted(got) == [4, 5, 6]
    for step in got:
        assert got[step] == pytest.approx(want[step], rel=1e-6, abs=1e-7), (step, got[step], want[step])


def test_resume_refuses_a_different_config_and_names_the_keys(tmp_path):
    _run(tmp_path / "run", "max_steps=3", "eval.generate=false")
    with pytest.raises(ResumeError) as info:
        _run(tmp_path / "run", "max_steps=6", "optim.lr_llm=0.5", "data.seed=3", "eval.generate=false")
    message = str(info.value)
    assert "optim.lr_llm: 0.003 in the checkpoint, 0.5 now" in message and "data.seed: 0" in message
    assert "max_steps" not in message  # may change on resume


def test_gradient_checkpointing_gives_the_same_losses(tmp_path):
    plain, _ = _run(tmp_path / "plain", "max_steps=2", "eval.generate=false")
    checkpointed, _ = _run(tmp_path / "ckpt", "max_steps=2", "eval.generate=false", "model.gradient_checkpointing=true")
    assert checkpointed.raw_model.is_activation_checkpointing
    for a, b in zip(plain.history, checkpointed.history):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-6) and b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-5)
