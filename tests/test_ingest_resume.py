"""Interrupt-and-resume acceptance test of ``molmo2-data ingest``.

"Rerunning the same command after an interruption (kill -9 at any point) finishes the work
without redoing completed shards, and the result is byte-identical to an uninterrupted run.
``--retry-failed`` reprocesses just the failures."

Every run is a real ``python -m molmo2_data ingest`` process started in its own session, so its
process group holds the launcher, the sandbox children (decoders, downloads) and, with
``--direct_running_mode=multi_processing``, Beam's SDK worker processes. An interruption is
``kill -9`` of that whole group at a seeded kill point (a seeded time, or a stage of the run -
fetching, decoding, remembering a failure, committing shards, finalizing - plus a seeded delay);
afterwards no process of the group may be left. The same command is then run again (interrupted
twice, then to completion) and every output file must equal the reference run's byte for byte
(no temporary file left), committed shards must not have been rewritten and decoded clips must
not have been decoded again. The reference runs in another folder: outputs do not depend on it.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from shards.atomic import is_temp_name, temp_name

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
MULTI = ("--direct_running_mode=multi_processing", "--direct_num_workers=2")
RUN_TIMEOUT_S = 180.0


# ------------------------------------------------------------------ corpus and runs
@dataclass(frozen=True)
class Corpus:
    folder: Path
    manifest: Path
    config: Path
    late: Path  # a good input's video, hidden during the first --retry-failed run


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Corpus:
    """6 procedural videos (with subtitles), 1 unreadable file and 1 byte-identical copy."""
    from pipelines.procedural.scenes import generate_corpus, write_test_media

    folder = tmp_path_factory.mktemp("resume-corpus")
    media = folder / "media"
    good = generate_corpus(media, 6, seed=3)
    rows = [{"id": f.key, "path": str(f.video), "subtitle": str(f.subtitles), "license": "CC0-1.0"}
            for f in good]
    write_test_media("text_as_mp4", media / "not_a_video.mp4")
    rows.append({"id": "not_a_video", "path": str(media / "not_a_video.mp4")})
    shutil.copyfile(good[2].video, media / f"copy{good[2].video.suffix}")
    rows.append({"id": "copy", "path": str(media / f"copy{good[2].video.suffix}")})
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    config = folder / "ingest.yaml"
    config.write_text("output:\n  clips_per_shard: 2\n")  # several shards
    return Corpus(folder, manifest, config, good[5].video)


def _command(manifest: Path, config: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "molmo2_data", "ingest", "--manifest", str(manifest), "--out", str(out),
            "--config", str(config), *extra]


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _group(pgid: int) -> dict[int, str]:
    """Live (not zombie) processes of process group ``pgid``: pid -> command line."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            rest = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state ppid pgrp ...
            if int(rest[2]) != pgid or rest[0] in ("Z", "X"):
                continue
            found[int(entry)] = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace").strip() or stat[stat.index("("): stat.rindex(")") + 1]
        except (OSError, ValueError, IndexError):  # gone meanwhile
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _assert_nothing_left(pgid: int, seen: dict[int, str], wait_s: float = 10.0) -> None:
    """No process of the group, nor any process ever seen in it, survives (within ``wait_s``)."""
    deadline = time.monotonic() + wait_s
    while True:
        left = _group(pgid)
        left.update({pid: f"{cmd} (left the group)" for pid, cmd in seen.items() if pid not in left and _alive(pid)})
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not left, f"processes of the ingest's process group {pgid} survived: {left}"


