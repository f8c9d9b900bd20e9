"""``make demo``: the whole chain built so far, end to end, on procedural videos.

1. Generate seeded procedural videos (exact per-frame ground truth, subtitles, captions, QA),
   procedural image sets (shapes, charts, diagrams as lossless PNGs with exact ground truth),
   a few bad and duplicate inputs, and a manifest of all of them, every row with its ``split``.
2. Run the ingest pipeline (Beam, FnApiRunner) on the manifest: fetch, probe, filter, dedupe,
   sample the Molmo 2 way, decode, write checksummed shards and tables; image sets as ImageSets.
3. Annotation (``molmo2_data.demo_annotate``): Label Studio (started headless on loopback) gets
   a project per human-made dataset: VideoPoint, VideoTrack, Cap (``caption``),
   AskModelAnything, MultiImagePoint and MultiImageQA (on the image sets); simulated annotators
   label every task from the ground truth and its templated text; snapshots are pulled and
   normalized into records (with provenance), which are checked against the ground truth and
   counted per dataset. With ``--no-labelstudio`` the saved snapshots (or an offline simulated
   export) are used instead.
4. Render each clip's ground truth as Molmo 2 point / count / track text at its sample times
   (what the VideoPoint and VideoTrack datasets will hold), and check it parses back.
5. Check every ingested image set against its ground truth (split kept, PNGs kept, each
   MultiImagePoint point on a shape of its colour in the ingested image) and write its
   MultiImagePoint text and MultiImageQA pairs.
6. Synthetic QA (``molmo2_data.demo_synth``): CapQA and SubtitleQA from the clips and the
   normalized records, SynMultiImageQA rendered into its own ingest output, all with the template
   backend and checked against the ground truth; the CapQA records go through a Label Studio
   review project (a simulated reviewer edits one, rejects one, accepts the rest) into review
   decisions.
7. Publish version 1.0.0 of every dataset the records hold, the generated ones included, with the
   review decisions applied (``pipelines.publish``: join, validate, shards, manifest last) into
   ``published/``, verify each version, and print where its report is.
8. Train the tiny offline Molmo 2 (``tiny-cpu``) for a short run on every published dataset and
   validate it (loss and generation metrics, printed as a table) (``molmo2_data.demo_train``).
9. Print where every output is.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from shards.layout import IngestLayout

__all__ = ["add_parser", "main", "CheckFailed", "check_equal"]


class CheckFailed(Exception):
    """A demo result differs from what the ground truth says it must be (``main`` exits 1)."""


def check_equal(what: str, got, expected) -> None:
    """Raise :class:`CheckFailed` naming ``what``, the expected and the actual value when they differ.

    The demo checks its results with this, not ``assert`` (which ``python -O`` removes and which
    ends in a traceback): a failed check prints what differs and the demo exits 1.
    """
    if got != expected:
        raise CheckFailed(f"{what}: expected {expected!r}, got {got!r}")


def add_parser(commands) -> argparse.ArgumentParser:
    """Declare ``demo`` on the command line's sub-parsers (standard library only)."""
    p = commands.add_parser(
        "demo",
        help="run the whole chain built so far on procedural videos",
        description="Generate procedural videos with exact ground truth, then run every stage "
        "built so far on them (sampling, decoding, validated clip records, checksummed shards) "
        "and print where the outputs are. Exit code 1 when a check of the results fails.",
    )
    p.add_argument("--out", default="demo-out", help="output folder (default: %(default)s)")
    p.add_argument("--videos", type=int, default=6, help="procedural videos to make (default: %(default)s)")
    p.add_argument("--image-sets", type=int, default=3,
                   help="procedural image sets to make, cycling shapes, charts, diagrams (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the procedural corpus (default: %(default)s)")
    p.add_argument("--no-labelstudio", action="store_true",
                   help="skip the Label Studio server: use saved snapshots, or an offline simulated export")
    p.set_defaults(handler=main)
    return p


