"""The one guard at the boundary of every per-input step: an input's fault fails that input, the run's fault stops the run.

Every pipeline step that works on one input (a manifest row, a video, an image set; later a
publish or synth sample) runs inside an ``InputGuard``: ``step(stage, ...)`` around each part of
the work names the stage, and ``outcome(...)`` at the DoFn's boundary turns a fault into that
input's failure outputs, so the run goes on. Handling known exception types one by one cannot be
complete, hence the rule is by *whose* fault it is, not by type:

The run's faults (``RunFault``: the run stops with one clear message; rerunning the same command
resumes it, since every write is atomic and nothing about the input is remembered as failed):

1. ``MemoryError`` in a pipeline worker (a sandbox child holds one input only, so there it is that
   input's ``out_of_memory``, see ``pipelines.common.sandbox``);
2. ``OSError`` with errno ``ENOSPC``, ``EDQUOT``, ``EROFS``, ``EMFILE``, ``ENFILE`` or ``ENOMEM``:
   the machine's resources, whatever the path;
3. ``OSError`` with errno ``EACCES``, ``EPERM``, ``ENOENT``, ``ENOTDIR``, ``EISDIR`` or ``EEXIST``
   on a path under one of the run's folders (output, work dir) - or naming no path - *when a run
   folder (or that path's nearest existing folder) is not writable now*: checked by creating and
   removing a file there. The same errors on an input's own path (outside the run's folders:
   a symlink loop, a missing file, no read permission) are that input's;
4. a ``RunFault`` raised deeper (e.g. in a sandbox child).

``KeyboardInterrupt``, ``SystemExit`` and other ``BaseException`` that are not ``Exception`` are
never caught. Everything else raised while working on one input is that input's fault: an
``InputError`` keeps its stage and type; any other exception becomes
``InputError(stage, "internal_error", "<input>: <Class>: <message>")``.

A ``RunFault`` crosses Beam's runners (which wrap or stringify worker exceptions) as a marked
line in the exception text; ``run_fault_message`` finds it again in the launcher.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
from types import MappingProxyType
from typing import Callable, Iterable, Iterator, Mapping, Sequence

from pipelines.common import inject
from pipelines.common.errors import InputError
from shards.atomic import AtomicFile

__all__ = ["RunFault", "InputGuard", "run_step", "check_writable", "run_fault_message", "describe"]

RESOURCE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EMFILE, errno.ENFILE, errno.ENOMEM})
PATH_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EEXIST})
_MARK = re.compile(r"<<run fault: (.*?)>>")


class RunFault(Exception):
    """A fault of the run itself (full disk, unwritable output, out of memory): stop, do not blame an input.

    Args:
        message: one sentence for the user, saying what is wrong and what to do.
    """

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __reduce__(self):  # picklable across Beam workers and sandbox children
        return (RunFault, (self.message,))

    def __str__(self) -> str:  # marked, so the launcher finds it in any runner's error text
        return f"<<run fault: {self.message}>>"


def run_fault_message(exc: BaseException) -> str | None:
    """The message of a ``RunFault`` behind ``exc`` (a runner's wrapper or its text), or None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, RunFault):
            return exc.message
        match = _MARK.search(str(exc))
        if match:
            return match.group(1)
        exc = exc.__cause__ or exc.__context__
    return None


@contextlib.contextmanager
def run_step(what: str) -> Iterator[None]:
    """The boundary of a step of the run itself (shards, tables, summary): every fault is the run's.

    Args:
        what: the step, for the message (e.g. ``"writing shards"``).

    Raises:
        RunFault: for any exception raised inside (a ``RunFault`` as is).
    """
    try:
        yield
    except RunFault:
        raise
    except Exception as exc:  # noqa: BLE001 - nothing here belongs to one input
        if isinstance(exc, MemoryError):
            fault = InputGuard().run_fault(exc)
        elif isinstance(exc, OSError) and exc.errno is not None:
            shown = exc.filename if exc.filename is not None else "the output"
            fault = RunFault(f"{what}: cannot write {os.fsdecode(shown)} ({exc.strerror or os.strerror(exc.errno)}); "
                             "fix it, then rerun the same command to resume")
        else:
            fault = RunFault(f"{what} stopped on an internal error ({describe(exc)}); rerun the same command "
                             "to resume")
        raise fault from None


def describe(exc: BaseException) -> str:
    """``Class: message`` of an exception, the class with its module unless a builtin."""
    cls = type(exc)
    name = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    text = str(exc).strip().splitlines()
    return f"{name}: {text[0]}" if text else name


def _writable(folder: str) -> bool:
    try:  # a probe under shards.atomic's temporary name: what a kill leaves is swept like the rest
        AtomicFile(os.path.join(folder, "write-check"), makedirs=False).abort()
    except OSError:
        return False
    return True


def check_writable(folders: Sequence[str]) -> None:
    """Create ``folders`` if needed and check a file can be written in each.

    Raises:
        RunFault: naming the first folder that cannot be created or written, and why.
    """
    for folder in folders:
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise RunFault(f"cannot create the folder {folder} ({exc.strerror or describe(exc)}); "
                           "choose another folder or fix its permissions") from None
        if not _writable(folder):
            raise RunFault(f"cannot write in the folder {folder} (permission denied or read-only); "
                           "choose another folder or fix its permissions")


def _under(path: str, folder: str) -> bool:
    path, folder = os.path.abspath(path), os.path.abspath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _nearest_folder(path: str) -> str:
    folder = os.path.dirname(os.path.abspath(path))
    while folder and not os.path.isdir(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    return folder


class InputGuard:
    """Turns any fault of one input into its ``InputError``; the run's faults become ``RunFault``.

    Plain data (picklable): a DoFn builds one in ``__init__`` and uses it in ``process``.

    Args:
        run_folders: the run's own folders by label (``{"OUT": out_dir, "WORK": work_dir}``): path
            errors there may be the run's; in ``internal_error`` messages a folder's path is
            replaced by its label, so failure records do not depend on where the run writes.
        hide: more text to replace in those messages (e.g. a raw-store path by the input's name).
    """

    def __init__(self, run_folders: Mapping[str, str] = MappingProxyType({}), hide: Mapping[str, str] = MappingProxyType({})):
        self.run_folders = tuple(os.path.abspath(str(f)) for f in run_folders.values())
        self.hide = dict(hide)
        for label, folder in sorted(run_folders.items(), key=lambda kv: len(os.path.abspath(kv[1]))):
            self.hide.setdefault(os.path.abspath(str(folder)), label)

    def run_fault(self, exc: BaseException, name: str = "") -> RunFault | None:
        """The ``RunFault`` that ``exc`` is (see the module docstring), or None if it is the input's."""
        if isinstance(exc, RunFault):
            return exc
        where = f" while processing {name}" if name else ""
        if isinstance(exc, MemoryError):
            return RunFault(f"out of memory{where}; free memory or run fewer workers "
                            "(--direct_num_workers), then rerun the same command to resume")
        if not isinstance(exc, OSError) or exc.errno is None:
            return None
        paths = [p for p in (exc.filename, exc.filename2) if isinstance(p, (str, bytes, os.PathLike))]
        paths = [os.fsdecode(p) for p in paths]
        shown = paths[0] if paths else ", ".join(self.run_folders) or "the output"
        reason = exc.strerror or os.strerror(exc.errno)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return RunFault(f"no space left writing {shown} ({reason}); free some space, then rerun "
                            "the same command to resume")
        if exc.errno in RESOURCE_ERRNOS:
            return RunFault(f"cannot go on writing {shown} ({reason}); fix this, then rerun the same "
                            "command to resume")
        if exc.errno not in PATH_ERRNOS:
            return None
        ours = [p for p in paths if any(_under(p, f) for f in self.run_folders)]
        if paths and not ours:
            return None  # the input's own path (outside the run's folders)
        suspects = [_nearest_folder(p) for p in ours] + [f for f in self.run_folders if os.path.isdir(f)]
        suspects += [f for f in self.run_folders if not os.path.isdir(f)]
        for folder in suspects:
            if not os.path.isdir(folder) or not _writable(folder):
                return RunFault(f"cannot write {ours[0] if ours else folder} ({reason}; the folder {folder} "
                                "is not writable); fix it, then rerun the same command to resume")
        return None

    def input_error(self, exc: BaseException, stage: str, name: str) -> InputError:
        """``exc`` as the ``InputError`` of input ``name`` at ``stage``.

        Raises:
            RunFault: ``exc`` is a fault of the run, not of the input.
            BaseException: ``exc`` itself when it is not an ``Exception`` (e.g. KeyboardInterrupt).
        """
        if isinstance(exc, InputError):
            return exc
        if not isinstance(exc, Exception):
            raise exc
        fault = self.run_fault(exc, name)
        if fault is not None:
            raise fault from None
        message = describe(exc)
        for text, label in self.hide.items():
            message = message.replace(text, label)
        return InputError(stage, "internal_error", f"{name}: {message}")

    @contextlib.contextmanager
    def step(self, stage: str, name: str, *ids: str) -> Iterator[None]:
        """Run one part of an input's work as ``stage``: its unforeseen faults become that stage's.

        Args:
            stage: the failure stage (``pipelines.common.errors.STAGES``).
            name: how messages name the input (its id, path or URL).
            ids: further names of the input (e.g. its manifest id) for fault injection in tests.

        Raises:
            InputError: the input's fault (an InputError raised inside keeps its own stage).
            RunFault: the run's fault.
        """
        try:
            inject.maybe_fail(stage, name, *ids)
            yield
        except (InputError, RunFault):
            raise
        except Exception as exc:  # noqa: BLE001 - sorted into the input's or the run's fault
            raise self.input_error(exc, stage, name) from None

    def outcome(self, work: Callable[[], Iterable], on_failure: Callable[[InputError], Iterable],
                stage: str, name: str, *ids: str) -> list:
        """All outputs of one input's ``work``, or, if it fails, the outputs of ``on_failure(error)``.

        The outputs are collected before any is returned, so an input never has both.

        Args:
            work: produces the input's outputs (may raise anything).
            on_failure: produces the failure outputs from the input's ``InputError``.
            stage: the stage of faults raised outside any ``step``.
            name, ids: as for ``step``.

        Raises:
            RunFault: a fault of the run (also one raised while recording the failure).
        """
        try:
            with self.step(stage, name, *ids):
                return list(work())
        except InputError as exc:
            error = exc
        try:
            return list(on_failure(error))
        except RunFault:
            raise
        except Exception as exc:  # noqa: BLE001 - failing to record a failure stops the run
            fault = self.run_fault(exc, name)
            raise (fault or RunFault(f"could not record the failure of {name} ({describe(exc)}); "
                                     "rerun the same command to resume")) from None
