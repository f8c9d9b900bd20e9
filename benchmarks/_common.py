"""Shared helpers for the benchmarks: record a figure with its baseline, print an aligned table.

One job: every benchmark script appends its results, in one format, to
``benchmarks/results.jsonl`` (one JSON object per line) and prints them for a human.

Record shape (one line): ``{"name", "figure", "baseline", "ratio" (figure / baseline), "unit",
"machine": {"platform", "cpu_count", "python"}, "timestamp" (UTC, ISO 8601), "extra"}``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from pathlib import Path
from typing import Any, Mapping, Sequence

__all__ = ["RESULTS_PATH", "machine_info", "print_table", "record"]

RESULTS_PATH = Path(__file__).resolve().parent / "results.jsonl"


def machine_info() -> dict[str, Any]:
    """Describe this machine: platform string, CPU count, Python version and implementation."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
    }


def record(
    name: str,
    figure: float,
    baseline: float,
    unit: str,
    machine: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    path: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Append one result line to ``benchmarks/results.jsonl``.

    Args:
        name: what was measured, e.g. ``"shard_writer.samples_per_s"``.
        figure: the measured value for this project's code.
        baseline: the same measure for the reference implementation, in the same run.
        unit: unit of figure and baseline, e.g. ``"samples/s"``.
        machine: description of the machine; default :func:`machine_info`.
        extra: anything else worth keeping (sizes, settings, raw timings).
        path: results file; default :data:`RESULTS_PATH`.

    Returns:
        The record written.

    Raises:
        ValueError: when baseline is zero or a figure is not finite.
    """
    figure, baseline = float(figure), float(baseline)
    if baseline == 0 or figure != figure or baseline != baseline:
        raise ValueError(
            f"{name}: need a finite figure and a non-zero baseline, got {figure!r} / {baseline!r}"
        )
    row = {
        "name": name,
        "figure": figure,
        "baseline": baseline,
        "ratio": figure / baseline,
        "unit": unit,
        "machine": dict(machine) if machine is not None else machine_info(),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "extra": dict(extra) if extra is not None else {},
    }
    target = Path(path) if path is not None else RESULTS_PATH
    with open(target, "a", encoding="utf-8") as f:
        f.write(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n")
    return row


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def print_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> None:
    """Print rows as an aligned text table (numbers right-aligned, text left-aligned).

    Args:
        rows: dicts sharing keys, e.g. the records returned by :func:`record`.
        columns: which keys to show, in order; default ``name, figure, baseline, ratio, unit``
            when present, else the keys of the first row.
    """
    if not rows:
        print("(no rows)")
        return
    if columns is None:
        default = ["name", "figure", "baseline", "ratio", "unit"]
        columns = [c for c in default if c in rows[0]] or list(rows[0])
    cells = [[_cell(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    numeric = [all(isinstance(row.get(c), (int, float)) for row in rows) for c in columns]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)
        ).rstrip()

    print(line(list(columns)))
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print(line(r))
