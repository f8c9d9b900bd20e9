"""``molmo2-data publish``: publish versioned datasets from ingest outputs and records (Apache Beam).

The work is ``pipelines.publish`` (``version.publish``); this module declares the command, maps
input and version errors to exit code 2, a dataset blocked by a dataset rule to exit code 1, and
prints per dataset what was committed and where the report is.
"""
from __future__ import annotations

import argparse
import sys

__all__ = ["add_parser", "main", "print_result"]


def add_parser(commands) -> argparse.ArgumentParser:
    """Declare ``publish`` on the command line's sub-parsers (standard library only)."""
    p = commands.add_parser(
        "publish",
        help="merge ingest outputs and records into versioned, validated WebDataset datasets",
        description="Join records with their media, apply review decisions, validate (Great Expectations "
        "record rules, dataset rules), write deterministic shards and commit <root>/<dataset>/<version>/ "
        "with manifest.json last. Publishing an existing version is a no-op when nothing differs and "
        "refused when something does. Other arguments must be Apache Beam pipeline options. Exit codes: "
        "0 published (or unchanged), 1 a dataset rule blocked a dataset, 2 a bad option or input, or a "
        "version conflict.",
    )
    p.add_argument("--version", required=True, help="the version to write, X.Y.Z")
    p.add_argument("--root", required=True, help="the published tree (local path, gs://, s3://)")
    p.add_argument("--ingest", nargs="+", required=True, metavar="DIR", help="ingest output folders (media)")
    p.add_argument("--records", nargs="+", required=True, metavar="DIR",
                   help="record folders: {Dataset}.parquet or {Dataset}.jsonl files")
    p.add_argument("--reviews", nargs="*", default=[], metavar="PATH",
                   help="review-decision files (.parquet/.jsonl) or folders of them")
    p.add_argument("--datasets", nargs="+", metavar="NAME", help="datasets to publish (default: all found)")
    p.add_argument("--licenses", nargs="+", metavar="SPDX", help="keep only media under these licenses")
    p.add_argument("--takedown", metavar="FILE", help="source ids to leave out (one a line)")
    p.add_argument("--parent-version", help="the version this one follows (default: highest below it)")
    p.add_argument("--shard-max-bytes", type=int, default=1_000_000_000,
                   help="largest shard in bytes (default: %(default)s)")
    p.add_argument("--max-failure-rate", type=float, default=0.2,
                   help="dataset rule: most failed records per record read (default: %(default)s)")
    p.add_argument("--allowed-licenses", nargs="+", metavar="SPDX",
                   help="dataset rule: licenses a dataset may hold (default: common open licenses)")
    p.add_argument("--verbose", action="store_true", help="show Beam's and the libraries' log lines")
    p.set_defaults(handler=main, passthrough=True)
    return p


def print_result(result, root: str, file=None) -> None:
    """Per dataset: committed (with counts and the report), unchanged, or blocked (rule and keys)."""
    from shards.published import join, version_dir

    file = file or sys.stdout
    for dataset, manifest in sorted(result.published.items()):
        splits = ", ".join(f"{s} {v['samples']} samples/{v['records']} records" for s, v in manifest["splits"].items())
        print(f"{dataset} {manifest['version']}: committed ({splits}; {len(manifest['shards'])} shards)", file=file)
        print(f"  report: {join(version_dir(root, dataset, manifest['version']), 'report.html')}", file=file)
    for dataset in result.unchanged:
        print(f"{dataset}: unchanged (the same version exists; nothing written)", file=file)
    for dataset, violations in sorted(result.blocked.items()):
        print(f"{dataset}: BLOCKED, nothing committed", file=file)
        for v in violations:
            keys = f"; keys: {', '.join(v['keys'])}" if v["keys"] else ""
            print(f"  rule {v['rule']}: {v['message']}{keys}", file=file)
    print(f"publish took {result.seconds:.1f} s", file=file)


def main(args: argparse.Namespace, extra: list[str]) -> int:
    """Run ``publish``; see the module docstring for the exit codes."""
    from pipelines.common.console import quiet_logging

    quiet_logging(args.verbose)  # before Beam is imported: its import logs "apitools not found"
    from pipelines.common.options import OptionError, check_pipeline_options
    from pipelines.publish.config import DEFAULT_LICENSES, PublishConfig, PublishConfigError
    from pipelines.publish.inputs import InputError
    from pipelines.publish.version import VersionConflict, publish

    try:
        check_pipeline_options(extra)
        config = PublishConfig(
            version=args.version, parent_version=args.parent_version,
            datasets=tuple(args.datasets) if args.datasets else None,
            licenses=tuple(args.licenses) if args.licenses else None,
            allowed_licenses=tuple(args.allowed_licenses) if args.allowed_licenses else DEFAULT_LICENSES,
            shard_max_bytes=args.shard_max_bytes, max_failure_rate=args.max_failure_rate)
        result = publish(args.root, args.ingest, args.records, config, reviews=args.reviews,
                         takedown=args.takedown, beam_args=list(extra))
    except (OptionError, PublishConfigError, InputError, VersionConflict) as exc:
        print(f"molmo2-data publish: {exc}", file=sys.stderr)
        return 2
    print_result(result, args.root)
    return 1 if result.blocked else 0
