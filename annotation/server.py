"""Run one Label Studio server per data dir: its own venv, started headless on loopback, checked, stopped.

Label Studio pins Django, pyarrow and its own SDK at versions that clash with this project, so it
lives in a separate virtual environment (:func:`ensure_venv`, from ``ls_venv``; ``.labelstudio-venv``
in a source checkout). :func:`start` runs it on ``127.0.0.1`` only, with every secret passed through the
environment (never the command line, which ``ps`` shows to every user), error reporting to remote
services and version checks off, waits for ``GET /health``, and records its pid. :func:`stop` ends
it by that pid, after checking the pid still is that server. :func:`client` gives an SDK client.

Layout of a data dir (everything a server owns)::

    {data_dir}/server.json        pid, process start time, port, url, media root, log (no secrets)
    {data_dir}/credentials.json   admin email, API token, password (mode 0600; see credentials.py)
    {data_dir}/server.log         Label Studio's stdout and stderr (mode 0600)
    {data_dir}/label-studio/      its database (label_studio.sqlite3: holds the token), .env, uploads,
                                  exports (mode 0700)
    {data_dir}/.server.lock       serializes start and stop
    {data_dir}/media/             default document root for local-file serving (``media_root``)
"""
from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from annotation.credentials import PASSWORD_ENV, TOKEN_ENV, CredentialsError, ensure_credentials, read_credentials
from annotation.ls_process import CHILDREN, cmdline, end_group, start_ticks, tail_log
from annotation.ls_venv import DEFAULT_VENV, LABEL_STUDIO_VERSION, STAMP_NAME, VenvError, ensure_venv
from shards.atomic import write_json

__all__ = ["LABEL_STUDIO_VERSION", "DEFAULT_VENV", "STAMP_NAME", "HOST", "ServerError", "VenvError", "ServerInfo",
           "ServerStatus", "ensure_venv", "start", "stop", "status", "load_credentials", "client",
           "TOKEN_ENV", "PASSWORD_ENV", "DEFAULT_DATA_DIR", "START_TIMEOUT", "STOP_GRACE"]

HOST = "127.0.0.1"
STATE_FILE, LOG_FILE, LOCK_FILE = "server.json", "server.log", ".server.lock"
LS_SUBDIR, MEDIA_SUBDIR = "label-studio", "media"
DEFAULT_DATA_DIR = "labelstudio-data"
START_TIMEOUT = 300.0  # first start migrates a new database: 40-90 s (more on a busy machine); a restart ~10 s
STOP_GRACE = 10.0

# Inherited variables the server must not see: Label Studio reads USERNAME/PASSWORD as its login,
# LABEL_STUDIO_*/DJANGO_*/POSTGRE_* as settings, and our venv's Python paths would shadow its own.
_SCRUB_NAMES = {"USERNAME", "PASSWORD", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV",
                "DEBUG", "SENTRY_DSN", "FRONTEND_SENTRY_DSN", "DJANGO_SETTINGS_MODULE", TOKEN_ENV, PASSWORD_ENV}
_SCRUB_PREFIXES = ("LABEL_STUDIO_", "DJANGO_", "POSTGRE_", "MYSQL_", "REDIS_")

Progress = Callable[[str], None]


def _stderr(message: str) -> None:
    print(f"label-studio: {message}", file=sys.stderr, flush=True)


class ServerError(RuntimeError):
    """Label Studio could not be started or stopped; the message says why and what to do."""


@dataclass(frozen=True)
class ServerInfo:
    """A running server, as :func:`start` returns it (and ``server.json`` records it)."""

    url: str
    """Base URL, ``http://127.0.0.1:PORT``."""
    pid: int
    """Process id; also its process group id (it runs in a session of its own)."""
    port: int
    data_dir: str
    media_root: str
    """Document root of local-file serving: media under it are served as ``/data/local-files/?d=REL``."""
    log_path: str
    token_source: str
    """``"env"`` (``MOLMO2_LABELSTUDIO_TOKEN``) or ``"generated"`` (kept in credentials.json)."""
    started_at: float
    """Unix time the process was started."""
    proc_start_ticks: int = 0
    """The process start time in /proc (clock ticks since boot); with the pid it names the process."""
    version: str = LABEL_STUDIO_VERSION
    reused: bool = False
    """True when :func:`start` found this server already running and returned it."""


