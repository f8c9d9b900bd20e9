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
DATA_GLOBS = {
    "annotation": ["configs/*.xml"],
    "pipelines": ["configs/*.yaml", "prompts/*.txt"],
    "training": ["configs/*.yaml"],
}


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
    for pkg in PACKAGES:
        for src in (repo_root / pkg).glob("*.py"):
            assert f"{pkg}/{src.name}" in names, f"{pkg}/{src.name} missing from the sdist"
    for pkg, globs in DATA_GLOBS.items():
        for pattern in globs:
            for src in (repo_root / pkg).glob(pattern):
                assert f"{pkg}/{src.relative_to(repo_root / pkg)}" in names
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
        for name in {PACKAGES!r}:
            mod = importlib.import_module(name)
            out[name] = str(pathlib.Path(mod.__file__).parent)
        globs = {DATA_GLOBS!r}
        data = {{}}
        for pkg, patterns in globs.items():
            root = pathlib.Path(out[pkg])
            data[pkg] = sorted(str(p.relative_to(root)) for pat in patterns for p in root.glob(pat))
        import schemas.sampling, schemas.pointing, schemas.records, shards.writer, pipelines.frames
        print(json.dumps({{"where": out, "data": data}}))
        """
    )
    result = json.loads(_run([str(py), "-c", probe], cwd=tmp_path).stdout.strip().splitlines()[-1])
    for name, where in result["where"].items():
        assert Path(where).is_relative_to(worker_site), f"{name} imported from {where}, not the installed sdist"
    shipped = 0
    for pkg, patterns in DATA_GLOBS.items():
        expected = sorted(
            str(p.relative_to(repo_root / pkg)) for pat in patterns for p in (repo_root / pkg).glob(pat)
        )
        assert result["data"][pkg] == expected, f"{pkg}: package data differs from the source tree"
        shipped += len(expected)
    assert shipped >= 5, "label configs and pipeline configs must ship as package data"


def test_console_script_installed(repo_root):
    exe = Path(sys.executable).parent / "molmo2-data"
    if not exe.exists():
        pytest.skip("project not pip-installed in this interpreter's environment")
    proc = _run([str(exe), "--help"])
    assert "demo" in proc.stdout and "ingest" in proc.stdout
