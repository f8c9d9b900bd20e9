"""kill -9 during a publish, then the same command again, gives the same version, byte for byte.

The command runs as a real process (``python -m molmo2_data publish``); it is killed with
SIGKILL mid-pipeline (when the first shard appears in the version folder) or during the commit
(it kills itself through the fault-injection plan after writing every file but ``manifest.json``:
polling for a file there raced the manifest on a busy machine). Until the rerun,
readers see no version. The rerun's files equal those of an uninterrupted publish.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.common import inject
from shards.published import list_versions
from tests.publish_inputs import ClipSpec, SetSpec, make_ingest, multi_image_point, video_point, write_records

CLIPS = [ClipSpec(f"k{i}", f"v{i}", duration=1.0 + i) for i in range(5)]


def _command(ingest: Path, records: Path, root: Path) -> list[str]:
    return [sys.executable, "-m", "molmo2_data", "publish", "--version", "2.0.0", "--root", str(root),
            "--ingest", str(ingest), "--records", str(records), "--shard-max-bytes", "65536"]


def _env(plan: Path | None = None) -> dict:
    repo = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": repo + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop(inject.ENV, None)
    if plan is not None:
        env[inject.ENV] = str(plan)
    return env


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "build_info.json"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    base = tmp_path_factory.mktemp("resume")
    ingest = make_ingest(base / "ingest", CLIPS, [SetSpec("s0")])
    records = write_records(base / "records", {
        "VideoPoint": [video_point(f"p{c.key}", c, [0.0, 0.5]) for c in CLIPS],
        "MultiImagePoint": [multi_image_point("m0", SetSpec("s0"))]})
    reference = base / "reference"
    done = subprocess.run(_command(ingest, records, reference), env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return {"ingest": ingest, "records": records, "reference": reference}


@pytest.mark.parametrize("kill_when", ["train-000000.tar", "commit"])
def test_kill_9_then_rerun_gives_the_same_version(inputs, tmp_path, kill_when):
    root = tmp_path / "root"
    plan = None
    if kill_when == "commit":
        plan = tmp_path / "plan.json"
        plan.write_text(json.dumps([{"stage": "publish_commit", "input": "VideoPoint", "raise": "SIGKILL"}]))
    proc = subprocess.Popen(_command(inputs["ingest"], inputs["records"], root), env=_env(plan),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        if kill_when == "commit":
            assert proc.wait(timeout=600) == -signal.SIGKILL, "the publish did not reach its commit"
            assert (root / "VideoPoint" / "2.0.0" / "stats.json").exists()  # killed inside the commit
        else:
            target = root / "VideoPoint" / "2.0.0" / kill_when
            deadline = time.monotonic() + 300
            while not target.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            assert proc.poll() is None, "the publish finished before the kill point"
            os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert not (root / "VideoPoint" / "2.0.0" / "manifest.json").exists()
    assert list_versions(str(root), "VideoPoint") == []  # readers see nothing of the killed run
    again = subprocess.run(_command(inputs["ingest"], inputs["records"], root), env=_env(), capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    for dataset in ("VideoPoint", "MultiImagePoint"):
        assert _files(root / dataset / "2.0.0") == _files(inputs["reference"] / dataset / "2.0.0"), dataset
    assert not list((root / "VideoPoint" / "2.0.0").glob(".*"))  # no staging or temporary file left
