"""The architecture, enforced: ARCHITECTURE.md's import table holds for every import in the code,
and the decoding sandbox stays free of Apache Beam.

The table is parsed from ARCHITECTURE.md itself, so the document and the code cannot drift: a new
import across packages needs a row that allows it, and a new subpackage of a package whose
subpackages have rows needs a row of its own.
"""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOP_LEVEL = ("schemas", "shards", "annotation", "pipelines", "training", "molmo2_data")
TABLE_HEADING = "## Packages and who may import whom"


# ------------------------------------------------------------------ reading the table
def parse_import_table(text: str) -> dict[str, set[str] | None]:
    """ARCHITECTURE.md's table -> {package (dotted): packages it may import}; None means everything.

    Rows look like ``| `pipelines/ingest/` | job | `schemas`, `pipelines/common` |``; the last cell
    is backticked package names, ``nothing of ours`` or ``everything``.
    """
    section = text.split(TABLE_HEADING, 1)[1].split("\n## ", 1)[0]
    rules: dict[str, set[str] | None] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        package = _dotted(re.fullmatch(r"`([^`]+)`", cells[0]).group(1))
        allowed = cells[-1]
        if allowed == "everything":
            rules[package] = None
        elif allowed == "nothing of ours":
            rules[package] = set()
        else:
            names = re.findall(r"`([^`]+)`", allowed)
            assert names and re.fullmatch(r"(`[^`]+`(, )?)+", allowed), f"cannot read the row {line!r}"
            rules[package] = {_dotted(n) for n in names}
    return rules


def _dotted(name: str) -> str:
    return name.strip("/").replace("/", ".")


def row_for(module: str, rules: dict) -> str:
    """The most specific row whose package contains ``module``."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in rules:
            return ".".join(parts[:n])
    raise KeyError(f"{module}: no row in the import table")


def violations(imports: dict[str, set[str]], rules: dict) -> list[str]:
    """Each import of ours that the table does not allow, as ``"module -> target (row: allowed)"``."""
    found = []
    for module, targets in sorted(imports.items()):
        own = row_for(module, rules)
        allowed = rules[own]
        for target in sorted(targets):
            if target.split(".")[0] not in TOP_LEVEL:
                continue
            other = row_for(target, rules)
            if other == own or allowed is None:
                continue
            if other.startswith(own + "."):  # a package using its own subpackages
                continue
            if not any(other == a or other.startswith(a + ".") for a in allowed):
                found.append(f"{module} -> {target} ({own} may import {sorted(allowed) or 'nothing of ours'})")
    return found


# ------------------------------------------------------------------ reading the code
def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve_from(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    targets = []
    for alias in node.names:  # ``from pipelines import ingest`` imports the subpackage
        candidate = f"{prefix}.{alias.name}"
        path = ROOT / Path(*candidate.split("."))
        targets.append(candidate if path.with_suffix(".py").is_file() or path.is_dir() else prefix)
    return targets


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports anywhere (top level, functions, ``importlib.import_module("x")``)."""
    module, is_package = module_name(path), path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.update(_resolve_from(module, is_package, node))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.add(node.args[0].value)
    return found


def code_imports() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for top in TOP_LEVEL for p in sorted((ROOT / top).rglob("*.py"))}


