"""Benchmark: ``molmo2-data ingest`` at 2 processes against the naive loop a user would write.

One job: on a mixed procedural corpus, time the ingest command end to end against a naive
script doing the same work (same videos, same sample frames, same max side and JPEG quality,
one tar out), interleaved in one run, and report inputs/s, frames/s, their ratio and the peak
memory of each process tree. Results are appended to ``benchmarks/results.jsonl``.

Run (about 4-5 minutes on 2 quiet cores once the corpus is cached; the first run also
generates it, about 3 minutes more, into ``.cache/bench-ingest-mixed/``)::

    cd /work/main && .venv/bin/python benchmarks/ingest.py             # 3 rounds of naive, ingest
    cd /work/main && .venv/bin/python benchmarks/ingest.py --quick     # smoke test, about 1 minute

Target (issue 7, "[4/9]", section "Speed (last)"): ingest/naive >= 1.0 in inputs/s, end to end,
with a peak process-tree memory no larger than the naive loop's.

How it measures:

* Corpus (``MIXED``): 12 procedural scenes (``pipelines.procedural.scenes.generate_corpus``, one
  seeded scene each) from 320x240 to 1280x720, at 24, 25 and 30 fps, 5 to 90 s long, H.264 (mp4)
  and VP9 (webm), one variable-frame-rate file, three past 63.5 s (sampled as 128 evenly spaced
  frames, not on the 2 fps grid). Cached under ``--corpus-dir`` by a digest of each spec.
* Naive loop (the baseline; ``naive_loop``): what a user writes from the decord and Pillow
  docs: one process, ``decord.VideoReader(path)`` with its defaults (FFmpeg picks the decoder
  threads), the frame index shown at each Molmo 2 sample time (the project's
  ``schemas.sampling.sample_times`` on decord's frame timestamps: the same frames as the ingest),
  one ``get_batch`` of all of them at full size, ``Image.resize`` to the longer side
  ``frames.max_side``, ``save(..., "JPEG", quality=frames.jpeg_quality)``, and every JPEG plus
  one JSON per video into a single ``tarfile``. One process is what "a loop a user would write"
  is: the issue's 0.92-0.96x for the ingest at 2 processes is against this loop (against two
  such loops the ingest's earlier figure was 0.49x).
* Ingest: ``python -m molmo2_data ingest --manifest M --out O
  --direct_running_mode=multi_processing --direct_num_workers=2`` (``--mode``), fresh output and
  work folders each time, so nothing is reused.
* Both run as child processes timed from spawn to exit (end to end: interpreter start, imports,
  Beam's workers and the decode sandboxes included); ``inner`` times are kept too (the loop's
  own clock; the ingest summary's ``seconds``). Rounds alternate naive, ingest, naive, ingest...
  (``--repeats``, default 3) and the medians count; the load average is printed and kept (the
  2 cores are shared).
* Memory: a sampler thread walks each child's process tree (``/proc/PID/task/*/children``)
  every ``--mem-interval`` seconds and sums VmRSS (the "RSS" figure, which counts shared pages
  once per process) and Pss from ``smaps_rollup`` (the "PSS" figure, shared pages split among
  the processes that map them); the peak of each sum is the tree's figure.
* Checks: both produce the same number of frames, and the same frame index at every sample time
  of every video (read back from the ingest's ``clips.parquet`` and the naive tar's JSONs).

``--memory-scaling`` adds the older check that the ingest's peak memory does not grow with the
number of videos (M and 4M small videos; ratio close to 1).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import print_table, record  # noqa: E402

# (name, width, height, fps, seconds, codec, variable frame rate)
MIXED = (
    ("v720p30-90s-h264", 1280, 720, 30.0, 90.0, "h264", False),
    ("v720p25-70s-vp9", 1280, 720, 25.0, 70.0, "vp9", False),
    ("v540p24-66s-h264", 960, 540, 24.0, 66.0, "h264", False),
    ("v480p30-40s-h264", 854, 480, 30.0, 40.0, "h264", False),
    ("v360p25-30s-vp9", 640, 360, 25.0, 30.0, "vp9", False),
    ("v720p24-15s-h264", 1280, 720, 24.0, 15.0, "h264", False),
    ("v480p30-20s-h264", 640, 480, 30.0, 20.0, "h264", False),
    ("v360p25vfr-20s-h264", 640, 360, 25.0, 20.0, "h264", True),
    ("v540p30-10s-vp9", 960, 540, 30.0, 10.0, "vp9", False),
    ("v240p24-5s-h264", 320, 240, 24.0, 5.0, "h264", False),
    ("v240p25-12s-vp9", 320, 240, 25.0, 12.0, "vp9", False),
    ("v240p30-8s-h264", 426, 240, 30.0, 8.0, "h264", False),
)
QUICK = ("v720p24-15s-h264", "v360p25vfr-20s-h264", "v540p30-10s-vp9", "v240p24-5s-h264")


# ------------------------------------------------------------------ corpus
def _spec_folder(root: Path, spec: tuple, seed: int) -> Path:
    digest = hashlib.sha256(json.dumps([list(spec), seed]).encode()).hexdigest()[:10]
    return root / f"{spec[0]}-{digest}"


def _generate_one(job: tuple[str, tuple, int]) -> str:
    """Write one corpus scene (video only is used) into its folder; a ``.complete`` marks it done."""
    folder, spec, seed = job
    from pipelines.procedural.scenes import generate_corpus

    folder = Path(folder)
    if not (folder / ".complete").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        _, width, height, fps, seconds, codec, vfr = spec
        generate_corpus(folder, 1, seed=seed, width=width, height=height, fps=fps, duration=seconds,
                        codec=codec, vfr=vfr, subtitles=False)
        (folder / ".complete").write_text("ok\n")
    return str(folder)


def corpus(root: Path, specs: tuple, seed: int, processes: int) -> tuple[list[tuple[str, Path]], float, int]:
    """The videos of ``specs`` (generated once, cached); returns ([(name, path)], seconds, made)."""
    # a scene's seed is its place in MIXED (so --quick reuses the full corpus's files), else in specs
    offsets = [MIXED.index(spec) if spec in MIXED else i for i, spec in enumerate(specs)]
    jobs = [(str(_spec_folder(root, spec, seed + k)), spec, seed + k) for k, spec in zip(offsets, specs)]
    missing = [j for j in jobs if not (Path(j[0]) / ".complete").is_file()]
    start = time.perf_counter()
    if missing:
        print(f"  generating {len(missing)} video(s) into {root} (once; cached) ...", flush=True)
        if processes > 1 and len(missing) > 1:
            import multiprocessing as mp

            # longest first, so the two workers finish together
            missing.sort(key=lambda j: -j[1][1] * j[1][2] * j[1][3] * j[1][4])
            with mp.get_context("spawn").Pool(min(processes, len(missing))) as pool:
                list(pool.imap_unordered(_generate_one, missing))
        else:
            for job in missing:
                _generate_one(job)
    videos = []
    for folder, spec, _ in jobs:
        (video,) = [p for p in Path(folder).iterdir() if p.name.startswith("scene_0000.") and p.suffix in (".mp4", ".webm")]
        videos.append((spec[0], video))
    return videos, time.perf_counter() - start, len(missing)


def write_manifest(path: Path, videos: list[tuple[str, Path]]) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for name, video in videos:
            f.write(json.dumps({"id": name, "path": str(video.resolve())}) + "\n")
    return path


# ------------------------------------------------------------------ the naive loop (baseline)
def naive_loop(videos: list[tuple[str, str]], out_tar: str, max_side: int, quality: int,
               max_frames: int, max_fps: float) -> dict:
    """The loop a user would write: decord ``get_batch`` at the sample indices, Pillow resize and
    JPEG, one ``tarfile``. Returns {frames, bytes, indices: {name: [frame index per sample]}}."""
    import io
    import tarfile

    import decord
    from PIL import Image

    from pipelines.ingest.frames import frame_times, indices_for_times
    from schemas.sampling import sample_times

    def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    frames, size, chosen = 0, 0, {}
    with tarfile.open(out_tar, "w") as tar:
        for name, path in videos:
            vr = decord.VideoReader(path)
            starts = frame_times(vr)
            last_start, last_end = vr.get_frame_timestamp(len(vr) - 1)
            duration = float(starts[-1]) + max(float(last_end - last_start), 0.0)
            times = sample_times(duration, max_frames=max_frames, max_fps=max_fps)
            indices = indices_for_times(starts, times)
            batch = vr.get_batch(indices).asnumpy()
            for i, frame in enumerate(batch):
                image = Image.fromarray(frame)
                if max(image.size) > max_side:
                    scale = max_side / max(image.size)
                    image = image.resize((round(image.width * scale), round(image.height * scale)))
                buf = io.BytesIO()
                image.save(buf, "JPEG", quality=quality)
                add(tar, f"{name}.{i:03d}.jpg", buf.getvalue())
                size += buf.tell()
            add(tar, f"{name}.json", json.dumps({"timestamps": times, "frame_indices": indices}).encode())
            frames += len(indices)
            chosen[name] = indices
    return {"frames": frames, "jpeg_bytes": size, "indices": chosen}


def _naive_child(spec_json: str) -> int:
    spec = json.loads(spec_json)
    start = time.perf_counter()
    result = naive_loop([tuple(v) for v in spec["videos"]], spec["tar"], spec["max_side"], spec["quality"],
                        spec["max_frames"], spec["max_fps"])
    result["seconds"] = time.perf_counter() - start
    Path(spec["result"]).write_text(json.dumps(result))
    return 0


# ------------------------------------------------------------------ children, timed, with memory
def _kib(text: str, field: str) -> int:
    for line in text.splitlines():
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
    """What a process of a tree is: the root, sdk_worker, sandbox, or its program name."""
    if pid == root:
        return "root"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"
    for marker, role in (("sdk_worker_main", "sdk_worker"), ("pipelines.common.sandbox", "sandbox")):
        if marker in cmd:
            return role
    return os.path.basename(cmd.split(" ", 1)[0]) or "?"


class TreeMemory(threading.Thread):
    """Sample the summed VmRSS and Pss of a process tree until stopped; keep the peaks."""

    def __init__(self, pid: int, interval: float):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_rss_kib = self.peak_pss_kib = 0
        self.hwm_kib: dict[int, tuple[str, int]] = {}  # pid -> (role, VmHWM)
        self.cpu_ticks: dict[int, tuple[str, int]] = {}  # pid -> (role, utime + stime at last sample)
        self.max_procs = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            rss_sum, pss_sum, procs = 0, 0, 0
            for p in _tree(self.pid):
                try:
                    with open(f"/proc/{p}/status") as f:
                        status = f.read()
                    with open(f"/proc/{p}/smaps_rollup") as f:
                        pss = _kib(f.read(), "Pss")
                except OSError:
                    continue
                rss = _kib(status, "VmRSS")
                if rss == 0:  # a zombie
                    continue
                procs += 1
                rss_sum += rss
                pss_sum += pss
                role = self.hwm_kib[p][0] if p in self.hwm_kib else _role(p, self.pid)
                try:
                    with open(f"/proc/{p}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    self.cpu_ticks[p] = (role, int(fields[11]) + int(fields[12]))
                except (OSError, IndexError, ValueError):
                    pass
                self.hwm_kib[p] = (role, max(self.hwm_kib.get(p, ("", 0))[1], _kib(status, "VmHWM")))
            self.peak_rss_kib = max(self.peak_rss_kib, rss_sum)
            self.peak_pss_kib = max(self.peak_pss_kib, pss_sum)
            self.max_procs = max(self.max_procs, procs)
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def run_child(argv: list[str], log: Path, interval: float) -> dict:
    """Run ``argv`` (a Python child) to its end; wall seconds, CPU seconds and memory peaks of its tree."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    with open(log, "wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, *argv], cwd=str(ROOT), env=env, stdout=err, stderr=err)
        sampler = TreeMemory(proc.pid, interval)
        sampler.start()
        code = proc.wait()
        wall = time.perf_counter() - started
        sampler.stop()
    if code != 0:
        sys.stderr.write(log.read_text(errors="replace")[-5000:])
        raise SystemExit(f"child failed with exit code {code}: {' '.join(argv)[:300]}")
    hz = os.sysconf("SC_CLK_TCK")
    cpu: dict[str, float] = {}
    for role, ticks in sampler.cpu_ticks.values():
        cpu[role] = round(cpu.get(role, 0.0) + ticks / hz, 2)
    peaks = sorted(((role, round(k / 1024)) for role, k in sampler.hwm_kib.values()), key=lambda x: -x[1])
    return {"wall_s": wall, "peak_rss_mib": sampler.peak_rss_kib / 1024, "peak_pss_mib": sampler.peak_pss_kib / 1024,
            "process_peaks_mib": [f"{role}:{mib}" for role, mib in peaks], "cpu_s_by_role": cpu,
            "max_live_processes": sampler.max_procs}


