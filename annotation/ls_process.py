"""The processes of a server, by pid through /proc: alive or not, which command, its group; ending them.

A pid alone can be reused by another process after the server exits, so a process is named by its
pid *and* its start time (``start_ticks``: clock ticks since boot, field 22 of /proc/PID/stat).
A zombie counts as gone. Servers this process started itself are registered in ``CHILDREN`` so that
their exit status is collected (they would stay zombies otherwise). Linux only.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

__all__ = ["CHILDREN", "start_ticks", "cmdline", "group_members", "end_group", "tail_log"]

CHILDREN: dict[int, subprocess.Popen] = {}  # servers this process started, so their exit is reaped


def start_ticks(pid: int) -> int | None:
    """Start time of a live (not zombie) process from /proc/PID/stat; None when it is gone."""
    child = CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "; comm may hold spaces
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def cmdline(pid: int) -> list[str]:
    """The arguments of a process (empty when it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace").split("\0")
    except OSError:
        return []


def group_members(pgid: int) -> list[int]:
    """Live processes in a process group (the server and any child it started)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def end_group(pid: int, grace: float) -> bool:
    """SIGTERM the server's process group, SIGKILL what is left after ``grace`` s. True when all gone."""
    _signal_group(pid, signal.SIGTERM)
    for sig, wait in ((signal.SIGKILL, grace), (None, 5.0)):
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if start_ticks(pid) is None and not group_members(pid):
                return True
            time.sleep(0.1)
        if sig is not None:
            _signal_group(pid, sig)
    return start_ticks(pid) is None and not group_members(pid)


def tail_log(path: Path, lines: int = 30, secrets: tuple[str, ...] = ()) -> str:
    """The last lines of a log, with any of ``secrets`` replaced by ``<redacted>``."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    return "\n".join(text.splitlines()[-lines:])
