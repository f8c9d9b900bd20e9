"""Benchmark: the Beam ingest pipeline against a bare decord loop over the same files.

One job: ingest a procedural video corpus with ``pipelines.ingest.pipeline.run`` (fresh output and work
folders, so nothing is reused) and, in the same run, decode the same files with a bare loop
(open with decord, sample the Molmo 2 times, ``get_batch``, resize to the same ``max_side``,
JPEG-encode with the same quality; a ``multiprocessing.Pool`` of the same size when
``--processes`` > 1); print clips/s and frames/s for both and their ratio. Then ingest a small
corpus of M and 4M distinct short videos, each in a child process, and report the peak RSS of
the whole process tree (runner, Beam workers, decode sandboxes) for both, and their ratio.
Results are appended to ``benchmarks/results.jsonl``.

Run (about 2.5 minutes on 2 quiet cores once the corpus is cached; the first run also
generates it, about 2-3 minutes more)::

    cd /work/main && .venv/bin/python benchmarks/ingest.py            # defaults below
    cd /work/main && .venv/bin/python benchmarks/ingest.py --quick    # smoke test, about 1 minute

Targets (the issue): ingest >= 0.7 x the bare loop with the same number of processes; peak
memory that does not grow with the number of videos (RSS(4M) / RSS(M) close to 1).

How it measures:

* Corpus: ``pipelines.procedural.scenes.generate_corpus`` with every scene forced to constant-frame-rate
  H.264 at ``--size``/``--fps``/``--duration`` (default 64 videos, 640x360, 25 fps, 20 s;
  objects, occluder and background still vary by seed), in chunks of 8 scenes with seeds
  ``seed * 100000 + chunk``, generated in parallel and cached under ``--corpus-dir`` (default
  ``$TMPDIR/molmo2-bench-ingest``). The manifest gives each video a path and an id only (no
  subtitles: the bare loop reads none).
* Ingest: ``pipelines.ingest.pipeline.run`` in a child process (``python benchmarks/ingest.py --_child``):
  Beam's in-memory FnApiRunner for P = 1, ``--direct_running_mode=multi_processing
  --direct_num_workers=P`` otherwise (``--mode multi_threading`` to compare). Its figure is the
  summary's clips and frames over the summary's ``seconds`` (pipeline construction to finish,
  including worker and sandbox start; not the interpreter and Beam import). The child's wall
  time is kept in ``extra``.
* Fixed cost: the ingest of the corpus's first video alone, run the same way. ``marginal``
  is (clips of N - clips of 1) / (seconds of N - seconds of 1): the per-video rate with start-up
  and the per-stage costs taken out, i.e. what a long run tends to.
* Bare loop: the same sample times and frame indices as ``pipelines.ingest.frames.decode_clip`` (decord
  frame timestamps -> ``schemas.sampling.sample_times`` -> ``indices_for_times``), one decoder
  thread per process as the ingest uses, JPEG bytes kept in memory and dropped. Timed from pool
  creation to the last result; decord and Pillow are imported before the clock starts.
* Bare, ingest of N and ingest of 1 alternate ``--repeats`` times; the fastest of each counts
  (this machine is shared; the load average is kept in ``extra`` and a busy start is flagged).
* RSS: a sampler thread walks the child's process tree (``/proc/PID/task/*/children``) every
  ``--rss-interval`` seconds and sums VmRSS; the peak of that sum is the "tree" figure. The
  largest single-process peak (VmHWM, exact) is the "process" figure; every process's peak,
  by role (runner, sdk_worker, sandbox), is kept in ``extra``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import print_table, record  # noqa: E402

CHUNK = 8  # scenes per generate_corpus call (the unit of caching and of parallel generation)


# ------------------------------------------------------------------ corpus
def _generate_chunk(job: tuple[str, int, dict]) -> str:
    folder, seed, overrides = job
    from pipelines.procedural.scenes import generate_corpus

    folder = Path(folder)
    if (folder / ".complete").is_file():
        return str(folder)
    shutil.rmtree(folder, ignore_errors=True)
    generate_corpus(folder, CHUNK, seed=seed, **overrides)
    (folder / ".complete").write_text("ok\n")
    return str(folder)


def corpus(root: Path, n: int, seed: int, width: int, height: int, fps: float, duration: float,
           processes: int) -> tuple[list[Path], float, int]:
    """``n`` distinct videos (cached); returns (paths, seconds spent generating, chunks made)."""
    overrides = dict(width=width, height=height, fps=fps, duration=duration, codec="h264", vfr=False)
    folder = root / f"{width}x{height}-{fps:g}fps-{duration:g}s-seed{seed}"
    chunks = -(-n // CHUNK)
    jobs = [(str(folder / f"chunk_{c:04d}"), seed * 100000 + c, overrides) for c in range(chunks)]
    missing = [j for j in jobs if not (Path(j[0]) / ".complete").is_file()]
    start = time.perf_counter()
    if missing:
        if processes > 1 and len(missing) > 1:
            import multiprocessing as mp

            with mp.get_context("spawn").Pool(min(processes, len(missing))) as pool:
                list(pool.imap_unordered(_generate_chunk, missing))
        else:
            for job in missing:
                _generate_chunk(job)
    seconds = time.perf_counter() - start
    videos = [p for job in jobs for p in sorted(Path(job[0]).glob("scene_*.mp4"))]
    return videos[:n], seconds, len(missing)


def write_manifest(path: Path, videos: list[Path]) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for i, video in enumerate(videos):
            f.write(json.dumps({"id": f"v{i:05d}", "path": str(video.resolve())}) + "\n")
    return path


# ------------------------------------------------------------------ bare loop
def _bare_one(job: tuple[str, int, float, int, int]) -> tuple[int, int]:
    """Open, sample, decode, JPEG-encode one video; return (frames, JPEG bytes)."""
    path, max_frames, max_fps, max_side, quality = job
    import decord

    from pipelines.ingest.frames import encode_jpeg, frame_times, indices_for_times
    from schemas.sampling import sample_times

    vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
    starts = frame_times(vr)
    last_start, last_end = vr.get_frame_timestamp(len(vr) - 1)
    duration = float(starts[-1]) + max(float(last_end - last_start), 0.0)
    indices = indices_for_times(starts, sample_times(duration, max_frames=max_frames, max_fps=max_fps))
    unique = sorted(set(indices))
    batch = vr.get_batch(unique).asnumpy()
    h, w = batch.shape[1:3]
    if max(h, w) > max_side:  # resize at decode, as the ingest does (not hit by the default corpus)
        scale = max_side / max(h, w)
        vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1,
                                width=max(1, round(w * scale)), height=max(1, round(h * scale)))
        batch = vr.get_batch(unique).asnumpy()
    frames = dict(zip(unique, batch))
    size = sum(len(encode_jpeg(frames[i], quality=quality)) for i in indices)
    return len(indices), size


def run_bare(videos: list[Path], processes: int, config) -> dict:
    import decord  # noqa: F401 - imported before the clock starts (forked workers inherit it)
    import PIL.Image  # noqa: F401

    import resource

    def cpu() -> float:
        a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime

    jobs = [(str(v), config.sampling.max_frames, config.sampling.max_fps, config.frames.max_side,
             config.frames.jpeg_quality) for v in videos]
    start, cpu0 = time.perf_counter(), cpu()
    if processes > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(processes) as pool:
            results = list(pool.imap_unordered(_bare_one, jobs, chunksize=1))
            pool.close()
            pool.join()  # reaped, so RUSAGE_CHILDREN counts the workers' CPU
    else:
        results = [_bare_one(j) for j in jobs]
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "cpu_s": cpu() - cpu0, "clips": len(results), "frames": sum(r[0] for r in results),
            "jpeg_bytes": sum(r[1] for r in results)}


# ------------------------------------------------------------------ ingest in a child, with RSS
def _kib(status: str, field: str) -> int:
    for line in status.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                try:
                    with open(f"/proc/{p}/task/{tid}/children") as f:
                        todo.extend(int(c) for c in f.read().split())
                except OSError:
                    pass
        except OSError:
            pass
    return out


def _role(pid: int, root: int) -> str:
    """What a process of the ingest tree is: runner, sdk_worker, sandbox, or its program name."""
    if pid == root:
        return "runner"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"
    for marker, role in (("sdk_worker_main", "sdk_worker"), ("pipelines.common.sandbox", "sandbox")):
        if marker in cmd:
            return role
    return os.path.basename(cmd.split(" ", 1)[0]) or "?"


class TreeRss(threading.Thread):
    """Sample the summed VmRSS of a process tree until stopped; keep peaks."""

    def __init__(self, pid: int, interval: float):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_kib = 0
        self.hwm_kib: dict[int, tuple[str, int]] = {}  # pid -> (role, VmHWM)
        self.cpu_ticks: dict[int, tuple[str, int]] = {}  # pid -> (role, CPU ticks at last sample)
        self.max_procs = 0
        self.samples = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            total, procs = 0, 0
            for p in _tree(self.pid):
                try:
                    with open(f"/proc/{p}/status") as f:
                        status = f.read()
                except OSError:
                    continue
                rss = _kib(status, "VmRSS")
                if rss == 0:  # zombie or kernel thread
                    continue
                procs += 1
                total += rss
                role = self.hwm_kib[p][0] if p in self.hwm_kib else _role(p, self.pid)
                try:
                    with open(f"/proc/{p}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    self.cpu_ticks[p] = (role, int(fields[11]) + int(fields[12]))  # utime + stime
                except (OSError, IndexError, ValueError):
                    pass
                self.hwm_kib[p] = (role, max(self.hwm_kib.get(p, ("", 0))[1], _kib(status, "VmHWM")))
            self.peak_kib = max(self.peak_kib, total)
            self.max_procs = max(self.max_procs, procs)
            self.samples += 1
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def _cpu_by_role(ticks: dict[int, tuple[str, int]]) -> dict[str, float]:
    """CPU seconds per process role (as last sampled: a lower bound by up to one interval)."""
    hz = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for role, t in ticks.values():
        out[role] = round(out.get(role, 0.0) + t / hz, 2)
    return out


def run_ingest_child(manifest: Path, out: Path, processes: int, rss_interval: float,
                     mode: str = "multi_processing") -> dict:
    """Run the ingest in a child process; return its result plus the tree's RSS figures."""
    result_path = out.with_name(out.name + ".result.json")
    spec = {"manifest": str(manifest), "out": str(out), "processes": processes, "mode": mode,
            "result": str(result_path)}
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    started = time.perf_counter()
    log = out.with_name(out.name + ".log")
    with open(log, "wb") as err:  # Beam's workers log at INFO on stderr
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--_child", json.dumps(spec)],
                                cwd=str(ROOT), env=env, stderr=err)
        sampler = TreeRss(proc.pid, rss_interval)
        sampler.start()
        code = proc.wait()
        sampler.stop()
    wall = time.perf_counter() - started
    if code != 0:
        sys.stderr.write(log.read_text(errors="replace")[-5000:])
        raise SystemExit(f"ingest child failed with exit code {code} ({manifest})")
    result = json.loads(result_path.read_text())
    hwm = max(sampler.hwm_kib.values(), key=lambda v: v[1], default=("", 0))
    per_process = sorted(((role, round(k / 1024)) for role, k in sampler.hwm_kib.values()), key=lambda x: -x[1])
    result.update(child_wall_s=wall, tree_peak_rss_mib=sampler.peak_kib / 1024,
                  max_process_hwm_mib=hwm[1] / 1024, max_process_name=hwm[0],
                  process_peaks_mib=[f"{role}:{mib}" for role, mib in per_process],
                  cpu_s_by_role=_cpu_by_role(sampler.cpu_ticks),
                  processes_seen=len(sampler.hwm_kib), max_live_processes=sampler.max_procs,
                  rss_samples=sampler.samples)
    return result