def _launch(cmd: list[str], log: Path, kill_when=None, then_s: float = 0.0, label: str = "") -> dict[int, str]:
    """Run ``cmd`` in a new session (its own process group), watching the group's processes.

    With ``kill_when`` (a predicate of the elapsed seconds, polled every 20 ms), ``kill -9`` the
    whole group ``then_s`` seconds after it first holds (a run that finishes first is simply not
    interrupted); without, the run must complete with exit code 0. Either way no process of the
    group may be left afterwards. Returns every process seen in the group: pid -> command line.
    """
    started = time.monotonic()
    kill_at = None
    with open(log, "ab") as err:
        when = f" (kill -9 at {label} + {then_s:.3f} s)" if kill_when else ""
        err.write(f"\n--- {' '.join(cmd)}{when}\n".encode())
        err.flush()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), start_new_session=True,
                                stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        pgid, seen, polls = proc.pid, {}, 0
        try:
            while proc.poll() is None and time.monotonic() - started < RUN_TIMEOUT_S:
                if polls % 5 == 0:  # every 0.1 s (a scan of /proc costs a few ms)
                    for pid, command in _group(pgid).items():  # an exiting process shows no command line
                        if pid not in seen or not command.startswith("("):
                            seen[pid] = command
                polls += 1
                now = time.monotonic()
                if kill_at is None and kill_when is not None and kill_when(now - started):
                    kill_at = now + then_s
                if kill_at is not None and now >= kill_at:
                    break
                time.sleep(0.02)
        finally:
            finished = proc.poll() is not None
            try:
                os.killpg(pgid, signal.SIGKILL)  # the interruption (or the clean-up of a hung run)
            except ProcessLookupError:  # finished, and its whole group with it
                pass
            proc.wait(timeout=30)
        err.write(f"--- {'finished' if finished else 'killed'} after {time.monotonic() - started:.2f} s\n".encode())
    if kill_when is None:
        assert finished, f"{' '.join(cmd)} did not finish within {RUN_TIMEOUT_S} s"
        assert proc.returncode == 0, f"{' '.join(cmd)} exited with {proc.returncode}:\n{log.read_text()[-4000:]}"
    _assert_nothing_left(pgid, seen)
    return seen


# ------------------------------------------------------------------ what is compared
def _outputs(out: Path) -> dict[str, bytes]:
    """Every output file (not the .work folder) by path relative to ``out``; summary.json without
    its ``this_run`` part (what that run reused, made and remembered, which a rerun must differ in)."""
    found = {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
             if p.is_file() and p.relative_to(out).parts[0] != ".work"}
    if "summary.json" in found:
        summary = json.loads(found["summary.json"])
        summary.pop("this_run")
        found["summary.json"] = json.dumps(summary, sort_keys=True).encode()
    return found


def _this_run(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())["this_run"]


def _assert_same_outputs(out: Path, reference: dict[str, bytes]) -> None:
    got = _outputs(out)
    temps = sorted(k for k in got if is_temp_name(Path(k).name) or ".tmp-" in Path(k).name)
    assert not temps, f"temporary files left in {out}: {temps}"
    assert sorted(got) == sorted(reference), f"output files differ: {sorted(set(got) ^ set(reference))}"
    differ = [k for k in reference if got[k] != reference[k]]
    assert not differ, f"not byte-identical to the uninterrupted run: {differ}"


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


def _committed_shards(out: Path) -> dict[Path, tuple[int, int]]:
    """Shards committed so far (tar + .done.json) and their (inode, mtime_ns)."""
    folder = out / "clips"
    found = {}
    for done in sorted(folder.glob("clips-*.tar.done.json")) if folder.is_dir() else []:
        tar = done.with_name(done.name[: -len(".done.json")])
        if tar.is_file():
            found[tar], found[done] = _stamp(tar), _stamp(done)
    return found


def _decoded_clips(out: Path) -> dict[Path, tuple[int, int]]:
    """Frame-store folders of clips decoded so far: their meta.json's (inode, mtime_ns)."""
    return {m: _stamp(m) for m in sorted((out / ".work" / "frames").glob("*/*/meta.json"))
            if not m.parent.name.startswith(".")}


def _fetched(out: Path) -> dict[Path, tuple[int, int]]:
    """Raw-store sidecars of the sources fetched so far (written last, after the blobs)."""
    return {m: _stamp(m) for m in sorted((out / ".work" / "raw" / "sources").glob("*/*.json"))}


