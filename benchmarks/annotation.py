"""Benchmark: annotation push and pull against the same requests made directly over HTTP.

One job: push 5,000 video_point tasks into a fresh Label Studio project with
``annotation.push.push`` and pull them back with ``annotation.pull.pull``, and in the same run, on
the same server, make the same requests directly with ``requests``; print tasks/s for both and
their ratio, and append them to ``benchmarks/results.jsonl``.

Run (about 3 minutes on 2 cores; ``--quick``: 500 tasks, under a minute)::

    cd /work/main && .venv/bin/python benchmarks/annotation.py
    cd /work/main && .venv/bin/python benchmarks/annotation.py --quick
    cd /work/main && .venv/bin/python benchmarks/annotation.py --tasks 20000 --repeats 1

How it measures:

* Input: ``--clips`` procedural videos (``pipelines.procedural.scenes.generate_corpus``) ingested with
  ``pipelines.ingest.pipeline.run([..., "--cfr-mp4"])`` into a temporary folder (untimed), and ``--tasks``
  ``PushItem``\\ s over those clips with distinct queries and labels (the task key is kind, clip and
  label, so every item is a task), each with one pre-annotation (``--no-predictions``: none).
* Server: ``tests.labelstudio.start_test_server`` (a copy of the cached migrated database, a free
  loopback port, generated secrets; the token is never printed), stopped at the end whatever happens.
* Push, ours: ``push(client, project, ingest_dir, media_root, items, batch_size=B)`` into a project
  just made with ``ensure_project`` (untimed): media extraction from the shards, task building,
  local storage registration, listing the project's tasks (idempotency) and the imports.
* Push, direct: the same task JSON (``build_tasks`` over ``materialize`` into a scratch folder with
  the same project title, so every URL is the same; untimed) into a project made with
  ``POST /api/projects/`` (untimed): ``POST /api/storages/localfiles/`` once, then
  ``POST /api/projects/{id}/import?return_task_ids=true`` per batch of the same size B, checking
  that each batch returns B task ids.
* Warm-up (untimed): 50 tasks pushed and pulled each way into two throwaway projects (a fresh
  server's first import and export are slower).
* Each of ``--repeats`` rounds pushes into two new projects, ours first in even rounds, direct first
  in odd ones; the fastest round of each counts.
* Re-push (``--repeats`` rounds, alternating): the same items pushed again into the first ours
  project (nothing is created; the figure is tasks checked per second), against the direct
  listing that any idempotent push needs: ``GET /api/tasks/?project=..&fields=task_only&include=
  id,data&page_size=1000`` page by page until ``total`` tasks are read, and their task keys.
* Pull: ``--annotate`` tasks of the first ours project get one annotation each (untimed, over
  HTTP). Then that project is exported ``--repeats`` times each way, alternating: ours is
  ``pull`` into a fresh snapshots folder (export with ``interpolate_key_frames`` and full
  predictions, poll, download, delete the export, parse, diff, write snapshot and index with
  fsync); direct is ``POST /api/projects/{id}/exports/`` with the same serialization options,
  ``GET .../exports/{eid}`` every ``--poll-interval`` s until completed (as pull polls), ``GET
  .../exports/{eid}/download``, ``DELETE .../exports/{eid}`` and ``json.loads``. Fastest counts.
  ``--repull`` also times a second ``pull`` of the unchanged project (kept in ``extra``).
* Where the time goes: push, pull and the SDK's request methods are wrapped with timers while
  ours runs (negligible cost), including the SDK's ``jsonable_encoder`` pass over each request body,
  and every HTTP request ours sends is counted with an httpx event hook; the breakdown is printed
  and kept in ``extra``.
* CPU: every timed side also records this process's CPU seconds (``time.process_time``) and the
  server's (``/proc/PID/stat`` of its process group). On a shared machine wall times move by 20-50 %
  between rounds; the CPU seconds barely do, so they say whose work a difference is.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import print_table, record  # noqa: E402

KIND = "video_point"
PRED = {"model_version": "bench-v0", "score": 0.5,
        "result": [{"id": "p1", "from_name": "points", "to_name": "frames", "type": "keypointlabels",
                    "item_index": 0, "original_width": 256, "original_height": 192,
                    "value": {"x": 50.0, "y": 50.0, "width": 0.5, "keypointlabels": ["object"]}}]}
PULL_OPTIONS = {"interpolate_key_frames": True, "predictions": {"only_id": False}}  # as annotation.pull


# ------------------------------------------------------------------------------------------ setup
def make_ingest(base: Path, clips: int, seed: int) -> Path:
    """A small ingest output (constant-frame-rate mp4s included) of ``clips`` procedural videos."""
    from pipelines.ingest.pipeline import run
    from pipelines.procedural.scenes import generate_corpus

    src, out = base / "src", base / "ingest"
    rows = [{"id": f"v{i}", "path": str(s.video)} for i, s in enumerate(generate_corpus(src, clips, seed=seed))]
    manifest = src / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run(["--manifest", str(manifest), "--out", str(out), "--cfr-mp4"])
    return out


def clip_keys(ingest_dir: Path) -> list[str]:
    from shards.layout import IngestLayout
    from shards.reader import iter_samples

    paths = IngestLayout(ingest_dir).shard_paths("clips")
    return sorted(s["__key__"] for s in iter_samples(paths, decode_json=True))


def video_rows(ingest_dir: Path) -> dict[str, dict]:
    """Video id -> its ``videos.parquet`` row, as push reads them (VideoPoint tasks carry source and duration)."""
    import pyarrow.parquet as pq

    return {r["key"]: r for r in pq.read_table(ingest_dir / "videos.parquet").to_pylist()}


def make_items(keys: list[str], n: int, predictions: bool) -> list:
    """``n`` PushItems cycling over the clips, each with its own query and label (so its own task key)."""
    from annotation.push import PushItem

    preds = (PRED,) if predictions else ()
    return [PushItem(keys[i % len(keys)], query=f"objects of group {i}", label=f"group-{i:06d}", predictions=preds)
            for i in range(n)]


# ------------------------------------------------------------------------------------------ timers
class Timers:
    """Seconds and calls per name, filled by wrapped functions."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, name: str, fn: Callable, consume: bool = False) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                out = fn(*args, **kwargs)
                return list(out) if consume else out  # consume: time a streamed download to its end
            finally:
                self.seconds[name] += time.perf_counter() - start
                self.calls[name] += 1
        return timed

    def summary(self, total: float) -> dict[str, Any]:
        out = {name: {"s": round(s, 4), "calls": self.calls[name]} for name, s in self.seconds.items()}
        out["total_s"] = round(total, 4)
        return out


