"""The command line: every subcommand has useful --help; exit codes."""
from __future__ import annotations

import argparse
import re

import pytest

from molmo2_data import cli


def _parsers(parser: argparse.ArgumentParser, path=()):
    """(command path, parser) for the parser and every sub-parser below it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, path + (name,))


ALL_COMMANDS = [path for path, _ in _parsers(cli.build_parser()) if path]


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=" ".join)
def test_help_of_each_subcommand(path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([*path, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert f"molmo2-data {' '.join(path)}" in out


def test_every_command_lives_in_its_own_module():
    """cli.py only dispatches: each command's handler is defined in a module of its own."""
    handlers = {}

    def walk(parser, path, inherited):
        handler = parser.get_default("handler") or inherited
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            handlers[" ".join(path)] = handler.__module__
        for action in subs:
            for name, sub in action.choices.items():
                walk(sub, path + (name,), handler)

    walk(cli.build_parser(), (), None)
    assert handlers["ingest"] == "molmo2_data.ingest"
    assert handlers["annotate server start"] == "molmo2_data.annotate_server"
    assert handlers["annotate push"] == "molmo2_data.annotate"
    assert handlers["inspect"] == "molmo2_data.inspect" and handlers["demo"] == "molmo2_data.demo"
    assert "molmo2_data.cli" not in handlers.values()


def test_no_help_points_at_a_repository_path(capsys):
    """A pip user has no source tree: help names commands, not files like pipelines/.../ingest.yaml."""
    repo_path = re.compile(r"\b(pipelines|annotation|schemas|shards|training|molmo2_data|benchmarks|tests)/")
    for path, parser in _parsers(cli.build_parser()):
        text = parser.format_help()
        assert not repo_path.search(text), (path, repo_path.search(text).group(0))


def test_print_config_is_the_shipped_defaults(capsys):
    import yaml

    from pipelines.ingest.args import default_config_text
    from pipelines.ingest.config import IngestConfig

    with pytest.raises(SystemExit) as exc:
        cli.main(["ingest", "--print-config"])  # no --manifest/--out needed
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out == default_config_text()
    assert IngestConfig.from_dict(yaml.safe_load(out)) == IngestConfig()
    assert "--print-config" in out and "pipelines/" not in out  # says how to use it, no repo path


def test_build_is_now_publish():
    with pytest.raises(SystemExit) as exc:
        cli.main(["build"])
    assert exc.value.code == 2


def test_unknown_arguments_rejected_where_not_passed_through(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["inspect", "x.tar", "--bogus"])
    assert exc.value.code == 2
    assert "--bogus" in capsys.readouterr().err


def test_misspelled_beam_option_is_refused_with_the_nearest_one():
    from pipelines.common.options import OptionError, check_pipeline_options

    check_pipeline_options(["--direct_running_mode=multi_processing", "--direct_num_workers", "2"])
    with pytest.raises(OptionError, match=r"unknown option --direct_num_worker \(did you mean --direct_num_workers\?\)"):
        check_pipeline_options(["--direct_num_worker=2"])
    with pytest.raises(OptionError, match=r"did you mean --retry-failed\?"):
        check_pipeline_options(["--retry_failed"], own=["--retry-failed", "--manifest"])
    with pytest.raises(OptionError, match="invalid int value"):
        check_pipeline_options(["--direct_num_workers=two"])
    with pytest.raises(OptionError, match="unexpected argument 'stray'"):
        check_pipeline_options(["stray"])


def test_token_problems_exit_2(tmp_path, monkeypatch, capsys):
    """A token missing or malformed is the user's input: one line, exit 2, the value never printed."""
    from annotation.credentials import TOKEN_ENV

    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert cli.main(["annotate", "pull", "--url", "http://127.0.0.1:9", "--project", "p"]) == 2
    assert TOKEN_ENV in capsys.readouterr().err
    monkeypatch.setenv(TOKEN_ENV, "not-a-token!")
    assert cli.main(["annotate", "server", "start", "--data-dir", str(tmp_path / "ls")]) == 2
    err = capsys.readouterr().err
    assert TOKEN_ENV in err and "not-a-token!" not in err and "Traceback" not in err


def test_inspect_of_a_missing_file_exits_2(tmp_path, capsys):
    assert cli.main(["inspect", str(tmp_path / "nope.tar")]) == 2
    assert "is not a file" in capsys.readouterr().err


def test_help_imports_no_heavy_package(repo_root):
    """--help is instant: with site-packages off (-S) every help still prints, and nothing heavy loads.

    The same holds for ``annotate server install``, which ``make`` runs on a bare python3.11.
    """
    import subprocess
    import sys

    code = (
        "import sys; from molmo2_data import cli\n"
        "for argv in (['--help'], ['ingest', '--help'], ['annotate', 'push', '--help'], ['inspect', '--help']):\n"
        "    try:\n        cli.main(argv)\n    except SystemExit as e:\n        assert e.code == 0, argv\n"
        "heavy = [m for m in ('torch', 'apache_beam', 'transformers', 'pyarrow', 'yaml') if m in sys.modules]\n"
        "print('heavy=' + ','.join(heavy))"
    )
    proc = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd=repo_root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "heavy="


def test_shipped_ingest_config_is_exactly_the_defaults(repo_root):
    from pipelines.ingest.config import IngestConfig

    assert IngestConfig.from_yaml(repo_root / "pipelines" / "ingest" / "configs" / "ingest.yaml") == IngestConfig()
