"""Keep the user's console for what the user needs: library and worker logs go to a log file.

Apache Beam, its SDK worker processes, absl and gRPC write start-up chatter, INFO lines and
warnings such as "apitools not found" to the process's standard error, and worker processes
inherit that descriptor. ``quiet_console`` therefore redirects file descriptor 2 itself (so
every child process, and C libraries, follow) to a log file for the duration of a run, routes
Python logging there too (INFO and up), and hands back a stream on the real console for progress
and the final message. With ``verbose`` nothing is redirected and logging shows INFO.

``quiet_logging`` alone (no redirect) is what a command calls before importing Beam, whose
import logs a warning on the root logger: outside a run only errors reach the console.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Iterator, TextIO

__all__ = ["quiet_logging", "quiet_console"]

NOISY = ("apache_beam", "absl", "grpc", "urllib3", "fsspec", "yt_dlp")


def quiet_logging(verbose: bool = False) -> None:
    """Python logging through one handler on ``sys.stderr``: errors only, or INFO if ``verbose``.

    Call it before importing Beam: with a root handler in place, the ``logging.warning`` Beam
    calls at import time ("apitools not found") neither installs its own handler nor shows.
    """
    root = logging.getLogger()
    if not any(getattr(h, "_molmo2", False) for h in root.handlers):
        handler = logging.StreamHandler()  # follows sys.stderr, i.e. fd 2, wherever it points
        handler._molmo2 = True
        handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))
        root.addHandler(handler)
    _set_levels(logging.INFO if verbose else logging.ERROR)


def _set_levels(level: int) -> dict[str, int]:
    """Root at ``level`` and the noisy libraries following it; returns the levels they had."""
    names = ["", *NOISY]
    before = {name: logging.getLogger(name).level for name in names}
    logging.getLogger().setLevel(level)
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.NOTSET)
    return before


@contextlib.contextmanager
def quiet_console(log_path: str | None, verbose: bool = False) -> Iterator[TextIO]:
    """Send fd 2 (this process and the children it starts) to ``log_path`` for the block.

    Args:
        log_path: the log file (appended to); None or ``verbose`` redirects nothing.
        verbose: show everything on the console instead.

    Yields:
        A text stream on the user's console (the original standard error), line-buffered.
    """
    quiet_logging(verbose)
    if verbose or log_path is None:
        yield sys.stderr
        return
    sys.stderr.flush()
    saved = os.dup(2)
    console = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(log, 2)
    os.close(log)
    levels = _set_levels(logging.INFO)  # the log file gets the whole story
    try:
        yield console
    finally:
        sys.stderr.flush()
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        os.dup2(saved, 2)
        os.close(saved)
        console.close()