def run_naive(videos: list[tuple[str, Path]], folder: Path, config, interval: float) -> dict:
    folder.mkdir(parents=True)
    spec = {"videos": [(name, str(path)) for name, path in videos], "tar": str(folder / "naive.tar"),
            "result": str(folder / "result.json"), "max_side": config.frames.max_side,
            "quality": config.frames.jpeg_quality, "max_frames": config.sampling.max_frames,
            "max_fps": config.sampling.max_fps}
    r = run_child([str(Path(__file__).resolve()), "--_naive", json.dumps(spec)], folder / "log.txt", interval)
    r.update(json.loads((folder / "result.json").read_text()))
    r["inner_s"] = r.pop("seconds")
    return r


def run_ingest(manifest: Path, folder: Path, processes: int, mode: str, interval: float) -> dict:
    argv = ["-m", "molmo2_data", "ingest", "--manifest", str(manifest), "--out", str(folder)]
    if processes > 1:
        argv += [f"--direct_running_mode={mode}", f"--direct_num_workers={processes}"]
    log = folder.with_name(folder.name + ".log")
    r = run_child(argv, log, interval)
    summary = json.loads((folder / "summary.json").read_text())
    # the run's own clock (pipeline construction to finish) is printed, not kept in summary.json
    inner = re.search(r"shards \(.*\) in ([0-9.]+) s", log.read_text(errors="replace"))
    r.update(summary=summary, frames=summary["frames"], inner_s=float(inner.group(1)) if inner else float("nan"))
    return r


