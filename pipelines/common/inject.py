"""Test support: make a chosen input fail at a chosen step, in any process of a run.

The only reader of ``MOLMO2_FAULT_INJECT``. Production code calls ``maybe_fail(stage, *names)``
at the start of every guarded step (``pipelines.common.guard``); it does nothing unless that
environment variable names a plan file. Beam's worker processes and the sandbox children
inherit the environment, so one plan reaches every process of a multi-process run.

A plan is a JSON list of faults::

    [{"stage": "decode", "input": "video_7", "raise": "RuntimeError"},
     {"stage": "fetch", "input": "video_8", "raise": "OSError:ELOOP", "path": "/data/v8.mp4"},
     {"stage": "decode", "input": "video_9", "raise": "OSError:ENOSPC", "path": "/out/.work/x"}]

``input`` matches any of the names the step gives (the manifest id, the source path or URL);
``raise`` is a builtin exception class (``MemoryError``, ``ValueError``...) or ``OSError:<ERRNO>``
(optionally with the ``path`` it names), or ``SIGKILL``: the process kills itself there, a crash at
an exact point (e.g. stage ``publish_commit``, between a version's last file and its manifest). The file is read at every call, so a test may change it
between runs.
"""
from __future__ import annotations

import builtins
import errno
import json
import os
import signal

__all__ = ["ENV", "maybe_fail", "make_exception"]

ENV = "MOLMO2_FAULT_INJECT"


def make_exception(spec: str, message: str, path: str | None = None) -> Exception:
    """The exception a plan entry names (see the module docstring)."""
    name, _, code = spec.partition(":")
    if name == "OSError" and code:
        number = getattr(errno, code)
        return OSError(number, os.strerror(number), path) if path else OSError(number, os.strerror(number))
    cls = getattr(builtins, name, None)
    if not (isinstance(cls, type) and issubclass(cls, Exception)):
        raise ValueError(f"{ENV}: {spec!r} is not a builtin exception class")
    return cls(message)


def maybe_fail(stage: str, *names: str) -> None:
    """Raise the planned fault if the plan names this stage and one of ``names``; else nothing."""
    plan_path = os.environ.get(ENV)
    if not plan_path:
        return
    with open(plan_path, encoding="utf-8") as f:
        plan = json.load(f)
    for entry in plan:
        if entry["stage"] == stage and entry["input"] in names:
            if entry["raise"] == "SIGKILL":
                os.kill(os.getpid(), signal.SIGKILL)
            raise make_exception(entry["raise"], f"injected fault at {stage} of {entry['input']}",
                                 entry.get("path"))
