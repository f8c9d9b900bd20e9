"""``molmo2-data annotate push|pull|normalize``: move tasks and labels between ingest and Label Studio.

``push`` and ``pull`` talk to a running server (``annotate server start``, declared in
``annotate_server.py``); ``normalize`` reads only saved snapshots, so later stages rebuild with no
server at all. Exit codes: 0 done; 2 a problem with the server, the token or the inputs (one line,
no traceback).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

DEFAULT_SNAPSHOTS = "labelstudio-snapshots"


def _positive(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def add_parser(commands) -> argparse.ArgumentParser:
    """Declare ``annotate`` and its actions on the command line's sub-parsers (standard library only)."""
    from molmo2_data.annotate_server import add_parser as add_server_parser

    parser = commands.add_parser(
        "annotate",
        help="Label Studio: server, projects, push, pull, normalize",
        description="Run a Label Studio server and move tasks and labels between it and this project.",
    )
    annotate = parser.add_subparsers(dest="annotate_command", metavar="ACTION", required=True)
    add_server_parser(annotate)
    _add_actions(annotate)
    for name in ("push", "pull", "normalize"):
        annotate.choices[name].set_defaults(handler=main)
    return parser


def _add_actions(annotate) -> None:
    """Declare push, pull and normalize on the ``annotate`` sub-parsers (standard library only)."""
    from annotation.tasks import KINDS

    def connection(p):
        p.add_argument("--data-dir", default="labelstudio-data",
                       help="the server's data dir (url and token are read from it; default: %(default)s)")
        p.add_argument("--url", help="server URL instead of --data-dir; the token then comes from the "
                                      "MOLMO2_LABELSTUDIO_TOKEN environment variable")

    p = annotate.add_parser("push", help="create/update a project and import the new tasks (idempotent)",
                            description="Materialize media under the media root, register it as local "
                                        "storage and import tasks not already on the server.")
    connection(p)
    p.add_argument("--kind", required=True, choices=sorted(KINDS), help="project kind")
    p.add_argument("--project", required=True, help="project title")
    p.add_argument("--ingest", required=True, help="an ingest output folder")
    p.add_argument("--media-root", help="Label Studio's document root (default: the server's media root)")
    p.add_argument("--query", help="what annotators look for, on every clip (point and track kinds)")
    p.add_argument("--label", help="dataset label written with the answers (default: the query)")
    p.add_argument("--items", help="JSONL of {key, query?, label?, predictions?} instead of every clip")
    p.add_argument("--records", help="review: a synth record folder whose generated questions to review "
                                     "(--ingest: the ingest output, or synth --media-out folder, with their media)")
    p.add_argument("--batch-size", type=_positive, default=500, help="tasks per import request (default: %(default)s)")
    p.add_argument("--on-conflict", choices=["skip", "update", "raise"], default="skip",
                   help="a task key already on the server with other data (default: %(default)s)")
    p.add_argument("--skip-off-grid", action="store_true",
                   help="video_point: push only the clips sampled on Molmo 2's 0.5 s grid and name the others "
                        "(default: refuse the push)")
    p.set_defaults(handler_name="push")

    p = annotate.add_parser("pull", help="save a versioned snapshot of a project's export",
                            description="Export a project (track keyframes interpolated) into a new "
                                        "numbered snapshot when anything changed; print the changes.")
    connection(p)
    p.add_argument("--project", required=True, help="project title")
    p.add_argument("--snapshots", default=DEFAULT_SNAPSHOTS, help="snapshot folder (default: %(default)s)")
    p.set_defaults(handler_name="pull")

    p = annotate.add_parser("normalize", help="turn a saved snapshot into dataset records (no server)",
                            description="Read the latest (or a given) snapshot and write the normalized "
                                        "records per dataset, failures, agreements and the review list into "
                                        "OUT/<project>/, with normalized.json naming the snapshot read and "
                                        "the sha256 of every input and output.")
    p.add_argument("--project", required=True, help="project title")
    p.add_argument("--snapshots", default=DEFAULT_SNAPSHOTS, help="snapshot folder (default: %(default)s)")
    p.add_argument("--version", type=int, help="snapshot version (default: the latest)")
    p.add_argument("--ingest", help="ingest output whose clips.parquet and videos.parquet tell the known clips "
                                    "and the source and duration of their videos")
    p.add_argument("--out", required=True, help="output root; the project's outputs go to OUT/<project>/")
    p.set_defaults(handler_name="normalize")


class _UsageError(Exception):
    """An annotate argument that cannot work; the message says which and what to do."""


def _client(args):
    from annotation.credentials import TOKEN_ENV, CredentialsError
    from annotation.projects import connect

    if args.url:
        token = os.environ.get(TOKEN_ENV)
        if not token:
            raise CredentialsError(f"--url needs the API token in the {TOKEN_ENV} environment variable")
        return connect(args.url, token), None
    from annotation.server import load_credentials, status

    url, token = load_credentials(args.data_dir)
    return connect(url, token), status(args.data_dir)


def _media_root(args) -> str:
    """--media-root, else the media root the data dir's server was started with."""
    if args.media_root:
        return args.media_root
    if args.url:
        raise _UsageError("--url needs --media-root, Label Studio's document root")
    state = Path(args.data_dir) / "server.json"
    try:
        return json.loads(state.read_text())["media_root"]
    except (OSError, ValueError, KeyError):
        raise _UsageError(f"--data-dir {args.data_dir} holds no Label Studio server: start one with 'molmo2-data "
                          f"annotate server start --data-dir {args.data_dir}', or pass --url and --media-root") from None