def _ingest_indices(folder: Path) -> dict[str, list[int]]:
    import pyarrow.parquet as pq

    table = pq.read_table(folder / "clips.parquet", columns=["video_id", "frame_indices"]).to_pylist()
    return {row["video_id"]: list(row["frame_indices"]) for row in table}


def _memory_scaling(root: Path, base: Path, seed: int, m: int, processes: int, mode: str, interval: float) -> list[dict]:
    """Peak memory of the ingest for M and 4M small distinct videos (should not grow with the count)."""
    specs = tuple((f"s{i:03d}", 160, 120, 10.0, 4.0, "h264", False) for i in range(4 * m))
    small, _, _ = corpus(root / "small", specs, seed + 1000, processes)
    out = {}
    for label, count in (("M", m), ("4M", 4 * m)):
        print(f"ingest for memory scaling, {count} small videos ...", flush=True)
        manifest = write_manifest(base / f"small-{count}.jsonl", small[:count])
        out[label] = run_ingest(manifest, base / f"small-{count}", processes, mode, interval)
        print(f"  {out[label]['wall_s']:.1f} s, tree peak RSS {out[label]['peak_rss_mib']:.0f} MiB, "
              f"PSS {out[label]['peak_pss_mib']:.0f} MiB", flush=True)
    extra = {"videos_m": m, "videos_4m": 4 * m, "size": "160x120", "processes": processes, "runner": mode,
             **{f"{k}_{label.lower()}": out[label][k] for label in out
                for k in ("peak_rss_mib", "peak_pss_mib", "process_peaks_mib", "wall_s")},
             "baseline": "peak memory of the ingest of M videos (figure: the same for 4M)"}
    return [dict(name="ingest.peak_rss_tree_4n_vs_n", figure=out["4M"]["peak_rss_mib"],
                 baseline=out["M"]["peak_rss_mib"], unit="MiB", extra=extra),
            dict(name="ingest.peak_pss_tree_4n_vs_n", figure=out["4M"]["peak_pss_mib"],
                 baseline=out["M"]["peak_pss_mib"], unit="MiB", extra=extra)]


