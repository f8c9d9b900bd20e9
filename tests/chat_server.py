"""A loopback OpenAI-compatible chat-completions server for the endpoint backend's tests.

It speaks the real wire format (``POST /v1/chat/completions``, JSON bodies as vLLM and the
OpenAI API send them, ``{"error": {...}}`` bodies with 4xx/5xx statuses, ``retry-after-ms``
headers) on ``127.0.0.1`` only, from a background thread. What it answers is decided per request
by ``respond(body, n)``: ``body`` is the parsed request, ``n`` how many requests with the same
``key(body)`` came before; it returns an ``Answer``. It records every request (path, headers,
body) and the most requests it ever had in flight at once.
"""
from __future__ import annotations

import contextlib
import http.server
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional


@dataclass
class Answer:
    """What the server sends back for one request."""

    content: Optional[str] = None
    """The assistant message's text (a 200 chat completion), when ``status`` is 200."""
    status: int = 200
    raw: Optional[bytes] = None
    """A body sent as is instead of a chat completion (e.g. bytes that are not JSON)."""
    delay_s: float = 0.0
    """Seconds to wait before answering (a slow or stalled server)."""
    headers: dict = field(default_factory=dict)


def completion(content: str, model: str) -> dict:
    """A chat.completion object as an OpenAI-compatible server returns it."""
    return {"id": "chatcmpl-test", "object": "chat.completion", "created": 1767225600, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "logprobs": None,
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}}


class ChatServer:
    """The running server: ``url`` (``http://127.0.0.1:PORT/v1``), ``requests``, ``max_in_flight``."""

    def __init__(self, respond: Callable[[dict, int], Answer], key: Callable[[dict], str]):
        self.respond, self.key = respond, key
        self.requests: list[dict] = []
        self.counts: dict[str, int] = {}
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        self.url = ""

    def calls(self, key: Optional[str] = None) -> int:
        """Requests received (for one key, or all)."""
        with self.lock:
            return self.counts.get(key, 0) if key is not None else len(self.requests)


def _handler(server: ChatServer):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def do_POST(self):  # noqa: N802
            length = int(self.headers.get("content-length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            with server.lock:
                k = server.key(body)
                n = server.counts.get(k, 0)
                server.counts[k] = n + 1
                server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                server.in_flight += 1
                server.max_in_flight = max(server.max_in_flight, server.in_flight)
            try:
                answer = server.respond(body, n)
                if answer.delay_s:
                    time.sleep(answer.delay_s)
                if self.path != "/v1/chat/completions":
                    answer = Answer(status=404, raw=json.dumps({"error": {"message": "not found"}}).encode())
                if answer.raw is not None:
                    data = answer.raw
                elif answer.status == 200:
                    data = json.dumps(completion(answer.content or "", body.get("model", "?"))).encode()
                else:
                    kind = {429: "rate_limit_error", 500: "server_error"}.get(answer.status, "invalid_request_error")
                    data = json.dumps({"error": {"message": f"test server says {answer.status}", "type": kind,
                                                 "code": None}}).encode()
                try:
                    self.send_response(answer.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)
            finally:
                with server.lock:
                    server.in_flight -= 1

    return Handler


@contextlib.contextmanager
def serve_chat(respond: Callable[[dict, int], Answer], key: Callable[[dict], str] = lambda body: "") -> Iterator[ChatServer]:
    """Run a chat-completions server on 127.0.0.1 for the ``with`` block."""
    state = ChatServer(respond, key)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
