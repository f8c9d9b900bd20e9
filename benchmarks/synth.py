"""Benchmark: the synth generators' throughput with the template backend, and the response cache.

One job: measure, in one run, (1) template CapQA records/s through ``pipelines.synth.pipeline.run``
(Beam, FnApiRunner in memory) against the same questions made by a bare in-process loop over the
same tables (read, group by clip, facts, programs, filters: the work without Beam); (2)
SynMultiImageQA sets/s through the pipeline against a bare loop that makes, draws and asks the
same sets; (3) the response cache: a CapQA run against a loopback OpenAI-compatible server that
answers after ``--latency-ms`` (a stand-in for a model), cold, then again with the warm cache,
records/s of both, the warm run's hit rate and its backend calls (0 expected). Prints a table
and appends the figures to ``benchmarks/results.jsonl``.

Run (about a minute on 2 cores)::

    cd /work/main && .venv/bin/python benchmarks/synth.py
    cd /work/main && .venv/bin/python benchmarks/synth.py --clips 8 --sets 6 --no-record   # quick

Inputs (untimed): ``--clips`` procedural scenes as clips and normalized annotation records
(``tests/synth_inputs.py``). Each timed side runs ``--repeats`` times; the fastest counts.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import print_table, record  # noqa: E402


def bare_capqa(ingest: Path, records: Path) -> int:
    """The template CapQA work without Beam: the number of records made."""
    import pyarrow.parquet as pq

    from pipelines.synth import programs
    from pipelines.synth.backends import Reply
    from pipelines.synth.facts import FACT_DATASETS, clip_facts
    from pipelines.synth.filters import make_records
    from schemas.arrow import from_table
    from schemas.provenance import generated_provenance

    provenance = generated_provenance("synth.capqa", "template", "programs", "capqa.programs.v1", 0)
    clips = {r.key: r.model_dump() for r in from_table("clip", pq.read_table(ingest / "clips.parquet"))}
    by_clip: dict[str, dict[str, list]] = {}
    for dataset in FACT_DATASETS:
        path = records / f"{dataset}.parquet"
        if path.is_file():
            for r in from_table(dataset, pq.read_table(path)):
                by_clip.setdefault(r.clip_id, {}).setdefault(dataset, []).append(r.model_dump())
    made = 0
    for clip_id, recs in sorted(by_clip.items()):
        clip = clips[clip_id]
        facts = clip_facts(clip, recs)
        facts["subtitles"] = []
        items = programs.capqa_items(facts)[:8]
        media = {"video_id": clip["video_id"], "clip_id": clip_id, "clip_start": clip["start"], "clip_end": clip["end"]}
        made += len(make_records("CapQA", clip_id, Reply(text=json.dumps({"questions": items})), media, provenance).records)
    return made


def bare_sets(n: int) -> int:
    """SynMultiImageQA's work without Beam: make, draw and ask ``n`` sets; the number of questions."""
    from pipelines.render import render_png
    from pipelines.synth.cosyn import make_set, render_items, set_questions

    questions = 0
    for i in range(n):
        facts = make_set(f"synset_{i:06d}", i)
        for item in render_items(facts):
            render_png(item)
        questions += len(set_questions(facts))
    return questions


