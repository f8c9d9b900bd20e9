"""Shared fixtures. Expensive things are built once per test session and shared."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the tests also run without `pip install -e .`
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def labelstudio(tmp_path_factory):
    """One real Label Studio server on loopback for the whole test session (media root inside)."""
    from tests.labelstudio import start_test_server, stop_test_server

    tmp = tmp_path_factory.mktemp("labelstudio")
    info = start_test_server(tmp, media_root=tmp / "media")
    yield info
    stop_test_server(info)


@pytest.fixture(scope="session")
def tiny_molmo2_processor():
    """A tiny offline Molmo2Processor (tests/tiny_molmo2.py) carrying the shipped chat template."""
    from schemas.chat import chat_template
    from tests.tiny_molmo2 import build_processor

    return build_processor(chat_template())
