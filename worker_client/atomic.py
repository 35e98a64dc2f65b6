"""Atomic checkpoint writes: a reader sees no file or the whole file, never a partial one.

Durable too: the data is fsynced before the rename and the directory after it, so a crash cannot
leave a renamed but empty file, nor lose the rename. And readable by others: the file gets the
permissions the process umask allows (usually 0644), not `mkstemp`'s 0600, because an evaluator or
the garbage collector may run as another user.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

_ATTEMPTS = 100
"""Random names tried before giving up; a clash needs another writer with the same 64-bit suffix."""
_LONG_NAME_BYTES = 200
"""Longer names are cut in the temporary's name, which must stay under the usual 255-byte limit."""


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> Path:
    """Calls `write(handle)` on a hidden temporary file beside `path`, flushes it to disk and
    renames it over `path` (`os.replace` is atomic on one file system), so an evaluator polling
    the model directory never reads half a checkpoint; then fsyncs the directory so that the
    rename survives a crash. On any error the temporary is removed and the error re-raised.
    Concurrent writers to one path each use their own temporary: the last rename wins, whole.
    Returns `path`."""
    fd, tmp_name = _create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    return path


def write_bytes_atomically(path: Path, data: bytes) -> Path:
    """`write_atomically` for bytes already in memory."""

    def write(handle: BinaryIO) -> None:
        handle.write(data)

    return write_atomically(path, write)


def _create_temporary(path: Path) -> tuple[int, str]:
    """Creates `.<name>.<random>.tmp` beside `path` with mode 0o666, which the kernel reduces by
    the process umask (changing the umask instead would not be thread-safe). O_EXCL makes the
    name ours alone; a clash is retried with a new suffix."""
    name = path.name if len(os.fsencode(path.name)) <= _LONG_NAME_BYTES else path.name[:50]
    for _ in range(_ATTEMPTS):
        tmp_name = str(path.parent / f".{name}.{secrets.token_hex(8)}.tmp")
        try:
            return os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp_name
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, f"no free temporary name beside {path} after {_ATTEMPTS} tries")


def _fsync_directory(directory: Path) -> None:
    """Makes a rename in `directory` durable. File systems that cannot sync a directory say so
    with EINVAL or ENOTSUP; there the rename is as durable as that file system makes it."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    finally:
        os.close(fd)
