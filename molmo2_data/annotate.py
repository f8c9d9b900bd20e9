"""``molmo2-data annotate push|pull|normalize``: move tasks and labels between ingest and Label Studio.

``push`` and ``pull`` talk to a running server (``annotate server start``, declared in
``annotate_server.py``); ``normalize`` reads only saved snapshots, so later stages rebuild with no
server at all. Exit codes: 0 done; 2 a problem with the server, the token or the inputs (one line,
no traceback).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

DEFAULT_SNAPSHOTS = "labelstudio-snapshots"


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
    p.add_argument("--batch-size", type=int, default=500, help="tasks per import request (default: %(default)s)")
    p.add_argument("--on-conflict", choices=["skip", "update", "raise"], default="skip",
                   help="a task key already on the server with other data (default: %(default)s)")
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
                                        "records per dataset, failures, agreements and the review list.")
    p.add_argument("--project", required=True, help="project title")
    p.add_argument("--snapshots", default=DEFAULT_SNAPSHOTS, help="snapshot folder (default: %(default)s)")
    p.add_argument("--version", type=int, help="snapshot version (default: the latest)")
    p.add_argument("--ingest", help="ingest output whose clips.parquet tells the known clips")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(handler_name="normalize")


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


def _push(args) -> int:
    from annotation.projects import ensure_project
    from annotation.push import PushItem, push

    client, state = _client(args)
    media_root = args.media_root
    if media_root is None:
        record = json.loads((Path(args.data_dir) / "server.json").read_text())
        media_root = record["media_root"]
    items = None
    if args.items:
        rows = [json.loads(line) for line in Path(args.items).read_text().splitlines() if line.strip()]
        items = [PushItem(r["key"], r.get("query"), r.get("label"), tuple(r.get("predictions", ()))) for r in rows]
    elif args.query:
        import pyarrow.parquet as pq

        table = "imagesets.parquet" if args.kind == "multi_image_point" else "clips.parquet"
        keys = pq.read_table(Path(args.ingest) / table, columns=["key"]).column("key").to_pylist()
        items = [PushItem(k, args.query, args.label) for k in keys]
    project = ensure_project(client, args.kind, args.project)
    result = push(client, project, args.ingest, media_root, items, kind=args.kind, batch_size=args.batch_size,
                  on_conflict=args.on_conflict,
                  progress=lambda done, total: print(f"  pushed {done}/{total}", file=sys.stderr))
    print(f"push {args.project!r}: {result.created} created, {result.existing} already there, "
          f"{result.updated} updated, {len(result.conflicts)} conflicts in {result.seconds:.1f} s")
    return 0


def _pull(args) -> int:
    from annotation.projects import find_project
    from annotation.pull import pull

    client, _ = _client(args)
    project = find_project(client, args.project)
    if project is None:
        print(f"molmo2-data annotate pull: no project titled {args.project!r}", file=sys.stderr)
        return 2
    result = pull(client, project, args.snapshots)
    c = result.changes
    what = f"version {result.version} at {result.path}" if result.changed else "nothing changed; no new version"
    print(f"pull {args.project!r}: {result.tasks} tasks, {result.annotations} annotations; {what}")
    print(f"  annotations: {len(c.new)} new, {len(c.updated)} updated, {len(c.deleted)} deleted")
    return 0


def _normalize(args) -> int:
    from annotation.normalize import normalize_export
    from annotation.pull import load_snapshots
    from schemas.arrow import to_table

    export = load_snapshots(args.snapshots, args.project, version=args.version)
    known = None
    if args.ingest:
        import pyarrow.parquet as pq

        known = {r["key"]: r for r in pq.read_table(Path(args.ingest) / "clips.parquet").to_pylist()}
    result = normalize_export(export, known_clips=known)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import pyarrow.parquet as pq

    for dataset, records in sorted(result.records.items()):
        pq.write_table(to_table(dataset, records), out / f"{dataset}.parquet")
    pq.write_table(to_table("failure", result.failures), out / "failures.parquet")
    with open(out / "agreements.jsonl", "w") as f:
        for a in result.agreements:
            f.write(json.dumps(dataclasses.asdict(a), sort_keys=True, default=str) + "\n")
    with open(out / "review.jsonl", "w") as f:
        for r in result.review:
            f.write(json.dumps(dataclasses.asdict(r), sort_keys=True, default=str) + "\n")
    counts = {k: len(v) for k, v in sorted(result.records.items())}
    print(f"normalize {args.project!r}: records {counts}, {len(result.failures)} failures "
          f"{result.failure_counts()}, {len(result.review)} for review, {len(result.unannotated)} unannotated")
    print(f"  outputs in {out}")
    return 0


def main(args: argparse.Namespace, extra: list[str]) -> int:
    """Run one annotate action; a problem with the server, the token or the inputs exits 2 with one line."""
    from annotation.credentials import CredentialsError
    from annotation.projects import LabelStudioError
    from annotation.server import ServerError

    try:
        return {"push": _push, "pull": _pull, "normalize": _normalize}[args.handler_name](args)
    except (LabelStudioError, ServerError, CredentialsError, FileNotFoundError) as exc:
        print(f"molmo2-data annotate {args.handler_name}: {exc}", file=sys.stderr)
        return 2
