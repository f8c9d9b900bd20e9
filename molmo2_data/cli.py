"""``molmo2-data``: the command line, and the only module that knows every package.

A thin dispatcher: each command lives in its own module of ``molmo2_data`` (``demo``, ``ingest``,
``annotate`` with ``annotate_server``, ``synth``, ``publish``, ``verify``, ``diff``, ``listing`` (the
``list`` command), ``preview``, ``inspect``, ``train`` (with ``eval`` and ``export``)), which
declares its arguments with the standard library only and imports its heavy packages (Beam,
torch, transformers) inside its ``main``, so ``--help`` is instant.

Exit codes of every command: 0 done; 1 the run failed; 2 a usage or input error (a bad option,
a missing or unreadable input, a command not built yet), said in one line without a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

# The command modules, in the order ``--help`` lists them; each has ``add_parser(commands)``.
COMMAND_MODULES = ("demo", "ingest", "annotate", "synth", "publish", "verify", "diff", "listing", "preview",
                   "inspect", "train")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (used by ``main`` and by the tests of ``--help``)."""
    parser = argparse.ArgumentParser(
        prog="molmo2-data",
        description="Build, curate, version and train on Molmo 2 style video-grounding datasets.",
        epilog="Exit codes: 0 done, 1 the run failed, 2 a usage or input error.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"molmo2_data.{name}").add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``molmo2-data`` console script.

    Returns:
        The process exit code: 0 done, 1 the run failed, 2 a usage or input error.
    """
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "passthrough", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.handler(args, extra) or 0)
    except NotImplementedError as exc:
        print(f"molmo2-data {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