@contextlib.contextmanager
def patched(pairs: list[tuple[Any, str, Callable]]) -> Iterator[None]:
    """Set ``obj.attr = value`` for each pair, and restore them all afterwards."""
    saved = [(obj, attr, getattr(obj, attr)) for obj, attr, _ in pairs]
    try:
        for obj, attr, value in pairs:
            setattr(obj, attr, value)
        yield
    finally:
        for obj, attr, value in reversed(saved):
            setattr(obj, attr, value)


@contextlib.contextmanager
def count_requests(client: Any, counts: dict[str, int]) -> Iterator[None]:
    """Count the SDK's HTTP requests by "METHOD /path" (an httpx request event hook)."""
    httpx_client = client._client_wrapper.httpx_client.httpx_client
    hooks = httpx_client.event_hooks

    def hook(request: Any) -> None:
        name = f"{request.method} {re.sub(r'/[0-9]+(?=/|$)', '/{id}', request.url.path)}"
        counts[name] = counts.get(name, 0) + 1

    httpx_client.event_hooks = {"request": [*hooks["request"], hook], "response": hooks["response"]}
    try:
        yield
    finally:
        httpx_client.event_hooks = hooks


# ------------------------------------------------------------------------------------------ ours
def ours_push(client: Any, project: Any, ingest_dir: Path, media_root: str, items: list, batch_size: int
              ) -> tuple[float, Any, dict[str, Any]]:
    """Time ``push``; return (seconds, PushResult, breakdown)."""
    from label_studio_sdk.core import http_client as H

    from annotation import push as P

    timers, counts = Timers(), {}
    pairs = [(P, name, timers.wrap(name, getattr(P, name)))
             for name in ("materialize", "build_tasks", "ensure_local_storage", "existing_tasks")]
    pairs.append((client.projects, "import_tasks", timers.wrap("sdk.import_tasks", client.projects.import_tasks)))
    # the SDK re-encodes every request body (and params, headers) with jsonable_encoder before httpx
    # serializes it: time that client-side CPU (outermost calls only; it recurses through its own module)
    pairs.append((H, "jsonable_encoder", timers.wrap("sdk.jsonable_encoder (within requests)", H.jsonable_encoder)))
    with patched(pairs), count_requests(client, counts):
        start = time.perf_counter()
        result = P.push(client, project, ingest_dir, media_root, items, kind=KIND, batch_size=batch_size)
        seconds = time.perf_counter() - start
    breakdown = timers.summary(seconds)
    breakdown["requests"] = counts
    return seconds, result, breakdown


