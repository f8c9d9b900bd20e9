"""Run the trainer on the synthetic test sets in its own process (plain or under torchrun).

One job: let the distributed and kill-and-resume tests start real processes running
``training.recipe.Recipe`` on the same seeded synthetic samples the in-process tests use.

    python -m tests.train_runner RUN_DIR [key=value ...] [--hang-after-step N]
    torchrun --nproc_per_node=2 -m tests.train_runner RUN_DIR distributed=ddp ...

``--hang-after-step N`` stops making progress after step N (the test then kills the process with
SIGKILL, mid-run, at a known point).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--hang-after-step", type=int, default=0)
    parser.add_argument("--model-dir", required=True)
    args = parser.parse_intermixed_args(argv)
    from tests.train_helpers import synthetic_sources, tiny_config
    from training.recipe import Recipe

    config = tiny_config(args.run_dir, f"model.path={args.model_dir}", *args.overrides)
    train, validation = synthetic_sources()
    recipe = Recipe(config, train, validation)
    try:
        def hang(step: int) -> None:
            if step == args.hang_after_step:
                Path(args.run_dir, "hanging").write_text(str(step))
                time.sleep(600)

        recipe.setup()
        recipe.train(on_step=hang)
        result = recipe.validate() if config.data.validation else {}
        out = Path(args.run_dir) / f"result-rank{recipe.rank}.json"
        out.write_text(json.dumps({"history": recipe.history, "notes": recipe.notes,
                                   "loss": result.get("loss"), "pid": os.getpid()}))
    finally:
        recipe.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
