"""``molmo2-data train | eval | export``: the bundled Molmo 2 trainer's commands.

``train --config C [key=value ...]`` runs ``training.recipe.Recipe`` (also under
``torchrun --nproc_per_node=N -m molmo2_data train ...``); ``eval --checkpoint P`` validates any
checkpoint or run folder; ``export --checkpoint P --out DIR`` writes a ``save_pretrained`` folder.
Arguments are declared with the standard library only, so ``--help`` is instant. A bad config, a
checkpoint that does not match, or a missing input exits 2 with one line; a failed run exits 1.
"""
from __future__ import annotations

import argparse
import sys

__all__ = ["add_parser", "main_train", "main_eval", "main_export"]

_CONFIGS = "a shipped config (tiny-cpu, molmo2-4b, molmo2-8b) or a YAML path"


def add_parser(commands) -> None:
    """Declare ``train``, ``eval`` and ``export`` on the command line's sub-parsers."""
    p = commands.add_parser("train", help="train Molmo 2 on published datasets",
                            description="Train Molmo 2 (transformers) on a mixture of published dataset versions. "
                            "Runs under torchrun for DDP/FSDP2; resumes from the newest checkpoint of run_dir.")
    p.add_argument("--config", required=True, help=_CONFIGS)
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. optim.lr_llm=1e-5")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    p.set_defaults(handler=main_train)

    p = commands.add_parser("eval", help="evaluate a checkpoint on published datasets",
                            description="Validation loss and generation metrics of a checkpoint (or a run "
                            "folder's newest), with the config it was trained with plus overrides.")
    p.add_argument("--checkpoint", required=True, help="a checkpoint folder or a run folder")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. eval.max_samples=0")
    p.add_argument("--out", help="folder of the metrics file (default: <checkpoint>/metrics)")
    p.set_defaults(handler=main_eval)

    p = commands.add_parser("export", help="export a trained checkpoint as a save_pretrained folder",
                            description="Write the model, tokenizer, processors and chat template of a checkpoint "
                            "as a folder AutoModelForImageTextToText / AutoProcessor load offline.")
    p.add_argument("--checkpoint", required=True, help="a checkpoint folder or a run folder")
    p.add_argument("--out", required=True, help="the folder to write")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides (e.g. model.path=...)")
    p.set_defaults(handler=main_export)


def _input_errors() -> tuple[type, ...]:
    from training.checkpoint import ResumeError
    from training.config import ConfigError

    return (ConfigError, ResumeError, FileNotFoundError, KeyError)


def _fail(command: str, exc: BaseException) -> int:
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    print(f"molmo2-data {command}: {message}", file=sys.stderr)
    return 2


def main_train(args: argparse.Namespace, extra: list[str]) -> int:
    """Train; returns 0 done, 2 a bad config or a checkpoint that does not match."""
    from training.config import load_config

    try:
        config = load_config(args.config, list(args.overrides) + list(extra))
        if args.print_config:
            import yaml

            print(yaml.safe_dump(config.to_data(), sort_keys=False), end="")
            return 0
        from training.recipe import Recipe

        result = Recipe(config).run()
    except _input_errors() as exc:
        return _fail("train", exc)
    if result.get("train_seconds") is not None:
        print(f"trained {config.max_steps} steps in {result['train_seconds']:.1f} s; run folder {config.run_dir}")
    return 0


def main_eval(args: argparse.Namespace, extra: list[str]) -> int:
    """Evaluate a checkpoint; returns 0 done, 2 a missing checkpoint or a bad override."""
    from pathlib import Path

    try:
        from training.recipe import run_evaluation

        run_evaluation(args.checkpoint, list(args.overrides) + list(extra), Path(args.out) if args.out else None)
    except _input_errors() as exc:
        return _fail("eval", exc)
    return 0


def main_export(args: argparse.Namespace, extra: list[str]) -> int:
    """Export a checkpoint; returns 0 done, 2 a missing checkpoint or a bad override."""
    try:
        from training.export import export_checkpoint

        out = export_checkpoint(args.checkpoint, args.out, list(args.overrides) + list(extra))
    except _input_errors() as exc:
        return _fail("export", exc)
    print(f"exported to {out} (AutoModelForImageTextToText / AutoProcessor.from_pretrained)")
    return 0
