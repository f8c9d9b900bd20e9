"""``molmo2-data inspect PATH``: show what a shard or a Parquet table holds, one whole record at a time.

``inspect VERSION_DIR --key KEY`` (or ``SHARD.tar --key KEY``) shows one published sample: its
media with source, license and split, every record, and each record's conversation as the text
it trains as.

Each row (or shard sample) is a block of ``column: value`` lines, values in full (lists and
objects as compact JSON), so wide records stay readable. ``--columns a,b`` picks fields,
``--limit N`` the number of records (0: all), ``--schema`` prints a table's columns and types
instead of rows. Only the requested columns and rows are read.
"""
from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

__all__ = ["add_parser", "main", "format_record"]


class _Refused(Exception):
    """What the user asked for does not fit the file (exit 2)."""


def add_parser(commands) -> argparse.ArgumentParser:
    """Declare ``inspect`` on the command line's sub-parsers (standard library only)."""
    p = commands.add_parser(
        "inspect",
        help="print what a shard (.tar) or table (.parquet) holds",
        description="Show the records of a Parquet table or the samples of a WebDataset shard, one "
        "block of 'column: value' lines per record, values in full.",
    )
    p.add_argument("path", help="a .tar shard, a .parquet table, or a published version folder (with --key)")
    p.add_argument("--key", help="show this one sample of a shard or published version: its media, every "
                                 "record and each record's conversation")
    p.add_argument("--limit", type=int, default=5, help="records to show; 0 shows all (default: %(default)s)")
    p.add_argument("--columns", help="comma-separated columns (fields of a shard sample's JSON) to show; "
                                     "default: all")
    p.add_argument("--schema", action="store_true", help="print a table's columns and types instead of rows")
    p.set_defaults(handler=main)
    return p


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, ensure_ascii=False, separators=(", ", ": "))


def format_record(title: str, record: dict[str, Any], columns: Sequence[str] | None = None) -> str:
    """One record as a block: a title line, then ``column: value`` per column, aligned, values whole.

    Args:
        title: the block's first line (e.g. ``"row 3 of 120"``).
        record: column -> value.
        columns: the columns to show, in this order (default: all, in the record's order).

    Returns:
        The block's text (no trailing newline).
    """
    names = list(columns) if columns else list(record)
    width = max((len(n) for n in names), default=0)
    lines = [f"-- {title}"]
    for name in names:
        value = _text(record.get(name))
        lines.append(f"{name.ljust(width)}: {value}")
    return "\n".join(lines)


