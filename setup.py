"""Packaging for molmo2-data.

The same file serves three uses:

* ``pip install -e . --no-deps`` inside ``.venv`` (``make test`` / ``make demo``);
* ``python setup.py sdist``: the archive Dataflow stages with ``--setup_file ./setup.py``
  and installs on every worker;
* a plain ``pip install .`` for users.

The runtime requirements are read from ``requirements.txt`` so the pins live in one place.
"""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
# Every package and subpackage under the six top-level ones, found rather than listed, so a new
# subpackage can never be left out of the sdist that Dataflow workers install.
TOP_LEVEL = ("molmo2_data", "schemas", "shards", "pipelines", "annotation", "training")
PACKAGES = sorted(p for p in find_packages(include=[f"{t}*" for t in TOP_LEVEL])
                  if p.split(".")[0] in TOP_LEVEL)
# Test-only and torch pins are left to requirements.txt: workers on Dataflow bring their own torch.
_DEV_ONLY = {"pytest", "hypothesis", "scikit-video"}


def _requirements():
    reqs = []
    for line in (HERE / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name = line.split("==", 1)[0].split(">", 1)[0].split("<", 1)[0].strip().lower()
        if name not in _DEV_ONLY:
            reqs.append(line)
    return reqs


setup(
    name="molmo2-data",
    version="0.1.0",
    description="Open data engine for Molmo 2 style video-grounding datasets",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=PACKAGES,
    # Data files live in plain folders inside each package (no __init__.py needed there).
    package_data={
        "annotation": ["configs/*.xml"],
        "pipelines.ingest": ["configs/*.yaml"],
        "pipelines.synth": ["configs/*.yaml", "prompts/*.txt"],
        "schemas": ["templates/*.jinja"],
        "training": ["configs/*.yaml"],
    },
    include_package_data=True,
    install_requires=_requirements(),
    entry_points={"console_scripts": ["molmo2-data = molmo2_data.cli:main"]},
)
