"""What an ingest run's summary says beyond counts: reuse, remembered failures, rewritten ids.

One job: the pieces of ``summary.json`` that tell a rerun from a fresh run and warn about the
input, each bounded whatever the input's size. ``Tally`` (a Beam ``CombineFn``) counts many
similar things and keeps a few examples: failures replayed from an earlier run
(``remembered_summary``, with the ``--retry-failed`` hint) and ids made key-safe
(``rewritten_warnings``); ``reuse_figures`` reads what the run reused and made from its Beam
counters (``this_run`` in summary.json). ``pipelines.ingest.pipeline`` wires them in.
"""
from __future__ import annotations

from collections import Counter

import apache_beam as beam

__all__ = ["Tally", "remembered_example", "rewritten_example", "remembered_summary", "rewritten_warnings",
           "reuse_figures", "RETRY_HINT"]


class Tally(beam.CombineFn):
    """(example, category) -> {"count", "by": {category: n}, "examples": the ``k`` smallest examples}.

    What the summary says about many similar things (failures replayed from an earlier run, ids
    made key-safe) without holding them all: the accumulator is bounded by ``k`` and the number
    of categories.
    """

    def __init__(self, k: int = 10):
        self.k = k

    def create_accumulator(self):
        return 0, Counter(), []

    def add_input(self, acc, element):
        example, category = element
        count, by, examples = acc
        if category is not None:
            by[category] += 1
        return count + 1, by, sorted(examples + [example])[: self.k]

    def merge_accumulators(self, accumulators):
        count, by, examples = self.create_accumulator()
        for c, b, e in accumulators:
            count, examples = count + c, examples + e
            by.update(b)
        return count, by, sorted(examples)[: self.k]

    def extract_output(self, acc):
        count, by, examples = acc
        return {"count": count, "by": dict(sorted(by.items())), "examples": examples}


def remembered_example(record: dict) -> tuple[list[str], str]:
    """A replayed failure record -> ``([input id, "stage/error"], "stage/error")`` for ``Tally``."""
    error = f"{record['stage']}/{record['error_type']}"
    return [record["input_id"], error], error


def rewritten_example(pair: tuple[str, str]) -> tuple[list[str], None]:
    """``(given id, key)`` -> ``([given id, key], None)`` for ``Tally``."""
    return list(pair), None


RETRY_HINT = "rerun with --retry-failed to retry them"


def remembered_summary(tally: dict) -> dict:
    """summary.json's account of the failures replayed from an earlier run (not retried)."""
    out = {"count": tally["count"], "by_error": tally["by"],
           "examples": [{"input_id": i, "error": e} for i, e in tally["examples"]]}
    if tally["count"]:
        out["hint"] = (f"{tally['count']} failure(s) are remembered from an earlier run and were not "
                       f"retried (the input may have changed since); {RETRY_HINT}")
    return out


def rewritten_warnings(tally: dict) -> list[str]:
    """summary.json's one warning about ids made key-safe (none when every id was a key)."""
    if not tally["count"]:
        return []
    shown = ", ".join(f"{g!r} -> {k!r}" for g, k in tally["examples"])
    more = f" and {tally['count'] - len(tally['examples'])} more" if tally["count"] > len(tally["examples"]) else ""
    return [f"{tally['count']} id(s) are not key-safe (letters, digits, _ and - only) and were rewritten: "
            f"{shown}{more}; keys use the rewritten form, the records keep the given id in given_id"]


_REUSE = (  # (what, counter of reused, counter of made): this run's work against the stores
    ("downloads", "downloads_reused", "downloads_made"),
    ("clips", "clips_reused", "clips_decoded"),
    ("mp4s", "mp4s_reused", "mp4s_made"),
    ("shards", "shards_reused", "shards_written"),
)


def reuse_figures(result) -> dict:
    """``{"reused": {...}, "made": {...}}`` from the run's ``ingest`` counters (committed values).

    ``reused`` counts what this run found already made in its stores and did not make again
    (downloads, decoded clips, mp4s, committed shards): made by an earlier run, or by another
    row of this one with the same source. ``made`` counts what it made.
    """
    from apache_beam.metrics.metric import MetricsFilter

    counts = Counter()
    for counter in result.metrics().query(MetricsFilter().with_namespace("ingest"))["counters"]:
        counts[counter.key.metric.name] += counter.committed or 0
    return {"reused": {what: counts[reused] for what, reused, _ in _REUSE},
            "made": {what: counts[made] for what, _, made in _REUSE}}