@dataclass(frozen=True)
class ServerStatus:
    """What :func:`status` finds for a data dir."""

    state: str
    """``"running"`` (healthy), ``"unhealthy"`` (process alive, /health not UP) or ``"stopped"``."""
    message: str
    url: str | None = None
    pid: int | None = None
    port: int | None = None

    @property
    def running(self) -> bool:
        return self.state != "stopped"

    @property
    def healthy(self) -> bool:
        return self.state == "running"


# ---------------------------------------------------------------------------------------------------
# Processes and health


def _is_our_server(record: Mapping[str, Any]) -> bool:
    """Whether the recorded pid still is the Label Studio of this data dir (not a reused pid)."""
    pid = int(record["pid"])
    ticks = start_ticks(pid)
    if ticks is None or (record.get("proc_start_ticks") and ticks != record["proc_start_ticks"]):
        return False
    args = cmdline(pid)
    ls_dir = str(Path(record["data_dir"]) / LS_SUBDIR)
    return any(a.endswith("label-studio") for a in args) and ls_dir in args


def _healthy(url: str, timeout: float = 2.0) -> bool:
    """``GET /health`` answers ``{"status": "UP"}`` (no proxy: the server is on loopback)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{url}/health", timeout=timeout) as resp:
            return json.loads(resp.read().decode("utf-8")).get("status") == "UP"
    except (OSError, ValueError, AttributeError, http.client.HTTPException):
        return False


# ---------------------------------------------------------------------------------------------------
# State


@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    """One start or stop at a time per data dir."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(data_dir / LOCK_FILE, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _read_state(data_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((data_dir / STATE_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ServerError(f"cannot read {data_dir / STATE_FILE}: {exc}; delete it if no server runs") from None


def _write_state(data_dir: Path, info: ServerInfo) -> None:
    record = asdict(info)
    record.pop("reused")
    write_json(data_dir / STATE_FILE, record, indent=1)


