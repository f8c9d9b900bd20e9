"""``molmo2-data synth``: the command runs each generator, on FnApiRunner in memory and multi-process,
and says a user's mistake in one line with exit code 2."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from molmo2_data import cli
from pipelines.synth.args import default_config_text
from pipelines.synth.config import SynthConfig
from tests.synth_inputs import SPECS, scene_inputs

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return scene_inputs(tmp_path_factory.mktemp("cli"), SPECS[:2])


def _cli(*argv, env=None):
    return subprocess.run([sys.executable, "-m", "molmo2_data", *argv], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, timeout=600)


def test_multi_process_run_writes_what_the_in_memory_run_writes(inputs, tmp_path):
    ingest, records, _ = inputs
    base = ["synth", "capqa", "--ingest", str(ingest), "--records", str(records)]
    assert cli.main(base + ["--out", str(tmp_path / "memory")]) == 0
    proc = _cli(*base, "--out", str(tmp_path / "procs"), "--direct_running_mode=multi_processing",
                "--direct_num_workers=2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "synth CapQA: 2 inputs ->" in proc.stdout and "publish --records" in proc.stdout
    for name in ("CapQA.parquet", "failures.parquet"):
        assert (tmp_path / "procs" / name).read_bytes() == (tmp_path / "memory" / name).read_bytes()


@pytest.mark.parametrize("argv, says", [
    (["synth", "capqa", "--ingest", "/nonexistent", "--records", "/nonexistent", "--out", "OUT"], "no clips.parquet"),
    (["synth", "capqa", "--ingest", "INGEST", "--out", "OUT"], "at least one --records"),
    (["synth", "subtitleqa", "--ingest", "INGEST", "--out", "OUT", "--direct_num_worker=2"], "direct_num_workers"),
    (["synth", "capqa", "--ingest", "INGEST", "--records", "RECORDS", "--out", "OUT", "--backend", "openai",
      "--model", "m", "--api-key-env", "SYNTH_CLI_KEY"], "SYNTH_CLI_KEY is not set"),
    (["synth", "capqa", "--ingest", "INGEST", "--records", "RECORDS", "--out", "OUT", "--backend", "transformers",
      "--model", "/nonexistent"], "is not a folder"),
    (["synth", "synmultiimageqa", "--sets", "0", "--out", "OUT", "--media-out", "MEDIA"], "--sets must be >= 1"),
    (["synth", "capqa", "--ingest", "INGEST", "--records", "RECORDS", "--out", "INGEST"], "not a synth output"),
])
def test_user_errors_exit_2_with_one_line(inputs, tmp_path, capsys, monkeypatch, argv, says):
    ingest, records, _ = inputs
    monkeypatch.delenv("SYNTH_CLI_KEY", raising=False)
    names = {"INGEST": str(ingest), "RECORDS": str(records), "OUT": str(tmp_path / "out"),
             "MEDIA": str(tmp_path / "media")}
    assert cli.main([names.get(a, a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_print_config_is_the_shipped_defaults(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["synth", "capqa", "--print-config"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out == default_config_text() and SynthConfig.from_dict(yaml.safe_load(out)) == SynthConfig()


def test_a_fault_of_one_input_fails_that_input_and_a_full_disk_stops_the_run(inputs, tmp_path, capsys, monkeypatch):
    from pipelines.common.inject import ENV

    ingest, records, _ = inputs
    plan = tmp_path / "plan.json"
    monkeypatch.setenv(ENV, str(plan))
    argv = ["synth", "capqa", "--ingest", str(ingest), "--records", str(records)]
    plan.write_text(json.dumps([{"stage": "synth", "input": "clip-1", "raise": "RuntimeError"}]))
    assert cli.main(argv + ["--out", str(tmp_path / "one")]) == 0
    assert "1 inputs ->" in capsys.readouterr().out
    (failure,) = pq.read_table(tmp_path / "one" / "failures.parquet").to_pylist()
    assert (failure["input_id"], failure["error_type"]) == ("clip-1", "internal_error")
    assert "RuntimeError" in failure["message"]
    plan.write_text(json.dumps([{"stage": "synth", "input": "clip-0", "raise": "OSError:ENOSPC",
                                 "path": str(tmp_path / "full" / "x")}]))
    assert cli.main(argv + ["--out", str(tmp_path / "full")]) == 1
    err = capsys.readouterr().err
    assert "no space left" in err and len(err.strip().splitlines()) == 1
