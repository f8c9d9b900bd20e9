"""Template CapQA and SubtitleQA on procedural videos: every answer equals the ground truth.

The clips and records come from procedural scenes through the annotation stage
(``tests/synth_inputs.py``); the truth here is computed again from the scene ground truth as
``pipelines.procedural.scenes.load_ground_truth`` reads it back, at the clip's sample times.
"""
from __future__ import annotations

import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.procedural.scenes import load_ground_truth
from pipelines.synth.pipeline import run
from pipelines.synth.programs import fmt_time, plural
from tests.synth_inputs import scene_inputs


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("templates")
    ingest, records, scenes = scene_inputs(folder)
    truths = {key: load_ground_truth(scene.to_json()) for key, scene in scenes.items()}
    clips = {c["key"]: c for c in pq.read_table(ingest / "clips.parquet").to_pylist()}
    argv = ["--ingest", str(ingest), "--records", str(records), "--max-questions", "20"]
    cap = run("capqa", argv + ["--out", str(folder / "capqa")])
    sub = run("subtitleqa", argv + ["--out", str(folder / "subqa")])
    return {"truths": truths, "clips": clips, "summaries": (cap, sub),
            "CapQA": pq.read_table(folder / "capqa" / "CapQA.parquet").to_pylist(),
            "SubtitleQA": pq.read_table(folder / "subqa" / "SubtitleQA.parquet").to_pylist(), "folder": folder}


def _visible(truth, clip, label):
    """sample time -> ids of the objects with ``label`` visible on the frame shown then."""
    return {t: {s.object_id for s in truth.ground_truth_at(clip["start"] + t).visible_objects if s.label == label}
            for t in clip["timestamps"]}


def _labels(truth):
    return {o.label for o in truth.objects}


def _label_of(text: str, truth) -> str:
    """The scene label a question or option names (``The red circle`` -> ``red circle``); '' if none."""
    for label in sorted(_labels(truth) | {f"{c} {s}" for c in ("red", "green", "blue", "yellow", "magenta", "cyan")
                                          for s in ("circle", "square", "diamond")}, key=len, reverse=True):
        if label in text or plural(label) in text:
            return label
    return ""


def _first(truth, clip, label):
    seen = [t for t, ids in _visible(truth, clip, label).items() if ids]
    return min(seen) if seen else None


def test_every_counting_and_temporal_answer_equals_the_ground_truth(generated):
    checked = {"counting": 0, "first": 0, "last": 0, "order": 0, "reappears": 0}
    for rec in generated["CapQA"]:
        clip, truth = generated["clips"][rec["clip_id"]], generated["truths"][rec["clip_id"]]
        q, a = rec["question"], rec["answer"]
        if m := re.fullmatch(r"How many (.+) appear in the video\?", q):
            label = _label_of(m.group(1), truth)
            truth_count = len(set().union(*_visible(truth, clip, label).values()))
            assert a == str(truth_count), (rec["key"], q, a, truth_count)
            assert str(truth_count) not in rec["negative_answers"]
            checked["counting"] += 1
        elif m := re.fullmatch(r"When is the (.+) (first|last) visible in the video\?", q):
            seen = sorted(t for t, ids in _visible(truth, clip, m.group(1)).items() if ids)
            want = seen[0] if m.group(2) == "first" else seen[-1]
            assert a == f"At {fmt_time(want)}", (rec["key"], q, a, want)
            assert f"At {fmt_time(want)}" not in rec["negative_answers"]
            checked[m.group(2)] += 1
        elif m := re.fullmatch(r"Which of these (comes into view first|is the last to come into view) in the video\?", q):
            firsts = {lab: _first(truth, clip, lab) for lab in _labels(truth)}
            firsts = {k: v for k, v in firsts.items() if v is not None}
            pick = min if m.group(1).startswith("comes") else max
            want = pick(firsts, key=firsts.get)
            assert _label_of(a, truth) == want, (rec["key"], q, a, firsts)
            for neg in rec["negative_answers"]:  # a wrong answer is wrong: later (earlier) or never seen
                other = firsts.get(_label_of(neg, truth))
                assert other is None or (other > firsts[want] if pick is min else other < firsts[want]), neg
            checked["order"] += 1
        elif q == "Which of these disappears from view and later comes back?":
            label = _label_of(a, truth)
            times = clip["timestamps"]
            shown = [bool(_visible(truth, clip, label)[t]) for t in times]
            on = [i for i, s in enumerate(shown) if s]
            assert any(not shown[i] for i in range(on[0], on[-1] + 1)), (rec["key"], label, shown)
            checked["reappears"] += 1
        else:
            pytest.fail(f"a CapQA question no check knows: {q!r}")
    assert checked["counting"] >= 8 and checked["first"] + checked["last"] + checked["order"] >= 3, checked


def test_every_subtitle_answer_is_what_the_cues_say_there(generated):
    kinds = set()
    for rec in generated["SubtitleQA"]:
        clip, truth = generated["clips"][rec["clip_id"]], generated["truths"][rec["clip_id"]]
        cues = [c for c in truth.cues if c.end <= truth.duration]
        q, a = rec["question"], rec["answer"]
        assert rec["subtitles"] == [{"start": c.start, "end": c.end, "text": c.text} for c in cues]
        if m := re.fullmatch(r'What is said right after "(.+)"\?', q):
            i = [c.text for c in cues].index(m.group(1))
            assert a == cues[i + 1].text
            kinds.add("after")
        elif m := re.fullmatch(r"What is said at (.+)\?", q):
            t = next(t for t in clip["timestamps"] if fmt_time(t) == m.group(1))
            assert a == next(c.text for c in cues if c.start - 1e-6 <= t <= c.end + 1e-6)
            kinds.add("at")
        elif m := re.fullmatch(r"What is said when the (.+) comes into view\?", q):
            t = _first(truth, clip, m.group(1))
            assert a == next(c.text for c in cues if c.start - 1e-6 <= t <= c.end + 1e-6)
            kinds.add("entry")
        else:
            pytest.fail(f"a SubtitleQA question no check knows: {q!r}")
        assert a not in rec["negative_answers"] and len(rec["negative_answers"]) >= 3
    assert {"after", "at"} <= kinds


def test_every_input_ends_with_records_or_failures_and_the_counts_add_up(generated):
    for summary in generated["summaries"]:
        assert summary["inputs"] == 4 and summary["inputs_with_records"] == 4
        assert summary["records"] == len(generated[summary["dataset"]])
        assert summary["failed"] + summary["duplicate"] == sum(summary["errors"].values())


def test_same_inputs_and_settings_give_byte_identical_files(generated, tmp_path):
    folder: Path = generated["folder"]
    run("capqa", ["--ingest", str(folder / "ingest"), "--records", str(folder / "records"), "--max-questions", "20",
                  "--out", str(tmp_path / "again")])
    for name in ("CapQA.parquet", "failures.parquet"):
        assert (tmp_path / "again" / name).read_bytes() == (folder / "capqa" / name).read_bytes()
