"""Atomic checkpoint writes: a reader sees no file or the whole file, never a partial one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> Path:
    """Calls `write(handle)` on a hidden temporary file beside `path`, flushes it to disk and
    renames it over `path` (`os.replace` is atomic on one file system), so an evaluator polling
    the model directory never reads half a checkpoint. On any error the temporary is removed and
    the error re-raised. Returns `path`."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def write_bytes_atomically(path: Path, data: bytes) -> Path:
    """`write_atomically` for bytes already in memory."""

    def write(handle: BinaryIO) -> None:
        handle.write(data)

    return write_atomically(path, write)
