"""Label Studio server lifecycle: start on loopback, health, status, secrets, SDK, stop, failures.

One real server is started for the module from the migrated template (about 10 s; see
tests/labelstudio.py) and stopped by the last of its tests; the failure paths use fake
``label-studio`` executables and cost well under a second each.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from annotation import ls_process, server
from annotation.credentials import (PASSWORD_ENV, TOKEN_ENV, CredentialsError, ensure_credentials,
                                    read_credentials)
from tests.labelstudio import clean_environ, start_test_server, stop_test_server

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ls(tmp_path_factory):
    """The module's server, with everything its start printed."""
    tmp = tmp_path_factory.mktemp("ls")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        info = start_test_server(tmp, media_root=tmp / "media")
    try:
        yield info, out.getvalue() + err.getvalue()
    finally:
        stop_test_server(info)


def _token(info: server.ServerInfo) -> str:
    return read_credentials(info.data_dir, clean_environ()).token


def _get(url: str, token: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"Token {token}"} if token else {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "molmo2_data", "annotate", "server", *args], cwd=ROOT,
                          env=clean_environ(), capture_output=True, text=True, timeout=120)


def _fake_venv(tmp: Path, script: str) -> Path:
    """A venv whose ``label-studio`` is a shell script (stamped, so nothing is installed)."""
    venv = tmp / "fake-venv"
    (venv / "bin").mkdir(parents=True)
    exe = venv / "bin" / "label-studio"
    exe.write_text("#!/bin/sh\n" + script + "\n")
    exe.chmod(0o755)
    (venv / server.STAMP_NAME).touch()
    return venv


# -- the running server ---------------------------------------------------------------------------


def test_health_and_record(ls):
    info, _ = ls
    assert info.url == f"http://127.0.0.1:{info.port}" and not info.reused
    code, body = _get(f"{info.url}/health")
    assert code == 200 and json.loads(body) == {"status": "UP"}
    record = json.loads((Path(info.data_dir) / "server.json").read_text())
    assert record["pid"] == info.pid and record["port"] == info.port and record["url"] == info.url
    assert (Path(info.data_dir) / "label-studio" / "label_studio.sqlite3").exists()


def test_listens_on_loopback_only(ls):
    info, _ = ls
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port = local.split(":")
            if state == "0A" and int(port, 16) == info.port:
                listening.append(address)
    assert listening == ["0100007F"], listening  # 127.0.0.1, and no IPv6 or wildcard socket


def test_status_running(ls):
    info, _ = ls
    st = server.status(info.data_dir)
    assert st.state == "running" and st.healthy and st.running
    assert (st.url, st.pid, st.port) == (info.url, info.pid, info.port)


def test_start_is_idempotent(ls):
    info, _ = ls
    again = start_test_server(Path(info.data_dir).parent, media_root=info.media_root)
    assert again.reused and again.pid == info.pid and again.url == info.url
    with pytest.raises(server.ServerError, match="already runs"):
        server.start(info.data_dir, port=info.port + 1, environ=clean_environ(), progress=lambda m: None)


def test_token_stays_secret(ls):
    info, start_output = ls
    token, data_dir = _token(info), Path(info.data_dir)
    assert len(token) == 40
    # not on any command line of the server's process group (what `ps` shows)
    members = ls_process.group_members(info.pid)
    assert info.pid in members
    for pid in members:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
        assert token not in cmdline and "label-studio" in cmdline
    # passed through the environment instead, with stray login variables and error reporting gone
    environ = dict(kv.split("=", 1) for kv in
                   Path(f"/proc/{info.pid}/environ").read_bytes().decode().split("\0") if "=" in kv)
    assert environ["LABEL_STUDIO_USER_TOKEN"] == token
    assert environ["SENTRY_DSN"] == "" and environ["FRONTEND_SENTRY_DSN"] == ""
    assert environ["LATEST_VERSION_CHECK"] == "false" and environ["COLLECT_ANALYTICS"] == "false"
    assert "@" in environ["LABEL_STUDIO_USERNAME"]
    assert "USERNAME" not in environ and "PASSWORD" not in environ and TOKEN_ENV not in environ
    # not in what start, status or the command line print, nor in the pid record or the log
    assert token not in start_output and "starting Label Studio" in start_output
    assert token not in server.status(data_dir).message
    result = _cli("status", "--data-dir", str(data_dir))
    assert result.returncode == 0 and info.url in result.stdout
    assert token not in result.stdout + result.stderr
    assert token not in repr(read_credentials(data_dir, clean_environ()))
    assert token not in (data_dir / "server.json").read_text()
    assert token not in (data_dir / "server.log").read_text(errors="replace")
    for private in ("credentials.json", "server.log"):
        assert stat.S_IMODE((data_dir / private).stat().st_mode) == 0o600


def test_sdk_and_token_auth(ls):
    info, _ = ls
    ls_client = server.client(info.data_dir)
    project = ls_client.projects.create(title="smoke", label_config="<View><Text name='t' value='$t'/></View>")
    assert project.id in [p.id for p in ls_client.projects.list()]
    assert server.load_credentials(info.data_dir) == (info.url, _token(info))
    assert _get(f"{info.url}/api/projects", _token(info))[0] == 200
    assert _get(f"{info.url}/api/projects", "0" * 40)[0] == 401
    assert _get(f"{info.url}/api/projects")[0] == 401
    by_url = server.client(info.url, token=_token(info))
    assert [p.id for p in by_url.projects.list()] == [p.id for p in ls_client.projects.list()]


