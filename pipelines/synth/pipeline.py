"""Launch a generator: parse options, pin the inputs, run the Beam transform, finalize the folder.

One job: ``run(generator, argv)`` for ``capqa``, ``subtitleqa`` and ``synmultiimageqa`` (the
command ``molmo2-data synth ...`` is ``molmo2_data/synth.py``). Locally the runner is Beam's
``FnApiRunner`` (in memory, or ``--direct_running_mode=multi_processing
--direct_num_workers=N``); other runners take the same code (it lives in this package).

Returns a summary (also printed by the command) that says where every input went::

    {"dataset", "out", "inputs", "inputs_with_records", "not_inputs", "records",
     "failed", "duplicate", "errors": {error type: n}, "cache": {"hits", "misses", "hit_rate"},
     "backend_calls", "seconds", "records_per_s"}

``inputs`` are the clips (image sets) sent to the backend; each ends with records or with failure
records; ``not_inputs`` are clips that had nothing to ask about (CapQA: no record about them;
SubtitleQA: no subtitle cues). Run figures (cache, calls, seconds) are in the summary only: the
folder's files are the same whatever the cache held.
"""
from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path
from typing import Any, Optional

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipelines.synth.config import ConfigError, InputsError, SynthConfig
from pipelines.synth.facts import FACT_DATASETS
from pipelines.synth.steps import counter_values, generator_name

__all__ = ["run", "InputsError", "DATASETS"]

DATASETS = {"capqa": "CapQA", "subtitleqa": "SubtitleQA", "synmultiimageqa": "SynMultiImageQA"}


def _video_tables(args) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
    """(record type, path) of every table read, and the manifest's input entries."""
    from pipelines.synth.outputs import input_digest
    from shards.layout import IngestLayout

    tables, pins = [], []
    for folder in args.ingest:
        path = IngestLayout(folder).clips_table
        if not path.is_file():
            raise InputsError(f"--ingest {folder}: no clips.parquet (not an ingest output, or an unfinished one)")
        tables.append(("clip", str(path.resolve())))
        pins.append(input_digest("clips", path))
    for folder in args.records:
        if not Path(folder).is_dir():
            raise InputsError(f"--records {folder}: not a folder")
        found = [Path(folder) / f"{d}.parquet" for d in FACT_DATASETS if (Path(folder) / f"{d}.parquet").is_file()]
        if not found:
            raise InputsError(f"--records {folder}: none of {', '.join(f'{d}.parquet' for d in FACT_DATASETS)} in it")
        for path in found:
            tables.append((path.stem, str(path.resolve())))
            pins.append(input_digest(path.stem, path))
    if args.generator == "capqa" and not any(t != "clip" for t, _ in tables):
        raise InputsError("capqa needs at least one --records folder (Cap, VideoPoint or VideoTrack records)")
    return tables, pins


def _config(args, config: Optional[SynthConfig]) -> SynthConfig:
    from pipelines.synth.args import overrides

    if config is None:
        config = SynthConfig.from_yaml(args.config) if args.config else SynthConfig()
    return config.with_overrides(**overrides(args))


def _pipeline(beam_args, test_pipeline):
    options = PipelineOptions(beam_args)
    if test_pipeline is not None:
        return test_pipeline
    runner = options.view_as(StandardOptions).runner
    if runner is None:  # never Beam's default (it tries to download the Prism binary)
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        runner = FnApiRunner()
    return beam.Pipeline(runner=runner, options=options)


def _failure_counts(path: Path) -> tuple[Counter, Counter]:
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["outcome", "error_type"]).to_pydict()
    return Counter(table["outcome"]), Counter(table["error_type"])


