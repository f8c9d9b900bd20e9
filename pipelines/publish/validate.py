"""Record rules checked with Great Expectations on flattened tables, one table per batch.

One job: decide which records of a batch break a record rule, and name the rule. Two sources
of rules, one table:

* **from the schema** (``schema_bounds``): every numeric leaf and list length that the record's
  pydantic model bounds (``minimum``, ``maximum``, ``minItems``...; walked from
  ``model_json_schema()``, so the suite follows the schema and is never written twice). The
  flattened table holds, per record, the smallest and largest value of each leaf path
  (``points[].x:min``, ``points[].x:max``, ``objects[]:len``...), checked with
  ``ExpectColumnValuesToBeBetween``;
* **what a schema cannot see** (``RULES``): a record against its media (point and track times
  among the clip's stored sample times, the clip's bounds and video, the record's images in its
  set of 2-5) and rules across fields (counts equal to points, track ids consistent over time).
  Each is a precomputed boolean column ``rule:<name>``, checked with
  ``ExpectColumnValuesToBeInSet([True])``. (Wrong answers distinct from the answer and each other
  after normalizing, and at least three of them, are schema rules since schema version 2 of
  CapQA; records are validated against the schema before they get here.)

Why precomputed columns: in Great Expectations 1.24, ``UnexpectedRowsExpectation`` (arbitrary
row conditions) has no pandas provider ("No provider found for unexpected_rows_query.table
using PandasExecutionEngine"; checked), while column-map expectations on pandas report the
failing rows by key (``result_format="COMPLETE"`` with ``unexpected_index_column_names``).
See ../shared/reference/molmo2-model.md (great-expectations 1.24).

Record shape in: validation rows ``{"dataset", "record", "meta"}`` (meta: the media item's,
see ``pipelines.publish.samples``). Out: the rows that passed, and ``(row, rule, message)``
for each row that broke at least one rule (its first rule, in suite order).
"""
from __future__ import annotations

import math
import re
from typing import Any, Callable, Iterable, Optional

from schemas.record_types import MAX_SET_IMAGES, MIN_SET_IMAGES, TIME_TOLERANCE

__all__ = ["RULES", "make_rules", "schema_bounds", "flatten", "RecordRules"]

Row = dict[str, Any]
Rule = Callable[[dict, dict], bool]


def _among(times: Iterable[float], allowed: list[float]) -> bool:
    return all(any(abs(t - a) <= TIME_TOLERANCE for a in allowed) for t in times)


def _clip_matches(r: dict, m: dict) -> bool:
    clip = m["record"]
    return (m["kind"] == "clip" and r["video_id"] == clip["video_id"]
            and abs(r["clip_start"] - clip["start"]) <= TIME_TOLERANCE
            and abs(r["clip_end"] - clip["end"]) <= TIME_TOLERANCE)


def _points_in_frame(points: Iterable[Optional[dict]]) -> bool:
    """Every point with a position lies in the frame (absent and position-less occluded ones pass)."""
    return all(p is None or p.get("x") is None or (0.0 <= p["x"] <= 1.0 and 0.0 <= p["y"] <= 1.0) for p in points)


def _track_ids_consistent(r: dict, m: dict) -> bool:
    ids = [o["object_id"] for o in r["objects"]]
    return len(ids) == len(set(ids)) and all(len(o["points"]) == len(r["timestamps"]) for o in r["objects"])


def _set_images(r: dict, m: dict) -> bool:
    return m["kind"] == "image_set" and set(r["image_ids"]) <= {i["image_id"] for i in m["record"]["images"]}


