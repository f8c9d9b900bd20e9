"""``molmo2-data synth capqa|subtitleqa|synmultiimageqa``: run a synthetic generator and print where everything went.

The generators are ``pipelines.synth`` (``run`` in ``pipelines/synth/pipeline.py``); this module
only declares the command, maps the user's errors (settings, inputs, output folder, options,
a backend that cannot start) to exit code 2 with one line, and prints the summary. Imports
nothing heavy at module level (the command line builds ``--help`` from it).
"""
from __future__ import annotations

import argparse
import sys

__all__ = ["add_parser", "main", "print_summary"]


def add_parser(commands) -> argparse.ArgumentParser:
    """Declare ``synth`` and its generators on the command line's sub-parsers (standard library only)."""
    from pipelines.synth.args import GENERATORS, add_generator_arguments

    parser = commands.add_parser(
        "synth", help="synthetic QA generators: CapQA, SubtitleQA, SynMultiImageQA (Apache Beam)",
        description="Generate synthetic datasets into a record folder that publish takes with --records. "
                    "The default backend (template) needs no model; --backend openai asks an OpenAI-compatible "
                    "endpoint (key from the environment), --backend transformers a local model folder. Other "
                    "arguments must be Apache Beam pipeline options.")
    generators = parser.add_subparsers(dest="generator", metavar="GENERATOR", required=True)
    for name, help_text in GENERATORS.items():
        p = generators.add_parser(name, help=help_text, description=f"{help_text}. Exit codes: 0 the run finished "
                                  "(rejected questions are failure records, not errors), 1 the run itself failed, "
                                  "2 a bad option, setting or input.")
        add_generator_arguments(p, name)
        p.set_defaults(handler=main, passthrough=True)
    return parser


def print_summary(summary: dict, file=None) -> None:
    """A run's summary as a few lines for a person (on ``file``, default standard output)."""
    s, file = summary, file or sys.stdout
    print(f"synth {s['dataset']}: {s['inputs']} inputs -> {s['records']} records ({s['inputs_with_records']} inputs "
          f"with records), {s['failed']} failed, {s['duplicate']} duplicate questions; {s['not_inputs']} clips had "
          f"nothing to ask about", file=file)
    for name, n in s["errors"].items():
        print(f"  {n:6d}  {name}", file=file)
    cache = s["cache"]
    rate = f", hit rate {cache['hit_rate']:.0%}" if cache["hit_rate"] is not None else ""
    print(f"  backend calls {s['backend_calls']}, cache hits {cache['hits']}, misses {cache['misses']}{rate}; "
          f"{s['seconds']:.1f} s ({s['records_per_s']} records/s)", file=file)
    if "media" in s:
        m = s["media"]
        print(f"  image sets: {m['image_sets']} sets, {m['images']} images in {m['shards']} shard(s) at {m['out']} "
              f"(publish --ingest)", file=file)
    print(f"  records: {s['out']} (publish --records)", file=file)


def main(args: argparse.Namespace, extra: list[str]) -> int:
    """Run one generator; returns the exit code (0 done, 1 the run failed, 2 a user error; one line each)."""
    from pipelines.common.console import quiet_logging

    quiet_logging(False)  # before Beam is imported: its import-time warnings stay off the console
    from pipelines.common.guard import RunFault
    from pipelines.common.options import OptionError
    from pipelines.synth.config import ConfigError, InputsError
    from pipelines.synth.outputs import OutputError
    from pipelines.synth.pipeline import run

    try:
        summary = run(args.generator, _to_argv(args) + list(extra))
    except (ConfigError, InputsError, OptionError, OutputError) as exc:
        print(f"molmo2-data synth {args.generator}: {exc}", file=sys.stderr)
        return 2
    except RunFault as exc:
        print(f"molmo2-data synth {args.generator}: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"molmo2-data synth {args.generator}: interrupted; rerun the same command", file=sys.stderr)
        return 130
    print_summary(summary)
    return 0


def _to_argv(args: argparse.Namespace) -> list[str]:
    """The generator's options of a parsed namespace, back as command-line arguments."""
    out: list[str] = []
    for key, value in vars(args).items():
        if key in ("command", "generator", "handler", "passthrough") or value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        for v in value if isinstance(value, list) else [value]:
            out += [flag] if v is True else [flag, str(v)]
    return out
