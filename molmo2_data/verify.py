"""``molmo2-data verify VERSION_DIR...``: check published versions against their manifests.

Every shard's sha256, size and sample count, every listed file's sha256, the index's counts and
no unlisted shard (``shards.published.verify_version``). Exit codes: 0 all good, 1 a problem
found (each printed), 2 not a committed version.
"""
from __future__ import annotations

import argparse
import sys

__all__ = ["add_parser", "main"]


def add_parser(commands) -> argparse.ArgumentParser:
    """Declare ``verify`` on the command line's sub-parsers (standard library only)."""
    p = commands.add_parser(
        "verify", help="check a published version's checksums and counts against its manifest",
        description="Check every shard (sha256, bytes, samples read back) and every listed file of each "
        "version folder <root>/<dataset>/<X.Y.Z> against its manifest.json. Exit codes: 0 all good, "
        "1 problems found, 2 not a committed version.")
    p.add_argument("versions", nargs="+", metavar="VERSION_DIR", help="<root>/<dataset>/<X.Y.Z>")
    p.add_argument("--quick", action="store_true", help="checksums only: do not read samples back")
    p.set_defaults(handler=main)
    return p


def main(args: argparse.Namespace, extra: list[str]) -> int:
    """Verify each version folder; returns the exit code."""
    from shards.published import VersionNotFound, parse_version_dir, verify_version

    bad = False
    for url in args.versions:
        try:
            result = verify_version(*parse_version_dir(url), deep=not args.quick)
        except (ValueError, VersionNotFound) as exc:
            print(f"molmo2-data verify: {exc}", file=sys.stderr)
            return 2
        state = "ok" if result.ok else f"{len(result.problems)} problem(s)"
        print(f"{result.dataset} {result.version}: {state}: {result.shards} shards, {result.samples} samples, "
              f"{result.bytes} bytes")
        for problem in result.problems:
            print(f"  {problem}")
        bad = bad or not result.ok
    return 1 if bad else 0