def _split(i: int) -> str:
    """The demo's split of its i-th video or image set: every third from the second is validation."""
    return "validation" if i % 3 == 1 else "train"


def _manifest(out: Path, n: int, n_sets: int, seed: int) -> tuple[Path, dict[str, Path], list]:
    """Write the corpus and a manifest with good, bad and duplicate rows, each with an explicit split.

    Returns:
        The manifest path, the scenes' ground truth paths by video id, the image sets' files.
    """
    from pipelines.procedural.image_sets import generate_image_sets
    from pipelines.procedural.scenes import generate_corpus, write_test_media

    media = out / "inputs"
    files = generate_corpus(media, n, seed=seed)
    rows = [{"id": f.key, "path": str(f.video), "subtitle": str(f.subtitles) if f.subtitles else None,
             "source": "procedural", "license": "CC0-1.0", "split": _split(i)} for i, f in enumerate(files)]
    rows = [{k: v for k, v in r.items() if v is not None} for r in rows]
    sets = generate_image_sets(media / "imagesets", n_sets, seed=seed, splits=tuple(_split(i) for i in range(3)))
    rows += [s.manifest_row() for s in sets]
    bad = {"zero_bytes.mp4": "empty", "not_a_video.mp4": "text_as_mp4", "audio_only.m4a": "audio_only",
           "truncated.mp4": "truncated_mp4"}
    for name, kind in bad.items():
        write_test_media(kind, media / name)
        rows.append({"id": name.split(".")[0], "path": str(media / name), "split": "train"})
    write_test_media("near_duplicate", media / "near_duplicate.mp4", spec=files[0].spec)
    rows.append({"id": "near_duplicate", "path": str(media / "near_duplicate.mp4"), "split": rows[0]["split"]})
    manifest = out / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    return manifest, {f.key: f.ground_truth for f in files}, sets


def _grounding_examples(out: Path, truths: dict[str, Path]) -> list[dict]:
    """Molmo 2 text for each clip, from the scene ground truth at the clip's sample times."""
    import pyarrow.parquet as pq

    from pipelines.procedural.scenes import load_ground_truth
    from schemas.pointing import format_video_points, format_video_tracks, parse_points, parse_tracks

    examples = []
    for clip in pq.read_table(IngestLayout(out / "ingest").clips_table).to_pylist():
        scene = load_ground_truth(truths[clip["video_id"]].read_text())
        states = [scene.ground_truth_at(clip["start"] + t) for t in clip["timestamps"]]
        for label in sorted(scene.counts):
            # counting by pointing: each object once, at the first sample time it is visible
            first: dict[int, tuple[float, tuple[float, float]]] = {}
            for t, st in zip(clip["timestamps"], states):
                for s in st.visible_objects:
                    if s.label == label and s.object_id not in first:
                        first[s.object_id] = (t, (s.x_norm, s.y_norm))
            times = sorted({t for t, _ in first.values()})
            points = [[xy for t2, xy in first.values() if t2 == t] for t in times]
            text = format_video_points(times, points, label, "point_then_count")
            check_equal(f"{clip['key']} {label!r}: points parsed back from {text!r}",
                        len(parse_points(text)), len(first))
            examples.append({"clip": clip["key"], "task": "video_point", "label": label, "text": text})
        tracks = [{"time": t, "points": {s.object_id: {"point": (s.x_norm, s.y_norm), "occluded": not s.visible}
                                         for s in st.objects if s.visible or s.status == "occluded"}}
                  for t, st in zip(clip["timestamps"], states)]
        text = format_video_tracks(tracks, "object")
        check_equal(f"{clip['key']}: visible track points parsed back from the track text",
                    len(parse_tracks(text)), sum(1 for st in states for s in st.objects if s.visible))
        examples.append({"clip": clip["key"], "task": "video_track", "label": "object", "text": text})
        examples.append({"clip": clip["key"], "task": "caption", "text": scene.caption})
    path = out / "grounding_examples.jsonl"
    path.write_text("".join(json.dumps(e, sort_keys=True, ensure_ascii=False) + "\n" for e in examples))
    return examples