def _push_review(args, media_root: str) -> int:
    from annotation.projects import ensure_project
    from annotation.review import push_review, read_review_records

    if not args.records:
        raise _UsageError("--kind review needs --records, a synth record folder")
    try:
        dataset, records = read_review_records(args.records)
    except ValueError as exc:
        raise _UsageError(str(exc)) from None
    client, _ = _client(args)
    project = ensure_project(client, "review", args.project)
    result = push_review(client, project, args.ingest, media_root, dataset, records, batch_size=args.batch_size,
                         on_conflict=args.on_conflict)
    print(f"push {args.project!r}: {len(records)} {dataset} records -> {result.created} review tasks created, "
          f"{result.existing} already there, {len(result.conflicts)} conflicts in {result.seconds:.1f} s")
    return 0


def _push(args) -> int:
    from annotation.projects import ensure_project
    from annotation.push import plan_push, push
    from annotation.push_plan import read_items

    media_root = _media_root(args)
    if args.kind == "review":
        return _push_review(args, media_root)
    items = read_items(args.items) if args.items else None
    plan = plan_push(args.ingest, args.kind, items, query=args.query, label=args.label, title=args.project,
                     media_root=media_root, skip_off_grid=args.skip_off_grid)  # every check, nothing created
    for warning in plan.warnings:
        print(f"molmo2-data annotate push: warning: {warning}", file=sys.stderr)
    client, _ = _client(args)
    project = ensure_project(client, args.kind, args.project)
    result = push(client, project, args.ingest, media_root, kind=args.kind, batch_size=args.batch_size,
                  on_conflict=args.on_conflict, plan=plan,
                  progress=lambda done, total: print(f"  pushed {done}/{total}", file=sys.stderr))
    left = f", {len(plan.skipped)} off-grid clip(s) left out" if plan.skipped else ""
    print(f"push {args.project!r}: {result.created} created, {result.existing} already there, "
          f"{result.updated} updated, {len(result.conflicts)} conflicts{left} in {result.seconds:.1f} s")
    return 0


def _pull(args) -> int:
    from annotation.projects import find_project
    from annotation.pull import pull

    client, _ = _client(args)
    project = find_project(client, args.project)
    if project is None:
        raise _UsageError(f"no project titled {args.project!r} on the server")
    if Path(args.snapshots).exists() and not Path(args.snapshots).is_dir():
        raise _UsageError(f"--snapshots {args.snapshots} is a file: pass a folder for the snapshots")
    result = pull(client, project, args.snapshots)
    c = result.changes
    what = f"version {result.version} at {result.path}" if result.changed else "nothing changed; no new version"
    print(f"pull {args.project!r}: {result.tasks} tasks, {result.annotations} annotations; {what}")
    print(f"  annotations: {len(c.new)} new, {len(c.updated)} updated, {len(c.deleted)} deleted")
    return 0


def _normalize(args) -> int:
    from annotation.normalize import Origin, load_export, normalize_export
    from annotation.outputs import file_digest, write_outputs
    from annotation.pull import find_snapshot
    from annotation.push_plan import read_ingest_table
    from shards.layout import IngestLayout

    snapshot = find_snapshot(args.snapshots, args.project, version=args.version)
    raw = snapshot.read()  # checked against the sha256 pull recorded
    known, videos, inputs = None, None, {}
    if args.ingest:
        path, rows = read_ingest_table(args.ingest, "clips")
        known, inputs["clips"] = {r["key"]: r for r in rows}, file_digest(path)
        if IngestLayout(args.ingest).videos_table.is_file():  # the real source and duration of each video
            path, rows = read_ingest_table(args.ingest, "videos")
            videos, inputs["videos"] = {r["key"]: r for r in rows}, file_digest(path)
    from annotation.review import is_review_export, normalize_review_export

    try:
        review = is_review_export(load_export(raw))
    except ValueError:  # not JSON: normalize_export says so as a failure record
        review = False
    result = normalize_review_export(raw) if review else normalize_export(
        raw, known_clips=known, origin=Origin(args.project, snapshot.version), known_videos=videos)
    consumed = {"version": snapshot.version, "file": snapshot.path.name, "path": str(snapshot.path.resolve()),
                "sha256": snapshot.sha256, "bytes": len(raw), "tasks": snapshot.tasks,
                "annotations": snapshot.annotations}
    folder = write_outputs(args.out, args.project, result, [consumed], inputs)
    counts = {k: len(v) for k, v in sorted(result.records.items())}
    print(f"normalize {args.project!r} (snapshot version {snapshot.version}): records {counts}, "
          f"{len(result.failures)} failures {result.failure_counts()}, {len(result.review)} for review, "
          f"{len(result.unannotated)} unannotated")
    print(f"  outputs in {folder}")
    return 0


def main(args: argparse.Namespace, extra: list[str]) -> int:
    """Run one annotate action; a user error (server, token, inputs, paths, an API refusal) exits 2
    with one line on stderr: no traceback, and never a header, cookie or token."""
    from annotation.credentials import CredentialsError
    from annotation.outputs import OutputError
    from annotation.projects import LabelStudioError, describe_api_error
    from annotation.push_plan import PushCheckError
    from annotation.server import ServerError
    from label_studio_sdk.core.api_error import ApiError

    try:
        return {"push": _push, "pull": _pull, "normalize": _normalize}[args.handler_name](args)
    except (LabelStudioError, ServerError, CredentialsError, PushCheckError, OutputError, _UsageError) as exc:
        message = str(exc)
    except ApiError as exc:  # one that escaped api_errors: its text would hold every header
        message = f"Label Studio answered HTTP {exc.status_code}: {describe_api_error(exc.body)}"
    except OSError as exc:  # a path of the user's that cannot be read or written
        where = f" {exc.filename}" if exc.filename else ""
        message = f"cannot use{where}: {exc.strerror or exc}"
    print(f"molmo2-data annotate {args.handler_name}: {message}", file=sys.stderr)
    return 2
