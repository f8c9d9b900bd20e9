"""``molmo2-data list ROOT``: the published datasets, their committed versions, splits and counts.

Reads only manifests (``shards.published``); a version folder without one (an unfinished
publish) is not listed. Exit codes: 0 listed, 2 nothing published under ROOT.
"""
from __future__ import annotations

import argparse
import sys

__all__ = ["add_parser", "main"]


def add_parser(commands) -> argparse.ArgumentParser:
    """Declare ``list`` on the command line's sub-parsers (standard library only)."""
    p = commands.add_parser(
        "list", help="published datasets, versions, splits and counts",
        description="List every committed version under a published root with its splits and counts.")
    p.add_argument("root", help="the published tree (local path, gs://, s3://)")
    p.add_argument("--dataset", help="only this dataset")
    p.set_defaults(handler=main)
    return p


def main(args: argparse.Namespace, extra: list[str]) -> int:
    """Print the listing; returns the exit code."""
    from shards.published import list_datasets, list_versions, read_manifest

    datasets = [args.dataset] if args.dataset else list_datasets(args.root)
    found = 0
    for dataset in datasets:
        for version in list_versions(args.root, dataset):
            manifest = read_manifest(args.root, dataset, version)
            found += 1
            splits = ", ".join(f"{s}: {v['samples']} samples, {v['records']} records, {v['bytes']} bytes"
                               for s, v in manifest["splits"].items())
            parent = f" (parent {manifest['parent_version']})" if manifest["parent_version"] else ""
            print(f"{dataset} {version}{parent}: {splits}; {len(manifest['shards'])} shards")
    if not found:
        print(f"molmo2-data list: no committed version under {args.root}", file=sys.stderr)
        return 2
    return 0
