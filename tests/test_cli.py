"""The command line: every subcommand has useful --help; unbuilt ones fail clearly."""
from __future__ import annotations

import pytest

from molmo2_data import cli

SUBCOMMANDS = ["demo", "ingest", "synth", "annotate", "build", "verify", "inspect", "train", "eval"]


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_help_of_each_subcommand(name, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([name, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert f"molmo2-data {name}" in out


def test_unbuilt_command_names_the_issue(capsys):
    assert cli.main(["train"]) == 2
    err = capsys.readouterr().err
    assert "not built yet" in err and "[6/7]" in err


def test_unknown_arguments_rejected_where_not_passed_through(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["inspect", "x.tar", "--bogus"])
    assert exc.value.code == 2
    assert "--bogus" in capsys.readouterr().err


def test_help_imports_no_heavy_package(repo_root):
    import subprocess
    import sys

    code = (
        "import sys; from molmo2_data import cli\n"
        "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'apache_beam', 'transformers') if m in sys.modules]\n"
        "print('heavy=' + ','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repo_root
    ).stdout
    assert out.strip().splitlines()[-1] == "heavy="


def test_shipped_ingest_config_is_exactly_the_defaults(repo_root):
    from pipelines.ingest.config import IngestConfig

    assert IngestConfig.from_yaml(repo_root / "pipelines" / "ingest" / "configs" / "ingest.yaml") == IngestConfig()
