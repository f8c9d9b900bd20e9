"""Label Studio's own virtual environment: created and installed once, checked by a stamp after.

Label Studio pins Django 5.2, pyarrow 24, pytz 2022 and an exact label-studio-sdk, which clash with
this project's stack, so the server runs from a venv of its own; the project's venv holds only
``label-studio-sdk``. The stamp ``{venv}/.installed-label-studio-{LABEL_STUDIO_VERSION}`` is written
last, so an interrupted install is redone and a new pinned version reinstalls. ``make test`` builds
it up front (``python -m molmo2_data annotate server install``) so no test pays for it.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from annotation.ls_process import tail_log

__all__ = ["LABEL_STUDIO_VERSION", "DEFAULT_VENV", "STAMP_NAME", "VenvError", "ensure_venv"]

LABEL_STUDIO_VERSION = "1.23.2"
_ROOT = Path(__file__).resolve().parents[1]
# A source checkout keeps the venv beside .venv (``make test`` builds it); an installed package in
# the user's cache, so it is not rebuilt for every working directory.
DEFAULT_VENV = (_ROOT / ".labelstudio-venv" if (_ROOT / "setup.py").exists()
                else Path.home() / ".cache" / "molmo2-data" / "labelstudio-venv")
STAMP_NAME = f".installed-label-studio-{LABEL_STUDIO_VERSION}"

Progress = Callable[[str], None]


class VenvError(RuntimeError):
    """Label Studio's venv could not be made; the message says why (and quotes the install log)."""


def _stderr(message: str) -> None:
    print(f"label-studio: {message}", file=sys.stderr, flush=True)


def _executable(venv_dir: Path) -> Path:
    return venv_dir / "bin" / "label-studio"


def ensure_venv(venv_dir: str | os.PathLike = DEFAULT_VENV, python: str = "python3.11",
                progress: Progress = _stderr) -> Path:
    """Install Label Studio into its own venv once; later calls only check the stamp.

    The stamp ``{venv_dir}/.installed-label-studio-{LABEL_STUDIO_VERSION}`` is written last, so an
    interrupted install is redone, and changing the pinned version reinstalls.

    Args:
        venv_dir: the venv to create or reuse.
        python: the interpreter that creates it (Label Studio 1.23 supports 3.10-3.12).
        progress: receives progress lines (default: stderr).

    Returns:
        The ``label-studio`` executable in the venv.

    Raises:
        VenvError: the interpreter is missing, or ``venv``/``pip`` failed (with the tail of the log).
    """
    venv_dir = Path(venv_dir).absolute()
    stamp, exe = venv_dir / STAMP_NAME, _executable(venv_dir)
    if stamp.exists() and exe.exists():
        return exe
    venv_python, log = venv_dir / "bin" / "python", venv_dir / "install.log"
    if not venv_python.exists():
        interpreter = shutil.which(python)
        if interpreter is None:
            raise VenvError(f"{python} is not on PATH; it is needed to create the Label Studio venv at "
                            f"{venv_dir} (or create that venv yourself with Python 3.10-3.12)")
        progress(f"creating the Label Studio venv {venv_dir}")
        venv_dir.mkdir(parents=True, exist_ok=True)
        _run_logged([interpreter, "-m", "venv", str(venv_dir)], log, "python -m venv", progress)
    progress(f"installing label-studio=={LABEL_STUDIO_VERSION} into {venv_dir} (about 80 s and 1 GB; log: {log})")
    began = time.monotonic()
    _run_logged([str(venv_python), "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off",
                 f"label-studio=={LABEL_STUDIO_VERSION}"], log, "pip install", progress)
    if not exe.exists():
        raise VenvError(f"pip installed label-studio but {exe} is missing; see {log}")
    for old in venv_dir.glob(".installed-label-studio-*"):
        old.unlink()
    stamp.touch()
    progress(f"installed label-studio {LABEL_STUDIO_VERSION} in {time.monotonic() - began:.0f} s")
    return exe


def _run_logged(cmd: list[str], log: Path, what: str, progress: Progress) -> None:
    """Run a command with its output in a log file, reporting every 15 s; raise with the log's tail."""
    log.parent.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        while proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=15)
            if proc.returncode is None:
                progress(f"{what}: still running ({time.monotonic() - began:.0f} s)")
    if proc.returncode != 0:
        raise VenvError(f"{what} failed (exit {proc.returncode}); last lines of {log}:\n{tail_log(log)}")