def run(generator: str, argv=None, test_pipeline=None, config: Optional[SynthConfig] = None) -> dict[str, Any]:
    """Parse ``argv`` (ours + Beam's options), run one generator and write its record folder.

    Args:
        generator: ``capqa``, ``subtitleqa`` or ``synmultiimageqa``.
        argv: command-line arguments (``pipelines.synth.args``); the others must be Beam options.
        test_pipeline: a pipeline to build on instead of a new one (tests).
        config: settings to use instead of ``--config`` (the options still apply).

    Returns:
        The summary (module docstring).

    Raises:
        ConfigError: invalid settings, or a backend that cannot start (no key, no model folder).
        InputsError: a missing or malformed input folder.
        OptionError: an argument that is neither ours nor a Beam option.
        OutputError: ``--out`` exists and is not a synth output.
        RunFault: the run itself failed (a full disk, an unwritable folder, an internal error):
            one sentence; rerunning the same command starts it again.
    """
    from pipelines.common.options import check_pipeline_options
    from pipelines.synth.args import parse_synth_argv
    from pipelines.synth.backends import make_backend
    from pipelines.synth.outputs import finalize, prepare
    from pipelines.synth.prompts import load_prompt

    if generator not in DATASETS:
        raise ValueError(f"unknown generator {generator!r}; known: {', '.join(DATASETS)}")
    args, beam_args, own = parse_synth_argv(generator, argv)
    args.generator = generator
    check_pipeline_options(beam_args, own)
    config = _config(args, config)
    dataset = DATASETS[generator]
    make_backend(config.backend, config.generation).close()  # a backend that cannot start is said before Beam runs
    started = time.monotonic()
    staging = prepare(args.out)
    pipeline = _pipeline(beam_args, test_pipeline)
    if generator == "synmultiimageqa":
        from pipelines.synth.image_sets import GenerateSynMultiImageQA, set_jobs

        specs, pins = set_jobs(args, config)
        _ = pipeline | "Sets" >> beam.Create(specs) | "Generate" >> GenerateSynMultiImageQA(config, str(staging),
                                                                                            args.media_out)
    else:
        from pipelines.synth.video import GenerateCapQA, GenerateSubtitleQA

        tables, pins = _video_tables(args)
        transform = GenerateCapQA if generator == "capqa" else GenerateSubtitleQA
        _ = pipeline | "Tables" >> beam.Create(tables) | "Generate" >> transform(config, str(staging))
    try:
        result = pipeline.run()
        result.wait_until_finish()
    except Exception as exc:  # noqa: BLE001 - every way a run can stop becomes one clear RunFault
        raise _run_fault(exc) from None
    counters = counter_values(result)
    media = None
    if generator == "synmultiimageqa":
        from pipelines.synth.image_sets import finalize_media

        media = finalize_media(args.media_out)
        from shards.layout import IngestLayout

        pins = pins + [{"role": "media", "path": os.path.abspath(args.media_out),
                        "shards_json_sha256": _sha256(IngestLayout(args.media_out).shards_index)}]
    prompt = None
    if config.backend.kind != "template":
        p = load_prompt(generator, config.generation.prompt_version)
        prompt = {"version": p.name, "sha256": p.sha256}
    manifest = finalize(args.out, dataset, {
        "generator": generator_name(dataset), "config": _public(config), "prompt": prompt, "inputs": pins})
    outcomes, errors = _failure_counts(Path(args.out) / "failures.parquet")
    seconds = time.monotonic() - started
    records = manifest["outputs"][f"{dataset}.parquet"]["rows"]
    lookups = counters["cache_hits"] + counters["cache_misses"]
    return {
        "dataset": dataset, "out": os.path.abspath(args.out), "inputs": counters["inputs"],
        "inputs_with_records": counters["inputs_with_records"], "not_inputs": counters.get("not_inputs", 0),
        "records": records, "failed": outcomes.get("failed", 0), "duplicate": outcomes.get("duplicate", 0),
        "errors": dict(sorted(errors.items())),
        "cache": {"hits": counters["cache_hits"], "misses": counters["cache_misses"],
                  "hit_rate": round(counters["cache_hits"] / lookups, 4) if lookups else None},
        "backend_calls": counters["backend_calls"], "seconds": round(seconds, 3),
        "records_per_s": round(records / seconds, 3) if seconds else None,
        **({"media": {"out": os.path.abspath(args.media_out), **media}} if media else {}),
    }


def _run_fault(exc: Exception):
    """The run's fault behind a failed pipeline run: a step's marked ``RunFault``, else the error itself."""
    from pipelines.common.guard import RunFault, describe, run_fault_message

    message = run_fault_message(exc)
    inner = exc
    while inner.__cause__ is not None or inner.__context__ is not None:
        inner = inner.__cause__ or inner.__context__
    return RunFault(message or f"the run stopped on an internal error ({describe(inner)}); rerun the same command")


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _public(config: SynthConfig) -> dict[str, Any]:
    """The settings as the manifest records them: every one except the cache location."""
    data = config.to_dict()
    data["backend"].pop("cache", None)
    return data