def ours_pull(client: Any, project: Any, snapshots: Path) -> tuple[float, Any, dict[str, Any]]:
    """Time ``pull`` into ``snapshots``; return (seconds, PullResult, breakdown)."""
    from annotation import pull as L

    ex = client.projects.exports
    timers, counts = Timers(), {}
    pairs = [(ex, "create", timers.wrap("sdk.exports.create", ex.create)),
             (ex, "get", timers.wrap("sdk.exports.get", ex.get)),
             (ex, "download", timers.wrap("sdk.exports.download", ex.download, consume=True)),
             (ex, "delete", timers.wrap("sdk.exports.delete", ex.delete)),
             (L, "diff_exports", timers.wrap("diff_exports", L.diff_exports)),
             (L, "_write_atomic", timers.wrap("write_atomic(fsync)", L._write_atomic)),
             (L.time, "sleep", timers.wrap("poll sleep", time.sleep))]
    with patched(pairs), count_requests(client, counts):
        start = time.perf_counter()
        result = L.pull(client, project, snapshots)
        seconds = time.perf_counter() - start
    breakdown = timers.summary(seconds)
    breakdown["requests"] = counts
    return seconds, result, breakdown


# ------------------------------------------------------------------------------------------ direct
class Direct:
    """The same requests, made with a plain ``requests.Session`` (keep-alive, token header)."""

    def __init__(self, url: str, token: str) -> None:
        import requests

        self.url = url.rstrip("/")
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Token {token}"
        self.requests = 0

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        self.requests += 1
        r = self.http.request(method, f"{self.url}/{path}", timeout=600, **kwargs)
        if r.status_code >= 300:
            raise RuntimeError(f"{method} /{path}: HTTP {r.status_code}: {r.text[:300]}")
        return r

    def create_project(self, title: str) -> int:
        from annotation.projects import DESCRIPTIONS, KIND_MARKER, instructions
        from annotation.tasks import label_config

        body = {"title": title, "label_config": label_config(KIND), "show_instruction": True,
                "description": f"{DESCRIPTIONS[KIND]}\n\n{KIND_MARKER}{KIND}", "expert_instruction": instructions(KIND)}
        return self.call("POST", "api/projects/", json=body).json()["id"]

    def push(self, project_id: int, storage_path: str, payloads: list[dict], batch_size: int
             ) -> tuple[int, int, float]:
        """Register the storage once, import in batches; return (tasks created, requests, import seconds)."""
        before, created, importing = self.requests, 0, 0.0
        self.call("POST", "api/storages/localfiles/", json={
            "project": project_id, "path": storage_path, "use_blob_urls": False,
            "title": "molmo2-data media", "description": "served by annotation.push"})
        for b in range(0, len(payloads), batch_size):
            batch = payloads[b:b + batch_size]
            start = time.perf_counter()
            ids = self.call("POST", f"api/projects/{project_id}/import", params={"return_task_ids": "true"},
                            json=batch).json()["task_ids"]
            importing += time.perf_counter() - start
            if len(ids) != len(batch):
                raise RuntimeError(f"import of {len(batch)} tasks returned {len(ids)} task ids")
            created += len(ids)
        return created, self.requests - before, importing

    def pull(self, project_id: int, poll_interval: float) -> tuple[list[dict], int, int]:
        """Export, poll, download, delete, parse; return (tasks, bytes, requests)."""
        before = self.requests
        snap = self.call("POST", f"api/projects/{project_id}/exports/",
                         json={"title": f"direct pull {time.time():.0f}", "serialization_options": PULL_OPTIONS}).json()
        status = snap.get("status")
        while status != "completed":
            if status == "failed":
                raise RuntimeError(f"export {snap['id']} failed")
            time.sleep(poll_interval)
            status = self.call("GET", f"api/projects/{project_id}/exports/{snap['id']}").json()["status"]
        raw = self.call("GET", f"api/projects/{project_id}/exports/{snap['id']}/download").content
        self.call("DELETE", f"api/projects/{project_id}/exports/{snap['id']}")
        return json.loads(raw), len(raw), self.requests - before

    def task_keys(self, project_id: int, page_size: int = 1000) -> tuple[set[str], int]:
        """Every task's key, page by page (as the idempotency check of a push); return (keys, requests)."""
        before, keys, read, page = self.requests, set(), 0, 1
        while True:
            body = self.call("GET", "api/tasks/", params={
                "project": project_id, "fields": "task_only", "include": "id,data", "page_size": page_size,
                "page": page, "resolve_uri": "false"}).json()
            tasks = body["tasks"]
            keys.update(t["data"]["task_key"] for t in tasks if "task_key" in t.get("data", {}))
            read += len(tasks)
            if not tasks or read >= body["total"]:
                return keys, self.requests - before
            page += 1

    def annotate(self, task_ids: list[int]) -> None:
        result = [dict(PRED["result"][0], id="a1", value=dict(PRED["result"][0]["value"], x=25.0))]
        for task_id in task_ids:
            self.call("POST", f"api/tasks/{task_id}/annotations/", json={"result": result, "lead_time": 1.5})