def _pick(wanted: str | None, available: Iterable[str], what: str) -> list[str] | None:
    """The requested columns, checked against the available ones (None: all)."""
    if not wanted:
        return None
    available = list(available)
    names = [c.strip() for c in wanted.split(",") if c.strip()]
    for name in names:
        if name not in available:
            near = difflib.get_close_matches(name, available, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise _Refused(f"no {what} {name!r}{hint}; there are: {', '.join(available)}")
    return names


def _show_parquet(path: Path, args: argparse.Namespace) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise _Refused(f"not a readable Parquet table ({exc})") from None
    schema, n = table.schema_arrow, table.metadata.num_rows
    if args.schema:
        names = _pick(args.columns, schema.names, "column") or schema.names
        width = max((len(c) for c in names), default=0)
        for name in names:
            field = schema.field(name)
            print(f"{name.ljust(width)}: {field.type}{'' if field.nullable else ' not null'}")
        print(f"{path}: {n} rows, {len(schema.names)} columns")
        return
    columns = _pick(args.columns, schema.names, "column")
    limit = n if args.limit <= 0 else min(args.limit, n)
    shown = 0
    if limit:
        for batch in table.iter_batches(batch_size=min(limit, 1024), columns=columns):
            for row in batch.to_pylist()[: limit - shown]:
                shown += 1
                print(format_record(f"row {shown} of {n}", row, columns))
            if shown >= limit:
                break
    more = f"; {n - shown} more (--limit)" if n > shown else ""
    print(f"{path}: {n} rows, {len(schema.names)} columns; showed {shown}{more}")


def _show_tar(path: Path, args: argparse.Namespace) -> None:
    from shards.reader import iter_samples
    from shards.writer import file_sha256

    if args.schema:
        raise _Refused("--schema is for tables; a shard's records are in its table "
                       f"({path.with_suffix('.parquet').name} beside it, or the run's clips.parquet)")
    n, shown = 0, 0
    for sample in iter_samples(path, decode_json=True):
        n += 1
        if args.limit > 0 and shown >= args.limit:
            continue
        record = sample.get("json") if isinstance(sample.get("json"), dict) else {}
        columns = _pick(args.columns, record, "field in the sample's JSON")
        members = {k: len(v) for k, v in sample.items()
                   if not k.startswith("__") and isinstance(v, (bytes, bytearray))}
        block = {"(members)": members, **{k: v for k, v in record.items() if columns is None or k in columns}}
        shown += 1
        print(format_record(f"sample {sample['__key__']}", block, ["(members)", *(columns or record)]))
    more = f"; {n - shown} more (--limit)" if n > shown else ""
    print(f"{path}: {n} samples, sha256 {file_sha256(path)}; showed {shown}{more}")


def _conversation_text(messages: Any) -> str:
    """A record's conversation as the text it trains as (``schemas.chat.render_chat``, the released
    template's layout)."""
    if messages is None:
        return "(none: the sample was published without conversations)"
    from schemas.chat import render_chat

    return render_chat(messages)


def show_sample(sample: dict[str, Any], out=None) -> None:
    """Print one published sample: members, media (source, license, split), records, conversations."""
    out = out or sys.stdout
    body = sample["json"]
    body = json.loads(body) if isinstance(body, (bytes, str)) else body
    members = {k: len(v) for k, v in sample.items() if not k.startswith("__") and isinstance(v, (bytes, bytearray))}
    media = body.get(body.get("media_type", ""), {})
    head = {"(members)": members, **{k: body.get(k) for k in ("dataset", "media_type", "source", "license", "split",
                                                               "source_ids")}, body.get("media_type", "media"): media}
    print(format_record(f"sample {sample['__key__']}", head), file=out)
    conversations = body.get("conversations") or {}
    for record in body.get("records", []):
        print(format_record(f"record {record['key']}", record), file=out)
        print(f"conversation:\n{_conversation_text(conversations.get(record['key']))}", file=out)


def _show_key(path: Path, key: str) -> None:
    if path.is_dir():
        from molmo2_data.preview import find_sample
        from shards.published import VersionNotFound

        try:
            sample = find_sample(str(path), key)
        except (KeyError, ValueError, VersionNotFound) as exc:
            raise _Refused(exc.args[0] if isinstance(exc, KeyError) else str(exc)) from None
    elif path.suffix == ".tar":
        from shards.reader import iter_samples

        sample = next((s for s in iter_samples(path) if s["__key__"] == key), None)
        if sample is None:
            raise _Refused(f"no sample {key!r} in the shard")
    else:
        raise _Refused("--key needs a .tar shard or a published version folder")
    show_sample(sample)


def main(args: argparse.Namespace, extra: list[str]) -> int:
    """Show ``args.path``; returns 0, or 2 when it is not a readable shard or table or a column is unknown."""
    path = Path(args.path)
    try:
        if getattr(args, "key", None):
            _show_key(path, args.key)
            return 0
        if not path.is_file():
            raise _Refused("is not a file")
        if path.suffix == ".tar":
            from shards.reader import MalformedShardError

            try:
                _show_tar(path, args)
            except MalformedShardError as exc:
                raise _Refused(f"not a well-formed shard ({exc})") from None
        elif path.suffix == ".parquet":
            _show_parquet(path, args)
        else:
            raise _Refused("expected a .tar shard or a .parquet table")
    except _Refused as exc:
        print(f"molmo2-data inspect: {path}: {exc}", file=sys.stderr)
        return 2
    return 0
