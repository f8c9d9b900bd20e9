"""Live progress of ``molmo2-data ingest``, and a console free of Beam's worker logs.

The counts travel from whatever process does the work (Beam SDK workers in multi-process mode)
through per-process event files to a thread of the launching process; the real command is run
with worker processes and its stderr read as a user would see it (not a terminal: one line per
update).
"""
from __future__ import annotations

import io
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from pipelines.common.progress import ProgressLog, ProgressReporter, format_progress, reset

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^ingest: (\d+)/(\d+) inputs \((\d+) failed, (\d+) duplicate\), (-?\d+) clips, "
                  r"[\d.]+ frames/s, \S+ elapsed(, about \S+ left)?$")


def _add_many(folder: str, n: int) -> None:
    log = ProgressLog(folder)
    for _ in range(n):
        log.add(done=1, clips=2, frames=11)


def test_events_from_several_processes_add_up(tmp_path):
    folder = str(tmp_path / "progress")
    reset(folder)
    procs = [multiprocessing.get_context("spawn").Process(target=_add_many, args=(folder, 500)) for _ in range(3)]
    for p in procs:
        p.start()
    ProgressLog(folder).add(done=1, failed=1)
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    reporter = ProgressReporter(folder, total=1501, stream=io.StringIO())
    reporter.poll()
    assert reporter.counts == Counter(done=1501, failed=1, duplicate=0, clips=3000, frames=16500)
    reporter.poll()  # nothing new: nothing counted twice
    assert reporter.counts["done"] == 1501


def test_reporter_prints_at_most_every_interval_and_ends_with_the_totals(tmp_path):
    folder = str(tmp_path / "progress")
    reset(folder)
    stream = io.StringIO()
    reporter = ProgressReporter(folder, total=40, stream=stream, interval_s=0.2).start()
    log = ProgressLog(folder)
    started = time.monotonic()
    for i in range(40):
        log.add(done=1, clips=1, frames=5, duplicate=int(i % 10 == 0))
        time.sleep(0.02)
    elapsed = time.monotonic() - started
    reporter.stop()
    lines = stream.getvalue().splitlines()
    assert all(LINE.match(line) for line in lines), lines
    assert len(lines) <= elapsed / 0.2 + 2, "more than one update per interval"
    assert lines[-1].startswith("ingest: 40/40 inputs (0 failed, 4 duplicate), 40 clips")
    assert any("left" in line for line in lines[:-1]), "no estimate of the time left while running"


def test_time_left_is_estimated_from_the_rate_of_inputs():
    line = format_progress(Counter(done=100, failed=3, duplicate=2, clips=120, frames=1500), 400, 50.0)
    assert line == ("ingest: 100/400 inputs (3 failed, 2 duplicate), 120 clips, 30.0 frames/s, 50s elapsed, "
                    "about 2m30s left")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    """Four good videos, one that is not a video and one exact copy."""
    from pipelines.procedural.scenes import generate_corpus, write_test_media

    folder = tmp_path_factory.mktemp("progress")
    scenes = generate_corpus(folder / "media", 4, seed=8, duration=2.0)
    rows = [{"id": f"v{i}", "path": str(s.video)} for i, s in enumerate(scenes)]
    write_test_media("text_as_mp4", folder / "media" / "text.mp4")
    rows.append({"id": "text", "path": str(folder / "media" / "text.mp4")})
    shutil.copyfile(scenes[0].video, folder / "media" / f"copy{scenes[0].video.suffix}")
    rows.append({"id": "copy", "path": str(folder / "media" / f"copy{scenes[0].video.suffix}")})
    path = folder / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _ingest(manifest: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-m", "molmo2_data", "ingest", "--manifest", str(manifest),
                           "--out", str(out), *extra], env=env, capture_output=True, text=True, timeout=300)


def test_multi_process_ingest_shows_progress_and_no_worker_logs(manifest, tmp_path):
    out = tmp_path / "out"
    proc = _ingest(manifest, out, "--direct_running_mode=multi_processing", "--direct_num_workers=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    assert lines and all(LINE.match(line) for line in lines), f"not only progress on stderr:\n{proc.stderr}"
    done, total, failed, duplicate, clips = map(int, LINE.match(lines[-1]).groups()[:5])
    assert (done, total, failed, duplicate, clips) == (6, 6, 1, 1, 4), lines[-1]
    assert proc.stdout.startswith("ingest: 6 rows -> 4 succeeded, 1 failed, 1 duplicate")
    log = (out / ".work" / "ingest.log").read_text()
    assert "sdk_worker" in log, "the workers' logs are kept in the log file"


def test_verbose_shows_the_logs(manifest, tmp_path):
    proc = _ingest(manifest, tmp_path / "out", "--verbose")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "apache_beam" in proc.stderr and "apitools" in proc.stderr
    assert LINE.match(proc.stderr.strip().splitlines()[-1])
