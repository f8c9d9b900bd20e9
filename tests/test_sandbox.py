"""pipelines.common.sandbox: time limits and crash isolation for decoders."""
from __future__ import annotations

import pickle
import time

import pytest

from pipelines.common.errors import InputError
from pipelines.common.sandbox import Sandbox


@pytest.fixture
def box():
    with Sandbox(timeout_s=5.0) as sandbox:
        yield sandbox


def test_result_comes_back_and_child_is_reused(box):
    assert box.call("tests.sandbox_jobs:add", 2, b=3) == 5
    first = box.call("tests.sandbox_jobs:pid")
    assert box.call("tests.sandbox_jobs:pid") == first


def test_timeout_kills_child_and_next_job_gets_a_fresh_one(box):
    first = box.call("tests.sandbox_jobs:pid")
    t0 = time.monotonic()
    with pytest.raises(InputError) as exc:
        box.call("tests.sandbox_jobs:sleep", 30, input_name="stall.mp4", timeout_s=0.5)
    assert time.monotonic() - t0 < 3
    assert exc.value.error_type == "timeout" and "stall.mp4" in str(exc.value)
    assert box.call("tests.sandbox_jobs:pid") != first


def test_crash_is_an_input_error(box):
    with pytest.raises(InputError) as exc:
        box.call("tests.sandbox_jobs:die", input_name="evil.mp4")
    assert exc.value.error_type == "crashed" and "signal" in str(exc.value)
    assert box.call("tests.sandbox_jobs:add", 1, 1) == 2


def test_exceptions_are_reraised_as_they_were(box):
    with pytest.raises(InputError) as exc:
        box.call("tests.sandbox_jobs:bad_input")
    assert exc.value.error_type == "truncated" and exc.value.stage == "decode"
    with pytest.raises(KeyError):
        box.call("tests.sandbox_jobs:bug")


def test_pickles_without_its_child(box):
    box.call("tests.sandbox_jobs:pid")
    clone = pickle.loads(pickle.dumps(box))
    assert clone._proc is None and clone.timeout_s == 5.0
    assert clone.call("tests.sandbox_jobs:add", 1, 2) == 3
    clone.close()
