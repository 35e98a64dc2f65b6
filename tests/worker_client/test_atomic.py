"""Atomic writes: whole files only, readable under the umask, durable after the rename."""

from __future__ import annotations

import os
import secrets
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from worker_client.atomic import write_atomically, write_bytes_atomically


@pytest.fixture
def umask() -> Iterator[None]:
    """Restores the process umask the test changes."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("umask")
@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_the_file_mode_follows_the_umask(tmp_path: Path, mask: int, mode: int) -> None:
    os.umask(mask)
    path = write_bytes_atomically(tmp_path / "ckpt", b"data")
    assert stat.S_IMODE(os.stat(path).st_mode) == mode
    assert path.read_bytes() == b"data"


def test_the_umask_is_left_alone(tmp_path: Path) -> None:
    before = os.umask(0o022)
    os.umask(before)
    write_bytes_atomically(tmp_path / "ckpt", b"data")
    after = os.umask(before)
    assert after == before


def test_the_data_then_the_rename_then_the_directory_are_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, object]] = []
    real_fsync, real_replace = os.fsync, os.replace
    directory = os.stat(tmp_path)

    def fsync(fd: int) -> None:
        info = os.fstat(fd)
        is_the_directory = stat.S_ISDIR(info.st_mode) and (info.st_dev, info.st_ino) == (
            directory.st_dev,
            directory.st_ino,
        )
        calls.append(("fsync", "directory" if is_the_directory else "file"))
        real_fsync(fd)

    def replace(src: str, dst: os.PathLike[str] | str) -> None:
        calls.append(("replace", Path(dst).name))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_bytes_atomically(tmp_path / "ckpt", b"data")
    assert calls == [("fsync", "file"), ("replace", "ckpt"), ("fsync", "directory")]


def test_a_directory_that_cannot_be_synced_is_tolerated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(22, "Invalid argument")  # EINVAL: some file systems cannot sync a directory
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    assert write_bytes_atomically(tmp_path / "ckpt", b"data").read_bytes() == b"data"


def test_a_failing_writer_leaves_no_temporary_and_the_old_file(tmp_path: Path) -> None:
    target = write_bytes_atomically(tmp_path / "ckpt", b"old")

    def broken(handle: BinaryIO) -> None:
        handle.write(b"half a checkpoint")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, broken)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]
    assert target.read_bytes() == b"old"

    with pytest.raises(KeyboardInterrupt):
        write_atomically(tmp_path / "new", lambda handle: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


def test_a_failing_rename_leaves_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def replace(src: str, dst: str) -> None:
        raise PermissionError("read-only")

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(PermissionError):
        write_bytes_atomically(tmp_path / "ckpt", b"data")
    assert list(tmp_path.iterdir()) == []


def test_the_temporary_is_hidden_beside_the_target_and_a_taken_name_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    suffixes = iter(["taken", "taken", "free"])
    monkeypatch.setattr(secrets, "token_hex", lambda n: next(suffixes))
    (tmp_path / ".ckpt.taken.tmp").write_bytes(b"another writer's")
    seen: list[str] = []

    def write(handle: BinaryIO) -> None:
        seen.extend(sorted(p.name for p in tmp_path.iterdir()))
        handle.write(b"mine")

    write_atomically(tmp_path / "ckpt", write)
    assert seen == [".ckpt.free.tmp", ".ckpt.taken.tmp"]
    assert (tmp_path / "ckpt").read_bytes() == b"mine"
    assert (tmp_path / ".ckpt.taken.tmp").read_bytes() == b"another writer's"


def test_a_very_long_name_still_gets_a_temporary(tmp_path: Path) -> None:
    path = tmp_path / ("c" * 250)
    assert write_bytes_atomically(path, b"data").read_bytes() == b"data"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_concurrent_writers_leave_one_complete_file(tmp_path: Path) -> None:
    target = tmp_path / "ckpt"
    chunk = 64 * 1024
    payloads = [bytes([i]) * (chunk * (i + 1)) for i in range(8)]
    start = threading.Barrier(len(payloads))
    errors: list[BaseException] = []

    def writer(data: bytes) -> None:
        def write(handle: BinaryIO) -> None:
            for offset in range(0, len(data), chunk):  # in pieces, so that the writers interleave
                handle.write(data[offset : offset + chunk])
                handle.flush()

        try:
            start.wait()
            for _ in range(5):
                write_atomically(target, write)
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(data,)) for data in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert target.read_bytes() in payloads
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]
