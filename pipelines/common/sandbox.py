"""Run risky work (C decoders on untrusted files) in a long-lived child process with a time limit.

A hang or a crash inside decord, PyAV or Pillow must cost one input, not the run. ``Sandbox``
keeps one child Python process per worker (started lazily, reused across inputs so start-up cost
is paid once), sends it ``(function path, args, kwargs)`` jobs over a pipe and waits at most the
job's time limit. On a time-out the child is killed and the input fails with ``timeout``; if the
child dies (segfault, out of memory) the input fails with ``crashed``; either way the next job
starts a fresh child. Exceptions raised in the child come back and are re-raised in the parent;
a ``MemoryError`` there becomes that input's ``out_of_memory`` (the child holds one input only).

The child runs ``python -m pipelines.common.sandbox``; jobs name module-level functions by
``"package.module:function"`` so nothing but plain data is pickled. When the parent dies, the
child reads end-of-file and exits, so no worker is left behind.
"""
from __future__ import annotations

import importlib
import os
import pickle
import select
import struct
import subprocess
import sys
import time
from typing import Any

from pipelines.common.errors import InputError

__all__ = ["Sandbox"]

_HEADER = struct.Struct("<Q")


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes | None:
    """Read n bytes from fd, or None on EOF; raises TimeoutError past the deadline."""
    chunks = []
    while n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                raise TimeoutError
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


class Sandbox:
    """A reusable child process that runs one job at a time under a time limit.

    Args:
        timeout_s: default time limit of one job, in seconds.
        stage: the failure stage reported on time-out or crash (see ``pipelines.common.errors``).
    """

    def __init__(self, timeout_s: float = 120.0, stage: str = "decode"):
        self.timeout_s = timeout_s
        self.stage = stage
        self._proc: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        env = dict(os.environ)
        # the child imports this project exactly as the parent does
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        env.setdefault("OMP_NUM_THREADS", "1")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "pipelines.common.sandbox"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            close_fds=True,
        )
        return self._proc

    def call(self, target: str, *args: Any, input_name: str = "", timeout_s: float | None = None, **kwargs: Any) -> Any:
        """Run ``target(*args, **kwargs)`` in the child and return its result.

        Args:
            target: ``"package.module:function"`` importable in the child.
            input_name: names the input in failure messages.
            timeout_s: this job's limit; defaults to the sandbox's.

        Raises:
            InputError: ``timeout``, ``crashed`` or ``out_of_memory``, or whatever InputError the job raised.
            Exception: any other exception raised by the job, re-raised as is.
        """
        proc = self._proc if self._proc and self._proc.poll() is None else self._start()
        limit = self.timeout_s if timeout_s is None else timeout_s
        payload = pickle.dumps((target, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        try:
            proc.stdin.write(_HEADER.pack(len(payload)) + payload)
            proc.stdin.flush()
            deadline = time.monotonic() + limit
            fd = proc.stdout.fileno()
            header = _read_exact(fd, _HEADER.size, deadline)
            body = None if header is None else _read_exact(fd, _HEADER.unpack(header)[0], deadline)
        except TimeoutError:
            self.close()
            raise InputError(self.stage, "timeout", f"{input_name or target}: gave up after {limit:g} s") from None
        except (BrokenPipeError, OSError):
            body = None
        if body is None:
            code = proc.wait()
            self._proc = None
            how = f"signal {-code}" if code and code < 0 else f"exit code {code}"
            raise InputError(self.stage, "crashed", f"{input_name or target}: the decoder process died ({how})")
        status, value = pickle.loads(body)
        if status == "ok":
            return value
        if isinstance(value, MemoryError):  # the child holds this one input only: it is the input's
            raise InputError(self.stage, "out_of_memory", f"{input_name or target}: ran out of memory "
                             f"({value or 'MemoryError'})")
        raise value

    def close(self) -> None:
        """Stop the child (kill if it does not exit at once). Safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            proc.stdin.close()
        except OSError:
            pass
        if proc.poll() is None:
            proc.kill()
        proc.wait()

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self):  # a sandbox travels to Beam workers without its child
        return {"timeout_s": self.timeout_s, "stage": self.stage, "_proc": None}


def _serve() -> None:
    """Child loop: read jobs from stdin, answer on the original stdout."""
    import signal

    # Ctrl-C reaches the whole process group; the parent decides what an interrupt means, so a
    # job is never recorded as "crashed" because the child died of the user's SIGINT.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # library prints must not corrupt the protocol stream
    inp = sys.stdin.buffer
    while True:
        header = inp.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return  # parent gone: exit
        target, args, kwargs = pickle.loads(inp.read(_HEADER.unpack(header)[0]))
        try:
            module_name, func_name = target.split(":")
            result = ("ok", getattr(importlib.import_module(module_name), func_name)(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
            try:
                pickle.dumps(exc)
            except Exception:
                exc = RuntimeError(f"{type(exc).__name__}: {exc}")
            result = ("err", exc)
        blob = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(_HEADER.pack(len(blob)) + blob)
        out.flush()


if __name__ == "__main__":
    _serve()
