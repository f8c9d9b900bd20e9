"""The demo's training stage: ``tiny-cpu`` on the versions the demo just published, then the table.

One job: train the tiny offline Molmo 2 (``training/configs/tiny-cpu.yaml``) for a short run on
every dataset the demo published (version 1.0.0, equal weights), validate with loss and
generation metrics, and print where the run is. The demo's few videos may leave a dataset with no
validation split; it is then validated on its training split, and the stage says so.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Callable

__all__ = ["DEMO_STEPS", "run_training"]

DEMO_STEPS = 40
"""Optimizer steps of the demo run (about 15 s of training on 2 CPU cores)."""


def run_training(out: Path, check: Callable[[str, object, object], None]) -> dict:
    """Train and validate ``tiny-cpu`` on ``out/published``; returns the validation result.

    Args:
        out: the demo folder (``published/`` inside).
        check: the demo's ``check_equal(what, got, expected)``.
    """
    from shards.published import list_datasets, list_versions, read_manifest
    from training.config import load_config
    from training.recipe import Recipe

    root = out / "published"
    train, validation, notes = [], [], []
    for dataset in list_datasets(str(root)):
        if "1.0.0" not in list_versions(str(root), dataset):
            continue
        splits = read_manifest(str(root), dataset, "1.0.0")["splits"]
        train.append(f"{{dataset: {dataset}, version: 1.0.0, split: train}}")
        split = "validation" if splits.get("validation", {}).get("samples") else "train"
        if split == "train":
            notes.append(f"{dataset} has no validation samples: validated on its training split")
        validation.append(f"{{dataset: {dataset}, version: 1.0.0, split: {split}}}")
    check("datasets published for training", len(train) > 0, True)
    overrides = [f"run_dir={out / 'train-run'}", f"model.path={out / 'tiny-molmo2'}", f"data.root={root}",
                 f"data.train=[{', '.join(train)}]", f"data.validation=[{', '.join(validation)}]",
                 f"max_steps={DEMO_STEPS}", "log.every_steps=10", "checkpoint.every_steps=20",
                 "checkpoint.resume=never", "eval.max_samples=8"]
    config = load_config("tiny-cpu", overrides)
    shutil.rmtree(config.run_dir, ignore_errors=True)  # a fresh run each demo, like published/
    print(f"[8/8] train tiny-cpu ({DEMO_STEPS} steps) on {', '.join(e.split(',')[0][10:] for e in train)} 1.0.0")
    for note in notes:
        print(f"  {note}")
    started = time.perf_counter()
    recipe = Recipe(config)
    result = recipe.run()
    losses = [h["loss"] for h in recipe.history]
    check("training steps run", len(losses), DEMO_STEPS)
    check(f"training loss fell ({losses[0]:.3f} -> {losses[-1]:.3f})", losses[-1] < losses[0], True)
    print(f"  loss {losses[0]:.3f} -> {losses[-1]:.3f} in {time.perf_counter() - started:.1f} s; run folder "
          f"{config.run_dir}")
    print(f"  export it: molmo2-data export --checkpoint {config.run_dir} --out {out / 'exported'}")
    return result
