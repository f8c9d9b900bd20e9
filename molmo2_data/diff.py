"""``molmo2-data diff A B``: samples added, removed (and why), changed and moved between two versions.

``pipelines.publish.diff.diff_versions`` does the work from the two versions' indexes; reasons for
removals come from the newer version's exclusions and failures. Exit codes: 0 shown, 2 not
committed versions of one dataset.
"""
from __future__ import annotations

import argparse
import json
import sys

__all__ = ["add_parser", "main"]


def add_parser(commands) -> argparse.ArgumentParser:
    """Declare ``diff`` on the command line's sub-parsers (standard library only)."""
    p = commands.add_parser(
        "diff", help="samples added, removed, changed and moved between two published versions",
        description="Compare two version folders of one dataset (<root>/<dataset>/<X.Y.Z>) by sample key.")
    p.add_argument("a", metavar="A", help="the older version folder")
    p.add_argument("b", metavar="B", help="the newer version folder")
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")
    p.add_argument("--limit", type=int, default=20, help="keys listed per kind of change (default: %(default)s)")
    p.set_defaults(handler=main)
    return p


def main(args: argparse.Namespace, extra: list[str]) -> int:
    """Print the differences; returns the exit code."""
    from pipelines.publish.diff import diff_versions
    from shards.published import VersionNotFound, parse_version_dir

    try:
        root_a, dataset_a, a = parse_version_dir(args.a)
        root_b, dataset_b, b = parse_version_dir(args.b)
        if dataset_a != dataset_b:
            raise ValueError(f"two datasets ({dataset_a}, {dataset_b}): diff compares versions of one dataset")
        result = diff_versions(root_a, dataset_a, a, b, root_b)
    except (ValueError, VersionNotFound) as exc:
        print(f"molmo2-data diff: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=1, sort_keys=True))
        return 0
    n = args.limit
    print(f"{dataset_a} {a} -> {b}: {len(result['added'])} added, {len(result['removed'])} removed, "
          f"{len(result['changed'])} changed, {len(result['moved'])} moved split, {result['unchanged']} unchanged")
    for key in result["added"][:n]:
        print(f"  + {key}")
    for key, why in list(result["removed"].items())[:n]:
        print(f"  - {key}: {why}")
    for key in result["changed"][:n]:
        print(f"  ~ {key}")
    for key, how in list(result["moved"].items())[:n]:
        print(f"  > {key}: {how}")
    return 0
