"""``molmo2-data annotate server start|stop|status|install``: the Label Studio server's lifecycle.

The work is ``annotation.server`` (start, stop, status) and ``annotation.ls_venv`` (install); this
module declares the actions and turns their errors into one line and an exit code. It and
``annotation.server`` import only the standard library, so ``install`` runs on a bare
``python3.11 -m molmo2_data`` (``make`` builds Label Studio's venv before the project's venv).

Exit codes: 0 done; 1 the action failed (the server did not start or stop, pip failed);
2 a credentials problem (a token or password from the environment that is missing or malformed);
``status``: 0 running, 1 unhealthy, 3 stopped.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_parser", "main"]


def add_parser(annotate) -> argparse.ArgumentParser:
    """Declare ``server`` and its actions on the ``annotate`` sub-parsers (standard library only)."""
    from annotation.server import DEFAULT_DATA_DIR, DEFAULT_VENV, START_TIMEOUT, STOP_GRACE

    parser = annotate.add_parser("server", help="install, start, stop or check the Label Studio server",
                                 description="Label Studio in its own venv, headless on 127.0.0.1.")
    actions = parser.add_subparsers(dest="server_action", metavar="ACTION", required=True)
    for name, help_text in (("start", "start Label Studio headless on 127.0.0.1 (installs it on first use)"),
                            ("stop", "stop the server by its recorded pid"),
                            ("status", "say whether the server runs and answers /health (exit 0 running, "
                                       "1 unhealthy, 3 stopped)"),
                            ("install", "install Label Studio into its own venv (idempotent)")):
        p = actions.add_parser(name, help=help_text, description=help_text)
        if name != "install":
            p.add_argument("--data-dir", default=DEFAULT_DATA_DIR,
                           help="database, log, pid record and credentials (default: %(default)s)")
        if name in ("start", "install"):
            p.add_argument("--venv", default=str(DEFAULT_VENV), help="Label Studio's venv (default: %(default)s)")
        if name == "start":
            p.add_argument("--port", type=int, default=None, help="loopback port (default: a free one)")
            p.add_argument("--media-root", default=None,
                           help="document root for local-file serving (default: DATA_DIR/media)")
            p.add_argument("--timeout", type=float, default=START_TIMEOUT,
                           help="seconds to wait for /health (default: %(default)s)")
        if name == "stop":
            p.add_argument("--grace", type=float, default=STOP_GRACE,
                           help="seconds between SIGTERM and SIGKILL (default: %(default)s)")
    parser.set_defaults(handler=main)
    return parser


def _install(args) -> int:
    from annotation.ls_venv import ensure_venv

    print(ensure_venv(args.venv))
    return 0


def _start(args) -> int:
    from annotation.server import TOKEN_ENV, start

    info = start(args.data_dir, port=args.port, venv_dir=args.venv, media_root=args.media_root,
                 timeout=args.timeout)
    where = ("from " + TOKEN_ENV if info.token_source == "env"
             else f"in {Path(info.data_dir) / 'credentials.json'} (mode 0600)")
    print(f"{'already running' if info.reused else 'started'}: {info.url} (pid {info.pid})\n"
          f"data dir:   {info.data_dir}\nmedia root: {info.media_root}\nlog:        {info.log_path}\n"
          f"API token:  {where}")
    return 0


def _stop(args) -> int:
    from annotation.server import stop

    print(stop(args.data_dir, grace=args.grace))
    return 0


def _status(args) -> int:
    from annotation.server import status

    st = status(args.data_dir)
    print(st.message)
    return {"running": 0, "unhealthy": 1}.get(st.state, 3)


def main(args: argparse.Namespace, extra: list[str] | None = None) -> int:
    """Run a parsed ``server`` action; prints no secret; returns the exit code (module docstring)."""
    from annotation.credentials import CredentialsError
    from annotation.server import ServerError, VenvError

    action = {"install": _install, "start": _start, "stop": _stop, "status": _status}[args.server_action]
    try:
        return action(args)
    except CredentialsError as exc:
        print(f"molmo2-data annotate server {args.server_action}: {exc}", file=sys.stderr)
        return 2
    except (ServerError, VenvError) as exc:
        print(f"molmo2-data annotate server {args.server_action}: {exc}", file=sys.stderr)
        return 1
