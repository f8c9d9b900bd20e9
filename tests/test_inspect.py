"""`molmo2-data inspect`: whole records as blocks, chosen columns, a row limit, the schema on request."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from molmo2_data import cli

LONG = "a caption that goes on " * 30  # far wider than any terminal: must come through whole


@pytest.fixture()
def table(tmp_path):
    rows = [{"key": f"k{i}", "caption": f"{LONG}#{i}", "timestamps": [0.0, 0.5 * i], "extra": {"n": i}}
            for i in range(4)]
    path = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path, rows


def _inspect(capsys, *argv):
    code = cli.main(["inspect", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_rows_are_whole_blocks_without_the_schema(table, capsys):
    path, rows = table
    code, out, _ = _inspect(capsys, path)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "-- row 1 of 4"
    assert f"caption   : {rows[0]['caption']}" in lines  # the whole value, not cut at a width
    assert "timestamps: [0.0, 0.5]" in lines and 'extra     : {"n": 1}' in lines
    assert not any(line.startswith(("key: string", "caption: string", "-- schema")) for line in lines)
    assert "string" not in out  # no schema unless asked
    assert lines[-1] == f"{path}: 4 rows, 4 columns; showed 4"


def test_columns_and_limit(table, capsys):
    path, rows = table
    code, out, _ = _inspect(capsys, path, "--columns", "timestamps,key", "--limit", "2")
    assert code == 0
    assert out.splitlines() == ["-- row 1 of 4", "timestamps: [0.0, 0.0]", "key       : k0",
                                "-- row 2 of 4", "timestamps: [0.0, 0.5]", "key       : k1",
                                f"{path}: 4 rows, 4 columns; showed 2; 2 more (--limit)"]
    code, out, _ = _inspect(capsys, path, "--limit", "0", "--columns", "key")
    assert [line for line in out.splitlines() if line.startswith("key")] == [f"key: k{i}" for i in range(4)]


def test_schema_on_request(table, capsys):
    path, _ = table
    code, out, _ = _inspect(capsys, path, "--schema")
    assert code == 0
    assert out.splitlines() == ["key       : string", "caption   : string", "timestamps: list<element: double>",
                                "extra     : struct<n: int64>", f"{path}: 4 rows, 4 columns"]


def test_unknown_column_is_refused_with_the_nearest(table, capsys):
    path, _ = table
    code, out, err = _inspect(capsys, path, "--columns", "key,captoin")
    assert code == 2 and out == ""
    assert "no column 'captoin' (did you mean 'caption'?)" in err and "there are: key, caption" in err


def test_not_a_table(tmp_path, capsys):
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    code, _, err = _inspect(capsys, bad)
    assert code == 2 and "not a readable Parquet table" in err and "Traceback" not in err


def test_shard_samples_with_chosen_fields(tmp_path, capsys):
    from shards.writer import write_shard

    samples = [{"__key__": f"s{i}", "json": {"key": f"s{i}", "caption": LONG, "n": i}, "000.jpg": b"x" * (10 + i)}
               for i in range(3)]
    write_shard(tmp_path / "a.tar", samples, fsync=False)
    code, out, _ = _inspect(capsys, tmp_path / "a.tar", "--limit", "1", "--columns", "caption")
    assert code == 0
    lines = out.splitlines()
    assert lines[:3] == ["-- sample s0", '(members): {"000.jpg": 10}', f"caption  : {LONG}"]
    assert lines[3].startswith(f"{tmp_path / 'a.tar'}: 3 samples, sha256 ")
    assert lines[3].endswith("; showed 1; 2 more (--limit)")
    code, _, err = _inspect(capsys, tmp_path / "a.tar", "--schema")
    assert code == 2 and "--schema is for tables" in err
