"""Label Studio projects from a kind: connect, then create or update a project idempotently.

One job: make sure a Label Studio project exists whose labeling config, description and
annotator instructions are the ones this repository defines for a project kind
(``annotation/configs/<kind>.xml``, see :mod:`annotation.tasks`), and turn the SDK's transport
and HTTP failures into errors that say what to do.

* :func:`connect` builds a ``LabelStudio`` client and checks it once (``users.whoami``): an
  unreachable server raises :class:`LabelStudioUnreachable` naming the URL; a rejected token
  raises :class:`LabelStudioAuthError`, which never contains the token.
* :func:`ensure_project` finds a project by its exact title (``projects.list(title=...)`` is a
  case-insensitive *contains* filter, so the titles are compared exactly here) and creates it,
  or updates only the fields that differ. Calling it again with the same arguments sends no
  update. The description ends with a ``molmo2-data kind: <kind>`` line; a project of that
  title made for another kind is an error rather than silently repurposed.
* :func:`api_errors` is the context manager push and pull wrap their calls in: every failure of
  the SDK inside it becomes a :class:`LabelStudioError` whose message is one line naming the
  cause (``title: at least 3 characters``). The SDK's own exception is never shown: its text
  holds every HTTP header of the answer, Label Studio's ``sessionid`` cookie included.
* :func:`safe_name` is the folder name of a project title, shared by the media folder
  (push) and the snapshot folder (pull).
"""
from __future__ import annotations

import contextlib
import html
import json
import re
import xml.etree.ElementTree as ET
from typing import Any, Iterator

from annotation.tasks import KINDS, label_config

__all__ = ["LabelStudioError", "LabelStudioUnreachable", "LabelStudioAuthError", "LabelStudioRefused", "connect",
           "api_errors", "describe_api_error", "ensure_project", "find_project", "project_kind", "instructions",
           "safe_name", "base_url"]

KIND_MARKER = "molmo2-data kind: "

DESCRIPTIONS: dict[str, str] = {
    "video_point": "VideoPoint: point at every object matching a query on each sampled frame of a clip.",
    "video_track": "VideoTrack: one box track per object matching an expression, over a whole clip, with the "
                   "frames where it is hidden marked occluded.",
    "multi_image_point": "MultiImagePoint: point at every object matching a query in each image of a set.",
    "multi_image_qa": "MultiImageQA: question/answer pairs that need a set of 2-5 images.",
    "ask_model_anything": "AskModelAnything: one question that needs the video, and its answer.",
    "caption": "Cap: a dense, time-ordered caption of one clip.",
    "review": "Review: accept, edit or reject one generated question (CapQA, SubtitleQA, SynMultiImageQA).",
}


class LabelStudioError(RuntimeError):
    """Label Studio could not be used: the message says why and what to check."""


class LabelStudioUnreachable(LabelStudioError):
    """Nothing answered at the server URL (not running, wrong host or port, timeout)."""


class LabelStudioAuthError(LabelStudioError):
    """The server rejected the API token (the token itself is never part of the message)."""