def make_rules(min_images: int = MIN_SET_IMAGES, max_images: int = MAX_SET_IMAGES) -> dict[str, dict[str, Rule]]:
    """Record rules per dataset: rule name -> ``rule(record, media meta) -> ok``.

    Args:
        min_images, max_images: images an image set must hold (the record's own ``image_ids``
            count is a schema bound, checked from the schema).
    """
    video = {"clip_matches_media": _clip_matches}
    image = {"images_in_set": _set_images,
             f"set_of_{min_images}_to_{max_images}_images":
             lambda r, m: min_images <= m.get("num_images", 0) <= max_images}
    return {
        "Cap": video, "AskModelAnything": video, "CapQA": video, "SubtitleQA": video,
        "VideoPoint": {**video,
                       "point_times_sampled": lambda r, m: _among((p["time"] for p in r["points"]), m["timestamps"]),
                       "count_equals_points": lambda r, m: r["count"] == len(r["points"]),
                       "points_in_frame": lambda r, m: _points_in_frame(r["points"])},
        "VideoTrack": {**video,
                       "track_times_sampled": lambda r, m: len(r["timestamps"]) == len(m["timestamps"])
                       and _among(r["timestamps"], m["timestamps"]),
                       "track_ids_consistent": _track_ids_consistent,
                       "points_in_frame": lambda r, m: all(_points_in_frame(o["points"]) for o in r["objects"])},
        "MultiImageQA": image,
        "MultiImagePoint": {**image,
                            "count_equals_points": lambda r, m: r["count"] == len(r["points"]),
                            "points_in_frame": lambda r, m: _points_in_frame(r["points"]),
                            "image_index_in_set": lambda r, m: all(p["image_index"] < len(r["image_ids"])
                                                                   for p in r["points"])},
        "SynMultiImageQA": image,
    }


RULES = make_rules()
"""The default record rules (sets of ``MIN_SET_IMAGES`` to ``MAX_SET_IMAGES`` images)."""