def _assert_untouched(stamps: dict[Path, tuple[int, int]], what: str) -> None:
    changed = [str(p) for p, s in stamps.items() if not p.exists() or _stamp(p) != s]
    assert not changed, f"the rerun redid {what}: {changed}"


# ------------------------------------------------------------------ reference
@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory):
    """One uninterrupted run: its output folder, outputs and wall time."""
    out = tmp_path_factory.mktemp("resume-reference") / "out"
    started = time.monotonic()
    seen = _launch(_command(corpus.manifest, corpus.config, out), out.parent / "log.txt")
    wall = time.monotonic() - started
    assert any("pipelines.common.sandbox" in cmd for cmd in seen.values()), f"no sandbox child seen: {seen}"
    outputs = _outputs(out)
    summary = json.loads(outputs["summary.json"])
    assert summary["outcomes"] == {"succeeded": 6, "failed": 1, "duplicate": 1}
    assert summary["clips"] == 6 and summary["shards"] >= 2  # hash(key) % 3 shards; several to resume between
    assert not [k for k in outputs if ".tmp-" in k]
    # the runs compared with it write elsewhere: no output may name the output or work folder
    assert not [k for k, data in outputs.items() if str(out).encode() in data]
    return out, outputs, wall


# ------------------------------------------------------------------ interrupt and resume
# the stages of a run, in order; the seeds below draw two each and together all of them
KILL_POINTS = ("time", "fetching", "decoding", "failing", "sharding", "finalizing")
SEEDS = (2, 9, 4)
DECODING_AT = 3  # "decoding": once this many of the 6 clips are in the frame store


def _kill_point(name: str, out: Path, rng: random.Random, ref_wall: float):
    """A predicate of elapsed seconds for ``_launch``: when the run reaches that point."""
    work = out / ".work"
    if name == "time":  # anywhere, start-up (imports, pipeline construction) included
        at = rng.uniform(0.3, max(0.3, 0.9 * ref_wall))
        return lambda elapsed: elapsed >= at
    return {
        "fetching": lambda _: bool(_fetched(out)),
        "decoding": lambda _: len(_decoded_clips(out)) >= DECODING_AT,
        "failing": lambda _: any((work / "failed").glob("*.json")),
        "sharding": lambda _: bool(_committed_shards(out)),
        "finalizing": lambda _: (out / "clips.parquet").exists(),
    }[name]


@pytest.mark.parametrize("seed, extra", [
    pytest.param(SEEDS[0], (), id=f"seed{SEEDS[0]}"),
    pytest.param(SEEDS[1], (), id=f"seed{SEEDS[1]}"),
    pytest.param(SEEDS[2], MULTI, id=f"seed{SEEDS[2]}-multi_processing"),
])
def test_kill_and_resume_is_byte_identical(corpus, reference, tmp_path, seed, extra):
    """kill -9 of the whole process group at two seeded kill points (a stage of the run plus a
    seeded delay), then the same command to completion: the outputs equal the uninterrupted
    run's byte for byte, and neither committed shards nor decoded clips were redone."""
    _, ref_files, ref_wall = reference
    out, log = tmp_path / "out", tmp_path / "log.txt"
    cmd = _command(corpus.manifest, corpus.config, out, *extra)
    rng = random.Random(seed)
    points = sorted(rng.sample(KILL_POINTS, 2), key=KILL_POINTS.index)
    seen = {}
    for name in points:
        seen.update(_launch(cmd, log, kill_when=_kill_point(name, out, rng, ref_wall), then_s=rng.uniform(0, 0.3),
                            label=name))
        with open(log, "a") as f:
            f.write(f"--- state: {len(_decoded_clips(out))} clips decoded, "
                    f"{len(_committed_shards(out)) // 2} shards committed\n")
    shards, clips, fetched = _committed_shards(out), _decoded_clips(out), _fetched(out)
    if "sharding" in points or "finalizing" in points:
        assert shards, "no shard was committed before the rerun"
    if shards:  # add what a kill inside one shard's commit leaves (too narrow a window to time)
        tar = rng.choice(sorted(p for p in shards if p.suffix == ".tar"))
        done = tar.with_name(tar.name + ".done.json")
        done.unlink()  # killed between the tar's rename and the write of its .done.json
        tar.with_name(temp_name(tar.name)).write_bytes(tar.read_bytes()[:5000])  # killed mid-write
        del shards[tar], shards[done]
    for clip in list(_decoded_clips(out))[:1]:  # killed while decoding a clip into the frame store
        (clip.parent.parent / temp_name(clip.parent.name)).mkdir()
    if (out / ".work" / "raw").is_dir():  # killed while downloading
        (out / ".work" / "raw" / ".tmp").mkdir(exist_ok=True)
        (out / ".work" / "raw" / ".tmp" / temp_name("fetch")).mkdir()
    seen.update(_launch(cmd, log))
    _assert_same_outputs(out, ref_files)
    left = [str(p) for p in out.rglob("*") if is_temp_name(p.name)]
    assert not left, f"temporary files or folders survived the rerun's sweep: {left}"
    _assert_untouched(shards, "committed shards")
    _assert_untouched(clips, "decoded clips")
    _assert_untouched(fetched, "downloads")
    if extra == MULTI:  # the group check did cover Beam's SDK worker processes
        assert any("sdk_worker_main" in c for c in seen.values()), f"no Beam worker process seen: {seen}"


