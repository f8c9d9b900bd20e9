"""A throwaway Label Studio for tests: a fresh data dir, a free loopback port, generated secrets.

``start_test_server(tmp_dir, media_root)`` is meant for one session (or module) fixture, and
``stop_test_server(info)`` stops it and checks that no process of its group is left. It installs the
server's venv first if ``make test`` has not (once; minutes).

A new Label Studio database takes 40-90 s to migrate, so the first call on a machine builds a
migrated, empty data dir once (``.cache/labelstudio-test-template-VERSION``: database, its
``.env`` and a generated ``credentials.json``) and every test server starts from a copy of it,
which takes about 10 s. ``fresh=True`` migrates a new database instead.

The developer's own ``MOLMO2_LABELSTUDIO_TOKEN`` / ``MOLMO2_LABELSTUDIO_PASSWORD`` are not used:
test servers use generated secrets, kept in ``{tmp_dir}/labelstudio/credentials.json``.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from annotation import ls_process, server
from annotation.credentials import PASSWORD_ENV, TOKEN_ENV

__all__ = ["start_test_server", "stop_test_server", "clean_environ", "TEMPLATE"]

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / ".cache" / f"labelstudio-test-template-{server.LABEL_STUDIO_VERSION}"


def clean_environ() -> dict[str, str]:
    """This process's environment without the project's Label Studio secrets."""
    return {k: v for k, v in os.environ.items() if k not in (TOKEN_ENV, PASSWORD_ENV)}


def _progress(message: str) -> None:
    print(f"[test label-studio] {message}", file=sys.stderr, flush=True)


def _template(timeout: float) -> Path:
    """The migrated, empty data dir every test server copies; built once (atomically) if missing."""
    if TEMPLATE.exists():
        return TEMPLATE
    TEMPLATE.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f"{TEMPLATE.name}.build-", dir=TEMPLATE.parent))
    try:
        _progress(f"migrating a new database once for the test template {TEMPLATE} (a minute or more)")
        data_dir = build / "d"
        server.start(data_dir, progress=_progress, timeout=timeout, environ=clean_environ())
        server.stop(data_dir)
        for transient in (server.LOG_FILE, server.LOCK_FILE):
            (data_dir / transient).unlink(missing_ok=True)
        try:
            os.rename(data_dir, TEMPLATE)  # atomic: a template either is complete or does not exist
        except OSError:
            if not TEMPLATE.exists():  # not a concurrent build that finished first
                raise
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return TEMPLATE


def start_test_server(tmp_dir: str | os.PathLike, media_root: str | os.PathLike | None = None,
                      timeout: float = server.START_TIMEOUT, fresh: bool = False) -> server.ServerInfo:
    """Start Label Studio in ``{tmp_dir}/labelstudio`` on a free port of 127.0.0.1.

    Args:
        tmp_dir: a fresh temporary folder (``tmp_path_factory.mktemp("labelstudio")``). Calling again
            with a folder whose server runs returns that server (``info.reused``).
        media_root: document root for local-file serving (default ``{tmp_dir}/labelstudio/media``).
        timeout: seconds to wait for ``/health``.
        fresh: migrate a new database instead of copying the template.

    Returns:
        The running server (``info.url``; ``server.client(info.data_dir)`` for an SDK client).
    """
    data_dir = Path(tmp_dir) / "labelstudio"
    if not fresh and not data_dir.exists():
        server.ensure_venv(progress=_progress)
        shutil.copytree(_template(timeout), data_dir)
    return server.start(data_dir, port=None, media_root=media_root, timeout=timeout,
                        progress=_progress, environ=clean_environ())


def stop_test_server(info: server.ServerInfo) -> None:
    """Stop a test server (a no-op when a test stopped it already) and check nothing of it is left.

    Raises:
        AssertionError: a process of the server's group survived.
    """
    server.stop(info.data_dir)
    left = ls_process.group_members(info.pid)
    assert not left, f"Label Studio processes left after stop: {left}"