# ------------------------------------------------------------------ rules derived from the schema
def _resolve(node: dict, defs: dict) -> list[dict]:
    if "$ref" in node:
        return _resolve(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
    if "anyOf" in node:
        return [n for option in node["anyOf"] for n in _resolve(option, defs) if n.get("type") != "null"]
    return [node]


def _bounds_of(node: dict, path: str, defs: dict, out: list) -> None:
    for node in _resolve(node, defs):
        kind = node.get("type")
        if kind in ("number", "integer"):
            low = node.get("minimum", node.get("exclusiveMinimum"))
            high = node.get("maximum", node.get("exclusiveMaximum"))
            if low is not None or high is not None:
                out.append((path, low, high, "exclusiveMinimum" in node, "exclusiveMaximum" in node))
        elif kind == "array":
            if "minItems" in node or "maxItems" in node:
                out.append((f"{path}#len", node.get("minItems"), node.get("maxItems"), False, False))
            _bounds_of(node.get("items", {}), f"{path}[]", defs, out)
        elif kind == "object":
            for name, child in node.get("properties", {}).items():
                _bounds_of(child, f"{path}.{name}" if path else name, defs, out)


def schema_bounds(dataset: str) -> list[tuple[str, Any, Any, bool, bool]]:
    """``(leaf path, min, max, strict min, strict max)`` for every bounded leaf of a dataset's schema."""
    from schemas.records import get_record_type

    schema = get_record_type(dataset).model_json_schema()
    out: list = []
    _bounds_of(schema, "", schema.get("$defs", {}), out)
    return out


def _leaf_values(value: Any, parts: list[str]) -> Iterable[float]:
    if value is None:
        return
    if not parts:
        yield value
        return
    head, rest = parts[0], parts[1:]
    if head == "[]":
        for item in value:
            yield from _leaf_values(item, rest)
    elif head == "#len":
        yield len(value)
    elif isinstance(value, dict):
        yield from _leaf_values(value.get(head), rest)


def _split_path(path: str) -> list[str]:
    parts: list[str] = []
    for token in re.findall(r"\[\]|#len|[^.\[#]+", path):
        parts.append(token)
    return parts


# ------------------------------------------------------------------ the flattened table
def flatten(dataset: str, rows: list[Row], rules: dict[str, Rule]) -> "Any":
    """One pandas row per record: ``key``, ``<leaf>:min``/``<leaf>:max`` and ``rule:<name>`` columns.

    A rule that raises on a record (a shape the rule did not expect) counts as broken.
    """
    import pandas as pd

    bounds = schema_bounds(dataset)
    table: dict[str, list] = {"key": []}
    for path, *_ in bounds:
        table[f"{path}:min"], table[f"{path}:max"] = [], []
    for name in rules:
        table[f"rule:{name}"] = []
    for row in rows:
        record, meta = row["record"], row["meta"]
        table["key"].append(record["key"])
        for path, *_ in bounds:
            values = [v for v in _leaf_values(record, _split_path(path)) if isinstance(v, (int, float))]
            table[f"{path}:min"].append(min(values) if values else None)
            table[f"{path}:max"].append(max(values) if values else None)
        for name, rule in rules.items():
            try:
                ok = bool(rule(record, meta))
            except (KeyError, TypeError, ValueError, IndexError):
                ok = False
            table[f"rule:{name}"].append(ok)
    frame = pd.DataFrame(table)
    for column in frame.columns:
        if column.endswith((":min", ":max")):
            frame[column] = frame[column].astype("float64")
    return frame


class RecordRules:
    """The record rules of every dataset as Great Expectations suites; one instance per worker.

    ``check(dataset, rows)`` flattens the rows, runs the dataset's suite on the table (one
    validation per batch) and splits the rows into passed and failed.
    """

    def __init__(self, min_images: int = MIN_SET_IMAGES, max_images: int = MAX_SET_IMAGES) -> None:
        self.rules = make_rules(min_images, max_images)
        self._context: Any = None
        self._validations: dict[str, Any] = {}

    def _validation(self, dataset: str) -> Any:
        if dataset in self._validations:
            return self._validations[dataset]
        import logging

        import great_expectations as gx

        if self._context is None:
            for name in [n for n in logging.root.manager.loggerDict if n.startswith("great_expectations")]:
                logging.getLogger(name).setLevel(logging.WARNING)  # some set INFO for themselves
            self._context = gx.get_context(mode="ephemeral")
            self._context.variables.progress_bars = {"globally": False}
            source = self._context.data_sources.add_pandas("publish")
            self._asset = source.add_dataframe_asset("records")
        batch = self._asset.add_batch_definition_whole_dataframe(f"batch-{dataset}")
        suite = gx.ExpectationSuite(name=f"record-rules-{dataset}")
        for path, low, high, strict_low, strict_high in schema_bounds(dataset):
            for end in (":min", ":max"):
                suite.add_expectation(gx.expectations.ExpectColumnValuesToBeBetween(
                    column=f"{path}{end}", min_value=low, max_value=high, strict_min=strict_low,
                    strict_max=strict_high))
        for name in self.rules.get(dataset, {}):
            suite.add_expectation(gx.expectations.ExpectColumnValuesToBeInSet(column=f"rule:{name}", value_set=[True]))
        suite = self._context.suites.add(suite)
        definition = self._context.validation_definitions.add(
            gx.ValidationDefinition(name=f"validate-{dataset}", data=batch, suite=suite))
        self._validations[dataset] = definition
        return definition

    def check(self, dataset: str, rows: list[Row]) -> tuple[list[Row], list[tuple[Row, str, str]]]:
        """Split a batch of one dataset's validation rows into passed and failed.

        Returns:
            ``(passed rows, [(row, rule, message), ...])``; rules named ``schema:<leaf>`` or
            ``rule:<name>``.

        Raises:
            RuntimeError: when Great Expectations could not evaluate an expectation (a bug, not
                bad data: it must not pass records silently).
        """
        if not rows:
            return [], []
        frame = flatten(dataset, rows, self.rules.get(dataset, {}))
        result = self._validation(dataset).run(
            batch_parameters={"dataframe": frame},
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["key"]})
        broken: dict[str, tuple[str, str]] = {}
        for item in result.results:
            info = item.exception_info or {}
            if info.get("raised_exception"):
                raise RuntimeError(f"Great Expectations could not run {item.expectation_config.type} on "
                                   f"{dataset}: {info.get('exception_message')}")
            if item.success:
                continue
            column = item.expectation_config.kwargs["column"]
            rule, message = _describe(column, item.expectation_config.kwargs)
            for hit in item.result.get("unexpected_index_list") or []:
                value = hit.get(column)
                text = message if column.startswith("rule:") else f"{message}, got {_num(value)}"
                broken.setdefault(hit["key"], (rule, text))
        passed = [r for r in rows if r["record"]["key"] not in broken]
        failed = [(r, *broken[r["record"]["key"]]) for r in rows if r["record"]["key"] in broken]
        return passed, failed


def _num(value: Any) -> str:
    if isinstance(value, float) and not math.isnan(value) and value.is_integer():
        return str(int(value))
    return str(value)


def _describe(column: str, kwargs: dict) -> tuple[str, str]:
    if column.startswith("rule:"):
        return column, f"breaks the record rule {column[5:]}"
    leaf = column.rpartition(":")[0]
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    lo = "" if low is None else f"{'>' if kwargs.get('strict_min') else '>='} {_num(low)}"
    hi = "" if high is None else f"{'<' if kwargs.get('strict_max') else '<='} {_num(high)}"
    what = "length" if leaf.endswith("#len") else "value"
    bounds = " and ".join(x for x in (lo, hi) if x)
    return f"schema:{leaf}", f"{leaf.removesuffix('#len')}: every {what} must be {bounds}"
