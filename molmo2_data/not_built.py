"""The commands of steps not built yet: each is declared (so ``--help`` lists it) and exits 2.

Running one raises ``NotImplementedError`` naming the step that brings it; the command line
prints that one line and exits 2.
"""
from __future__ import annotations

import argparse

__all__ = ["COMMANDS", "add_parsers"]

# command -> (help, the step that brings it)
COMMANDS = {
    "synth": ("synthetic QA generators: CapQA, SubtitleQA, SynMultiImageQA", "[4/7] synthetic generators"),
    "build": ("merge assets, annotations and synthetic data into versioned shards",
              "[5/7] shards: merge, validate, publish"),
    "verify": ("check a published version's checksums, counts and schemas", "[5/7] shards: merge, validate, publish"),
    "train": ("train Molmo 2 on published shards", "[6/7] training"),
    "eval": ("evaluate a checkpoint on published shards", "[6/7] training"),
}


def _handler(name: str):
    def run(args: argparse.Namespace, extra: list[str]) -> int:
        raise NotImplementedError(f"'molmo2-data {name}' is not built yet; it lands with issue {COMMANDS[name][1]}.")

    return run


def add_parsers(commands, names=None) -> None:
    """Declare the unbuilt commands (all, or ``names`` in that order) on the sub-parsers."""
    for name in names or COMMANDS:
        help_text, step = COMMANDS[name]
        p = commands.add_parser(name, help=f"{help_text} (not built yet: {step.split(' ', 1)[0]})",
                                description=f"{help_text[0].upper()}{help_text[1:]}. Not built yet: "
                                            f"arrives with {step}.")
        p.set_defaults(handler=_handler(name))
