"""The response cache: a backend's reply stored once, found again by everything that shaped it.

One job: map ``(input hash, backend, model, prompt version, temperature, max tokens, seed)`` to
the reply text a backend gave for it, on an fsspec folder (a local path, ``gs://``, ``s3://``),
so a Beam retry, a rerun, or a worker on another machine never asks the model twice for the same
thing. ``CachedBackend`` wraps any backend with it and counts hits, misses and backend calls.

Layout: ``{root}/{key[:2]}/{key}.json`` holding ``{"key_fields": {...}, "text": reply}``; the
key is the sha256 of the canonical JSON of the key fields. Only replies are stored (a reply that
is not valid JSON too: the same request would give it again); transport failures (a timeout
after every retry, a 5xx) are not, so a rerun tries those again. An entry is written whole or not
at all: locally to a temporary name and renamed; on an object store one PUT (atomic there). An
unreadable entry counts as a miss and is overwritten.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

__all__ = ["ResponseCache", "CachedBackend", "CacheStats", "cache_key"]


def cache_key(input_hash: str, backend: str, model: str, prompt_version: str, temperature: float,
              max_tokens: int, seed: int) -> tuple[str, dict[str, Any]]:
    """The cache key of one request and the fields it hashes.

    Returns:
        ``(sha256 hex, key fields)``.
    """
    fields = {"input": input_hash, "backend": backend, "model": model, "prompt_version": prompt_version,
              "temperature": float(temperature), "max_tokens": int(max_tokens), "seed": int(seed)}
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest(), fields


class ResponseCache:
    """Reply texts by cache key under an fsspec folder.

    Args:
        root: the cache folder (created on first write).
    """

    def __init__(self, root: str):
        import fsspec
        from fsspec.implementations.local import LocalFileSystem

        self.root = str(root).rstrip("/")
        self.fs, self.path = fsspec.core.url_to_fs(self.root)
        self.local = isinstance(self.fs, LocalFileSystem)

    def _entry(self, key: str) -> str:
        return f"{self.path}/{key[:2]}/{key}.json"

    def get(self, key: str) -> Optional[str]:
        """The stored reply text, or None (missing or unreadable)."""
        try:
            with self.fs.open(self._entry(key), "rb") as f:
                data = json.loads(f.read().decode("utf-8"))
        except (FileNotFoundError, OSError, ValueError):
            return None
        text = data.get("text") if isinstance(data, dict) else None
        return text if isinstance(text, str) else None

    def put(self, key: str, fields: dict[str, Any], text: str) -> None:
        """Store a reply (whole or not at all)."""
        from shards.atomic import write_bytes

        data = json.dumps({"key_fields": fields, "text": text}, sort_keys=True, ensure_ascii=False).encode("utf-8")
        final = self._entry(key)
        if self.local:
            os.makedirs(os.path.dirname(final), exist_ok=True)
            write_bytes(final, data)
        else:
            self.fs.pipe_file(final, data)  # one PUT: whole or nothing on an object store


@dataclass
class CacheStats:
    """What a ``CachedBackend`` did so far."""

    hits: int = 0
    misses: int = 0
    calls: int = 0
    """Requests the backend itself answered (every miss is one; template replies count too)."""
    per_error: dict[str, int] = field(default_factory=dict)

    @property
    def hit_rate(self) -> float:
        """Hits over lookups (0 when nothing was looked up)."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class CachedBackend:
    """A backend behind the response cache (no cache: every request goes to the backend).

    Args:
        backend: a ``pipelines.synth.backends.Backend``.
        cache: a ``ResponseCache`` or None.
    """

    def __init__(self, backend: Any, cache: Optional[ResponseCache]):
        self.backend, self.cache = backend, cache
        self.stats = CacheStats()

    def key(self, request: Any) -> tuple[str, dict[str, Any]]:
        """The cache key of a request for this backend and its settings."""
        b = self.backend
        return cache_key(request.input_hash, b.name, b.model, b.prompt_version(request.task), b.temperature,
                         b.max_tokens, b.seed)

    def generate(self, requests: Sequence[Any]) -> list[Any]:
        """Replies for ``requests``, in order: cached ones read back, the others asked for and stored.

        Returns:
            ``pipelines.synth.backends.Reply`` per request (``cached=True`` for hits).
        """
        from pipelines.synth.backends import Reply

        out: list[Any] = [None] * len(requests)
        todo: list[int] = []
        keys = [self.key(r) for r in requests]
        for i, (key, _) in enumerate(keys):
            text = self.cache.get(key) if self.cache is not None else None
            if text is not None:
                out[i] = Reply(text=text, cached=True)
                self.stats.hits += 1
            else:
                todo.append(i)
                self.stats.misses += self.cache is not None
        if todo:
            replies = self.backend.generate([requests[i] for i in todo])
            for i, reply in zip(todo, replies):
                out[i] = reply
                self.stats.calls += reply.calls
                if reply.error_type:
                    self.stats.per_error[reply.error_type] = self.stats.per_error.get(reply.error_type, 0) + 1
                elif self.cache is not None and reply.text is not None:
                    self.cache.put(keys[i][0], keys[i][1], reply.text)
        return out