class LabelStudioRefused(LabelStudioError):
    """The server answered a request with an error (the message names the cause, never a header).

    Attributes:
        status_code: the HTTP status of the answer.
    """

    def __init__(self, message: str, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code


_SECRETS = re.compile(r"(?i)\b(sessionid|csrftoken)=[^;\s]+|\b(token|bearer)\s+[A-Za-z0-9._~+/=-]{8,}")


def _tidy(message: str) -> str:
    """One cause, short: Django's "Ensure this field has at least 3 characters." -> "at least 3 characters"."""
    message = re.sub(r"^Ensure this (field|value) (has|is) ", "", " ".join(message.split())).rstrip(".")
    return _SECRETS.sub(lambda m: f"{m.group(1) or m.group(2)} <hidden>", message)[:300]


def describe_api_error(body: Any) -> str:
    """The cause an error answer of Label Studio gives, on one line, without headers or secrets.

    Args:
        body: the answer's body (``ApiError.body``): Label Studio's JSON error
            ``{"detail", "validation_errors": {field: [messages]}}``, a DRF ``{field: [messages]}``,
            or text.
    """
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            lines = [ln.strip() for ln in re.sub(r"<[^>]+>", " ", body).splitlines() if ln.strip()]
            return _tidy(lines[0]) if lines else "no reason given"
    if isinstance(body, dict):
        errors = body.get("validation_errors") if isinstance(body.get("validation_errors"), dict) else None
        if errors is None and "detail" not in body:
            errors = body  # a DRF field error answer
        if errors:
            causes = [f"{field}: {_tidy(str(m))}" for field, msgs in errors.items()
                      for m in (msgs if isinstance(msgs, list) else [msgs])]
            return "; ".join(causes)
        if body.get("detail"):
            return _tidy(str(body["detail"]))
    return _tidy(str(body)) if body else "no reason given"


def base_url(client: Any) -> str:
    """The server URL a ``LabelStudio`` client talks to (for messages)."""
    try:
        return str(client._client_wrapper.get_base_url())
    except AttributeError:
        return "<unknown Label Studio URL>"


@contextlib.contextmanager
def api_errors(url: str, action: str | None = None) -> Iterator[None]:
    """Translate the SDK's failures inside the block into one-line errors that hold no header or secret.

    Args:
        url: the server URL, named in the messages.
        action: what the block does, for the message ("create project 'ab'").

    Raises:
        LabelStudioUnreachable: a connection error or timeout talking to ``url``.
        LabelStudioAuthError: the server answered 401 or 403.
        LabelStudioRefused: any other error answer; the message is its cause, e.g.
            ``... refused to create project 'ab': title: at least 3 characters (HTTP 400)``.
    """
    import httpx
    from label_studio_sdk.core.api_error import ApiError

    try:
        yield
    except httpx.TransportError as exc:
        raise LabelStudioUnreachable(
            f"Label Studio is not reachable at {url} ({type(exc).__name__}); is the server running "
            f"and is the URL right?") from None
    except ApiError as exc:
        if exc.status_code in (401, 403):
            raise LabelStudioAuthError(
                f"Label Studio at {url} rejected the API token (HTTP {exc.status_code}); check the token "
                f"(legacy tokens need a server started with --enable-legacy-api-token)") from None
        what = f"refused to {action}" if action else "refused a request"
        raise LabelStudioRefused(f"Label Studio at {url} {what}: {describe_api_error(exc.body)} "
                                 f"(HTTP {exc.status_code})", exc.status_code) from None


def connect(url: str, token: str, *, timeout: float = 60.0) -> Any:
    """A ``label_studio_sdk.LabelStudio`` client, checked against the server once.

    Args:
        url: server URL, e.g. ``http://127.0.0.1:8080``.
        token: a legacy API token or a personal access token.
        timeout: seconds per HTTP request.

    Returns:
        The client.

    Raises:
        LabelStudioUnreachable: nothing answers at ``url``.
        LabelStudioAuthError: the token was rejected (the message does not contain it).
    """
    from label_studio_sdk import LabelStudio

    url = url.rstrip("/")
    with api_errors(url):
        client = LabelStudio(base_url=url, api_key=token, timeout=timeout)
        client.users.whoami()
    return client


def safe_name(title: str) -> str:
    """A folder name for a project title: letters, digits, ``.``, ``_`` and ``-``; others -> ``_``.

    Raises:
        ValueError: a title with nothing usable in it.
    """
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", title.strip()).strip("._")
    if not name:
        raise ValueError(f"project title {title!r} has no characters usable in a folder name")
    return name


def instructions(kind: str) -> str:
    """Annotator instructions (HTML) of a kind, taken from its config's ``instructions`` text.

    Raises:
        ValueError: an unknown kind.
    """
    root = ET.fromstring(label_config(kind))
    texts = [e.get("value", "") for e in root.iter("Text") if e.get("name") == "instructions"]
    head = html.escape(DESCRIPTIONS[kind])
    return f"<p><b>{head}</b></p>" + "".join(f"<p>{html.escape(t)}</p>" for t in texts)


def project_kind(project: Any) -> str | None:
    """The kind recorded in a project's description, or None for a project made elsewhere."""
    for line in (getattr(project, "description", None) or "").splitlines():
        if line.startswith(KIND_MARKER):
            return line[len(KIND_MARKER):].strip()
    return None


def find_project(client: Any, title: str) -> Any | None:
    """The project whose title is exactly ``title``, or None.

    Raises:
        LabelStudioError: more than one project has that title (ambiguous).
        LabelStudioUnreachable, LabelStudioAuthError: see :func:`api_errors`.
    """
    with api_errors(base_url(client), f"list the projects titled {title!r}"):
        found = [p for p in client.projects.list(title=title, page_size=100) if p.title == title]
    if len(found) > 1:
        raise LabelStudioError(f"{len(found)} projects are titled {title!r} (ids {[p.id for p in found]}); "
                               f"rename or delete the extra ones")
    if not found:
        return None
    with api_errors(base_url(client)):
        return client.projects.get(found[0].id)  # the list's items lack the config and description


def _same_config(a: str | None, b: str) -> bool:
    return re.sub(r"\s+", " ", (a or "").strip()) == re.sub(r"\s+", " ", b.strip())


def ensure_project(client: Any, kind: str, title: str, *, description: str | None = None,
                   **settings: Any) -> Any:
    """Create the project of ``kind`` titled ``title``, or bring an existing one up to date.

    Idempotent: the project is found by exact title; on an existing project only the fields that
    differ (label config, compared ignoring whitespace; description; instructions; ``settings``)
    are sent, so a second call with the same arguments changes nothing. Label Studio refuses a
    config change that would orphan existing annotations, and a title under 3 characters
    (:class:`LabelStudioRefused`, naming the cause).

    Args:
        client: a ``LabelStudio`` client (see :func:`connect`).
        kind: a project kind of :data:`annotation.tasks.KINDS`.
        title: the project title (unique on the server).
        description: text shown on the project card; defaults to the kind's one-line summary.
            A ``molmo2-data kind: <kind>`` line is appended.
        **settings: other ``projects.create``/``update`` fields, e.g. ``maximum_annotations=2``.

    Returns:
        The project as the server returns it (``id``, ``title``, ``label_config``, ...).

    Raises:
        ValueError: an unknown kind (the message lists the known ones).
        LabelStudioError: the title belongs to a project of another kind, or to several projects.
        LabelStudioUnreachable, LabelStudioAuthError, LabelStudioRefused: see :func:`api_errors`.
    """
    config = label_config(kind)  # raises ValueError for an unknown kind
    wanted: dict[str, Any] = {
        "label_config": config,
        "description": f"{description or DESCRIPTIONS[kind]}\n\n{KIND_MARKER}{kind}",
        "expert_instruction": instructions(kind),
        "show_instruction": True,
        **settings,
    }
    url = base_url(client)
    project = find_project(client, title)
    if project is None:
        with api_errors(url, f"create project {title!r}"):
            created = client.projects.create(title=title, **wanted)
            return client.projects.get(created.id)
    with api_errors(url, f"update project {title!r}"):
        existing = project_kind(project)
        if existing is not None and existing != kind:
            raise LabelStudioError(f"project {title!r} (id {project.id}) was made for kind {existing!r}, not "
                                   f"{kind!r}; choose another title")
        changed = {k: v for k, v in wanted.items()
                   if not (_same_config(getattr(project, k, None), v) if k == "label_config"
                           else getattr(project, k, None) == v)}
        if changed:
            client.projects.update(project.id, **changed)
            project = client.projects.get(project.id)
        return project


def known_kinds() -> list[str]:
    """The project kinds, sorted (for argument parsers and messages)."""
    return sorted(KINDS)
