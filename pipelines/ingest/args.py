"""The ingest command's own arguments (standard library only, so ``--help`` stays instant)."""
from __future__ import annotations

import argparse

__all__ = ["add_ingest_arguments", "to_argv"]


def add_ingest_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Declare ``--manifest``, ``--out`` and the ingest options on ``p``; returns ``p``."""
    p.add_argument("--manifest", required=True, help="JSONL, CSV or Parquet manifest (path or fsspec URL)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--config", help="YAML settings (every key: pipelines/ingest/configs/ingest.yaml)")
    p.add_argument("--work-dir", help="raw store, frame store and failure memory (default: OUT/.work)")
    p.add_argument("--retry-failed", action="store_true", help="retry inputs that failed in an earlier run")
    p.add_argument("--window", type=float, help="cut fixed windows of at most this many seconds (e.g. 63)")
    p.add_argument("--cfr-mp4", action="store_true",
                   help="also write each clip as a constant-frame-rate H.264 mp4 (for track annotation)")
    return p


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
    return argv
