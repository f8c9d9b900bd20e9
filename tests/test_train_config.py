"""Typed trainer configs: shipped YAMLs, overrides with type checks, docs, GPU architectures on meta."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from training import config as cfgmod
from training.config import CONFIG_DIR, ConfigError, TrainConfig, load_config, replace, resume_differences
from training.model import ARCHITECTURES, PUBLISHED_SIZES, arch_config, lr_factor, param_groups, part_of
from training.typed_config import diff, field_docs


@pytest.mark.parametrize("name", ["tiny-cpu", "molmo2-4b", "molmo2-8b"])
def test_shipped_configs_load_and_begin_with_their_launch_command(name):
    text = (CONFIG_DIR / f"{name}.yaml").read_text()
    assert text.startswith("# Launch")
    launch = " ".join(text.splitlines()[:2]).replace("-m molmo2_data", "molmo2-data")
    assert f"molmo2-data train --config {name}" in launch
    config = load_config(name)
    assert isinstance(config, TrainConfig)
    # the YAML lists every key: loading it equals loading it back from its own plain data
    assert load_config(name) == cfgmod.from_data(TrainConfig, config.to_data())


def test_every_config_field_has_a_docstring():
    classes = [c for c in vars(cfgmod).values() if dataclasses.is_dataclass(c) and c.__module__ == cfgmod.__name__]
    assert len(classes) == 10
    for cls in classes:
        docs = field_docs(cls)
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in docs]
        assert not missing, f"{cls.__name__} fields without a docstring: {missing}"


def test_overrides_are_typed_and_unknown_keys_name_the_closest():
    c = load_config("tiny-cpu", ["optim.lr_llm=1e-5", "max_steps=7", "data.train=[{dataset: X, version: 2.0.0}]",
                                 "loss.task_weights={Cap: {weight: 0.1}}", "optim.betas=[0.8, 0.9]"])
    assert c.optim.lr_llm == 1e-5 and c.max_steps == 7 and c.data.train[0].dataset == "X"
    assert c.loss.task_weights["Cap"].weight == 0.1 and c.optim.betas == (0.8, 0.9)
    bad = {"optim.lr_lm=1": "unknown key 'optim.lr_lm' \\(did you mean lr_llm",
           "max_steps=1.5": "max_steps: expected an integer, got 1.5",
           "precision=fp16": "precision: must be one of",
           "model.gradient_checkpointing=yes please": "expected true or false",
           "data.train=[]": "at least one mixture entry",
           "global_batch_size=5": "multiple of micro_batch_size",
           "model.arch=molmo2-4b": "model.arch and model.build_tiny exclude each other",
           "max_steps": "not of the form"}
    for override, message in bad.items():
        with pytest.raises(ConfigError, match=message):
            load_config("tiny-cpu", [override])
    with pytest.raises(ConfigError, match="needs model.init=random"):
        load_config("molmo2-8b", ["model.arch=molmo2-8b"])
    with pytest.raises(ConfigError, match="neither a file nor a shipped config"):
        load_config("no-such-config")


def test_resume_refuses_other_settings_but_allows_rank_layout_and_cadence():
    c = load_config("tiny-cpu")
    saved = c.to_data()
    assert resume_differences(saved, replace(c, **{"micro_batch_size": 1, "max_steps": 99, "log.every_steps": 1,
                                                   "distributed": "ddp"})) == []
    changed = replace(c, **{"data.seed": 5, "optim.lr_llm": 1.0})
    assert resume_differences(saved, changed) == [("data.seed", 0, 5), ("optim.lr_llm", 0.003, 1.0)]
    assert diff(c, c) == []


def test_parameter_groups_and_schedule():
    from transformers import Molmo2ForConditionalGeneration

    with torch.device("meta"):
        model = Molmo2ForConditionalGeneration(arch_config("molmo2-4b"))
    c = load_config("molmo2-4b")
    groups = {g["name"]: g for g in param_groups(model, c.optim)}
    assert set(groups) == {"connector", "connector-no_decay", "llm", "llm-no_decay", "vision", "vision-no_decay"}
    assert groups["connector"]["lr"] == 5e-6 and groups["vision"]["lr"] == 5e-6 and groups["llm"]["lr"] == 1e-5
    assert part_of("module.model.multi_modal_projector.image_projector.up_proj.weight") == "connector"
    o = c.optim
    assert lr_factor(0, o, 1000) == 1 / 200 and lr_factor(199, o, 1000) == 1.0
    assert math.isclose(lr_factor(1000, o, 1000), o.min_lr_ratio)
    assert math.isclose(lr_factor(600, o, 1000), o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_gpu_architectures_build_on_the_meta_device(name, capsys):
    from transformers import Molmo2ForConditionalGeneration

    with torch.device("meta"):
        model = Molmo2ForConditionalGeneration(arch_config(name))
    parts: dict[str, int] = {}
    for n, p in model.named_parameters():
        parts[part_of(n)] = parts.get(part_of(n), 0) + p.numel()
    total = sum(parts.values())
    with capsys.disabled():
        print(f"\n{name}: {total / 1e9:.2f}B parameters (llm {parts['llm'] / 1e9:.2f}B, vision "
              f"{parts['vision'] / 1e9:.3f}B, connector {parts['connector'] / 1e9:.3f}B); published: "
              f"{PUBLISHED_SIZES[name]}")
    llm_nominal = {"molmo2-4b": 4.0e9, "molmo2-8b": 8.2e9}[name]
    # the untied LM head adds vocab x hidden on top of the Qwen3 base (tied in Qwen3-4B)
    head = 151936 * ARCHITECTURES[name]["text"]["hidden_size"]
    assert abs(parts["llm"] - (llm_nominal + (head if name == "molmo2-4b" else 0))) / llm_nominal < 0.03
    assert 0.37e9 < parts["vision"] < 0.40e9  # SigLIP 2 so400m, 25 of its 27 layers
    assert load_config(name).model.attn_implementation == "sdpa"