def _image_set_examples(out: Path, sets: list) -> list[dict]:
    """Check each ingested image set against its ground truth; its MultiImagePoint text and QA pairs."""
    import io

    import numpy as np
    import pyarrow.parquet as pq
    from PIL import Image

    from pipelines.procedural.image_sets import load_ground_truth
    from pipelines.render import COLORS
    from schemas.pointing import parse_points
    from shards.reader import iter_samples

    ingest = IngestLayout(out / "ingest")
    records = {r["key"]: r for r in pq.read_table(ingest.imagesets_table).to_pylist()}
    check_equal("image sets ingested", sorted(records), sorted(s.key for s in sets))
    paths, sums = ingest.shard_checksums("imagesets")
    check_equal("image-set shards listed in shards.json", sums is not None, True)
    samples = {s["__key__"]: s for s in iter_samples(paths, expected_sha256=sums)}
    examples = []
    for s in sets:
        truth, sample = load_ground_truth(s.ground_truth.read_text()), samples[s.key]
        check_equal(f"{s.key}: split", records[s.key]["split"], s.split)
        names = [f"{i}.png" for i in range(len(truth.images))]
        check_equal(f"{s.key}: stored images", sorted(k for k in sample if k[0].isdigit()), names)
        pixels = [np.asarray(Image.open(io.BytesIO(sample[name])).convert("RGB")) for name in names]
        for q in truth.point_queries:
            for p in q.points:
                (shape,) = [x for x in truth.images[p.image_index].shapes if (x.x, x.y) == (p.x, p.y)]
                h, w = pixels[p.image_index].shape[:2]
                check_equal(f"{s.key}: colour under a {q.label!r} point in image {p.image_index + 1}",
                            tuple(int(v) for v in pixels[p.image_index][int(p.y * h), int(p.x * w)]),
                            COLORS[shape.color])
            check_equal(f"{s.key}: {q.label!r} points parsed back", len(parse_points(q.text)), q.count)
            examples.append({"image_set": s.key, "task": "multi_image_point", "label": q.label, "text": q.text})
        examples += [{"image_set": s.key, "task": "multi_image_qa", "question": qa.question, "answer": qa.answer,
                      "category": qa.category} for qa in truth.qa]
    path = out / "image_set_examples.jsonl"
    path.write_text("".join(json.dumps(e, sort_keys=True, ensure_ascii=False) + "\n" for e in examples))
    return examples


def main(args: argparse.Namespace, extra: list[str]) -> int:
    """Run the demo into ``args.out``; returns 0 when every stage's checks held, 1 when one failed."""
    try:
        _run(args)
    except CheckFailed as exc:
        print(f"demo: a check failed: {exc}", file=sys.stderr)
        return 1
    return 0


def _publish(out: Path, synth: dict) -> None:
    """Publish 1.0.0 of every dataset in ``annotations/`` and ``synth/`` (a fresh ``published/`` each
    run), the review decisions applied, and verify it."""
    import shutil

    from molmo2_data.publish import print_result
    from pipelines.publish.config import PublishConfig
    from pipelines.publish.version import publish
    from shards.published import verify_version

    root = out / "published"
    shutil.rmtree(root, ignore_errors=True)
    print(f"[7/8] publish 1.0.0 of every dataset (join, reviews, Great Expectations, shards, manifest): {root}")
    from schemas.records import DATASETS

    folders = [out / "annotations", *sorted((out / "annotations").iterdir())]  # flat, or a folder per project
    records = [str(f) for f in folders if f.is_dir() and any((f / f"{d}.parquet").exists() for d in DATASETS)]
    result = publish(str(root), [str(out / "ingest"), *synth["ingest"]], records + synth["records"],
                     PublishConfig(version="1.0.0"), reviews=synth["reviews"])
    print_result(result, str(root))
    check_equal("datasets blocked by a dataset rule", sorted(result.blocked), [])
    for dataset in result.published:
        problems = verify_version(str(root), dataset, "1.0.0").problems
        check_equal(f"problems molmo2-data verify finds in {dataset} 1.0.0", problems, [])


