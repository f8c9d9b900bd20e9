"""The ``transformers`` backend: a local causal language model loaded from a folder.

One job: generate one reply per request with ``AutoModelForCausalLM`` and its tokenizer from
``backend.model`` (a folder holding ``config.json``, weights and a tokenizer; nothing is
downloaded). The prompt is the tokenizer's chat template applied to the task's messages when
it has one, else the messages as ``role: text`` lines. Seed and temperature are fixed per
request (``torch.manual_seed(seed)`` before each generation; greedy at temperature 0), so the
same request gives the same text. A prompt longer than the model's context is a ``Reply`` with
``error_type`` ``prompt_too_long``; whatever the model writes is returned as is, and the
filters reject what is not a valid question set, with reasons.
"""
from __future__ import annotations

import os
from typing import Sequence

from pipelines.synth.backends import PromptedBackend, Reply, Request
from pipelines.synth.config import BackendConfig, ConfigError, GenerationConfig

__all__ = ["LocalLMBackend"]


class LocalLMBackend(PromptedBackend):
    """Replies from a local ``transformers`` causal LM (see the module docstring).

    Raises:
        ConfigError: ``backend.model`` is not a folder with a model and a tokenizer.
    """

    name = "transformers"

    def __init__(self, config: BackendConfig, generation: GenerationConfig):
        super().__init__(config, generation)
        if not os.path.isdir(config.model):
            raise ConfigError(f"backend.model: {config.model!r} is not a folder (the transformers backend "
                              f"loads a model folder; nothing is downloaded)")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(config.model)
            self.lm = AutoModelForCausalLM.from_pretrained(config.model).to(config.device).eval()
        except (OSError, ValueError) as exc:
            raise ConfigError(f"backend.model: cannot load a causal LM and tokenizer from {config.model}: "
                              f"{str(exc).splitlines()[0][:200]}") from None
        self.torch = torch
        self.context = int(getattr(self.lm.config, "max_position_embeddings", 0) or 1 << 30)

    def _ids(self, request: Request):
        messages = self.messages(request)
        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            out = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                          return_dict=True)
            return out["input_ids"]
        text = "\n\n".join(f"{m['role']}: {m['content']}" for m in messages) + "\n\nassistant:"
        return tok(text, return_tensors="pt").input_ids

    def _one(self, request: Request) -> Reply:
        torch, c = self.torch, self.config
        ids = self._ids(request).to(c.device)
        if ids.shape[1] + c.max_tokens > self.context:
            return Reply(error_type="prompt_too_long", message=f"prompt of {ids.shape[1]} tokens + {c.max_tokens} "
                         f"new tokens exceeds the model's context of {self.context}")
        torch.manual_seed(c.seed)
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id
        kwargs = {"max_new_tokens": c.max_tokens, "pad_token_id": pad,
                  "attention_mask": torch.ones_like(ids)}
        if c.temperature > 0:
            kwargs.update(do_sample=True, temperature=c.temperature)
        else:
            kwargs.update(do_sample=False)
        with torch.no_grad():
            out = self.lm.generate(ids, **kwargs)
        text = self.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
        return Reply(text=text, calls=1)

    def generate(self, requests: Sequence[Request]) -> list[Reply]:
        return [self._one(r) for r in requests]

    def close(self) -> None:
        self.lm = None
