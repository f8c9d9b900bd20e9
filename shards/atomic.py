"""Write a file or a folder under a temporary name beside its final name, then rename it into place.

One job: the project's only write-to-temp-then-rename, with one temporary-name scheme and the one
sweep that removes what a killed process left of it. Every writer of a file that a rerun, a reader
or another process may find (shards, tables, markers, JSON, media copies, snapshots, credentials)
goes through here, so a final name holds either nothing or a complete file.

Temporary names: ``.{final name}.tmp-{pid}-{8 hex digits}`` in the final name's folder (same file
system, so the rename is atomic; the pid says which process wrote it, the random part keeps two
threads of one process apart). :func:`is_temp_name` recognizes exactly this scheme and
:func:`sweep` removes such entries (files or folders) from a folder: call it where a run is
known to be the only writer (ingest's finalize step) to clear what ``kill -9`` left.

Storage: a plain path is written with ``os`` calls (fsync optional, ``os.replace`` onto the final
name). An fsspec URL (``memory://``, ``gs://``, ``s3://``; ``file://`` is treated as a plain
path) or an explicit ``fs`` is staged the same way and moved with ``fs.mv``. On object stores that
move is a copy and a delete, so it is not atomic: there a commit protocol must name a marker
written last as its commit point (see :mod:`shards.commit`), and readers must trust nothing
without it.

Durability: ``fsync=True`` flushes the file before the rename and the folder after it, so the
new content survives a power cut; a killed process needs no fsync (the rename is atomic either
way). It costs about 2 ms per file here, so it is on for committed shards, markers, snapshots and
credentials, and off for scratch and reproducible intermediates.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
from typing import IO, Any, Iterator

__all__ = [
    "TEMP_MARK", "AtomicFile", "atomic_dir", "atomic_open", "atomic_path", "is_temp_name", "move_into_place",
    "remove", "resolve", "scratch_dir", "sweep", "temp_name", "write_bytes", "write_json", "write_text",
]

TEMP_MARK = ".tmp-"
"""What every temporary name carries between the final name and the writer's pid."""
_TEMP_RE = re.compile(r"\.(?P<name>.+)\.tmp-(?P<pid>\d+)-[0-9a-f]{8}")


def temp_name(name: str) -> str:
    """The temporary name for final name ``name`` (a base name, no folder).

    Returns:
        ``.{name}.tmp-{pid}-{8 hex digits}``, fresh at every call.
    """
    return f".{name}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}"


def is_temp_name(name: str) -> bool:
    """Whether a base name follows the temporary-name scheme of :func:`temp_name`."""
    return _TEMP_RE.fullmatch(name) is not None


def resolve(path: str | os.PathLike[str], fs: Any = None) -> tuple[Any, str]:
    """Split ``path`` into (fsspec file system or None for a plain local path, path string).

    Args:
        path: a local path, a ``file://`` URL or any fsspec URL.
        fs: an fsspec file system ``path`` lies in; then ``path`` is a path of that system.

    Returns:
        ``(None, local path)`` for local storage (``LocalFileSystem`` included), else ``(fs, path)``.
    """
    text = os.fspath(path)
    if fs is None:
        if "://" not in text:
            return None, text
        import fsspec

        fs, text = fsspec.core.url_to_fs(text)
    from fsspec.implementations.local import LocalFileSystem

    if isinstance(fs, LocalFileSystem):
        return None, fs._strip_protocol(text)
    return fs, text


def _split(fs: Any, path: str) -> tuple[str, str]:
    if fs is None:
        folder, name = os.path.split(path)
        return folder, name
    path = path.rstrip("/")
    folder, _, name = path.rpartition("/")
    return folder, name


def _join(fs: Any, folder: str, name: str) -> str:
    if fs is None:
        return os.path.join(folder, name)
    return f"{folder}/{name}" if folder else name


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder or ".", os.O_RDONLY)
    except OSError:  # platforms that cannot open a folder
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove(path: str | os.PathLike[str], *, fs: Any = None) -> None:
    """Remove a file or folder (recursively); a missing one is not an error."""
    fs, path = resolve(path, fs)
    _remove(fs, path)


def _remove(fs: Any, path: str) -> None:
    if fs is None:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            fs.rm(path, recursive=True)


