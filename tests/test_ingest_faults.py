"""No input can abort an ingest run; a fault of the run itself stops it cleanly and resumably.

Faults are injected (``pipelines.common.inject``: a plan file named by ``MOLMO2_FAULT_INJECT``,
inherited by Beam's worker processes and the sandbox children) at every per-input step - manifest
row, fetch, probe, decode, subtitles, dedupe routing, clip records, image sets - in one run per
runner mode; each injected input must end as exactly one failure record of that stage
(``internal_error`` naming the exception class) while the others succeed and the counts add up.
Real faults ride along: a symlink loop (``ELOOP`` from ``os.stat``) and a host that does not
resolve (``socket.gaierror``). Faults of the run (a full disk, no memory, a folder that cannot be
written) go through the real command line: exit code 1, one line, no traceback, nothing
remembered as failed, and the same command then completes.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.common.inject import ENV
from pipelines.ingest.config import IngestConfig
from pipelines.ingest.pipeline import run

ROOT = Path(__file__).resolve().parents[1]
MULTI = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]

# (input id, stage, exception raised there, class named in the record): one input per per-input step
INJECTED = [
    ("inj_manifest", "manifest", "RuntimeError", "RuntimeError"),
    ("inj_fetch", "fetch", "RuntimeError", "RuntimeError"),
    ("inj_probe", "probe", "KeyError", "KeyError"),
    ("inj_decode", "decode", "ZeroDivisionError", "ZeroDivisionError"),
    ("inj_subtitle", "subtitle", "UnicodeError", "UnicodeError"),
    ("inj_dedupe", "dedupe", "AttributeError", "AttributeError"),
    ("inj_clip", "clip", "TypeError", "TypeError"),
    ("inj_set", "image", "IndexError", "IndexError"),
    ("inj_group_a", "image", "LookupError", "LookupError"),
    ("inj_perm", "fetch", "OSError:EACCES", "PermissionError"),  # on the input's own path: the input's
]
GOOD = {"good_0", "good_1", "set_ok", "cat_a", "cat_b"}
REAL = {"symlink_loop": ("fetch", "unreadable_path"), "no_such_host": ("fetch", "connection_error")}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A manifest of good inputs, inputs to inject faults into, and two real faults."""
    from pipelines.procedural.scenes import SceneSpec, generate_corpus, write_test_media

    folder = tmp_path_factory.mktemp("faults")
    media = folder / "media"
    videos = ["good_0", "good_1"] + [key for key, stage, _, _ in INJECTED if stage != "image"]
    scenes = generate_corpus(media, len(videos), seed=11, duration=2.0)
    rows = [{"id": key, "path": str(s.video), "subtitle": str(s.subtitles)} for key, s in zip(videos, scenes)]
    images = [write_test_media("png" if i % 2 else "jpeg", media / f"img{i}.{'png' if i % 2 else 'jpg'}",
                               spec=SceneSpec(seed=200 + i)) for i in range(6)]
    rows += [
        {"id": "set_ok", "images": [str(images[0]), str(images[1])]},
        {"id": "inj_set", "images": [str(images[2]), str(images[3])]},
        {"id": "cat_a", "image": str(images[4]), "group": "cats"},
        {"id": "cat_b", "image": str(images[5]), "group": "cats"},
        {"id": "inj_group_a", "image": str(images[0]), "group": "dogs"},
        {"id": "inj_group_b", "image": str(images[1]), "group": "dogs"},
    ]
    os.symlink(media / "loop.mp4", media / "loop.mp4")  # stat: ELOOP
    rows.append({"id": "symlink_loop", "path": str(media / "loop.mp4")})
    rows.append({"id": "no_such_host", "url": "ftp://no-such-host.invalid/video.mp4"})  # socket.gaierror
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    plan = folder / "plan.json"
    plan.write_text(json.dumps([{"stage": stage, "input": key, "raise": exc, "path": str(media / f"{key}.mp4")}
                                for key, stage, exc, _ in INJECTED]))
    return manifest, rows, plan


def _failures(out: Path) -> list[dict]:
    return pq.read_table(out / "failures.parquet").to_pylist()


