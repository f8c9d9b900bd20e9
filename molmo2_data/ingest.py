"""``molmo2-data ingest``: run the ingest pipeline from the command line and print its summary.

The pipeline itself is ``pipelines.ingest.pipeline`` (``IngestVideos``, ``run``); this module only
declares the command, maps the run's input errors to exit code 2 and prints what the user needs.
Imports nothing heavy at module level (the command line builds ``--help`` from it).
"""
from __future__ import annotations

import argparse
import sys

__all__ = ["add_parser", "main", "print_summary"]


def add_parser(commands) -> argparse.ArgumentParser:
    """Declare ``ingest`` on the command line's sub-parsers (standard library only)."""
    from pipelines.ingest.args import add_ingest_arguments

    p = commands.add_parser(
        "ingest",
        help="download, probe, filter, dedupe, clip and sample videos (Apache Beam)",
        description="Run the ingest pipeline. Other arguments must be Apache Beam pipeline options "
        "(e.g. --runner, --direct_running_mode=multi_processing --direct_num_workers=4); an option "
        "neither knows is refused. Exit codes: 0 the run finished (failed inputs are failure records, "
        "not errors), 1 the run itself failed, 2 a bad option, config or manifest.",
    )
    add_ingest_arguments(p)
    p.set_defaults(handler=main, passthrough=True)
    return p


_WORK = (("downloads", "downloads", "downloads"), ("clips", "decoded clips", "decoded clips"),
         ("mp4s", "mp4s", "mp4s"), ("shards", "committed shards", "shards written"))


def _rerun_lines(summary: dict) -> list[str]:
    """What the run reused and made (when it reused anything), the failures it remembered from an
    earlier run instead of retrying them, and the summary's warnings."""
    from pipelines.ingest.summary import RETRY_HINT

    lines = []
    run = summary.get("this_run", {})
    reused, made = run.get("reused"), run.get("made")
    if reused and any(reused.values()):
        lines.append("  reused (found already made, not made again): "
                     + ", ".join(f"{reused[w]} {label}" for w, label, _ in _WORK if reused[w])
                     + "; made: " + ", ".join(f"{made[w]} {label}" for w, _, label in _WORK))
    remembered = run.get("remembered_failures", {})
    if remembered.get("count"):
        shown = ", ".join(f"{e['input_id']} ({e['error']})" for e in remembered["examples"])
        more = remembered["count"] - len(remembered["examples"])
        lines.append(f"  {remembered['count']} failure(s) remembered from an earlier run, not retried: {shown}"
                     + (f" and {more} more" if more > 0 else "") + f"; {RETRY_HINT}")
    return lines + [f"  warning: {w}" for w in summary.get("warnings", [])]


def print_summary(summary: dict, out: str, file=None) -> None:
    """Print a run's summary (``OUT/summary.json`` plus timing) as a few lines for a person.

    ``file`` defaults to the ``sys.stdout`` of the moment of the call (not of import: a caller or a
    test may have replaced it since).
    """
    file = sys.stdout if file is None else file
    o = summary["outcomes"]
    print(f"ingest: {summary['rows']} rows -> {o['succeeded']} succeeded, {o['failed']} failed, "
          f"{o['duplicate']} duplicate", file=file)
    print(f"  {summary['clips']} clips, {summary['frames']} frames in {summary['shards']} shards "
          f"({summary['shard_bytes'] / 1e6:.1f} MB) in {summary['seconds']:.1f} s "
          f"({summary['clips_per_s']} clips/s, {summary['frames_per_s']} frames/s)", file=file)
    for name, n in summary["errors"].items():
        print(f"  {n:6d}  {name}", file=file)
    for line in _rerun_lines(summary):
        print(line, file=file)
    from shards.layout import IngestLayout

    layout = IngestLayout(out)
    print(f"  outputs: {layout.shard_folder('clips')}/, {layout.clips_table}, {layout.failures_table}, "
          f"{layout.summary}", file=file)


def main(args: argparse.Namespace, extra: list[str]) -> int:
    """Run the ingest; returns the exit code (0 done, 1 the run itself failed, 2 a bad option,
    config or manifest).

    A fault of the run itself (a full disk, an unwritable output, out of memory, a bug in a step
    of the run) is one line on stderr and exit code 1; rerunning the same command resumes.
    While it runs, progress goes to stderr; Beam's and its workers' logs go to ``WORK/ingest.log``
    unless ``--verbose``.
    """
    from pipelines.common.console import quiet_logging

    quiet_logging(args.verbose)  # before Beam is imported: its import logs "apitools not found"
    from pipelines.common.guard import RunFault
    from pipelines.common.options import OptionError
    from pipelines.ingest.args import to_argv
    from pipelines.ingest.config import ConfigError
    from pipelines.ingest.manifest import ManifestError
    from pipelines.ingest.pipeline import run

    try:
        summary = run(to_argv(args) + list(extra), console=True)
    except (ConfigError, ManifestError, OptionError) as exc:
        print(f"molmo2-data ingest: {exc}", file=sys.stderr)
        return 2
    except RunFault as exc:
        print(f"molmo2-data ingest: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("molmo2-data ingest: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    print_summary(summary, args.out)
    return 0