def _run(args: argparse.Namespace) -> None:
    from molmo2_data.ingest import print_summary
    from pipelines.ingest.pipeline import run

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    print(f"[1/8] procedural corpus: {args.videos} videos and {args.image_sets} image sets (seed {args.seed}) "
          "+ bad and duplicate inputs")
    manifest, truths, sets = _manifest(out, args.videos, args.image_sets, args.seed)
    print(f"[2/8] ingest (Apache Beam, FnApiRunner): {manifest}")
    summary = run(["--manifest", str(manifest), "--out", str(out / "ingest"), "--cfr-mp4"])
    print_summary(summary, str(out / "ingest"))
    rows = sum(1 for _ in manifest.open())
    check_equal("manifest rows read by ingest", summary["rows"], rows)
    check_equal(f"outcomes {summary['outcomes']} added up", sum(summary["outcomes"].values()), rows)
    from molmo2_data.demo_annotate import run_annotation

    where = "offline (--no-labelstudio)" if args.no_labelstudio else "Label Studio on loopback"
    print(f"[3/8] annotation: {where}, simulated annotators, snapshots, normalize")
    counts = run_annotation(out, out / "ingest", truths, use_labelstudio=not args.no_labelstudio,
                            set_truths={s.key: s.ground_truth for s in sets})
    print("  records per dataset, each checked against the ground truth:")
    for dataset, n in counts.items():
        print(f"    {dataset:<17} {n}")
    print("[4/8] Molmo 2 grounding text from the ground truth at each clip's sample times")
    examples = _grounding_examples(out, truths)
    for e in examples[:3]:
        print(f"  {e['task']:<12} {e['text'][:110]}{'...' if len(e['text']) > 110 else ''}")
    print("[5/8] image sets: ingested PNGs checked against their ground truth")
    set_examples = _image_set_examples(out, sets)
    tasks = [e["task"] for e in set_examples]
    print(f"  {len(sets)} image sets: {tasks.count('multi_image_point')} MultiImagePoint queries, "
          f"{tasks.count('multi_image_qa')} MultiImageQA pairs; every point on its shape")
    for task in ("multi_image_point", "multi_image_qa"):
        e = next((e for e in set_examples if e["task"] == task), None)
        if e is not None:
            text = e["text"] if task == "multi_image_point" else f"{e['question']} -> {e['answer']}"
            print(f"  {task:<17} {text[:100]}{'...' if len(text) > 100 else ''}")
    from molmo2_data.demo_synth import run_synth

    print(f"[6/8] synthetic QA (template backend): CapQA, SubtitleQA, SynMultiImageQA; review on {where}")
    synth = run_synth(out, truths, use_labelstudio=not args.no_labelstudio)
    _publish(out, synth)
    from molmo2_data.demo_train import run_training

    run_training(out, check_equal)
    print(f"demo outputs in {out}:")
    ingest = IngestLayout(out / "ingest")
    for path in (out / "manifest.jsonl", f"{ingest.shard_folder('clips')}/", ingest.clips_table, ingest.videos_table,
                 ingest.imagesets_table, ingest.failures_table, ingest.summary, f"{out / 'snapshots'}/",
                 f"{out / 'annotations'}/", out / "grounding_examples.jsonl", out / "image_set_examples.jsonl",
                 f"{out / 'synth'}/", f"{out / 'reviews'}/", f"{out / 'published'}/", f"{out / 'train-run'}/"):
        print(f"  {path}")
    print(f"inspect a shard: molmo2-data inspect {ingest.shard_paths('clips')[0]}")
