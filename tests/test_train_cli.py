"""``molmo2-data train | eval | export``: config printing, one-line errors, eval and an export that
transformers loads offline and generates with."""
from __future__ import annotations

import os

import pytest
import yaml

from molmo2_data import cli
from tests.test_train_recipe import _run
from tests.train_helpers import synthetic_sources, video_point_sample
from training.config import TrainConfig, load_config
from training.typed_config import from_data


def test_train_print_config_and_bad_overrides(capsys):
    assert cli.main(["train", "--config", "tiny-cpu", "max_steps=9", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert from_data(TrainConfig, printed) == load_config("tiny-cpu", ["max_steps=9"])
    assert cli.main(["train", "--config", "tiny-cpu", "optim.lr=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("molmo2-data train: unknown key 'optim.lr'") and len(err.splitlines()) == 1
    assert cli.main(["eval", "--checkpoint", "/nonexistent/run"]) == 2
    assert "neither a checkpoint folder" in capsys.readouterr().err


def test_eval_and_export_of_a_checkpoint(tmp_path, capsys, monkeypatch):
    from schemas.prompts import messages_for, render_chat

    recipe, _ = _run(tmp_path / "run", "max_steps=3", "eval.generate=false")
    from training.recipe import run_evaluation

    result = run_evaluation(tmp_path / "run", ["eval.max_samples=1", "eval.max_new_tokens=4"],
                            out_dir=tmp_path / "m", stream=open(os.devnull, "w"),
                            validation_sources=synthetic_sources()[1])
    assert result["step"] == 3 and (tmp_path / "m" / "metrics-step-00000003.json").is_file()
    in_run = _run(tmp_path / "run", "max_steps=3", "eval.max_samples=1", "eval.max_new_tokens=4")[1]
    assert result["loss"] == pytest.approx(in_run["loss"], rel=1e-6)  # the same weights, the same loss
    assert cli.main(["export", "--checkpoint", str(tmp_path / "run"), "--out", str(tmp_path / "hf")]) == 0
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from transformers.video_utils import VideoMetadata

    model = AutoModelForImageTextToText.from_pretrained(tmp_path / "hf")
    processor = AutoProcessor.from_pretrained(tmp_path / "hf")
    sample = video_point_sample("cx", 3)
    messages = messages_for("VideoPoint", sample.records[0], sample.media)
    history = messages + [{"role": "user", "content": "Again?"}]
    for msgs in (messages[:1], history):  # the released layout, also with a history answer
        assert processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False) == render_chat(
            msgs, add_generation_prompt=True, layout="template")
    text = processor.apply_chat_template(messages[:1], add_generation_prompt=True, tokenize=False)
    meta = VideoMetadata(total_num_frames=len(sample.images), fps=1.0, frames_indices=sample.media["timestamps"])
    inputs = processor(text=text, videos=[sample.images], video_metadata=[meta], return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]
    # the exported weights are the checkpoint's (not the folder's initial ones)
    import torch

    trained = recipe.raw_model.state_dict()
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, trained[name])


def test_loggers_are_used_only_when_installed_and_asked_for(tmp_path, capsys):
    import importlib.util

    from training.progress import Progress, check_loggers

    check_loggers(False, False)  # not asked: nothing needed
    for key, package in (("log.tensorboard", "tensorboard"), ("log.wandb", "wandb")):
        if importlib.util.find_spec(package) is None:
            with pytest.raises(RuntimeError, match=f"{key}=true needs the {package} package"):
                check_loggers(key == "log.tensorboard", key == "log.wandb")
    progress = Progress(tmp_path, max_steps=4, start_step=0)
    progress.add_samples(8)
    progress.log(2, {"loss": 1.5, "lr": 1e-3})
    line = capsys.readouterr().out.strip()
    assert line.startswith("step 2/4  loss 1.5000  lr 1.00e-03  samples/s ") and "ETA 0:00:0" in line
    import json

    (rec,) = [json.loads(x) for x in (tmp_path / "progress.jsonl").read_text().splitlines()]
    assert rec["step"] == 2 and rec["loss"] == 1.5 and rec["samples_per_s"] > 0 and rec["eta_s"] >= 0
    Progress(tmp_path / "quiet", max_steps=4, enabled=False).log(1, {"loss": 1.0})
    assert not (tmp_path / "quiet").exists()  # ranks other than 0 write nothing
