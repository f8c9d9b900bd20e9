"""Jobs the sandbox tests run in the child process."""
import os
import signal
import time

from pipelines.common.errors import InputError


def add(a, b):
    print("noise on stdout must not break the protocol")
    return a + b


def sleep(seconds):
    time.sleep(seconds)
    return "woke"


def die():
    os.kill(os.getpid(), signal.SIGSEGV)


def bad_input():
    raise InputError("decode", "truncated", "x.mp4: moov atom not found")


def bug():
    raise KeyError("oops")


def pid():
    return os.getpid()


def loaded_modules(package):
    """The modules of ``package`` this child has imported so far."""
    import sys

    return sorted(m for m in sys.modules if m.split(".")[0] == package)
