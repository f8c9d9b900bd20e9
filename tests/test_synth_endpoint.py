"""The ``openai`` backend against a loopback server speaking the real chat-completions wire format.

Each fault (a malformed reply, a 429 then success, a timeout, a 500) ends in a retry or a failure
record, and none stops a run; the response cache makes a rerun free; the key never leaks.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pipelines.synth.backends import Request, make_backend
from pipelines.synth.config import ConfigError, SynthConfig
from schemas.provenance import generated_provenance
from pipelines.synth.filters import make_records
from pipelines.synth.pipeline import run
from tests.chat_server import Answer, serve_chat
from tests.synth_inputs import scene_inputs

KEY_ENV, KEY = "SYNTH_TEST_KEY", "sk-test-7f3a9c-never-print-me"
GOOD = json.dumps({"questions": [
    {"question": "How many red circles appear in the video?", "answer": "1", "negatives": ["0", "2", "3"],
     "category": "counting"},
    {"question": "What moves across the frame?", "answer": "A dark bar", "negatives": ["A red circle", "Nothing",
                                                                                     "A white line"],
     "category": "action"}]})
PROV = generated_provenance("synth.capqa", "test", "test-model", "capqa.v1", 0)
MEDIA = {"video_id": "vid-0", "clip_id": "clip-0", "clip_start": 0.0, "clip_end": 4.0}


def _clip_of(body: dict) -> str:
    m = re.search(r'"clip_id": "([^"]+)"', body["messages"][-1]["content"])
    return m.group(1) if m else "?"


def _config(url: str, **backend) -> SynthConfig:
    settings = {"kind": "openai", "model": "test-model", "base_url": url, "api_key_env": KEY_ENV, "timeout_s": 0.5,
                "max_retries": 2, "concurrency": 2, "seed": 7, "temperature": 0.0, "max_tokens": 256, **backend}
    return SynthConfig.from_dict({"backend": settings})


def _request(clip: str = "clip-0") -> Request:
    return Request("capqa", clip, {"clip_id": clip, "counts": [{"label": "red circle", "count": 1}]})


def _ask(url: str, *requests: Request, **backend):
    config = _config(url, **backend)
    backend_ = make_backend(config.backend, config.generation)
    try:
        return backend_.generate(list(requests) or [_request()])
    finally:
        backend_.close()


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)


def test_request_carries_model_seed_temperature_schema_and_the_key_from_the_environment():
    with serve_chat(lambda body, n: Answer(GOOD)) as server:
        (reply,) = _ask(server.url)
    assert reply.text == GOOD and reply.error_type is None and reply.calls == 1
    (req,) = server.requests
    assert req["path"] == "/v1/chat/completions"
    headers = {k.lower(): v for k, v in req["headers"].items()}
    assert headers["authorization"] == f"Bearer {KEY}"
    body = req["body"]
    assert (body["model"], body["seed"], body["temperature"], body["max_tokens"]) == ("test-model", 7, 0.0, 256)
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["schema"]["properties"]["questions"]["items"]["required"] == \
        ["answer", "category", "negatives", "question"]
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert '"clip_id": "clip-0"' in body["messages"][1]["content"]


def test_a_429_is_retried_and_the_next_answer_used():
    def respond(body, n):
        return Answer(status=429, headers={"retry-after-ms": "20"}) if n == 0 else Answer(GOOD)

    with serve_chat(respond) as server:
        (reply,) = _ask(server.url)
    assert reply.text == GOOD and server.calls() == 2


def test_a_500_every_time_ends_in_a_failure_record_after_the_retries():
    with serve_chat(lambda body, n: Answer(status=500)) as server:
        (reply,) = _ask(server.url, max_retries=1)
    assert reply.text is None and reply.error_type == "http_500" and server.calls() == 2
    out = make_records("CapQA", "clip-0", reply, MEDIA, PROV)
    (failure,) = out.failures
    assert not out.records and failure["error_type"] == "no_reply" and "http_500" in failure["message"]


def test_a_timeout_is_retried_then_becomes_a_failure_reply():
    with serve_chat(lambda body, n: Answer(GOOD, delay_s=1.5)) as server:
        (reply,) = _ask(server.url, timeout_s=0.3, max_retries=1)
    assert reply.error_type == "timeout" and server.calls() == 2
    assert "0.3 s" in reply.message


def test_a_malformed_reply_is_asked_again_and_one_that_stays_malformed_is_a_failure():
    with serve_chat(lambda body, n: Answer('{"questions": [{"question": ' if n == 0 else GOOD)) as server:
        (reply,) = _ask(server.url)
    assert reply.text == GOOD and reply.calls == 2 and server.calls() == 2
    with serve_chat(lambda body, n: Answer("Sure! Here are some questions: 1. ...")) as server:
        (reply,) = _ask(server.url, parse_retries=2)
    assert server.calls() == 3 and reply.text.startswith("Sure!")
    out = make_records("CapQA", "clip-0", reply, MEDIA, PROV)
    assert [f["error_type"] for f in out.failures] == ["unparsable"] and not out.records


def test_a_body_that_is_not_a_chat_completion_is_a_failure_reply():
    with serve_chat(lambda body, n: Answer(raw=b"<html>gateway error</html>")) as server:
        (reply,) = _ask(server.url)
    assert reply.text is None and reply.error_type in ("bad_response", "empty_reply")


def test_requests_in_flight_never_exceed_the_concurrency_limit():
    requests = [_request(f"clip-{i}") for i in range(6)]
    with serve_chat(lambda body, n: Answer(GOOD, delay_s=0.3), key=_clip_of) as server:
        replies = _ask(server.url, *requests, concurrency=2)
    assert [r.text for r in replies] == [GOOD] * 6
    assert server.max_in_flight == 2


def test_a_missing_key_is_a_config_error_naming_the_variable(monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(ConfigError, match=KEY_ENV):
        _ask("http://127.0.0.1:9/v1")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return scene_inputs(tmp_path_factory.mktemp("endpoint"))


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_faults_in_one_run_end_as_records_or_failures_and_none_stops_it(inputs, tmp_path, capsys):
    ingest, records, _ = inputs

    def respond(body, n):
        clip = _clip_of(body)
        if clip == "clip-1" and n == 0:
            return Answer(status=429, headers={"retry-after-ms": "10"})
        if clip == "clip-2":
            return Answer(status=500)
        if clip == "clip-3":
            return Answer("not json at all")
        return Answer(GOOD)

    with serve_chat(respond, key=_clip_of) as server:
        summary = run("capqa", ["--ingest", str(ingest), "--records", str(records), "--out", str(tmp_path / "out")],
                      config=_config(server.url, max_retries=1))
    assert summary["inputs"] == 4 and summary["inputs_with_records"] == 2
    assert summary["records"] == 4  # two questions each for clip-0 and clip-1
    assert summary["errors"] == {"no_reply": 1, "unparsable": 1}
    assert server.calls("clip-1") == 2 and server.calls("clip-2") == 2 and server.calls("clip-3") == 2
    written = b"".join(_files(tmp_path / "out").values()) + json.dumps(summary).encode()
    assert KEY.encode() not in written and KEY not in capsys.readouterr().out


def test_a_rerun_with_a_warm_cache_makes_no_backend_call_and_writes_the_same_bytes(inputs, tmp_path):
    ingest, records, _ = inputs
    argv = ["--ingest", str(ingest), "--records", str(records), "--cache", str(tmp_path / "cache")]
    with serve_chat(lambda body, n: Answer(GOOD), key=_clip_of) as server:
        cold = run("capqa", argv + ["--out", str(tmp_path / "a")], config=_config(server.url))
        after_cold = server.calls()
        warm = run("capqa", argv + ["--out", str(tmp_path / "b")], config=_config(server.url))
    assert after_cold == 4 and cold["backend_calls"] == 4 and cold["cache"]["misses"] == 4
    assert server.calls() == after_cold, "the warm run asked the server"
    assert warm["backend_calls"] == 0 and warm["cache"] == {"hits": 4, "misses": 0, "hit_rate": 1.0}
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a["CapQA.parquet"] == b["CapQA.parquet"] and a["failures.parquet"] == b["failures.parquet"]
    changed = json.loads(a["synth.json"]), json.loads(b["synth.json"])
    assert changed[0]["outputs"] == changed[1]["outputs"]
