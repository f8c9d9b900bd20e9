"""The trainer on real published versions: samples decoded as published, ``molmo2-data train`` with
``tiny-cpu`` overfits a small set, validates with every metric, and ``eval`` reads the run."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from molmo2_data import cli
from pipelines.publish.config import PublishConfig
from pipelines.publish.version import publish
from schemas.prompts import messages_for
from tests.publish_inputs import (ClipSpec, SetSpec, make_ingest, multi_image_point, video_point, video_track,
                                  write_records)
from tests.train_helpers import tiny_model_dir
from training.config import MixtureEntry
from training.sources import PublishedSource

CLIPS = [ClipSpec(f"c{i}", f"v{i}", duration=1.0 + 0.5 * i) for i in range(3)]
VALID = [ClipSpec("cv", "w0", duration=1.5, split="validation")]
SETS = [SetSpec("s0", images=2), SetSpec("sv", images=2, split="validation")]
DATASETS = ("VideoPoint", "VideoTrack", "MultiImagePoint")


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> str:
    base = tmp_path_factory.mktemp("published")
    ingest = make_ingest(base / "ingest", CLIPS + VALID, SETS)
    records = write_records(base / "records", {
        "VideoPoint": [video_point(f"vp_{c.key}_{j}", c, [0.0, 0.5], label=label)
                       for c in CLIPS + VALID for j, label in enumerate(("dot", "square"))],
        "VideoTrack": [video_track(f"vt_{c.key}", c) for c in CLIPS + VALID],
        "MultiImagePoint": [multi_image_point(f"mp_{s.key}", s) for s in SETS]})
    result = publish(str(base / "root"), [str(ingest)], [str(records)], PublishConfig(version="1.0.0"))
    assert sorted(result.published) == sorted(DATASETS) and not result.blocked
    return str(base / "root")


def test_published_samples_decode_with_their_frames_records_and_conversations(published):
    source = PublishedSource(published, MixtureEntry("VideoPoint", "1.0.0", "train"))
    assert len(source) == len(CLIPS)
    for i in range(len(source)):
        sample = source.get(i)
        assert sample.kind == "video" and len(sample.images) == len(sample.media["timestamps"])
        assert len(sample.records) == 2  # both labels of the clip: one message tree
        for record, conversation in zip(sample.records, sample.conversations):
            assert conversation == messages_for("VideoPoint", record, sample.media)
    images = PublishedSource(published, MixtureEntry("MultiImagePoint", "1.0.0", "validation")).get(0)
    assert images.kind == "images" and len(images.images) == len(images.media["images"]) == 2
    with pytest.raises(KeyError, match="no split 'test'"):
        PublishedSource(published, MixtureEntry("VideoPoint", "1.0.0", "test"))


def test_tiny_cpu_trains_on_published_versions_and_validates_every_metric(published, tmp_path, capsys):
    run = tmp_path / "run"
    entries = ", ".join(f"{{dataset: {d}, version: 1.0.0}}" for d in DATASETS)
    valid = ", ".join(f"{{dataset: {d}, version: 1.0.0, split: validation}}" for d in DATASETS)
    argv = ["train", "--config", "tiny-cpu", f"run_dir={run}", f"data.root={published}",
            f"model.path={tiny_model_dir()}", "model.init=pretrained", "model.build_tiny=false",
            f"data.train=[{entries}]", f"data.validation=[{valid}]", "data.chunk=12", "max_steps=30",
            "log.every_steps=1", "checkpoint.every_steps=30", "eval.max_new_tokens=16"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "validation at step 30:" in out and "n/a (no data)" in out  # no multiple choice or QA here
    losses = [json.loads(line)["loss"] for line in (run / "progress.jsonl").read_text().splitlines()
              if json.loads(line)["kind"] == "train"]
    assert losses[-1] <= 0.5 * losses[0], losses
    metrics = json.loads((run / "metrics" / "metrics-step-00000030.json").read_text())
    assert set(metrics["sets"]) == {f"{d}/1.0.0/validation" for d in DATASETS}
    for name, entry in metrics["sets"].items():
        assert entry["loss"] is not None and entry["items"] > 0, name
    assert set(metrics["sets"]["VideoTrack/1.0.0/validation"]["metrics"]["tracking"]) == {"frame_f1", "id_switches"}
    assert set(metrics["sets"]["VideoPoint/1.0.0/validation"]["metrics"]["pointing"]) == {"precision", "recall", "f1"}
    assert cli.main(["eval", "--checkpoint", str(run), "--out", str(tmp_path / "eval"), "eval.max_samples=1"]) == 0
    again = json.loads((tmp_path / "eval" / "metrics-step-00000030.json").read_text())
    assert set(again["sets"]) == set(metrics["sets"])
    assert cli.main(["eval", "--checkpoint", str(run), "--out", str(tmp_path / "none"),
                     "data.validation=[{dataset: VideoPoint, version: 1.0.0, split: test}]"]) == 0
    out = capsys.readouterr().out
    assert "VideoPoint 1.0.0 has no split 'test'" in out and "loss" in out and "n/a (no data)" in out
    empty = json.loads((tmp_path / "none" / "metrics-step-00000030.json").read_text())
    assert empty["sets"]["VideoPoint/1.0.0/test"]["loss"] is None
    assert cli.main(["train", "--config", "tiny-cpu", f"data.root={published}", f"run_dir={tmp_path / 'x'}",
                     f"model.path={tmp_path / 'never-built'}",
                     "data.train=[{dataset: Nope, version: 1.0.0}]", "data.validation=[]"]) == 2
    assert "Nope" in capsys.readouterr().err
    assert not (tmp_path / "never-built").exists()  # the data is checked before a model is built
