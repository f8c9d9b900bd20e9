"""The commands of steps not built yet: each is declared (so ``--help`` lists it) and exits 2.

Running one, with any arguments, raises ``NotImplementedError("not built yet: arrives with
[n/9] ...")``; the command line prints that one line and exits 2.
"""
from __future__ import annotations

import argparse

__all__ = ["STEPS", "COMMANDS", "add_parsers"]

# The steps still to come, as the README's status table names them.
STEPS = {
    "train": "[7/9] the bundled trainer",
}

# command -> (help, the step that brings it)
COMMANDS = {
    "train": ("train Molmo 2 on published datasets", STEPS["train"]),
    "eval": ("evaluate a checkpoint on published datasets", STEPS["train"]),
    "export": ("export a trained checkpoint", STEPS["train"]),
}


def _handler(name: str):
    def run(args: argparse.Namespace, extra: list[str]) -> int:
        raise NotImplementedError(f"not built yet: arrives with {COMMANDS[name][1]}")

    return run


def add_parsers(commands) -> None:
    """Declare every unbuilt command on the command line's sub-parsers."""
    for name, (help_text, step) in COMMANDS.items():
        p = commands.add_parser(name, help=f"{help_text} (not built yet: {step.split(' ', 1)[0]})",
                                description=f"{help_text[0].upper()}{help_text[1:]}. Not built yet: "
                                            f"arrives with {step}.")
        p.set_defaults(handler=_handler(name), passthrough=True)
