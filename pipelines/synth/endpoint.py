"""The ``openai`` backend: any OpenAI-compatible chat-completions endpoint, through the ``openai`` client.

One job: ask an endpoint (vLLM, SGLang, TGI, a hosted service) for one reply per request, with
a limit on requests in flight, a timeout per request, retries with exponential backoff, JSON
structured output, and a fixed seed and temperature, and turn every way that can fail into a
``Reply`` with a reason, never an exception that stops a run.

* Transport: ``openai.OpenAI(base_url, timeout, max_retries)``. The client retries a 408, 409,
  429, a 5xx, a timeout or a dropped connection ``max_retries`` times with exponential backoff
  (0.5 s doubling to 8 s, with jitter; a ``Retry-After`` header is honoured); what still fails
  becomes ``Reply(error_type=...)``: ``timeout``, ``connection``, ``rate_limited`` (429),
  ``http_<status>``.
* Structured output: ``response_format`` is the task's JSON schema (``json_mode: schema``, strict),
  ``{"type": "json_object"}`` (``object``), or nothing (``none``). A reply that is not a JSON
  object is asked for again ``parse_retries`` times; if it stays malformed it is returned as is
  and the filters make it a failure record (``unparsable``) with the text's start.
* Concurrency: ``concurrency`` requests in flight at once per worker (a thread pool; the client
  is thread-safe). Across workers the total is workers x concurrency.
* The key: read from the environment variable named by ``api_key_env`` when the backend starts;
  it lives only in the client, and no message here ever holds it or a header.
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

from pipelines.synth.backends import PromptedBackend, Reply, Request
from pipelines.synth.config import BackendConfig, ConfigError, GenerationConfig
from pipelines.synth.prompts import reply_schema

__all__ = ["EndpointBackend", "is_json_object"]


def is_json_object(text: Any) -> bool:
    """Whether ``text`` parses as a JSON object."""
    if not isinstance(text, str):
        return False
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


class EndpointBackend(PromptedBackend):
    """Chat completions from an OpenAI-compatible endpoint (see the module docstring).

    Raises:
        ConfigError: the environment variable ``api_key_env`` is not set.
    """

    name = "openai"

    def __init__(self, config: BackendConfig, generation: GenerationConfig):
        super().__init__(config, generation)
        import openai

        key = os.environ.get(config.api_key_env)
        if not key:
            raise ConfigError(f"backend.api_key_env: the environment variable {config.api_key_env} is not set; "
                              f"set it to the endpoint's API key (a local server that checks none takes any value)")
        self._openai = openai
        self.client = openai.OpenAI(api_key=key, base_url=config.base_url, timeout=config.timeout_s,
                                    max_retries=config.max_retries)
        self.pool = ThreadPoolExecutor(max_workers=config.concurrency, thread_name_prefix="synth-endpoint")

    def _format(self, task: str) -> dict[str, Any] | None:
        mode = self.config.json_mode
        if mode == "schema":
            return {"type": "json_schema", "json_schema": {"name": f"{task}_questions", "strict": True,
                                                           "schema": reply_schema(task)}}
        return {"type": "json_object"} if mode == "object" else None

    def _ask(self, request: Request) -> Reply:
        o, c = self._openai, self.config
        kwargs: dict[str, Any] = {"model": c.model, "messages": self.messages(request), "temperature": c.temperature,
                                  "seed": c.seed, "max_tokens": c.max_tokens}
        fmt = self._format(request.task)
        if fmt is not None:
            kwargs["response_format"] = fmt
        text, calls = None, 0
        for _ in range(1 + c.parse_retries):
            calls += 1
            try:
                response = self.client.chat.completions.create(**kwargs)
            except o.APITimeoutError:
                return Reply(error_type="timeout", calls=calls, message=f"no answer within {c.timeout_s:g} s, "
                             f"{c.max_retries} retries")
            except o.APIConnectionError:
                return Reply(error_type="connection", calls=calls, message=f"could not reach {c.base_url or 'the endpoint'} "
                             f"({c.max_retries} retries)")
            except o.RateLimitError:
                return Reply(error_type="rate_limited", calls=calls, message=f"HTTP 429 after {c.max_retries} retries")
            except o.APIStatusError as exc:
                return Reply(error_type=f"http_{exc.status_code}", calls=calls,
                             message=f"HTTP {exc.status_code} from the endpoint: {_body(exc.body)}")
            except o.APIError as exc:  # a 200 whose body is not a chat completion
                return Reply(error_type="bad_response", calls=calls, message=f"{type(exc).__name__}: {_body(str(exc))}")
            except ValueError as exc:  # a 200 whose body is not JSON (the client decodes it as such)
                return Reply(error_type="bad_response", calls=calls,
                             message=f"the endpoint's answer is not a JSON chat completion ({exc})")
            choices = getattr(response, "choices", None) or []
            text = choices[0].message.content if choices and choices[0].message is not None else None
            if is_json_object(text):
                break
        if text is None:
            return Reply(error_type="empty_reply", calls=calls, message="the endpoint's reply has no message content")
        return Reply(text=text, calls=calls)

    def generate(self, requests: Sequence[Request]) -> list[Reply]:
        return list(self.pool.map(self._ask, requests))

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.client.close()


def _body(body: Any) -> str:
    """An error body in at most 200 characters (the server's message, never a header)."""
    if isinstance(body, dict):
        body = body.get("message") or body.get("error") or body
    text = body if isinstance(body, str) else json.dumps(body, default=str)
    return text[:200]
