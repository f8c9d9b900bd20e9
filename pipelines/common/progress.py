"""Live progress of a run, from whatever process does the work to the user's console.

Workers of a multi-process run cannot print to the user's console, so each per-input step
appends a small event (one JSON line of counts) to a file of its own process under the run's
progress folder (``ProgressLog.add``: one ``write`` on an ``O_APPEND`` descriptor, atomic for a
line this short). A thread in the launching process (``ProgressReporter``) reads what the
files gained since its last look, adds it up and prints one line at most every ``interval_s``
seconds: on a terminal the line is redrawn in place, elsewhere one line per change (and one a
minute while nothing changes, as a sign of life). The same
path serves the in-memory runner, where the "workers" are threads of the launcher.

Counts (all optional in an event): ``done`` inputs whose work is over (a success, a failure or a
duplicate), ``failed``, ``duplicate``, ``clips`` and ``frames`` made. With the total known up
front (the manifest's row count) the reporter estimates the time left.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from collections import Counter
from typing import TextIO

__all__ = ["ProgressLog", "ProgressReporter", "format_progress"]

FIELDS = ("done", "failed", "duplicate", "clips", "frames")
_OPEN: dict[tuple[str, int], int] = {}  # (folder, pid) -> descriptor of this process's event file


class ProgressLog:
    """Appends progress events to ``{folder}/{pid}.jsonl`` (plain data: travels to Beam workers).

    Args:
        folder: the run's progress folder, or None to record nothing.
    """

    def __init__(self, folder: str | None):
        self.folder = folder

    def add(self, **counts: int) -> None:
        """Record that this process did ``counts`` more (e.g. ``done=1, clips=2, frames=22``)."""
        if not self.folder or not any(counts.values()):
            return
        key = (self.folder, os.getpid())
        fd = _OPEN.get(key)
        if fd is None:
            os.makedirs(self.folder, exist_ok=True)
            path = os.path.join(self.folder, f"{os.getpid()}.jsonl")
            fd = _OPEN[key] = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(fd, (json.dumps({k: v for k, v in counts.items() if v}, separators=(",", ":")) + "\n").encode())


def reset(folder: str) -> None:
    """Empty the progress folder before a run starts (events of an earlier run are not this run's)."""
    for key in [k for k in _OPEN if k[0] == folder]:
        os.close(_OPEN.pop(key))
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder, exist_ok=True)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def format_progress(counts: Counter, total: int | None, elapsed: float, label: str = "ingest") -> str:
    """One progress line, e.g. ``ingest: 120/10000 inputs (15 failed, 5 duplicate), 300 clips, 41.5 frames/s, about 1h02m left``."""
    done = counts["done"]
    inputs = f"{done}/{total}" if total is not None else f"{done}"
    rate = counts["frames"] / elapsed if elapsed > 0 else 0.0
    line = (f"{label}: {inputs} inputs ({counts['failed']} failed, {counts['duplicate']} duplicate), "
            f"{counts['clips']} clips, {rate:.1f} frames/s, {_duration(elapsed)} elapsed")
    if total and 0 < done < total:
        line += f", about {_duration(elapsed / done * (total - done))} left"
    return line


class ProgressReporter:
    """Tails a progress folder in a thread and prints the totals (see the module docstring).

    Args:
        folder: the progress folder the workers append to.
        total: inputs expected (for the estimate of the time left), or None.
        stream: where to print (the user's stderr).
        interval_s: least time between two printed updates.
        label: first word of the line.
        heartbeat_s: off a terminal, print the unchanged line again after this long.
    """

    def __init__(self, folder: str, total: int | None, stream: TextIO = sys.stderr,
                 interval_s: float = 2.0, label: str = "ingest", heartbeat_s: float = 60.0):
        self.folder, self.total, self.stream = folder, total, stream
        self.interval_s, self.label, self.heartbeat_s = interval_s, label, heartbeat_s
        self._last = time.monotonic()
        self.counts: Counter = Counter({f: 0 for f in FIELDS})
        self._offsets: dict[str, int] = {}
        self._partial: dict[str, bytes] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = time.monotonic()
        self._shown: tuple | None = None
        self._tty = bool(getattr(stream, "isatty", lambda: False)())
        self._width = 0

    def poll(self) -> None:
        """Add what every event file gained since the last poll."""
        try:
            names = sorted(os.listdir(self.folder))
        except OSError:
            return
        for name in names:
            path = os.path.join(self.folder, name)
            try:
                with open(path, "rb") as f:
                    f.seek(self._offsets.get(name, 0))
                    data = f.read()
            except OSError:
                continue
            self._offsets[name] = self._offsets.get(name, 0) + len(data)
            data = self._partial.pop(name, b"") + data
            lines = data.split(b"\n")
            if lines[-1]:
                self._partial[name] = lines[-1]  # a line still being written
            for line in lines[:-1]:
                try:
                    self.counts.update({k: int(v) for k, v in json.loads(line).items() if k in FIELDS})
                except ValueError:
                    continue

    def _show(self, final: bool = False) -> None:
        state = tuple(self.counts[f] for f in FIELDS)
        quiet_for = time.monotonic() - self._last
        # a terminal's line is redrawn (the clock moves); a log gets a line when the counts change,
        # or every heartbeat_s as a sign of life
        if state == self._shown and not self._tty and not (quiet_for >= self.heartbeat_s and not final):
            return
        self._shown, self._last = state, time.monotonic()
        line = format_progress(self.counts, self.total, time.monotonic() - self._started, self.label)
        if self._tty:
            pad = " " * max(0, self._width - len(line))
            self.stream.write("\r" + line + pad + ("\n" if final else ""))
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.poll()
            self._show()

    def start(self) -> "ProgressReporter":
        """Start the thread (the clock starts now)."""
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)
        self._thread.start()
        return self

    def stop(self, show: bool = True) -> None:
        """Stop the thread; print the final counts once more if ``show``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.poll()
        if show:
            self._show(final=True)
        elif self._tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
