"""The ``transformers`` backend with a tiny random causal LM built here from a config (no download).

Its output is junk; the point is that junk is rejected with reasons and never written as data,
that generation is deterministic for a fixed seed, and that a prompt too long for the model is a
failure record rather than a crash.
"""
from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.synth.backends import Request, make_backend
from pipelines.synth.config import ConfigError, SynthConfig
from pipelines.synth.pipeline import run
from pipelines.synth.prompts import load_prompt
from tests.synth_inputs import scene_inputs

CHAT_TEMPLATE = ("{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<assistant>{% endif %}")


def build_tiny_lm(folder: Path, context: int = 4096, chat_template: bool = False) -> Path:
    """A 1-layer Llama with random weights and a word-level tokenizer trained on the prompt files."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    corpus = [load_prompt(t).system + "\n" + load_prompt(t).user for t in ("capqa", "subtitleqa", "synmultiimageqa")]
    corpus += ['{"questions": [{"question": "How many?", "answer": "2", "negatives": ["1"], "category": "x"}]}',
               "<system> <user> <assistant> system: user: assistant:"]
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=["[UNK]", "[PAD]", "</s>", "<s>"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", eos_token="</s>",
                                   bos_token="<s>")
    if chat_template:
        fast.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=context,
                         pad_token_id=fast.pad_token_id, eos_token_id=fast.eos_token_id, bos_token_id=fast.bos_token_id)
    LlamaForCausalLM(config).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory) -> Path:
    return build_tiny_lm(tmp_path_factory.mktemp("tiny-lm"))


def _config(model: Path, **backend) -> SynthConfig:
    return SynthConfig.from_dict({"backend": {"kind": "transformers", "model": str(model), "max_tokens": 24,
                                              "seed": 3, **backend}})


def _generate(model: Path, requests, **backend):
    config = _config(model, **backend)
    backend_ = make_backend(config.backend, config.generation)
    try:
        return backend_.generate(requests)
    finally:
        backend_.close()


REQUEST = Request("capqa", "clip-0", {"clip_id": "clip-0", "counts": [{"label": "red circle", "count": 2}]})


def test_generation_is_deterministic_for_a_seed(tiny_lm):
    a, b = _generate(tiny_lm, [REQUEST, REQUEST])
    assert a.text == b.text and a.text and a.calls == 1 and a.error_type is None
    (c,) = _generate(tiny_lm, [REQUEST], temperature=1.0, seed=4)
    (d,) = _generate(tiny_lm, [REQUEST], temperature=1.0, seed=4)
    assert c.text == d.text


def test_the_chat_template_is_used_when_the_tokenizer_has_one(tmp_path):
    model = build_tiny_lm(tmp_path / "chat", chat_template=True)
    config = _config(model)
    backend = make_backend(config.backend, config.generation)
    ids = backend._ids(REQUEST)[0].tolist()
    text = backend.tokenizer.decode(ids)
    assert text.startswith("< system > You write") and text.endswith("< assistant >")
    plain = backend.tokenizer("system: " + backend.messages(REQUEST)[0]["content"]).input_ids
    assert ids[:3] != plain[:3]  # not the role-prefixed plain text of models without a template
    assert backend.generate([REQUEST])[0].text is not None


def test_a_prompt_longer_than_the_context_is_a_failure_reply(tmp_path):
    model = build_tiny_lm(tmp_path / "short", context=64)
    (reply,) = _generate(model, [REQUEST])
    assert reply.text is None and reply.error_type == "prompt_too_long" and "64" in reply.message


def test_a_folder_without_a_model_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not a folder"):
        _generate(tmp_path / "nothing", [REQUEST])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="cannot load"):
        _generate(tmp_path / "empty", [REQUEST])


def test_junk_output_is_rejected_with_reasons_and_not_written(tiny_lm, tmp_path):
    ingest, records, _ = scene_inputs(tmp_path / "inputs")
    summary = run("capqa", ["--ingest", str(ingest), "--records", str(records), "--out", str(tmp_path / "out")],
                  config=_config(tiny_lm))
    assert summary["inputs"] == 4 and summary["records"] == 0 and summary["inputs_with_records"] == 0
    assert summary["errors"] == {"unparsable": 4}
    failures = pq.read_table(tmp_path / "out" / "failures.parquet").to_pylist()
    assert {f["input_id"] for f in failures} == {"clip-0", "clip-1", "clip-2", "clip-3"}
    assert all("not JSON" in f["message"] or "not an object" in f["message"] for f in failures)
    assert pq.read_table(tmp_path / "out" / "CapQA.parquet").num_rows == 0