# ------------------------------------------------------------------------------------------ rounds
def server_cpu(pgid: int) -> float:
    """CPU seconds (user + system, children included) used so far by the server's process group."""
    from annotation.ls_process import group_members

    ticks = 0
    for pid in group_members(pgid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def alternate(what: str, repeats: int, sides: dict[str, Callable[[int], dict]], server_pgid: int,
              setup: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    """Run each side once per round, the order flipped every round; time wall, client and server CPU.

    ``sides[name](round)`` does the work, checks it, and returns what to keep (e.g. a breakdown).
    """
    rows = []
    for r in range(repeats):
        if setup is not None:
            setup(r)
        row: dict[str, Any] = {"round": r}
        for side in (list(sides) if r % 2 == 0 else list(reversed(sides))):
            cpu0, server0, start = time.process_time(), server_cpu(server_pgid), time.perf_counter()
            kept = sides[side](r)
            wall = time.perf_counter() - start
            row[side] = {"s": round(wall, 4), "client_cpu_s": round(time.process_time() - cpu0, 3),
                         "server_cpu_s": round(server_cpu(server_pgid) - server0, 3), **kept}
        rows.append(row)
        print(f"{what} {r}: " + ", ".join(f"{k} {v['s']:.2f} s" for k, v in row.items() if k != "round"),
              file=sys.stderr)
    return rows


def fastest(rows: list[dict[str, Any]], side: str) -> dict[str, Any]:
    return min((row[side] for row in rows), key=lambda v: v["s"])


def mean_cpu(rows: list[dict[str, Any]], side: str) -> str:
    c = sum(row[side]["client_cpu_s"] for row in rows) / len(rows)
    sv = sum(row[side]["server_cpu_s"] for row in rows) / len(rows)
    return f"{c:.2f}/{sv:.2f}"


# ------------------------------------------------------------------------------------------ main
def fmt_breakdown(title: str, b: dict[str, Any]) -> str:
    """One breakdown as two lines: timed parts (seconds/calls) in call order, then the requests sent."""
    parts = []
    for name, v in b.items():
        if isinstance(v, dict) and "s" in v:
            parts.append(f"{name} {v['s']:.2f} s/{v['calls']}")
    reqs = ", ".join(f"{k} x{v}" for k, v in sorted(b.get("requests", {}).items()))
    return f"  {title}: total {b['total_s']:.2f} s; {'; '.join(parts)}\n    requests: {reqs}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=None, help="tasks to push and pull (default 5000; --quick 500)")
    parser.add_argument("--quick", action="store_true", help="500 tasks, 1 round, 20 annotations")
    parser.add_argument("--clips", type=int, default=3, help="procedural clips the tasks point at")
    parser.add_argument("--batch-size", type=int, default=500, help="tasks per import request, both sides")
    parser.add_argument("--repeats", type=int, default=None, help="push rounds (default 2; --quick 1)")
    parser.add_argument("--annotate", type=int, default=None, help="tasks annotated before the pulls (default 100; --quick 20)")
    parser.add_argument("--no-predictions", action="store_true", help="push the tasks without a pre-annotation")
    parser.add_argument("--poll-interval", type=float, default=0.5, help="export status polling, both sides (s)")
    parser.add_argument("--repull", action="store_true",
                        help="also time a second pull of the unchanged project (one more full export)")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--work-dir", default=None, help="where the temporary folder goes")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to results.jsonl")
    args = parser.parse_args(argv)
    n = args.tasks or (500 if args.quick else 5000)
    repeats = args.repeats or (1 if args.quick else 2)
    n_annotate = min(n, args.annotate if args.annotate is not None else (20 if args.quick else 100))

    from annotation.projects import connect, ensure_project
    from annotation.push import build_tasks, materialize, media_folder
    from annotation.pull import pull
    from annotation.server import LABEL_STUDIO_VERSION, load_credentials
    from tests.labelstudio import start_test_server, stop_test_server

    base = Path(tempfile.mkdtemp(prefix="bench-annotation-", dir=args.work_dir))
    info = None
    try:
        t0 = time.perf_counter()
        ingest_dir = make_ingest(base, args.clips, args.seed)
        keys = clip_keys(ingest_dir)
        items = make_items(keys, n, predictions=not args.no_predictions)
        videos = video_rows(ingest_dir)
        print(f"ingest output: {len(keys)} clips in {time.perf_counter() - t0:.1f} s", file=sys.stderr)

        t0 = time.perf_counter()
        info = start_test_server(base / "ls")
        url, token = load_credentials(info.data_dir)
        print(f"Label Studio {LABEL_STUDIO_VERSION} up at {url} in {time.perf_counter() - t0:.1f} s",
              file=sys.stderr)
        client = connect(url, token)
        direct = Direct(url, token)
        del token

        # warm-up (untimed): the server's first import and export of each kind are slower
        warm = items[:min(n, 50)]
        warm_project = ensure_project(client, KIND, "bench warm-up ours")
        ours_push(client, warm_project, ingest_dir, info.media_root, warm, args.batch_size)
        ours_pull(client, warm_project, base / "snapshots-warm-up")
        warm_payloads = build_tasks(KIND, materialize(ingest_dir, KIND, keys, base / "scratch-warm-up",
                                                      "bench warm-up ours"), warm, videos=videos)
        warm_id = direct.create_project("bench warm-up direct")
        direct.push(warm_id, str(media_folder(info.media_root, "bench warm-up ours")), warm_payloads, args.batch_size)
        direct.pull(warm_id, args.poll_interval)

        # push: each round pushes into two new projects, one per side
        state: dict[str, Any] = {}

        def push_setup(r: int) -> None:
            title = f"bench push ours {r}"
            state["project"] = ensure_project(client, KIND, title)
            state["direct_id"] = direct.create_project(f"bench push direct {r}")
            # the direct side's task JSON: the same builder over the same clips, same title -> same URLs
            state["payloads"] = build_tasks(KIND, materialize(ingest_dir, KIND, keys, base / f"scratch-{r}", title),
                                            items, videos=videos)
            state["storage"] = media_folder(info.media_root, f"bench push direct {r}")
            state["storage"].mkdir(parents=True, exist_ok=True)
            state.setdefault("first_project", state["project"])

        def push_ours(r: int) -> dict:
            seconds, result, breakdown = ours_push(client, state["project"], ingest_dir, info.media_root, items,
                                                   args.batch_size)
            if result.created != n:
                raise SystemExit(f"push created {result.created} tasks, expected {n}")
            return {"breakdown": breakdown}

        def push_direct(r: int) -> dict:
            created, n_req, importing = direct.push(state["direct_id"], str(state["storage"]), state["payloads"],
                                                    args.batch_size)
            if created != n:
                raise SystemExit(f"direct import created {created} tasks, expected {n}")
            return {"requests": n_req, "import_requests_s": round(importing, 4)}

        push_rows = alternate("push", repeats, {"ours": push_ours, "direct": push_direct}, info.pid, push_setup)
        payloads, project = state["payloads"], state["first_project"]

        # re-push of the first project: nothing created; against the direct listing of the task keys
        def repush_ours(r: int) -> dict:
            seconds, result, breakdown = ours_push(client, project, ingest_dir, info.media_root, items,
                                                   args.batch_size)
            if result.created != 0 or result.existing != n:
                raise SystemExit(f"re-push created {result.created}, found {result.existing} of {n}")
            state["task_ids"] = sorted(result.task_ids.values())
            return {"breakdown": breakdown}

        def repush_direct(r: int) -> dict:
            have, n_req = direct.task_keys(project.id)
            if len(have) != n:
                raise SystemExit(f"direct listing found {len(have)} task keys, expected {n}")
            return {"requests": n_req}

        repush_rows = alternate("re-push", repeats, {"ours": repush_ours, "direct": repush_direct}, info.pid)

        # pull: annotate some tasks, then export that project both ways
        t0 = time.perf_counter()
        direct.annotate(state["task_ids"][:n_annotate])
        annotate_s = time.perf_counter() - t0

        def pull_ours(r: int) -> dict:
            seconds, res, breakdown = ours_pull(client, project, base / f"snapshots-{r}")
            if res.tasks != n or res.annotations != n_annotate:
                raise SystemExit(f"pull read {res.tasks} tasks / {res.annotations} annotations")
            return {"breakdown": breakdown}

        def pull_direct(r: int) -> dict:
            tasks, size, n_req = direct.pull(project.id, args.poll_interval)
            if len(tasks) != n or sum(len(t["annotations"]) for t in tasks) != n_annotate:
                raise SystemExit(f"direct export has {len(tasks)} tasks, expected {n}")
            return {"requests": n_req, "export_bytes": size}

        pull_rows = alternate("pull", repeats, {"direct": pull_direct, "ours": pull_ours}, info.pid)
        repull_s = None
        if args.repull:
            start = time.perf_counter()
            unchanged = pull(client, project, base / "snapshots-0")
            repull_s = time.perf_counter() - start
            if unchanged.changed:
                raise SystemExit("a second pull of an unchanged project wrote a new snapshot")
    finally:
        if info is not None:
            stop_test_server(info)
        shutil.rmtree(base, ignore_errors=True)

    frames = len(payloads[0]["data"]["frames"])
    export_bytes = pull_rows[-1]["direct"]["export_bytes"]
    extra = {
        "tasks": n, "clips": len(keys), "frames_per_task": frames, "batch_size": args.batch_size,
        "predictions_per_task": 0 if args.no_predictions else 1, "annotations": n_annotate,
        "payload_bytes": len(json.dumps(payloads)), "export_bytes": export_bytes, "repeats": repeats,
        "poll_interval_s": args.poll_interval, "label_studio": LABEL_STUDIO_VERSION, "kind": KIND,
        "cpu_count": os.cpu_count(), "load_avg_at_end": os.getloadavg(),
        "push_rounds": push_rows, "repush_rounds": repush_rows, "pull_rounds": pull_rows,
        "annotate_s": round(annotate_s, 3), "repull_unchanged_s": None if repull_s is None else round(repull_s, 4),
        "baseline": "requests.Session on the same server in the same run: same task JSON and batch size "
                    "(push), the task listing alone (re-push), same export options and polling (pull)",
    }
    best = {(what, side): fastest(rows_, side)["s"] for what, rows_ in
            (("push", push_rows), ("repush", repush_rows), ("pull", pull_rows)) for side in ("ours", "direct")}
    rows = [dict(name=f"annotation.{what}_tasks_per_s", figure=n / best[what, "ours"],
                 baseline=n / best[what, "direct"], unit="tasks/s") for what in ("push", "pull", "repush")]
    for row in rows:
        row["ratio"] = row["figure"] / row["baseline"]
        if not args.no_record:
            record(row["name"], row["figure"], row["baseline"], row["unit"], extra=extra)
    print(f"{n} {KIND} tasks over {len(keys)} clips ({frames} frames each), "
          f"{'no' if args.no_predictions else 'one'} prediction per task, batches of {args.batch_size}, "
          f"{n_annotate} annotated; Label Studio {LABEL_STUDIO_VERSION}; fastest of {repeats} alternating "
          f"rounds each way; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print_table(rows)
    for what, rows_, label in (("push", push_rows, "push"), ("repush", repush_rows, "re-push (0 created)"),
                               ("pull", pull_rows, "pull")):
        print(f"{label}: ours {best[what, 'ours']:.2f} s vs direct {best[what, 'direct']:.2f} s; "
              f"CPU s client/server per round, mean: ours {mean_cpu(rows_, 'ours')}, "
              f"direct {mean_cpu(rows_, 'direct')}")
    print(f"export {export_bytes / 1e6:.1f} MB; direct import requests alone "
          f"{fastest(push_rows, 'direct')['import_requests_s']:.2f} s"
          + ("" if repull_s is None else f"; re-pull of the unchanged project {repull_s:.2f} s"))
    print("where ours spends its time (its fastest round):")
    for what, rows_ in (("push", push_rows), ("re-push", repush_rows), ("pull", pull_rows)):
        print(fmt_breakdown(what, fastest(rows_, "ours")["breakdown"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
