"""The Label Studio admin login and API token of one server data dir: where they come from, where they live.

Two environment variables, read only when a data dir's credentials are first made and checked after:

* ``MOLMO2_LABELSTUDIO_TOKEN``: the API token (a legacy token, sent as ``Authorization: Token ...``).
* ``MOLMO2_LABELSTUDIO_PASSWORD``: the admin password (for logging in to the web UI).

A value taken from the environment is never written to disk: ``{data_dir}/credentials.json`` keeps
only its SHA-256, so a client must have the same variable set. A value that is absent is generated
once (``secrets.token_hex``) and kept in that file, which is created with mode 0600. Label Studio sets
the token only when it creates its database, so a data dir keeps the token it was made with; a
different one in the environment later is an error, not a silent second token. Nothing here prints
or logs a secret.

``credentials.json``::

    {"email": "admin@molmo2.local",
     "token": "<hex>" | "token_sha256": "<hex>", "token_source": "generated" | "env",
     "password": "<hex>" | "password_sha256": "<hex>", "password_source": "generated" | "env"}
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from shards.atomic import write_json

__all__ = ["TOKEN_ENV", "PASSWORD_ENV", "ADMIN_EMAIL", "Credentials", "CredentialsError",
           "ensure_credentials", "read_credentials", "credentials_path"]

TOKEN_ENV = "MOLMO2_LABELSTUDIO_TOKEN"
PASSWORD_ENV = "MOLMO2_LABELSTUDIO_PASSWORD"
# Label Studio's admin user name must be an email address; without one its start waits on a prompt.
ADMIN_EMAIL = "admin@molmo2.local"
_FILE = "credentials.json"


class CredentialsError(RuntimeError):
    """The credentials of a data dir are missing, unreadable or disagree with the environment."""


@dataclass(frozen=True)
class Credentials:
    """The admin login and API token of one Label Studio data dir."""

    email: str
    """Admin user name (an email address)."""
    token: str = ""
    """API token; kept out of ``repr`` so a traceback or log line never shows it."""
    password: str = ""
    """Admin password; kept out of ``repr`` likewise."""
    token_source: str = "generated"
    """``"env"`` (from ``MOLMO2_LABELSTUDIO_TOKEN``) or ``"generated"`` (kept in credentials.json)."""
    password_source: str = "generated"
    """``"env"`` (from ``MOLMO2_LABELSTUDIO_PASSWORD``) or ``"generated"``."""

    def __repr__(self) -> str:  # never show the secrets
        return (f"Credentials(email={self.email!r}, token=<{self.token_source}>, "
                f"password=<{self.password_source}>)")

    __str__ = __repr__


def credentials_path(data_dir: str | os.PathLike) -> Path:
    """Where a data dir keeps its credentials."""
    return Path(data_dir) / _FILE


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def _write_private(path: Path, record: dict) -> None:
    """Write JSON readable by the owner only: created 0600, never world-readable even for a moment."""
    write_json(path, record, indent=1, private=True, fsync=True)


def _resolve(record: dict, name: str, env_name: str, environ: Mapping[str, str], path: Path) -> tuple[str, str]:
    """One secret (value, source) from a stored record, checked against the environment."""
    from_env = environ.get(env_name, "")
    if name in record:  # generated and stored
        if from_env and from_env != record[name]:
            raise CredentialsError(
                f"{env_name} is set but {path} was made with a generated {name}; Label Studio keeps the "
                f"first one. Unset {env_name}, or use a new data dir.")
        return record[name], "generated"
    digest = record.get(f"{name}_sha256")
    if digest is None:
        raise CredentialsError(f"{path} has no {name}; delete the data dir and start again")
    if not from_env:
        raise CredentialsError(f"this Label Studio data dir takes its {name} from {env_name}, which is not set")
    if _sha256(from_env) != digest:
        raise CredentialsError(
            f"{env_name} differs from the {name} {path.parent} was made with; Label Studio keeps the first "
            f"one. Set the original value, or use a new data dir.")
    return from_env, "env"


def _check(name: str, env_name: str, value: str) -> None:
    """Refuse values Label Studio would reject later, with a message that names the variable."""
    if name == "token" and not (value.isascii() and value.isalnum() and len(value) <= 40):
        raise CredentialsError(f"{env_name} must be at most 40 letters and digits (a Label Studio legacy token)")
    if name == "password" and len(value) < 8:
        raise CredentialsError(f"{env_name} must be at least 8 characters")


def read_credentials(data_dir: str | os.PathLike, environ: Mapping[str, str] | None = None) -> Credentials:
    """The credentials of an existing data dir.

    Args:
        data_dir: the server's data dir.
        environ: where ``MOLMO2_LABELSTUDIO_*`` are read (default ``os.environ``).

    Raises:
        CredentialsError: no credentials.json, or the environment disagrees with it.
    """
    environ = os.environ if environ is None else environ
    path = credentials_path(data_dir)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CredentialsError(f"no Label Studio credentials in {Path(data_dir)}; start the server first "
                               f"('molmo2-data annotate server start')") from None
    except (OSError, ValueError) as exc:
        raise CredentialsError(f"cannot read {path}: {exc}") from None
    token, token_source = _resolve(record, "token", TOKEN_ENV, environ, path)
    password, password_source = _resolve(record, "password", PASSWORD_ENV, environ, path)
    return Credentials(email=record.get("email", ADMIN_EMAIL), token=token, password=password,
                       token_source=token_source, password_source=password_source)


def ensure_credentials(data_dir: str | os.PathLike, environ: Mapping[str, str] | None = None) -> Credentials:
    """The credentials of a data dir, made on first use (from the environment, else generated).

    Raises:
        CredentialsError: as :func:`read_credentials` for a data dir that has them already.
    """
    environ = os.environ if environ is None else environ
    path = credentials_path(data_dir)
    if path.exists():
        return read_credentials(data_dir, environ)
    path.parent.mkdir(parents=True, exist_ok=True)
    record: dict[str, str] = {"email": ADMIN_EMAIL}
    for name, env_name in (("token", TOKEN_ENV), ("password", PASSWORD_ENV)):
        value = environ.get(env_name, "")
        if value:
            _check(name, env_name, value)
            record[f"{name}_sha256"] = _sha256(value)
            record[f"{name}_source"] = "env"
        else:
            record[name] = secrets.token_hex(20)
            record[f"{name}_source"] = "generated"
    _write_private(path, record)
    return read_credentials(data_dir, environ)
