"""``molmo2-data inspect PATH``: show what a shard or a Parquet table holds."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["add_parser", "main"]


def add_parser(commands) -> argparse.ArgumentParser:
    """Declare ``inspect`` on the command line's sub-parsers (standard library only)."""
    p = commands.add_parser(
        "inspect",
        help="print what a shard (.tar) or table (.parquet) holds",
        description="List the samples of a WebDataset shard or the rows of a Parquet table.",
    )
    p.add_argument("path", help="a .tar shard or a .parquet table")
    p.add_argument("--limit", type=int, default=5, help="samples or rows to show (default: %(default)s)")
    p.set_defaults(handler=main)
    return p


def _show_tar(path: Path, limit: int) -> None:
    from shards.reader import iter_samples
    from shards.writer import file_sha256

    n = 0
    for sample in iter_samples(path):
        if n < limit:
            members = {k: len(v) for k, v in sample.items() if not k.startswith("__")}
            print(f"{sample['__key__']}: {json.dumps(members, sort_keys=True)}")
            if "json" in sample:
                text = sample["json"]
                text = text.decode("utf-8") if isinstance(text, bytes) else json.dumps(text)
                print(f"  json: {text[:300]}{'...' if len(text) > 300 else ''}")
        n += 1
    print(f"{path}: {n} samples, sha256 {file_sha256(path)}")


def _show_parquet(path: Path, limit: int) -> None:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    print(table.schema)
    for row in table.slice(0, limit).to_pylist():
        print(json.dumps(row, default=str, ensure_ascii=False)[:400])
    print(f"{path}: {table.num_rows} rows")


def main(args: argparse.Namespace, extra: list[str]) -> int:
    """Show ``args.path``; returns 0, or 2 when it is not a readable shard or table."""
    path = Path(args.path)
    if not path.is_file():
        print(f"molmo2-data inspect: {path} is not a file", file=sys.stderr)
        return 2
    if path.suffix == ".tar":
        _show_tar(path, args.limit)
    elif path.suffix == ".parquet":
        _show_parquet(path, args.limit)
    else:
        print(f"molmo2-data inspect: {path}: expected a .tar shard or a .parquet table", file=sys.stderr)
        return 2
    return 0