def test_stop_leaves_nothing_behind(ls):
    info, _ = ls
    members = ls_process.group_members(info.pid)
    message = server.stop(info.data_dir)
    assert message.startswith("stopped") and str(info.pid) in message
    for pid in members:
        assert ls_process.start_ticks(pid) is None, f"pid {pid} survived"
    assert not ls_process.group_members(info.pid)
    assert not (Path(info.data_dir) / "server.json").exists()
    assert server.status(info.data_dir).state == "stopped"
    assert _cli("status", "--data-dir", info.data_dir).returncode == 3
    assert "not running" in server.stop(info.data_dir)  # a clean no-op
    result = _cli("stop", "--data-dir", info.data_dir)
    assert result.returncode == 0 and "not running" in result.stdout
    # (restarting on an existing database is what every test server does: it starts from a copy
    # of the migrated template, whose admin user and token already exist)


# -- failures, without a real server --------------------------------------------------------------


def test_port_in_use_is_a_clear_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        venv = _fake_venv(tmp_path, "exit 0")
        with pytest.raises(server.ServerError, match=f"port {port} on 127.0.0.1 is already in use"):
            server.start(tmp_path / "d", port=port, venv_dir=venv, environ=clean_environ(), progress=lambda m: None)
    assert not (tmp_path / "d" / "server.json").exists()


def test_exit_during_start_shows_log_tail(tmp_path):
    venv = _fake_venv(tmp_path, 'echo "django.db.utils.OperationalError: no such table"; exit 3')
    with pytest.raises(server.ServerError, match="code 3") as err:
        server.start(tmp_path / "d", venv_dir=venv, environ=clean_environ(), progress=lambda m: None)
    assert "OperationalError: no such table" in str(err.value)
    assert not (tmp_path / "d" / "server.json").exists()


def test_start_timeout_kills_what_it_started(tmp_path):
    venv = _fake_venv(tmp_path, "echo still migrating; sleep 600")
    lines: list[str] = []
    with pytest.raises(server.ServerError, match="did not answer .* within 2 s") as err:
        server.start(tmp_path / "d", venv_dir=venv, timeout=2, environ=clean_environ(), progress=lines.append)
    assert "still migrating" in str(err.value)
    pid = int(lines[0].split("(pid ")[1].split(",")[0])
    assert ls_process.start_ticks(pid) is None and not ls_process.group_members(pid)
    assert not (tmp_path / "d" / "server.json").exists()


def test_stop_never_signals_a_process_that_is_not_the_server(tmp_path):
    data_dir = tmp_path / "d"
    data_dir.mkdir()
    ticks = ls_process.start_ticks(os.getpid())
    (data_dir / "server.json").write_text(json.dumps(
        {"pid": os.getpid(), "proc_start_ticks": ticks, "port": 1, "url": "http://127.0.0.1:1",
         "data_dir": str(data_dir)}))
    assert "stale" in server.stop(data_dir)  # we are alive, and not Label Studio
    assert not (data_dir / "server.json").exists()
    assert server.status(data_dir).state == "stopped"
    assert "not running" in server.stop(tmp_path / "never-made")


def test_missing_python_is_a_clear_error(tmp_path):
    with pytest.raises(server.VenvError, match="no-such-python3.11 is not on PATH"):
        server.ensure_venv(tmp_path / "venv", python="no-such-python3.11", progress=lambda m: None)


def test_pip_failure_is_a_clear_error(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("#!/bin/sh\necho 'ERROR: No matching distribution found'; exit 1\n")
    (venv / "bin" / "python").chmod(0o755)
    with pytest.raises(server.VenvError, match="pip install failed .exit 1.") as err:
        server.ensure_venv(venv, progress=lambda m: None)
    assert "No matching distribution found" in str(err.value)
    assert not (venv / server.STAMP_NAME).exists()


# -- credentials ----------------------------------------------------------------------------------


def test_generated_credentials_are_private_and_stable(tmp_path):
    first = ensure_credentials(tmp_path, environ={})
    assert first.token_source == first.password_source == "generated" and len(first.token) == 40
    assert ensure_credentials(tmp_path, environ={}).token == first.token
    assert stat.S_IMODE((tmp_path / "credentials.json").stat().st_mode) == 0o600
    assert first.token not in repr(first) and first.password not in str(first)
    with pytest.raises(CredentialsError, match=TOKEN_ENV):
        read_credentials(tmp_path, environ={TOKEN_ENV: "a" * 40})


def test_credentials_from_the_environment_are_not_written(tmp_path):
    env = {TOKEN_ENV: "b" * 40, PASSWORD_ENV: "a long password"}
    creds = ensure_credentials(tmp_path, environ=env)
    assert (creds.token, creds.password, creds.token_source) == ("b" * 40, "a long password", "env")
    text = (tmp_path / "credentials.json").read_text()
    assert "b" * 40 not in text and "a long password" not in text
    assert read_credentials(tmp_path, environ=env).token == "b" * 40
    with pytest.raises(CredentialsError, match="not set"):
        read_credentials(tmp_path, environ={})
    with pytest.raises(CredentialsError, match="differs"):
        read_credentials(tmp_path, environ={**env, TOKEN_ENV: "c" * 40})
    with pytest.raises(CredentialsError, match="40 letters"):
        ensure_credentials(tmp_path / "other", environ={TOKEN_ENV: "not a token!"})
