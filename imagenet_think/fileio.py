"""Atomic file writes (a file is either the old version or the new one, never half),
staging directories for whole exports (:func:`staging_dir`), and the rule of what an export
may replace (:func:`check_replaceable`).

Data go to a uniquely named temporary file beside the target (so parallel writers never share
one), are flushed and fsync'd, then renamed over the target; the directory is fsync'd so the
rename survives a crash.  On any error the temporary file is removed and the target is left as
it was.

>>> import tempfile, pathlib
>>> target = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
>>> with atomic_write(target) as f:
...     _ = f.write("hello")
>>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
('hello', ['a.txt'])
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import IO, Callable, Iterator, Union


@contextlib.contextmanager
def atomic_write(
    path: Union[str, os.PathLike], mode: str = "w", encoding: str = "utf-8", durable: bool = True
) -> Iterator[IO]:
    """Open a temporary file for writing; on success it replaces ``path`` atomically.

    ``mode`` is ``"w"`` (text, ``encoding``) or ``"wb"``.  Parent directories are created.
    ``durable=False`` skips the two fsyncs: the file still appears whole or not at all if the
    process dies, but not necessarily after a power loss (for many small files, such as
    exported images, where fsync would dominate the cost).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write writes whole files: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": encoding})) as handle:
            yield handle
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if durable:
        fsync_dir(path.parent)


def fsync_dir(directory: Union[str, os.PathLike]) -> None:
    """fsync a directory so renames inside it are durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def staging_dir(target: Union[str, os.PathLike]) -> Iterator[Path]:
    """A new empty directory beside ``target`` (same file system, so its contents can be renamed
    into place), removed with everything left in it when the block ends.

    Its name, ``.TARGET.staging-HOST-PID-RANDOM``, says which process made it: staging directories
    of ``target`` left by a killed process of this host are removed first (those of live
    processes and of other hosts sharing the file system are left alone).

    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "out"
    >>> with staging_dir(target) as staging:
    ...     staging.name.startswith(".out.staging-"), staging.is_dir()
    (True, True)
    >>> staging.exists()
    False
    """
    import glob
    import shutil
    import socket

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    prefix = f".{target.name}.staging-{host}-"
    for stale in target.parent.glob(f"{glob.escape(prefix)}*"):
        pid = stale.name[len(prefix) :].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    staging = target.with_name(f"{prefix}{os.getpid()}-{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def check_replaceable(directory: Union[str, os.PathLike], overwrite: bool, written_by_export: Callable[[Path], bool]) -> None:
    """Raise ``FileExistsError`` unless an export may write ``directory``: absent or empty, or,
    with ``overwrite``, holding nothing but entries ``written_by_export`` recognises (what an
    earlier export left), so that replacing it never removes anyone else's file.

    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp())
    >>> (out / "mine.txt").write_text("keep")
    4
    >>> check_replaceable(out, overwrite=True, written_by_export=lambda entry: entry.suffix == ".parquet")
    Traceback (most recent call last):
    ...
    FileExistsError: ... holds 'mine.txt', which no export writes; `overwrite` replaces only a previous export: move it away or choose another output directory
    """
    directory = Path(directory)
    if not directory.exists():
        return
    if not directory.is_dir():
        raise FileExistsError(f"{directory} exists and is not a directory")
    entries = sorted(directory.iterdir())
    if entries and not overwrite:
        raise not_empty_error(directory)
    foreign = [entry.name for entry in entries if not written_by_export(entry)]
    if foreign:
        raise FileExistsError(
            f"{directory} holds {foreign[0]!r}, which no export writes; `overwrite` replaces only a previous export: "
            "move it away or choose another output directory"
        )


def not_empty_error(directory: Union[str, os.PathLike]) -> FileExistsError:
    """The error of an export refused a directory that is not empty (:func:`check_replaceable`)."""
    return FileExistsError(f"{directory} is not empty: pass `overwrite=True` to replace the export there")