def timed(fn, repeats: int):
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=24, help="procedural clips (CapQA inputs)")
    parser.add_argument("--sets", type=int, default=16, help="SynMultiImageQA image sets")
    parser.add_argument("--latency-ms", type=float, default=40.0, help="the loopback endpoint's answer time")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to results.jsonl")
    args = parser.parse_args(argv)

    from pipelines.procedural.scenes import SceneSpec
    from pipelines.synth.config import SynthConfig
    from pipelines.synth.pipeline import run
    from tests.chat_server import Answer, serve_chat
    from tests.synth_inputs import scene_inputs

    base = Path(tempfile.mkdtemp(prefix="bench-synth-"))
    rows = []
    try:
        specs = [SceneSpec(seed=100 + i, n_objects=2 + i % 4, duration=3.0 + i % 4, fps=10.0) for i in range(args.clips)]
        ingest, records, _ = scene_inputs(base / "inputs", specs)
        argv_video = ["--ingest", str(ingest), "--records", str(records)]
        n = iter(range(10**6))

        pipe_s, summary = timed(lambda: run("capqa", argv_video + ["--out", str(base / f"c{next(n)}")]), args.repeats)
        bare_s, bare_made = timed(lambda: bare_capqa(ingest, records), args.repeats)
        assert summary["records"] == bare_made, (summary["records"], bare_made)
        rows.append(("synth.template_capqa_records_per_s", summary["records"] / pipe_s, bare_made / bare_s,
                     "records/s", {"baseline": "bare in-process loop: read tables, group by clip, facts, programs, "
                                   "filters (no Beam)", "clips": args.clips, "records": bare_made,
                                   "pipeline_s": round(pipe_s, 3), "bare_s": round(bare_s, 3)}))

        sets_argv = ["--sets", str(args.sets)]
        pipe_s, summary = timed(lambda: run("synmultiimageqa", sets_argv + [
            "--out", str(base / f"s{next(n)}"), "--media-out", str(base / f"m{next(n)}")]), args.repeats)
        bare_s, _ = timed(lambda: bare_sets(args.sets), args.repeats)
        rows.append(("synth.synmultiimageqa_sets_per_s", args.sets / pipe_s, args.sets / bare_s, "sets/s",
                     {"baseline": "bare loop: make_set, render_png of every image, set_questions (no Beam, no "
                                  "files)", "sets": args.sets, "records": summary["records"],
                      "images": summary["media"]["images"], "pipeline_s": round(pipe_s, 3), "bare_s": round(bare_s, 3)}))

        os.environ.setdefault("SYNTH_BENCH_KEY", "bench-key")
        good = json.dumps({"questions": [{"question": "How many red circles appear in the video?", "answer": "1",
                                          "negatives": ["0", "2", "3"], "category": "counting"}]})
        with serve_chat(lambda body, k: Answer(good, delay_s=args.latency_ms / 1000)) as server:
            config = SynthConfig.from_dict({"backend": {"kind": "openai", "model": "bench", "base_url": server.url,
                                                        "api_key_env": "SYNTH_BENCH_KEY", "concurrency": 4,
                                                        "cache": str(base / "cache")}})
            start = time.perf_counter()
            cold = run("capqa", argv_video + ["--out", str(base / "cold")], config=config)
            cold_s = time.perf_counter() - start
            calls_cold = server.calls()
            start = time.perf_counter()
            warm = run("capqa", argv_video + ["--out", str(base / "warm")], config=config)
            warm_s = time.perf_counter() - start
            calls_warm = server.calls() - calls_cold
        rows.append(("synth.endpoint_warm_cache_records_per_s", warm["records"] / warm_s, cold["records"] / cold_s,
                     "records/s", {"baseline": f"the same run with a cold cache, endpoint answering in "
                                               f"{args.latency_ms:g} ms (loopback)", "hit_rate_warm":
                                   warm["cache"]["hit_rate"], "hit_rate_cold": cold["cache"]["hit_rate"],
                                   "server_requests_cold": calls_cold, "server_requests_warm": calls_warm,
                                   "backend_calls_warm": warm["backend_calls"], "cold_s": round(cold_s, 3),
                                   "warm_s": round(warm_s, 3)}))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    out = []
    for name, figure, baseline, unit, extra in rows:
        row = {"name": name, "figure": figure, "baseline": baseline, "ratio": figure / baseline, "unit": unit,
               "extra": extra}
        out.append(row if args.no_record else record(name, figure, baseline, unit, extra=extra))
    print_table(out)
    for row in out:
        print(f"  {row['name']}: {json.dumps(row['extra'], sort_keys=True)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
