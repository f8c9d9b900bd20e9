"""The synth command's own arguments (standard library only, so ``--help`` stays instant).

``molmo2-data synth capqa|subtitleqa|synmultiimageqa ...``: each generator declares the common
backend options here; what is left over on a command line goes to Apache Beam as pipeline
options (and is refused when Beam does not know it, ``pipelines.common.options``).
"""
from __future__ import annotations

import argparse
from importlib import resources
from typing import Sequence

from pipelines.common.settings import print_text_action

__all__ = ["GENERATORS", "add_generator_arguments", "parse_synth_argv", "default_config_text", "overrides"]

GENERATORS = {
    "capqa": "CapQA: multiple-choice questions about clips, from their captions, counts and tracks",
    "subtitleqa": "SubtitleQA: multiple-choice questions that need what is said (subtitle cues)",
    "synmultiimageqa": "SynMultiImageQA: rendered charts, tables, documents and diagrams in sets of 2-5, "
                       "with computed answers",
}


def default_config_text() -> str:
    """The shipped default settings (``configs/synth.yaml``): every key, documented."""
    return resources.files("pipelines.synth").joinpath("configs", "synth.yaml").read_text(encoding="utf-8")


_PrintConfig = print_text_action(default_config_text)


def add_generator_arguments(p: argparse.ArgumentParser, generator: str) -> argparse.ArgumentParser:
    """Declare one generator's options on ``p``; returns ``p``."""
    if generator == "synmultiimageqa":
        p.add_argument("--sets", type=int, required=True, help="how many image sets to generate")
        p.add_argument("--media-out", required=True,
                       help="where the rendered image sets go, in the ingest-output layout (publish --ingest)")
        p.add_argument("--split", action="append", choices=["train", "validation", "test"],
                       help="split of the sets, cycled (repeat for several; default train)")
        p.add_argument("--prefix", default="synset", help="image-set key prefix (default: %(default)s)")
    else:
        p.add_argument("--ingest", action="append", required=True,
                       help="an ingest output folder (its clips.parquet); repeat for several")
        p.add_argument("--records", action="append", default=[],
                       help="a record folder of normalized annotations (Cap, VideoPoint, VideoTrack tables); "
                            "repeat for several" + (" (at least one)" if generator == "capqa" else ""))
    p.add_argument("--out", required=True, help="the record folder to write (publish --records)")
    p.add_argument("--config", help="YAML settings (see --print-config); the options below override it")
    p.add_argument("--print-config", action=_PrintConfig, help="print the default settings as YAML and exit")
    p.add_argument("--backend", choices=["template", "openai", "transformers"],
                   help="text backend (default: template, no model)")
    p.add_argument("--model", help="openai: the model name; transformers: the model folder")
    p.add_argument("--base-url", help="openai: the endpoint, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--api-key-env", help="openai: the environment variable holding the key (default OPENAI_API_KEY)")
    p.add_argument("--cache", help="response cache folder (local path or fsspec URL, e.g. gs://bucket/cache)")
    p.add_argument("--concurrency", type=int, help="openai: requests in flight per worker")
    p.add_argument("--seed", type=int, help="seed of the programs and of the model")
    p.add_argument("--max-questions", type=int, help="questions kept per clip or image set")
    return p


def parse_synth_argv(generator: str, argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str], list[str]]:
    """Split ``argv`` into this generator's options and the rest (Beam's pipeline options).

    Raises:
        SystemExit: argparse's usage error (exit 2).
    """
    parser = add_generator_arguments(argparse.ArgumentParser(prog=f"molmo2-data synth {generator}",
                                                             allow_abbrev=False), generator)
    args, rest = parser.parse_known_args(argv)
    own = [s for s in parser._option_string_actions if s.startswith("--")]
    return args, rest, own


def overrides(args: argparse.Namespace) -> dict[str, dict]:
    """The config settings the options set: ``{"backend": {...}, "generation": {...}}`` (None left out)."""
    backend = {"kind": args.backend, "model": args.model, "base_url": args.base_url, "api_key_env": args.api_key_env,
               "cache": args.cache, "concurrency": args.concurrency, "seed": args.seed}
    generation = {"seed": args.seed, "max_questions": args.max_questions}
    return {"backend": {k: v for k, v in backend.items() if v is not None},
            "generation": {k: v for k, v in generation.items() if v is not None}}