# ------------------------------------------------------------------ the tests
@pytest.fixture(scope="module")
def rules():
    return parse_import_table((ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8"))


def test_every_import_follows_the_table(rules):
    found = violations(code_imports(), rules)
    assert not found, "imports ARCHITECTURE.md does not allow:\n  " + "\n  ".join(found)


def test_the_table_covers_the_layout(rules):
    """One row per top-level package; where subpackages have rows, each subpackage has one; no row
    names a package that does not exist; a subpackage may use only what its parent row allows."""
    assert set(TOP_LEVEL) <= set(rules), f"packages without a row: {sorted(set(TOP_LEVEL) - set(rules))}"
    for package in rules:
        assert (ROOT / Path(*package.split(".")) / "__init__.py").is_file(), f"row for a missing package {package}"
        for name in rules[package] or ():
            assert name in rules, f"{package} row names {name}, which has no row"
    parents = {p.rsplit(".", 1)[0] for p in rules if "." in p}
    for parent in parents:
        subpackages = {module_name(d) for d in (ROOT / Path(*parent.split("."))).iterdir()
                       if (d / "__init__.py").is_file()}
        assert subpackages <= set(rules), f"subpackages without a row: {sorted(subpackages - set(rules))}"
        siblings = {s for s in rules if s.startswith(parent + ".")}
        for sub in siblings:
            extra = (rules[sub] or set()) - (rules[parent] or set()) - siblings
            assert rules[parent] is None or not extra, f"{sub} may import {sorted(extra)}, which {parent} may not"


def test_the_check_catches_what_the_table_forbids(rules):
    """The checker is not vacuous: forbidden imports of each kind are reported."""
    bad = {"schemas.records": {"shards.writer"},
           "training.loop": {"pipelines.ingest.pipeline", "annotation.tasks"},
           "pipelines.common.sandbox": {"pipelines.ingest.media"},
           "pipelines.ingest.steps": {"pipelines.procedural.scenes", "molmo2_data.cli"}}
    assert len(violations(bad, rules)) == 6
    fine = {"molmo2_data.cli": {"pipelines.procedural.scenes"}, "pipelines.ingest.steps": {"pipelines.common.errors",
            "shards.writer", "numpy", "pipelines.ingest.config"}, "shards.reader": {"schemas.records"}}
    assert violations(fine, rules) == []
    tree = ast.parse("def f():\n    from ..common import errors\n    import importlib\n"
                     "    importlib.import_module('training.x')\n")
    src = ROOT / "pipelines" / "ingest" / "x.py"
    assert {t for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
            for t in _resolve_from(module_name(src), False, n)} == {"pipelines.common.errors"}


def documented_modules(text: str) -> set[str]:
    """The module paths ARCHITECTURE.md's "Modules" table names (``a/b.py``, then bare ``c.py`` = ``a/c.py``)."""
    section = text.split("## Modules", 1)[1].split("\n## ", 1)[0]
    named = set()
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        folder = None
        for item in re.findall(r"`([^`]+)`", line.split("|")[1]):
            if "/" in item:
                folder = item.rsplit("/", 1)[0]
                named.add(item)
            else:
                named.add(f"{folder}/{item}")
    return named


def test_every_module_has_a_row_and_every_row_a_module():
    named = documented_modules((ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8"))
    modules = {str(p.relative_to(ROOT)) for top in TOP_LEVEL for p in (ROOT / top).rglob("*.py")
               if p.name != "__init__.py"}
    assert not modules - named, f"modules ARCHITECTURE.md does not name: {sorted(modules - named)}"
    stale = sorted(n for n in named - modules if not list(ROOT.glob(n)))
    assert not stale, f"ARCHITECTURE.md names modules that do not exist: {stale}"


# ------------------------------------------------------------------ the sandbox stays free of Beam
_JOB = re.compile(r"^(pipelines\.[\w.]+):(\w+)$")


def sandbox_job_modules() -> set[str]:
    """Every module named by a ``"pipelines.x.y:function"`` job string in the pipelines' code."""
    modules = set()
    for path in (ROOT / "pipelines").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and _JOB.match(node.value):
                modules.add(_JOB.match(node.value).group(1))
    return modules


def test_sandbox_modules_import_no_beam():
    """In a fresh interpreter, importing the sandbox and every module a sandbox job lives in leaves
    ``apache_beam`` out of ``sys.modules`` (Beam costs each sandbox child ~1.4 s and ~125 MiB)."""
    jobs = sandbox_job_modules()
    assert {"pipelines.ingest.media", "pipelines.ingest.images", "pipelines.ingest.fetch_web"} <= jobs, jobs
    modules = ["pipelines.common.sandbox", *sorted(jobs), "pipelines.ingest.frames", "pipelines.ingest.phash"]
    code = ("import importlib, json, sys\nloaded = {}\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            "    loaded[name] = sorted(m for m in sys.modules if m.split('.')[0] == 'apache_beam')[:3]\n"
            "print(json.dumps(loaded))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = json.loads(proc.stdout)
    assert all(not beam for beam in loaded.values()), f"Beam loaded by: {[m for m, b in loaded.items() if b]}"


def test_sandbox_modules_reach_no_beam_even_in_functions():
    """The same through every import of ours, top level or inside a function (a job may import
    lazily): following them from the sandbox's modules never reaches ``apache_beam``."""
    imports = code_imports()
    todo = ["pipelines.common.sandbox", *sorted(sandbox_job_modules())]
    seen, path_to = set(), {m: [m] for m in todo}
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        for target in imports.get(module, ()):
            assert target.split(".")[0] != "apache_beam", " -> ".join(path_to[module] + [target])
            ours = target if target in imports else ".".join(target.split(".")[:-1])
            if ours in imports and ours not in seen:
                path_to.setdefault(ours, path_to[module] + [ours])
                todo.append(ours)
    assert "pipelines.ingest.frames" in seen and "pipelines.ingest.phash" in seen


def test_a_real_sandbox_child_runs_the_jobs_without_beam(tmp_path):
    """A real sandbox child inspects an image and decodes a video, and has still not loaded Beam."""
    from pipelines.common.sandbox import Sandbox
    from pipelines.ingest.config import IngestConfig
    from pipelines.procedural.scenes import SceneSpec, make_scene, render_scene, write_test_media

    image = write_test_media("png", tmp_path / "a.png")
    video = render_scene(make_scene(SceneSpec(duration=2.0)), tmp_path / "v.mp4")
    with Sandbox(timeout_s=60.0) as box:
        result = box.call("pipelines.ingest.images:inspect_image_file", str(image), "a.png", 768)
        assert result.format == "PNG" and result.width > 0
        out = box.call("pipelines.ingest.media:process_video", str(video), "0" * 64, None, None, IngestConfig(),
                       str(tmp_path / "frames"), "v.mp4")
        assert out.clips
        assert box.call("tests.sandbox_jobs:loaded_modules", "apache_beam") == []


# ------------------------------------------------------------------ references and packaging
_CITED = re.compile(r"[\w./-]*\b((?:molmo2-formats|molmo2-model|labelstudio|stack)\.md)\b")


def test_references_are_cited_by_their_real_path():
    """Docstrings name the shared reference files as ``../shared/reference/NAME.md`` (from the
    repository root; a file that did so may then say just ``NAME.md``), and those files exist
    where a ``shared/`` folder sits beside the checkout."""
    reference = ROOT.parent / "shared" / "reference"
    wrong = []
    for top in (*TOP_LEVEL, "tests", "benchmarks"):
        for path in sorted((ROOT / top).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            for m in _CITED.finditer(text):
                full = f"../shared/reference/{m.group(1)}"
                if m.group(0) != full and not (m.group(0) == m.group(1) and full in text):
                    wrong.append(f"{path.relative_to(ROOT)}: {m.group(0)!r}")
                elif reference.is_dir() and not (reference / m.group(1)).is_file():
                    wrong.append(f"{path.relative_to(ROOT)}: {m.group(0)} does not exist")
    assert not wrong, "cite the references as ../shared/reference/NAME.md:\n  " + "\n  ".join(wrong)


def _package_data() -> dict[str, list[str]]:
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "package_data":
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py has no package_data")


def test_packaging_ships_no_folder_that_does_not_exist():
    """Every MANIFEST.in line and every package_data pattern of setup.py names something that is there."""
    missing = []
    for line in (ROOT / "MANIFEST.in").read_text(encoding="utf-8").splitlines():
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        command, args = words[0], words[1:]
        if command == "include":
            missing += [f"MANIFEST.in: include {a}" for a in args if not list(ROOT.glob(a))]
        elif command in ("recursive-include", "recursive-exclude"):
            folder, patterns = ROOT / args[0], args[1:]
            if not folder.is_dir() or not any(list(folder.rglob(p)) for p in patterns):
                missing.append(f"MANIFEST.in: {line.strip()}")
        elif command in ("graft", "prune"):
            missing += [f"MANIFEST.in: {line.strip()}" for a in args if not (ROOT / a).is_dir()]
        else:
            missing.append(f"MANIFEST.in: unchecked command {line.strip()!r}")
    for package, patterns in _package_data().items():
        folder = ROOT / Path(*package.split("."))
        missing += [f"setup.py package_data {package}: {p}" for p in patterns if not list(folder.glob(p))]
    assert not missing, "\n".join(missing)
