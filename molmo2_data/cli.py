"""``molmo2-data``: the command line, and the only module that knows every package.

Each subcommand's arguments are declared here so ``--help`` works without importing the heavy
packages (Beam, torch, transformers); the work itself is imported lazily when a command runs.
Subcommands of capabilities that have not landed yet exit with a clear message.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Callable, Sequence

# Which issue brings each capability that is not built yet; named in the error users see.
_NOT_YET = {
    "synth": "[4/7] synthetic generators",
    "build": "[5/7] shards: merge, validate, publish",
    "verify": "[5/7] shards: merge, validate, publish",
    "train": "[6/7] training",
    "eval": "[6/7] training",
}


def _lazy(target: str) -> Callable[[argparse.Namespace, list[str]], int]:
    """Return a handler that imports ``module:function`` only when the command runs."""

    def run(args: argparse.Namespace, extra: list[str]) -> int:
        module_name, func_name = target.split(":")
        func = getattr(importlib.import_module(module_name), func_name)
        return func(args, extra) or 0

    return run


def _not_built(name: str) -> Callable[[argparse.Namespace, list[str]], int]:
    def run(args: argparse.Namespace, extra: list[str]) -> int:
        raise NotImplementedError(
            f"'molmo2-data {name}' is not built yet; it lands with issue {_NOT_YET[name]}."
        )

    return run


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (used by ``main`` and by the tests of ``--help``)."""
    parser = argparse.ArgumentParser(
        prog="molmo2-data",
        description="Build, curate, version and train on Molmo 2 style video-grounding datasets.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "demo",
        help="run the whole chain built so far on procedural videos",
        description="Generate procedural videos with exact ground truth, then run every stage "
        "built so far on them (sampling, decoding, validated clip records, checksummed shards) "
        "and print where the outputs are.",
    )
    p.add_argument("--out", default="demo-out", help="output folder (default: %(default)s)")
    p.add_argument("--videos", type=int, default=6, help="procedural videos to make (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the procedural corpus (default: %(default)s)")
    p.add_argument("--no-labelstudio", action="store_true",
                   help="skip the Label Studio server: use saved snapshots, or an offline simulated export")
    p.set_defaults(handler=_lazy("molmo2_data.demo:main"))

    p = sub.add_parser(
        "ingest",
        help="download, probe, filter, dedupe, clip and sample videos (Apache Beam)",
        description="Run the ingest pipeline. Arguments not listed here are passed to Beam as "
        "pipeline options (e.g. --runner, --direct_running_mode=multi_processing).",
    )
    from pipelines.ingest.args import add_ingest_arguments  # standard library only

    add_ingest_arguments(p)
    p.set_defaults(handler=_lazy("pipelines.ingest.pipeline:main"), passthrough=True)

    p = sub.add_parser("synth", help="synthetic QA generators: CapQA, SubtitleQA, SynMultiImageQA")
    p.set_defaults(handler=_not_built("synth"))

    p = sub.add_parser(
        "annotate",
        help="Label Studio: server, projects, push, pull, normalize",
        description="Run a Label Studio server and move tasks and labels between it and this project.",
    )
    annotate = p.add_subparsers(dest="annotate_command", metavar="ACTION", required=True)
    ps = annotate.add_parser("server", help="install, start, stop or check the Label Studio server",
                             description="Label Studio in its own venv, headless on 127.0.0.1.")
    from annotation.server import add_server_arguments  # standard library only: cheap to import

    add_server_arguments(ps)
    ps.set_defaults(handler=_lazy("annotation.server:main_server"))
    from molmo2_data.annotate import add_arguments as add_annotate_arguments

    add_annotate_arguments(annotate)
    for name in ("push", "pull", "normalize"):
        annotate.choices[name].set_defaults(handler=_lazy("molmo2_data.annotate:main"))

    p = sub.add_parser("build", help="merge assets, annotations and synthetic data into versioned shards")
    p.set_defaults(handler=_not_built("build"))

    p = sub.add_parser("verify", help="check a published version's checksums, counts and schemas")
    p.set_defaults(handler=_not_built("verify"))

    p = sub.add_parser(
        "inspect",
        help="print what a shard (.tar) or table (.parquet) holds",
        description="List the samples of a WebDataset shard or the rows of a Parquet table.",
    )
    p.add_argument("path", help="a .tar shard or a .parquet table")
    p.add_argument("--limit", type=int, default=5, help="samples or rows to show (default: %(default)s)")
    p.set_defaults(handler=_lazy("molmo2_data.inspect:main"))

    p = sub.add_parser("train", help="train Molmo 2 on published shards")
    p.set_defaults(handler=_not_built("train"))

    p = sub.add_parser("eval", help="evaluate a checkpoint on published shards")
    p.set_defaults(handler=_not_built("eval"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``molmo2-data`` console script.

    Returns:
        The process exit code: 0 on success, 2 on a usage error or a capability not built yet.
    """
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "passthrough", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.handler(args, extra) or 0)
    except NotImplementedError as exc:
        print(f"molmo2-data: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
