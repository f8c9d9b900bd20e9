"""The ingest command's own arguments (standard library only, so ``--help`` stays instant)."""
from __future__ import annotations

import argparse
from importlib import resources
from typing import Sequence

from pipelines.common.settings import print_text_action

__all__ = ["add_ingest_arguments", "to_argv", "parse_ingest_argv", "default_config_text"]


def default_config_text() -> str:
    """The shipped default settings (``configs/ingest.yaml`` package data): every key, documented."""
    return resources.files("pipelines.ingest").joinpath("configs", "ingest.yaml").read_text(encoding="utf-8")


_PrintConfig = print_text_action(default_config_text)
"""``--print-config``: print the default YAML and exit (before the required options are checked)."""


def add_ingest_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Declare ``--manifest``, ``--out`` and the ingest options on ``p``; returns ``p``."""
    p.add_argument("--manifest", required=True, help="JSONL, CSV or Parquet manifest (path or fsspec URL)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--config", help="YAML settings; unknown keys are errors. Start from the defaults: "
                                    "molmo2-data ingest --print-config > my.yaml")
    p.add_argument("--print-config", action=_PrintConfig,
                   help="print the default settings (every key, with its meaning) as YAML and exit")
    p.add_argument("--work-dir", help="raw store, frame store and failure memory (default: OUT/.work)")
    p.add_argument("--retry-failed", action="store_true", help="retry inputs that failed in an earlier run")
    p.add_argument("--window", type=float, help="cut fixed windows of at most this many seconds (e.g. 63)")
    p.add_argument("--verbose", action="store_true",
                   help="show Beam's and its workers' logs on the console (else in WORK/ingest.log)")
    p.add_argument("--cfr-mp4", action="store_true",
                   help="also write each clip as a constant-frame-rate H.264 mp4 (for track annotation)")
    return p


def parse_ingest_argv(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str], list[str]]:
    """Split ``argv`` into the ingest options and the rest (Beam's pipeline options).

    Returns:
        (ingest options, the remaining arguments, the ingest option strings for suggestions).

    Raises:
        SystemExit: argparse's usage error (exit 2) for a missing or malformed ingest option.
    """
    parser = add_ingest_arguments(argparse.ArgumentParser(prog="molmo2-data ingest", allow_abbrev=False))
    args, rest = parser.parse_known_args(argv)
    own = [s for s in parser._option_string_actions if s.startswith("--")]
    return args, rest, own


def to_argv(args: argparse.Namespace) -> list[str]:
    """The ingest options of a parsed namespace, back as command-line arguments."""
    argv = ["--manifest", args.manifest, "--out", args.out]
    for flag, value in (("--config", args.config), ("--work-dir", args.work_dir), ("--window", args.window)):
        if value is not None:
            argv += [flag, str(value)]
    if args.retry_failed:
        argv.append("--retry-failed")
    if args.cfr_mp4:
        argv.append("--cfr-mp4")
    if getattr(args, "verbose", False):
        argv.append("--verbose")
    return argv