def _remove_state(data_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (data_dir / STATE_FILE).unlink()


def _info(record: Mapping[str, Any], reused: bool) -> ServerInfo:
    fields = {k: record[k] for k in ServerInfo.__dataclass_fields__ if k in record and k != "reused"}
    return ServerInfo(**fields, reused=reused)


# ---------------------------------------------------------------------------------------------------
# Start, stop, status


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _check_port(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server itself binds
        try:
            s.bind((HOST, port))
        except OSError as exc:
            raise ServerError(f"port {port} on {HOST} is already in use ({exc.strerror}); pick another "
                              f"port, or leave it out to use a free one") from None


def _server_env(environ: Mapping[str, str], creds, ls_dir: Path, media_root: Path, venv_dir: Path) -> dict[str, str]:
    """The server's environment: ours minus stray settings, plus its login, storage and privacy settings."""
    env = {k: v for k, v in environ.items()
           if k not in _SCRUB_NAMES and not k.startswith(_SCRUB_PREFIXES)}
    env.update({
        "PATH": f"{venv_dir / 'bin'}{os.pathsep}{environ.get('PATH', os.defpath)}",
        "LABEL_STUDIO_USERNAME": creds.email,  # must be an email, or start waits on a prompt
        "LABEL_STUDIO_PASSWORD": creds.password,
        "LABEL_STUDIO_USER_TOKEN": creds.token,
        "LABEL_STUDIO_BASE_DATA_DIR": str(ls_dir),
        "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(media_root),
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        "LATEST_VERSION_CHECK": "false",
        "COLLECT_ANALYTICS": "false",
        "SENTRY_DSN": "",  # the defaults report errors to a remote service
        "FRONTEND_SENTRY_DSN": "",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def _wait_healthy(url: str, alive: Callable[[], int | None], log: Path, timeout: float, progress: Progress,
                  secrets: tuple[str, ...]) -> None:
    """Poll /health until UP. ``alive()`` returns None while the process runs, else its exit code (or -1)."""
    began = time.monotonic()
    next_report = 5.0
    while True:
        code = alive()
        if code is not None:
            raise ServerError(f"Label Studio exited (code {code}) while starting; last lines of {log}:\n"
                              f"{tail_log(log, secrets=secrets)}")
        if _healthy(url):
            return
        elapsed = time.monotonic() - began
        if elapsed > timeout:
            raise ServerError(f"Label Studio did not answer {url}/health within {timeout:.0f} s; last lines of "
                              f"{log}:\n{tail_log(log, secrets=secrets)}")
        if elapsed >= next_report:
            progress(f"waiting for {url}/health ({elapsed:.0f} s; a new database takes a minute or more)")
            next_report += 10.0
        time.sleep(0.5)


def start(data_dir: str | os.PathLike, port: int | None = None, venv_dir: str | os.PathLike = DEFAULT_VENV,
          media_root: str | os.PathLike | None = None, timeout: float = START_TIMEOUT,
          progress: Progress = _stderr, environ: Mapping[str, str] | None = None) -> ServerInfo:
    """Start Label Studio for a data dir, or return the one already running there.

    Args:
        data_dir: holds the server's database, log, pid record and credentials (created if missing).
        port: loopback port; None picks a free one (a running server keeps its own).
        venv_dir: Label Studio's venv, installed by :func:`ensure_venv` if missing.
        media_root: document root of local-file serving (default ``{data_dir}/media``); created if missing.
        timeout: seconds to wait for ``/health`` (first start migrates the database: 40-90 s).
        progress: receives progress lines (default: stderr). Never given a secret.
        environ: the environment to read ``MOLMO2_LABELSTUDIO_*`` from and pass on (default ``os.environ``).

    Returns:
        The running server; ``reused`` says whether it was already running.

    Raises:
        ServerError: the port is taken, the server exited or did not become healthy in time (the
            message carries the tail of its log), or a running server has another port or media root.
        CredentialsError: the environment's token or password differs from the data dir's.
        VenvError: Label Studio's venv is missing and could not be installed.
    """
    data_dir = Path(data_dir).absolute()
    environ = os.environ if environ is None else environ
    media = Path(media_root).absolute() if media_root is not None else data_dir / MEDIA_SUBDIR
    with _locked(data_dir):
        creds = ensure_credentials(data_dir, environ)
        secrets = (creds.token, creds.password)
        record = _read_state(data_dir)
        if record is not None and _is_our_server(record):
            info = _info(record, reused=True)
            if port is not None and port != info.port:
                raise ServerError(f"Label Studio already runs for {data_dir} at {info.url}; stop it to use port {port}")
            if media_root is not None and str(media) != info.media_root:
                raise ServerError(f"Label Studio already runs for {data_dir} with media root {info.media_root}; "
                                  f"stop it to serve {media}")
            if not _healthy(info.url):
                progress(f"Label Studio (pid {info.pid}) is running but not healthy yet; waiting")
                _wait_healthy(info.url, lambda: None if _is_our_server(record) else -1, Path(info.log_path),
                              timeout, progress, secrets)
            return info
        if record is not None:
            progress(f"removing the record of a server that is gone (pid {record.get('pid')})")
            _remove_state(data_dir)

        exe = ensure_venv(venv_dir, progress=progress)
        port = _free_port() if port is None else int(port)
        _check_port(port)
        ls_dir = data_dir / LS_SUBDIR
        ls_dir.mkdir(parents=True, exist_ok=True)
        ls_dir.chmod(0o700)  # its database holds the token and the password hash
        media.mkdir(parents=True, exist_ok=True)
        log = data_dir / LOG_FILE
        url = f"http://{HOST}:{port}"
        env = _server_env(environ, creds, ls_dir, media, Path(venv_dir).absolute())
        cmd = [str(exe), "start", "--no-browser", "--internal-host", HOST, "-p", str(port),
               "--data-dir", str(ls_dir), "--enable-legacy-api-token"]
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "ab") as out:
            out.write(f"\n=== molmo2-data: starting label-studio {LABEL_STUDIO_VERSION} at {url} "
                      f"({time.strftime('%Y-%m-%d %H:%M:%S')})\n".encode())
            out.flush()
            proc = subprocess.Popen(cmd, env=env, cwd=data_dir, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        CHILDREN[proc.pid] = proc
        info = ServerInfo(url=url, pid=proc.pid, port=port, data_dir=str(data_dir), media_root=str(media),
                          log_path=str(log), token_source=creds.token_source, started_at=time.time(),
                          proc_start_ticks=start_ticks(proc.pid) or 0)
        _write_state(data_dir, info)  # before waiting: a killed caller still leaves the pid behind
        progress(f"starting Label Studio {LABEL_STUDIO_VERSION} at {url} (pid {proc.pid}, log {log})")
        began = time.monotonic()
        try:
            _wait_healthy(url, proc.poll, log, timeout, progress, secrets)
        except BaseException:
            end_group(proc.pid, grace=2.0)
            _remove_state(data_dir)
            raise
        progress(f"Label Studio is up at {url} after {time.monotonic() - began:.0f} s")
        return info


def stop(data_dir: str | os.PathLike, grace: float = STOP_GRACE) -> str:
    """Stop the data dir's server by its recorded pid: SIGTERM to its process group, SIGKILL after ``grace`` s.

    The pid is signalled only if it still is this data dir's Label Studio (same start time in /proc,
    ``label-studio`` and this data dir on its command line); a stale record is removed.

    Returns:
        What happened, in one line ("stopped ..." or "... not running ...").

    Raises:
        ServerError: the process survived SIGKILL.
    """
    data_dir = Path(data_dir).absolute()
    if not data_dir.exists():
        return f"Label Studio is not running ({data_dir} does not exist)"
    with _locked(data_dir):
        record = _read_state(data_dir)
        if record is None:
            return f"Label Studio is not running for {data_dir} (no {STATE_FILE})"
        pid = int(record["pid"])
        if not _is_our_server(record):
            _remove_state(data_dir)
            return f"Label Studio is not running for {data_dir} (pid {pid} is gone; removed its stale record)"
        if not end_group(pid, grace):
            raise ServerError(f"Label Studio (pid {pid}) survived SIGKILL; see {record.get('log_path')}")
        CHILDREN.pop(pid, None)
        _remove_state(data_dir)
        return f"stopped Label Studio at {record['url']} (pid {pid})"


def status(data_dir: str | os.PathLike) -> ServerStatus:
    """Whether the data dir's server runs and answers ``/health``. Never starts or stops anything."""
    data_dir = Path(data_dir).absolute()
    record = _read_state(data_dir) if data_dir.exists() else None
    if record is None:
        return ServerStatus("stopped", f"Label Studio is not running for {data_dir}")
    if not _is_our_server(record):
        return ServerStatus("stopped", f"Label Studio is not running for {data_dir} (pid {record['pid']} is gone)")
    url, pid, port = record["url"], int(record["pid"]), int(record["port"])
    if _healthy(url):
        return ServerStatus("running", f"Label Studio is running at {url} (pid {pid})", url, pid, port)
    return ServerStatus("unhealthy", f"Label Studio (pid {pid}) runs but {url}/health is not UP; see "
                                     f"{record.get('log_path')}", url, pid, port)


# ---------------------------------------------------------------------------------------------------
# Clients


def load_credentials(data_dir: str | os.PathLike) -> tuple[str, str]:
    """``(url, token)`` of the data dir's running server, for API clients.

    Raises:
        ServerError: no server runs for the data dir.
        CredentialsError: its token cannot be read (see :mod:`annotation.credentials`).
    """
    data_dir = Path(data_dir).absolute()
    record = _read_state(data_dir) if data_dir.exists() else None
    if record is None or not _is_our_server(record):
        raise ServerError(f"Label Studio is not running for {data_dir}; run 'molmo2-data annotate server start'")
    return record["url"], read_credentials(data_dir).token


def client(target: str | os.PathLike, token: str | None = None):
    """A ``label_studio_sdk.LabelStudio`` client.

    Args:
        target: a server data dir (its url and token are read from there), or a base URL.
        token: the API token for a URL target (default ``MOLMO2_LABELSTUDIO_TOKEN``).

    Raises:
        ServerError / CredentialsError: as :func:`load_credentials`; or a URL without a token.
    """
    from label_studio_sdk import LabelStudio

    if isinstance(target, str) and target.startswith(("http://", "https://")):
        url, token = target.rstrip("/"), token or os.environ.get(TOKEN_ENV, "")
        if not token:
            raise CredentialsError(f"a token is needed for {url}: pass one or set {TOKEN_ENV}")
    else:
        url, stored = load_credentials(target)
        token = token or stored
    return LabelStudio(base_url=url, api_key=token)