@pytest.mark.parametrize("mode", ["in_memory", "multi_processing"])
def test_a_fault_at_every_per_input_step_fails_only_that_input(corpus, tmp_path, monkeypatch, mode):
    manifest, rows, plan = corpus
    monkeypatch.setenv(ENV, str(plan))
    out = tmp_path / "out"
    config = IngestConfig.from_dict({"fetch": {"retries": 0, "timeout_s": 30}})
    summary = run(["--manifest", str(manifest), "--out", str(out)] + (MULTI if mode != "in_memory" else []),
                  config=config)

    failures = _failures(out)
    by_id = {}
    for record in failures:
        assert record["input_id"] not in by_id, f"two failure records for {record['input_id']}"
        by_id[record["input_id"]] = record
    for key, stage, _, name in INJECTED:
        record = by_id[key]
        assert (record["stage"], record["error_type"], record["outcome"]) == (stage, "internal_error", "failed"), record
        what = "Permission denied" if name == "PermissionError" else f"injected fault at {stage} of {key}"
        assert f"{name}: " in record["message"] and what in record["message"], record
    # the group's other image fails with its group; a set's rows all fail with the set
    assert by_id["inj_group_b"]["stage"] == "image" and "group dogs" in by_id["inj_group_b"]["message"]
    for key, (stage, error_type) in REAL.items():
        assert (by_id[key]["stage"], by_id[key]["error_type"]) == (stage, error_type), by_id[key]
    assert "symbolic links" in by_id["symlink_loop"]["message"]

    videos = {r["key"] for r in pq.read_table(out / "videos.parquet").to_pylist()}
    sets = pq.read_table(out / "imagesets.parquet").to_pylist()
    assert videos == {"good_0", "good_1"}
    assert sorted(len(s["images"]) for s in sets) == [2, 2]  # set_ok and the cats
    assert set(by_id).isdisjoint(GOOD)
    assert summary["rows"] == len(rows)
    assert summary["outcomes"] == {"succeeded": len(GOOD), "failed": len(rows) - len(GOOD), "duplicate": 0}
    assert len(failures) == len(rows) - len(GOOD)
    assert summary["clips"] == 2


# ------------------------------------------------------------------ faults of the run: the command line
def _env(plan: Path | None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.pop(ENV, None)
    if plan is not None:
        env[ENV] = str(plan)
    return env


def _ingest(manifest: Path, out: Path, plan: Path | None = None, extra=()) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "molmo2_data", "ingest", "--manifest", str(manifest),
                           "--out", str(out), *extra], env=_env(plan), capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """Three good videos."""
    from pipelines.procedural.scenes import generate_corpus

    folder = tmp_path_factory.mktemp("run-faults")
    scenes = generate_corpus(folder / "media", 3, seed=4, duration=2.0)
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps({"id": f"v{i}", "path": str(s.video)}) + "\n"
                                for i, s in enumerate(scenes)))
    return manifest


def _assert_stopped_cleanly(proc: subprocess.CompletedProcess, words: str) -> None:
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("molmo2-data ingest: ")]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert words in lines[0] and "rerun the same command" in lines[0], lines[0]


def _assert_completes(manifest: Path, out: Path, extra=()) -> None:
    proc = _ingest(manifest, out, extra=extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["outcomes"] == {"succeeded": 3, "failed": 0, "duplicate": 0}, summary
    assert not _failures(out)


@pytest.mark.parametrize("fault, extra, words", [
    ({"stage": "decode", "input": "v1", "raise": "OSError:ENOSPC", "path": "WORK/frames/ab/x.jpg"}, MULTI,
     "no space left"),
    ({"stage": "fetch", "input": "v2", "raise": "MemoryError"}, (), "out of memory"),
], ids=["disk_full-multi_processing", "memory-in_memory"])
def test_a_fault_of_the_run_stops_it_cleanly_and_the_same_command_resumes(small, tmp_path, fault, extra, words):
    out = tmp_path / "out"
    plan = tmp_path / "plan.json"
    fault = dict(fault, path=fault.get("path", "").replace("WORK", str(out / ".work"))) if "path" in fault else fault
    plan.write_text(json.dumps([fault]))
    _assert_stopped_cleanly(_ingest(small, out, plan, extra), words)
    assert not (out / "summary.json").exists()
    assert not list((out / ".work" / "failed").glob("*.json")), "a fault of the run was remembered as the input's"
    _assert_completes(small, out, extra)


def _immutable(folder: Path, on: bool) -> bool:
    """Make ``folder`` unwritable (chmod; as root, which chmod does not stop, the immutable attribute)."""
    if os.geteuid() != 0:
        folder.chmod(0o555 if on else 0o755)
        return True
    return subprocess.run(["chattr", "+i" if on else "-i", str(folder)], capture_output=True).returncode == 0


def test_an_unwritable_work_folder_mid_run_stops_it_and_is_not_blamed_on_an_input(small, tmp_path):
    """The frame store cannot be written once decoding starts (a real EACCES/EPERM in the sandbox
    child, on a path of the run): the run stops; no input is recorded as failed."""
    out = tmp_path / "out"
    frames = out / ".work" / "frames"
    frames.mkdir(parents=True)
    if not _immutable(frames, True):
        pytest.skip("cannot make a folder unwritable here (chattr +i refused)")
    try:
        _assert_stopped_cleanly(_ingest(small, out), str(frames))
    finally:
        _immutable(frames, False)
    assert not list((out / ".work" / "failed").glob("*.json"))
    _assert_completes(small, out)


def test_an_output_folder_in_the_way_mid_run_stops_it_cleanly(small, tmp_path):
    """``OUT/clips`` is a file: writing the first shard fails; remove it and the same command completes."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "clips").write_text("in the way")
    _assert_stopped_cleanly(_ingest(small, out, extra=MULTI), str(out / "clips"))
    (out / "clips").unlink()
    _assert_completes(small, out, MULTI)


def test_an_unwritable_output_folder_is_said_before_the_run(small, tmp_path):
    (tmp_path / "file").write_text("")
    proc = _ingest(small, tmp_path / "file" / "out")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "cannot create the folder" in proc.stderr.strip().splitlines()[-1]
