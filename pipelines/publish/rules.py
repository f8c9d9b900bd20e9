"""Dataset rules: checks over a whole dataset, as Beam combines, that block its publish.

One job: find the datasets that must not be published and say why, naming the rule and the
offending keys. Three rules:

* ``split_leak``: no source video or image set in two splits (a model evaluated on a clip of a
  video it trained on scores too well). Grouped per (dataset, source id), so no worker holds
  more than one source's samples;
* ``license``: every sample's license on ``allowed_licenses``;
* ``failure_rate``: failed records / records read at or under ``max_failure_rate`` (a high rate
  means a broken input, not a few bad records).

Record shapes: in, samples ``(dataset, split, sample)`` and summed tallies ``(dataset, group,
name, n)``; out, ``(dataset, [violation])`` with violation
``{"rule", "message", "keys": [up to MAX_KEYS sample or record keys], "count"}``.
"""
from __future__ import annotations

from typing import Any

import apache_beam as beam

__all__ = ["DatasetRules", "MAX_KEYS", "KeySample"]

MAX_KEYS = 20
"""Offending keys named per rule (the count says how many there are in all)."""


class KeySample(beam.CombineFn):
    """Combine keys into ``(count, the MAX_KEYS smallest keys)``: bounded, order-independent."""

    def create_accumulator(self):
        return 0, []

    def add_input(self, acc, key):
        return acc[0] + 1, sorted([*acc[1], key])[:MAX_KEYS]

    def merge_accumulators(self, accs):
        count, keys = 0, []
        for n, k in accs:
            count += n
            keys = sorted(keys + k)[:MAX_KEYS]
        return count, keys

    def extract_output(self, acc):
        return acc


def _leak(element):
    """``((dataset, source id), [(split, key)])`` -> ``(dataset, "source: split=key,... ")`` when split."""
    (dataset, source), items = element
    items = sorted(items)
    if len({s for s, _ in items}) > 1:
        yield dataset, f"{source} ({', '.join(f'{s}:{k}' for s, k in items[:6])})"


def _violation(rule: str, message: str):
    def make(element):
        dataset, (count, keys) = element
        return dataset, {"rule": rule, "message": message.format(count=count), "keys": keys, "count": count}
    return make


def _failure_rate(element, max_rate: float):
    dataset, groups = element
    read = sum(n for g, name, n in groups if (g, name) == ("records", "read"))
    failed = sum(n for g, name, n in groups if g == "failed")
    if read and failed / read > max_rate:
        yield dataset, {"rule": "failure_rate", "count": failed, "keys": [],
                        "message": f"{failed} of {read} records failed ({failed / read:.1%}), more than "
                                   f"max_failure_rate {max_rate:.1%}; see failures.parquet"}


class DatasetRules(beam.PTransform):
    """``{"samples", "tallies"}`` -> ``(dataset, [violation, ...])`` for broken datasets.

    ``tallies`` are already summed per (dataset, group, name): a few per dataset, where
    failures count as group ``failed`` (name: the error type or rule).
    """

    def __init__(self, allowed_licenses: tuple[str, ...], max_failure_rate: float):
        super().__init__()
        self.allowed = frozenset(allowed_licenses)
        self.max_rate = max_failure_rate

    def expand(self, inputs: dict[str, Any]):
        samples, tallies = inputs["samples"], inputs["tallies"]
        allowed = self.allowed
        leaks = (samples
                 | "BySource" >> beam.Map(lambda e: ((e[0], e[2]["json"]["source_ids"][0]), (e[1], e[2]["__key__"])))
                 | "GroupSources" >> beam.GroupByKey()
                 | "SplitLeaks" >> beam.FlatMap(_leak)
                 | "CountLeaks" >> beam.CombinePerKey(KeySample())
                 | "LeakRule" >> beam.Map(_violation(
                     "split_leak", "{count} source(s) have samples in more than one split (source (split:key, ...))")))
        licenses = (samples
                    | "BadLicense" >> beam.Filter(lambda e: e[2]["json"]["license"] not in allowed)
                    | "LicenseKeys" >> beam.Map(lambda e: (e[0], f"{e[2]['__key__']} ({e[2]['json']['license']})"))
                    | "CountLicenses" >> beam.CombinePerKey(KeySample())
                    | "LicenseRule" >> beam.Map(_violation(
                        "license", "{count} sample(s) carry a license not on allowed_licenses "
                                   f"({', '.join(sorted(allowed))})")))
        rates = (tallies
                 | "TallyByDataset" >> beam.Map(lambda t: (t[0], t[1:]))
                 | "GroupTallies" >> beam.GroupByKey()
                 | "RateRule" >> beam.FlatMap(_failure_rate, max_rate=self.max_rate))
        return ((leaks, licenses, rates) | "Violations" >> beam.Flatten()
                | "GroupViolations" >> beam.GroupByKey()
                | "SortViolations" >> beam.MapTuple(lambda d, v: (d, sorted(v, key=lambda x: x["rule"]))))