# ------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=2, help="ingest worker processes (default 2)")
    parser.add_argument("--mode", default="multi_processing", choices=("multi_processing", "multi_threading"),
                        help="Beam direct_running_mode of the ingest (default multi_processing)")
    parser.add_argument("--quick", action="store_true", help=f"smoke mode: {len(QUICK)} short videos, one round")
    parser.add_argument("--repeats", type=int, default=None, help="rounds of (naive, ingest); medians count (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corpus-dir", default=None,
                        help="where generated videos are cached (default .cache/bench-ingest-mixed in the repository)")
    parser.add_argument("--out-dir", default=None, help="where outputs go (default: a temporary directory)")
    parser.add_argument("--mem-interval", type=float, default=0.1, help="memory sampling period, seconds")
    parser.add_argument("--memory-scaling", type=int, default=0, metavar="M",
                        help="also ingest M and 4M small videos and compare the peaks (off by default)")
    parser.add_argument("--keep", action="store_true", help="keep the outputs")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to results.jsonl")
    parser.add_argument("--_naive", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._naive:
        return _naive_child(args._naive)

    from pipelines.ingest.config import IngestConfig

    config = IngestConfig()  # the ingest's defaults (the command builds the same without --config)
    specs = tuple(s for s in MIXED if s[0] in QUICK) if args.quick else MIXED
    repeats = args.repeats or (1 if args.quick else 3)
    corpus_root = Path(args.corpus_dir or ROOT / ".cache" / "bench-ingest-mixed")
    mode = args.mode if args.processes > 1 else "in_memory"

    print(f"corpus: {len(specs)} videos ({', '.join(s[0] for s in specs)})", flush=True)
    videos, gen_s, made = corpus(corpus_root, specs, args.seed, 2)
    if made:
        print(f"  generated {made} video(s) in {gen_s:.0f} s", flush=True)
    load_start = os.getloadavg()
    print(f"load average {load_start[0]:.2f} on {os.cpu_count()} CPUs"
          + (" (other work is running: figures will be noisy)" if load_start[0] > 0.5 * (os.cpu_count() or 1) else ""),
          flush=True)

    base = Path(tempfile.mkdtemp(prefix="bench-ingest-", dir=args.out_dir))
    naive_runs, ingest_runs, loads = [], [], []
    try:
        manifest = write_manifest(base / "videos.jsonl", videos)
        for rep in range(repeats):
            tag = f" (round {rep + 1}/{repeats})" if repeats > 1 else ""
            loads.append(round(os.getloadavg()[0], 2))
            print(f"naive loop{tag} ...", flush=True)
            n = run_naive(videos, base / f"naive-{rep}", config, args.mem_interval)
            print(f"  {n['wall_s']:.1f} s, {n['frames'] / n['wall_s']:.1f} frames/s, peak RSS "
                  f"{n['peak_rss_mib']:.0f} MiB, PSS {n['peak_pss_mib']:.0f} MiB", flush=True)
            print(f"ingest, {args.processes} processes ({mode}){tag} ...", flush=True)
            i = run_ingest(manifest, base / f"ingest-{rep}", args.processes, mode, args.mem_interval)
            print(f"  {i['wall_s']:.1f} s, {i['frames'] / i['wall_s']:.1f} frames/s, peak RSS "
                  f"{i['peak_rss_mib']:.0f} MiB, PSS {i['peak_pss_mib']:.0f} MiB", flush=True)
            if rep == 0:  # the same frames at the same times, once
                got = _ingest_indices(base / f"ingest-{rep}")
                bad = sorted(name for name, idx in n["indices"].items() if got.get(name) != idx)
                if bad or i["summary"]["outcomes"]["succeeded"] != len(videos):
                    print(f"WARNING: frame choice differs for {bad}; ingest outcomes {i['summary']['outcomes']} "
                          f"{i['summary']['errors']}", flush=True)
            n.pop("indices")
            naive_runs.append(n)
            ingest_runs.append(i)
            for folder in (base / f"naive-{rep}", base / f"ingest-{rep}"):
                if not args.keep:
                    shutil.rmtree(folder, ignore_errors=True)
        scaling = (_memory_scaling(corpus_root, base, args.seed, args.memory_scaling, args.processes, mode,
                                   args.mem_interval) if args.memory_scaling else [])
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
        else:
            print(f"outputs kept in {base}")
    load_end = os.getloadavg()

    def med(runs: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    frames = ingest_runs[0]["frames"]
    if frames != naive_runs[0]["frames"]:
        print(f"WARNING: ingest wrote {frames} frames, the naive loop {naive_runs[0]['frames']}")
    n_wall, i_wall = med(naive_runs, "wall_s"), med(ingest_runs, "wall_s")
    n_inner, i_inner = med(naive_runs, "inner_s"), med(ingest_runs, "inner_s")
    pair_ratios = [n["wall_s"] / i["wall_s"] for n, i in zip(naive_runs, ingest_runs)]
    common = {
        "videos": len(videos), "corpus": [list(s) for s in specs], "processes": args.processes, "runner": mode,
        "quick": args.quick, "repeats": repeats, "frames": frames,
        "max_frames": config.sampling.max_frames, "max_fps": config.sampling.max_fps,
        "max_side": config.frames.max_side, "jpeg_quality": config.frames.jpeg_quality,
        "ingest_wall_s_all": [round(r["wall_s"], 2) for r in ingest_runs],
        "naive_wall_s_all": [round(r["wall_s"], 2) for r in naive_runs],
        "pair_ratios": [round(x, 3) for x in pair_ratios],
        "ingest_inner_s_all": [round(r["inner_s"], 2) for r in ingest_runs],
        "naive_inner_s_all": [round(r["inner_s"], 2) for r in naive_runs],
        "ingest_peak_rss_mib_all": [round(r["peak_rss_mib"]) for r in ingest_runs],
        "naive_peak_rss_mib_all": [round(r["peak_rss_mib"]) for r in naive_runs],
        "ingest_peak_pss_mib_all": [round(r["peak_pss_mib"]) for r in ingest_runs],
        "naive_peak_pss_mib_all": [round(r["peak_pss_mib"]) for r in naive_runs],
        "ingest_process_peaks_mib": ingest_runs[-1]["process_peaks_mib"],
        "ingest_cpu_s_by_role": ingest_runs[-1]["cpu_s_by_role"], "naive_cpu_s": naive_runs[-1]["cpu_s_by_role"],
        "shard_bytes": ingest_runs[0]["summary"]["shard_bytes"], "naive_jpeg_bytes": naive_runs[0]["jpeg_bytes"],
        "loadavg_start": [round(x, 2) for x in load_start], "loadavg_per_round": loads,
        "loadavg_end": [round(x, 2) for x in load_end],
        "baseline": "naive loop, one process: decord get_batch at the sample indices (default threads), "
                    "Pillow resize and JPEG, tarfile; both timed end to end as child processes, medians of "
                    "interleaved rounds",
    }
    rows = [
        dict(name="ingest.mixed.inputs_per_s", figure=len(videos) / i_wall, baseline=len(videos) / n_wall,
             unit="inputs/s", extra=common),
        dict(name="ingest.mixed.frames_per_s", figure=frames / i_wall, baseline=frames / n_wall,
             unit="frames/s", extra=common),
        dict(name="ingest.mixed.frames_per_s_inner", figure=frames / i_inner, baseline=frames / n_inner,
             unit="frames/s", extra=common),
        dict(name="ingest.mixed.peak_rss_tree", figure=med(ingest_runs, "peak_rss_mib"),
             baseline=med(naive_runs, "peak_rss_mib"), unit="MiB", extra=common),
        dict(name="ingest.mixed.peak_pss_tree", figure=med(ingest_runs, "peak_pss_mib"),
             baseline=med(naive_runs, "peak_pss_mib"), unit="MiB", extra=common),
    ] + scaling
    for row in rows:
        row["ratio"] = row["figure"] / row["baseline"]
        if not args.no_record:
            record(row["name"], row["figure"], row["baseline"], row["unit"], extra=row["extra"])
    print()
    print(f"{len(videos)} videos, {frames} frames; ingest at {args.processes} processes ({mode}) vs the naive loop "
          f"(one process); medians of {repeats} interleaved round(s); load average {load_start[0]:.2f} -> "
          f"{load_end[0]:.2f} (per round {loads})")
    print(f"end to end: ingest {i_wall:.1f} s ({frames / i_wall:.1f} frames/s) vs naive {n_wall:.1f} s "
          f"({frames / n_wall:.1f} frames/s): ratio {n_wall / i_wall:.3f} (per round {common['pair_ratios']})")
    print_table(rows)
    print(f"target: inputs/s ratio >= 1.0 (got {rows[0]['ratio']:.3f}); peak tree memory <= the loop's "
          f"(RSS {rows[3]['figure']:.0f} vs {rows[3]['baseline']:.0f} MiB, PSS {rows[4]['figure']:.0f} vs "
          f"{rows[4]['baseline']:.0f} MiB)")
    print(f"process peaks (MiB): ingest {', '.join(ingest_runs[-1]['process_peaks_mib'])}; "
          f"naive {', '.join(naive_runs[-1]['process_peaks_mib'])}")
    print(f"CPU seconds: ingest {ingest_runs[-1]['cpu_s_by_role']}; naive {naive_runs[-1]['cpu_s_by_role']}")
    if args.quick:
        print("(--quick is a smoke test: on 4 short videos the ingest's fixed start-up, Beam's workers and the "
              "decode sandboxes, dominates; the target is for the full corpus)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
