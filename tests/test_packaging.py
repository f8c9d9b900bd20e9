"""The sdist that Dataflow stages with --setup_file installs and imports on its own."""
from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import tarfile
import textwrap
from pathlib import Path

import pytest

PACKAGES = ["molmo2_data", "schemas", "shards", "pipelines", "annotation", "training"]
ROOT = Path(__file__).resolve().parents[1]


def _source_files() -> tuple[list[str], list[str]]:
    """(every module, every data file) under the six packages, walked from the tree itself.

    A package is any folder with ``__init__.py``; a data file is any other non-Python file inside a
    package's tree (label configs, YAML configs, prompt files...). Walking the tree means that a
    subpackage or a data folder added later is checked without editing this test.
    """
    modules, data = [], []
    for top in PACKAGES:
        for path in sorted((ROOT / top).rglob("*")):
            rel = path.relative_to(ROOT)
            if "__pycache__" in rel.parts or path.is_dir():
                continue
            if path.suffix == ".py":
                modules.append(str(rel))
            elif path.suffix != ".pyc":
                data.append(str(rel))
    return modules, data


MODULES, DATA_FILES = _source_files()


def _run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def sdist(tmp_path_factory, repo_root) -> Path:
    out = tmp_path_factory.mktemp("sdist")
    _run([sys.executable, "setup.py", "-q", "sdist", "-d", str(out)], cwd=repo_root)
    (archive,) = out.glob("molmo2_data-*.tar.gz")
    return archive


def test_sdist_carries_every_package_and_data_file(sdist, repo_root):
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert any("/" in m and m.count("/") >= 2 for m in MODULES), "expected subpackages to walk"
    missing = [m for m in MODULES + DATA_FILES if m not in names]
    assert not missing, f"missing from the sdist: {missing}"
    for folder in {str(Path(m).parent) for m in MODULES}:
        assert f"{folder}/__init__.py" in names, f"{folder} has modules but is no package in the sdist"
    assert "requirements.txt" in names  # setup.py reads it when building on a worker


def test_sdist_installs_no_deps_into_clean_venv(sdist, tmp_path, repo_root):
    venv = tmp_path / "worker-venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    py = venv / "bin" / "python"
    # Dataflow workers run `pip install` on the staged sdist; the dependencies are already there.
    _run([str(py), "-m", "pip", "install", "--quiet", "--no-deps", str(sdist)])
    # Borrow the dependencies (not the project) from the project's venv through a .pth file.
    worker_site = Path(
        _run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    )
    (worker_site / "borrowed-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    probe = textwrap.dedent(
        f"""
        import importlib, json, pathlib
        out = {{}}
        for rel in {MODULES!r}:
            name = rel[:-3].replace("/", ".").removesuffix(".__init__")
            if name.endswith("__main__"):
                continue  # running the command is not importing it
            mod = importlib.import_module(name)
            out[name] = mod.__file__
        site = pathlib.Path(importlib.import_module("schemas").__file__).parents[1]
        data = sorted(rel for rel in {DATA_FILES!r} if (site / rel).is_file())
        print(json.dumps({{"where": out, "data": data}}))
        """
    )
    result = json.loads(_run([str(py), "-c", probe], cwd=tmp_path).stdout.strip().splitlines()[-1])
    for name, where in result["where"].items():
        assert Path(where).is_relative_to(worker_site), f"{name} imported from {where}, not the installed sdist"
    assert len(result["where"]) >= len(MODULES) - 1, "not every module was imported"
    assert result["data"] == sorted(DATA_FILES), "package data installed differs from the source tree"
    assert len(DATA_FILES) >= 5, "label configs and pipeline configs must ship as package data"


def test_console_script_installed(repo_root):
    exe = Path(sys.executable).parent / "molmo2-data"
    if not exe.exists():
        pytest.skip("project not pip-installed in this interpreter's environment")
    proc = _run([str(exe), "--help"])
    assert "demo" in proc.stdout and "ingest" in proc.stdout