def _child(spec_json: str) -> int:
    import resource

    from pipelines.ingest.pipeline import run

    spec = json.loads(spec_json)
    argv = ["--manifest", spec["manifest"], "--out", spec["out"]]
    if spec["processes"] > 1:
        argv += [f"--direct_running_mode={spec['mode']}", f"--direct_num_workers={spec['processes']}"]
    summary = run(argv)
    result = {
        "summary": summary,
        "self_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "children_maxrss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }
    Path(spec["result"]).write_text(json.dumps(result))
    return 0


# ------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=None, help="videos in the throughput corpus (default 64)")
    parser.add_argument("--processes", type=int, default=None,
                        help="worker processes for both sides (default: CPU count)")
    parser.add_argument("--mode", default="multi_processing", choices=("multi_processing", "multi_threading"),
                        help="Beam direct_running_mode when --processes > 1 (default multi_processing)")
    parser.add_argument("--size", default=None, help="WxH of the throughput corpus (default 640x360)")
    parser.add_argument("--fps", type=float, default=None, help="frame rate (default 25)")
    parser.add_argument("--duration", type=float, default=None, help="seconds per video (default 20)")
    parser.add_argument("--mem-videos", type=int, default=None,
                        help="M: the RSS runs ingest M and 4M small distinct videos (default 24)")
    parser.add_argument("--quick", action="store_true", help="smoke mode: few, small videos (under a minute)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="bare and ingest runs, alternating; the fastest of each counts (default 2; quick 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corpus-dir", default=None,
                        help="where generated videos are cached (default $TMPDIR/molmo2-bench-ingest)")
    parser.add_argument("--out-dir", default=None, help="where ingest outputs go (default: a temporary directory)")
    parser.add_argument("--rss-interval", type=float, default=0.1, help="RSS sampling period, seconds")
    parser.add_argument("--keep", action="store_true", help="keep the ingest outputs")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to results.jsonl")
    parser.add_argument("--_child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._child:
        return _child(args._child)

    quick = args.quick
    n = args.videos or (8 if quick else 64)
    procs = args.processes or os.cpu_count() or 1
    mode = "in_memory" if procs == 1 else args.mode
    width, height = map(int, (args.size or ("320x240" if quick else "640x360")).lower().split("x"))
    fps = args.fps or 25.0
    duration = args.duration or (8.0 if quick else 20.0)
    mem_m = args.mem_videos or (4 if quick else 24)
    repeats = args.repeats or (1 if quick else 2)
    corpus_root = Path(args.corpus_dir or Path(tempfile.gettempdir()) / "molmo2-bench-ingest")
    if n < 2:
        parser.error("--videos must be >= 2")

    from pipelines.ingest.config import IngestConfig

    config = IngestConfig()  # the ingest's defaults (run() builds the same when given no --config)
    load_start = os.getloadavg()
    if load_start[0] > 0.5 * (os.cpu_count() or 1):
        print(f"note: load average {load_start[0]:.1f} on {os.cpu_count()} CPUs: other work is running, "
              "figures will be noisy", flush=True)

    print(f"corpus: {n} videos {width}x{height} {fps:g} fps {duration:g} s h264; "
          f"RSS corpus: {mem_m} and {4 * mem_m} videos 160x120 10 fps 4 s; {procs} process(es), {mode}", flush=True)
    videos, gen_s, made = corpus(corpus_root, n, args.seed, width, height, fps, duration, procs)
    small, gen2_s, made2 = corpus(corpus_root, 4 * mem_m, args.seed + 1, 160, 120, 10.0, 4.0, procs)
    print(f"  generated {made + made2} chunk(s) of {CHUNK} in {gen_s + gen2_s:.1f} s "
          f"(cache: {corpus_root})", flush=True)

    base = Path(tempfile.mkdtemp(prefix="bench-ingest-", dir=args.out_dir))
    bare, ing, one = None, None, None
    bare_all, ing_all, one_all = [], [], []
    try:
        whole = write_manifest(base / "videos.jsonl", videos)
        single = write_manifest(base / "one.jsonl", videos[:1])
        for rep in range(repeats):  # alternate, keep the fastest of each (the least disturbed)
            tag = f" (repeat {rep + 1}/{repeats})" if repeats > 1 else ""
            print(f"bare decord loop{tag} ...", flush=True)
            b = run_bare(videos, procs, config)
            bare_all.append(round(b["seconds"], 3))
            print(f"  {b['seconds']:.1f} s", flush=True)
            bare = b if bare is None or b["seconds"] < bare["seconds"] else bare
            print(f"ingest, {n} videos{tag} ...", flush=True)
            r = run_ingest_child(whole, base / f"out-{rep}", procs, args.rss_interval, mode)
            ing_all.append(r["summary"]["seconds"])
            print(f"  {r['summary']['seconds']:.1f} s (child wall {r['child_wall_s']:.1f} s)", flush=True)
            ing = r if ing is None or r["summary"]["seconds"] < ing["summary"]["seconds"] else ing
            print(f"ingest, 1 video (fixed cost: start-up, stages, shut-down){tag} ...", flush=True)
            r = run_ingest_child(single, base / f"out-one-{rep}", procs, args.rss_interval, mode)
            one_all.append(r["summary"]["seconds"])
            print(f"  {r['summary']['seconds']:.1f} s", flush=True)
            one = r if one is None or r["summary"]["seconds"] < one["summary"]["seconds"] else one
            for folder in (base / f"out-{rep}", base / f"out-one-{rep}"):
                if not args.keep:
                    shutil.rmtree(folder, ignore_errors=True)
        mem = {}
        for label, count in (("M", mem_m), ("4M", 4 * mem_m)):
            print(f"ingest for RSS, {count} small videos ...", flush=True)
            m = write_manifest(base / f"small-{count}.jsonl", small[:count])
            mem[label] = run_ingest_child(m, base / f"out-small-{count}", procs, args.rss_interval, mode)
            print(f"  {mem[label]['summary']['seconds']:.1f} s, tree peak "
                  f"{mem[label]['tree_peak_rss_mib']:.0f} MiB", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
        else:
            print(f"outputs kept in {base}")
    load_end = os.getloadavg()

    s = ing["summary"]
    if s["outcomes"]["succeeded"] != len(videos):
        print(f"WARNING: ingest kept {s['outcomes']['succeeded']} of {len(videos)} videos: {s['outcomes']} "
              f"{s['errors']}; its clips/s counts kept clips only")
    if s["frames"] != bare["frames"]:
        print(f"WARNING: ingest wrote {s['frames']} frames, the bare loop {bare['frames']}")
    for label, m in mem.items():
        o = m["summary"]["outcomes"]
        if o["succeeded"] != m["summary"]["rows"]:
            print(f"note: RSS run {label}: {o} {m['summary']['errors']}")

    ing_s, one_s = s["seconds"], one["summary"]["seconds"]
    marginal_s = ing_s - one_s  # the last n - 1 videos, start-up and fixed per-stage costs excluded
    marginal_clips = s["clips"] - one["summary"]["clips"]
    marginal_frames = s["frames"] - one["summary"]["frames"]
    common = {
        "videos": len(videos), "processes": procs, "runner": mode, "size": f"{width}x{height}", "fps": fps,
        "duration_s": duration, "codec": "h264", "quick": quick,
        "max_frames": config.sampling.max_frames, "max_fps": config.sampling.max_fps,
        "max_side": config.frames.max_side, "jpeg_quality": config.frames.jpeg_quality,
        "ingest_seconds": round(ing_s, 3), "ingest_child_wall_s": round(ing["child_wall_s"], 3),
        "ingest_one_video_seconds": round(one_s, 3), "repeats": repeats,
        "ingest_seconds_all": ing_all, "ingest_one_video_seconds_all": one_all, "bare_seconds_all": bare_all,
        "ingest_marginal_clips_per_s": round(marginal_clips / marginal_s, 3) if marginal_s > 0 else None,
        "ingest_marginal_frames_per_s": round(marginal_frames / marginal_s, 3) if marginal_s > 0 else None,
        "bare_seconds": round(bare["seconds"], 3), "clips": s["clips"], "frames": s["frames"],
        "bare_frames": bare["frames"], "shard_bytes": s["shard_bytes"], "bare_jpeg_bytes": bare["jpeg_bytes"],
        "ingest_outcomes": s["outcomes"], "ingest_tree_peak_rss_mib": round(ing["tree_peak_rss_mib"], 1),
        "ingest_process_peaks_mib": ing["process_peaks_mib"], "ingest_cpu_s_by_role": ing["cpu_s_by_role"],
        "bare_cpu_s": round(bare["cpu_s"], 2),
        "loadavg_start": [round(x, 2) for x in load_start], "loadavg_end": [round(x, 2) for x in load_end],
        "baseline": "bare decord loop: open, get_batch at the sample indices, JPEG-encode in memory "
                    f"({'multiprocessing.Pool' if procs > 1 else 'one process'}, 1 decoder thread)",
    }
    mem_extra = {
        "processes": procs, "runner": mode, "videos_m": mem_m, "videos_4m": 4 * mem_m, "size": "160x120",
        "fps": 10.0, "duration_s": 4.0, "rss_interval_s": args.rss_interval,
        **{f"{k}_{label}": round(m[k], 1) if isinstance(m[k], float) else m[k]
           for label, m in (("m", mem["M"]), ("4m", mem["4M"]))
           for k in ("tree_peak_rss_mib", "max_process_hwm_mib", "max_process_name", "process_peaks_mib",
                     "max_live_processes", "self_maxrss_mib", "children_maxrss_mib")},
        "seconds_m": mem["M"]["summary"]["seconds"], "seconds_4m": mem["4M"]["summary"]["seconds"],
        "loadavg_start": [round(x, 2) for x in load_start], "loadavg_end": [round(x, 2) for x in load_end],
        "baseline": "peak RSS ingesting M videos (figure: the same for 4M)",
    }
    rows = [
        dict(name="ingest.clips_per_s", figure=s["clips"] / ing_s, baseline=bare["clips"] / bare["seconds"],
             unit="clips/s", extra=common),
        dict(name="ingest.frames_per_s", figure=s["frames"] / ing_s, baseline=bare["frames"] / bare["seconds"],
             unit="frames/s", extra=common),
    ]
    if marginal_s > 0:
        rows.append(dict(name="ingest.marginal_clips_per_s", figure=marginal_clips / marginal_s,
                         baseline=bare["clips"] / bare["seconds"], unit="clips/s", extra=common))
    rows += [
        dict(name="ingest.peak_rss_tree_4n_vs_n", figure=mem["4M"]["tree_peak_rss_mib"],
             baseline=mem["M"]["tree_peak_rss_mib"], unit="MiB", extra=mem_extra),
        dict(name="ingest.peak_rss_process_4n_vs_n", figure=mem["4M"]["max_process_hwm_mib"],
             baseline=mem["M"]["max_process_hwm_mib"], unit="MiB", extra=mem_extra),
    ]
    for row in rows:
        row["ratio"] = row["figure"] / row["baseline"]
        if not args.no_record:
            record(row["name"], row["figure"], row["baseline"], row["unit"], extra=row["extra"])
    print()
    print(f"{len(videos)} videos {width}x{height} {fps:g} fps {duration:g} s, {procs} process(es), {mode}: "
          f"ingest {ing_s:.1f} s (1 video: {one_s:.1f} s) vs bare {bare['seconds']:.1f} s, best of {repeats}; "
          f"load average {load_start[0]:.1f} -> {load_end[0]:.1f}")
    print(f"RSS rows: figure = {4 * mem_m} small videos, baseline = {mem_m} (tree = sum over runner, "
          f"workers and sandboxes; process = the largest single one)")
    print_table(rows)
    print(f"target: ingest/bare >= 0.7 (got {rows[0]['ratio']:.2f}; without the fixed cost "
          f"{rows[2]['ratio'] if marginal_s > 0 else float('nan'):.2f}); RSS(4N)/RSS(N) ~ 1 "
          f"(got {rows[-2]['ratio']:.2f})")
    print(f"process peaks, {n} videos (MiB): {', '.join(ing['process_peaks_mib'])}")
    print(f"CPU seconds, {n} videos: ingest {ing['cpu_s_by_role']} (sum "
          f"{sum(ing['cpu_s_by_role'].values()):.1f}); bare loop {bare['cpu_s']:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