class AtomicFile:
    """One file being written under its temporary name; :meth:`commit` or :meth:`abort` ends it.

    For writers that cannot live inside one ``with`` block (a shard writer that rolls over, a
    consumer that stages files until a shard's checksum is confirmed); otherwise use
    :func:`atomic_open`. :meth:`close` ends the writing (the file stays under its temporary
    name, so many files can wait for one decision without holding file handles).

    Args:
        path: the final name (local path or fsspec URL; a path of ``fs`` when ``fs`` is given).
        mode: ``"wb"`` or ``"w"`` (text, with ``encoding``).
        fs: fsspec file system of ``path``, if not a plain path or URL.
        fsync: flush to disk before the rename (local only; see the module docstring).
        private: create the file readable by its owner only (0600), from the first byte.
        encoding: text encoding for mode ``"w"``.
        makedirs: create the final name's folder when missing.

    Raises:
        ValueError: an unsupported mode.
        OSError: the temporary file cannot be created.
    """

    def __init__(self, path: str | os.PathLike[str], mode: str = "wb", *, fs: Any = None, fsync: bool = False,
                 private: bool = False, encoding: str = "utf-8", makedirs: bool = True) -> None:
        if mode not in ("wb", "w"):
            raise ValueError(f"AtomicFile mode must be 'wb' or 'w', got {mode!r}")
        self.fs, self.path = resolve(path, fs)
        self.fsync = fsync
        folder, name = _split(self.fs, self.path)
        self.folder = folder
        self.tmp_path = _join(self.fs, folder, temp_name(name))
        if self.fs is None:
            if makedirs and folder:
                os.makedirs(folder, exist_ok=True)
            fd = os.open(self.tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o666)
            self.file: IO[Any] = os.fdopen(fd, mode, **({"encoding": encoding} if mode == "w" else {}))
        else:
            if makedirs and folder:
                self.fs.makedirs(folder, exist_ok=True)
            self.file = self.fs.open(self.tmp_path, mode, **({"encoding": encoding} if mode == "w" else {}))
        self.done = False

    def close(self) -> None:
        """Finish writing (flush, fsync when asked, close); the file keeps its temporary name."""
        if self.file.closed:
            return
        if self.fs is None:
            self.file.flush()
            if self.fsync:
                os.fsync(self.file.fileno())
        self.file.close()

    def commit(self) -> str:
        """Close the file and rename it onto the final name (replacing a file there).

        Returns:
            The final path.
        """
        if self.done:
            raise RuntimeError(f"{self.path}: already committed or aborted")
        try:
            self.close()
            if self.fs is None:
                os.replace(self.tmp_path, self.path)
                if self.fsync:
                    _fsync_dir(self.folder)
            else:
                self.fs.mv(self.tmp_path, self.path)
        except BaseException:
            self.abort()
            raise
        self.done = True
        return self.path

    def abort(self) -> None:
        """Close and remove the temporary file; the final name is left as it was. Safe twice."""
        self.done = True
        try:
            self.file.close()
        except Exception:  # noqa: BLE001 - the temporary file goes either way
            pass
        _remove(self.fs, self.tmp_path)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb", *, fs: Any = None, fsync: bool = False,
                private: bool = False, encoding: str = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary file for writing; on a clean exit it is renamed onto ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was. Arguments as
    :class:`AtomicFile`.

    Yields:
        The open file object.
    """
    staged = AtomicFile(path, mode, fs=fs, fsync=fsync, private=private, encoding=encoding)
    try:
        yield staged.file
    except BaseException:
        staged.abort()
        raise
    staged.commit()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, fs: Any = None, fsync: bool = False) -> Iterator[str]:
    """A temporary path to write ``path`` at (for writers that open a name themselves).

    The caller creates the file at the yielded path (e.g. ``pq.write_table(table, tmp)``,
    ``av.open(tmp, "w")``); on a clean exit it is renamed onto ``path``, on an exception removed.
    The final name's folder is created when missing.

    Yields:
        The temporary path (a local path, or a path of the fsspec file system).
    """
    fs, final = resolve(path, fs)
    folder, name = _split(fs, final)
    tmp = _join(fs, folder, temp_name(name))
    if folder:
        os.makedirs(folder, exist_ok=True) if fs is None else fs.makedirs(folder, exist_ok=True)
    try:
        yield tmp
        if fs is None:
            if fsync:
                with open(tmp, "rb") as f:
                    os.fsync(f.fileno())
            os.replace(tmp, final)
            if fsync:
                _fsync_dir(folder)
        else:
            fs.mv(tmp, final)
    except BaseException:
        _remove(fs, tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str], *, replace: bool = False) -> Iterator[str]:
    """A temporary local folder that becomes ``path`` on a clean exit (local storage only).

    For content-addressed folders whose every writer produces the same files: when ``path``
    already exists at the end (another worker finished the same content first), the new folder
    is discarded and the existing one kept. With ``replace=True`` an existing ``path`` is
    outdated instead: it is moved aside (under a temporary name, then removed) and the new
    folder takes its place.

    Yields:
        The temporary folder, created empty.
    """
    final = os.fspath(path)
    folder, name = os.path.split(final)
    with scratch_dir(folder or ".", name) as tmp:
        yield tmp
        old = None
        if replace and os.path.isdir(final):
            old = os.path.join(folder, temp_name(name))
            try:
                os.rename(final, old)
            except OSError:  # gone meanwhile, or another worker's rename won
                old = None
        try:
            os.rename(tmp, final)
        except OSError:
            if not os.path.isdir(final):  # not another worker's folder in the way: a real failure
                if old is not None:
                    os.rename(old, final)  # the previous folder stays
                    old = None
                raise
        finally:
            if old is not None:
                _remove(None, old)


@contextlib.contextmanager
def scratch_dir(folder: str | os.PathLike[str], name: str = "scratch") -> Iterator[str]:
    """A private local working folder inside ``folder``, removed on exit (whatever happens).

    It is named by the temporary-name scheme, so what a killed process leaves is removed by
    :func:`sweep` of ``folder``. Put it on the disk of the files' final names, so that
    :func:`move_into_place` is a rename.

    Yields:
        The folder, created empty.
    """
    base = os.fspath(folder)
    os.makedirs(base, exist_ok=True)
    work = os.path.join(base, temp_name(name))
    os.mkdir(work)
    try:
        yield work
    finally:
        _remove(None, work)


def move_into_place(src: str | os.PathLike[str], path: str | os.PathLike[str], *, fs: Any = None) -> str:
    """Move a finished local file onto its final name, replacing what is there.

    Local storage: a rename (a copy under a temporary name and a rename when ``src`` lies on
    another file system). fsspec storage: an upload under a temporary name, then a move.

    Returns:
        The final path.
    """
    fs, final = resolve(path, fs)
    src = os.fspath(src)
    if fs is None:
        folder = os.path.dirname(final)
        if folder:
            os.makedirs(folder, exist_ok=True)
        try:
            os.replace(src, final)
            return final
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
        with atomic_open(final) as out, open(src, "rb") as f:
            shutil.copyfileobj(f, out, 1 << 20)
        os.unlink(src)
        return final
    with atomic_path(final, fs=fs) as tmp:
        fs.put_file(src, tmp)
    return final


def write_bytes(path: str | os.PathLike[str], data: bytes, *, fs: Any = None, fsync: bool = False,
                private: bool = False) -> str:
    """Write ``data`` to ``path`` atomically; returns the final path."""
    with atomic_open(path, "wb", fs=fs, fsync=fsync, private=private) as f:
        f.write(data)
    return resolve(path, fs)[1]


def write_text(path: str | os.PathLike[str], text: str, *, fs: Any = None, fsync: bool = False,
               private: bool = False) -> str:
    """Write ``text`` as UTF-8 to ``path`` atomically; returns the final path."""
    return write_bytes(path, text.encode("utf-8"), fs=fs, fsync=fsync, private=private)


def write_json(path: str | os.PathLike[str], value: Any, *, indent: int | None = None, newline: bool = False,
               fs: Any = None, fsync: bool = False, private: bool = False) -> str:
    """Write ``value`` as JSON (sorted keys, ASCII-escaped) to ``path`` atomically.

    Args:
        indent: ``json.dumps`` indent (None: one line with ``", "``/``": "`` separators).
        newline: end the file with a newline.

    Returns:
        The final path.
    """
    text = json.dumps(value, indent=indent, sort_keys=True) + ("\n" if newline else "")
    return write_text(path, text, fs=fs, fsync=fsync, private=private)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _leftover(name: str, final_name: str | None, only_dead: bool) -> bool:
    m = _TEMP_RE.fullmatch(name)
    if m is None or (final_name is not None and m.group("name") != final_name):
        return False
    return not (only_dead and _pid_alive(int(m.group("pid"))))


def sweep(folder: str | os.PathLike[str], *, name: str | None = None, only_dead: bool = False,
          fs: Any = None) -> list[str]:
    """Remove the temporary files and folders (this module's scheme only) directly in ``folder``.

    Without ``only_dead`` it is only safe where no other process writes to ``folder`` at the
    same time (a live writer's temporary file would go too): call it where a run knows it is the
    folder's only writer. A missing folder is not an error.

    Args:
        folder: the folder (local path or fsspec URL).
        name: only the temporary names of this final name.
        only_dead: only those whose writer's pid is not a live process of this host (for
            folders that concurrent processes of one host may share).
        fs: the fsspec file system of ``folder``, if not a plain path or URL.

    Returns:
        The removed paths, sorted.
    """
    fs, root = resolve(folder, fs)
    if fs is None:
        try:
            names = os.listdir(root)
        except (FileNotFoundError, NotADirectoryError):
            return []
        paths = [os.path.join(root, n) for n in names if _leftover(n, name, only_dead)]
    else:
        try:
            entries = fs.ls(root, detail=False)
        except FileNotFoundError:
            return []
        paths = [p for p in entries if _leftover(p.rstrip("/").rpartition("/")[2], name, only_dead)]
    for p in paths:
        _remove(fs, p)
    return sorted(paths)