def test_seeds_draw_every_kill_point():
    drawn = {p for seed in SEEDS for p in random.Random(seed).sample(KILL_POINTS, 2)}
    assert drawn == set(KILL_POINTS)


# ------------------------------------------------------------------ --retry-failed
def test_retry_failed_reprocesses_just_the_failures(corpus, reference, tmp_path):
    """An input missing at the first run stays failed on a plain rerun (which, rerunning a
    finished output, rewrites nothing) and succeeds with --retry-failed, which gives the
    uninterrupted run's result byte for byte; the inputs that succeeded before are not decoded
    again."""
    import pyarrow.parquet as pq

    _, ref_files, _ = reference
    out, log = tmp_path / "out", tmp_path / "log.txt"
    cmd = _command(corpus.manifest, corpus.config, out)
    hidden = tmp_path / corpus.late.name
    os.rename(corpus.late, hidden)  # the input fails with not_found at first (rename keeps mtime)
    try:
        _launch(cmd, log)
    finally:
        os.rename(hidden, corpus.late)
    failures = {r["input_id"]: r["error_type"] for r in pq.read_table(out / "failures.parquet").to_pylist()}
    assert failures == {"scene_0005": "not_found", "not_a_video": "unreadable", "copy": "exact_duplicate"}
    first = _outputs(out)

    shards, clips, fetched = _committed_shards(out), _decoded_clips(out), _fetched(out)
    assert len(clips) == 5
    _launch(cmd, log)  # a plain rerun remembers the failure
    _assert_same_outputs(out, first)
    _assert_untouched(shards, "committed shards")
    _assert_untouched(clips, "decoded clips")
    this_run = _this_run(out)  # ... and says what it reused and which failure it remembered
    assert this_run["reused"]["clips"] == 6 and this_run["made"]["clips"] == 0  # the copy's clip is good_2's
    assert this_run["reused"]["shards"] == len(shards) // 2 and this_run["made"]["shards"] == 0
    remembered = this_run["remembered_failures"]
    assert {e["input_id"] for e in remembered["examples"]} == {"scene_0005", "not_a_video"}
    assert "--retry-failed" in remembered["hint"]

    _launch(cmd + ["--retry-failed"], log)
    _assert_same_outputs(out, ref_files)
    assert _this_run(out)["remembered_failures"]["count"] == 0
    _assert_untouched(clips, "decoded clips of the inputs that had succeeded")
    _assert_untouched(fetched, "downloads of the inputs that had succeeded")
    assert len(_decoded_clips(out)) == 6
