"""Checkpoint files behind one small interface: what the garbage collector may see and delete.

The service already refuses checkpoint paths outside a study's roots by their text
(`pbt_service.core.checkpoint_paths`), but only the file system knows where a path really leads:
`/data/ckpt/t1` may be a symlink to `/home/someone`, or `/data/ckpt` itself a symlink. This module
is the last line of defence before a delete, so it checks again, strictly, against the real file
system, every time (`delete` never trusts an earlier `inspect`).

`LocalFiles` handles local paths and `file://` URIs; an object store would be another
`CheckpointFiles`.
"""

from __future__ import annotations

import enum
import errno
import os
import re
import shutil
import stat
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from pbt_service.core.checkpoint_paths import normalize_root
from pbt_service.core.errors import InvalidArgumentError

_URI = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://([^/]*)(.*)", re.DOTALL)
"""The same URI shape `pbt_service.core.checkpoint_paths` accepts."""
_NOT_LOCAL = "only local paths can be collected by LocalFiles"


class FileState(enum.Enum):
    PRESENT = "present"
    MISSING = "missing"
    OUTSIDE_ROOTS = "outside_roots"
    """Not safely inside a checkpoint root (or not a local path): never to be deleted."""


@dataclass(frozen=True)
class FileCheck:
    """What `inspect` found. `resolved` is where `path` really points (its realpath), which for
    OUTSIDE_ROOTS shows the reader why; `size` is the bytes a delete would free, 0 unless PRESENT."""

    path: str
    state: FileState
    resolved: str
    size: int
    reason: str = ""


class OutsideRootsError(Exception):
    """`delete` was asked to remove a path that is not safely inside a checkpoint root."""


class CheckpointFiles(Protocol):
    """Where checkpoints live. Both methods take the study's declared roots and confine
    themselves to them: with no roots nothing is inside, so nothing can be deleted."""

    def inspect(self, path: str, roots: Sequence[str]) -> FileCheck:
        """Whether `path` exists and is safely inside one of `roots`, and its size."""
        ...

    def delete(self, path: str, roots: Sequence[str]) -> int:
        """Removes `path` and returns the bytes freed; 0 when it is already gone. Raises
        OutsideRootsError when `path` is not safely inside one of `roots`."""
        ...


class LocalFiles:
    """`CheckpointFiles` for the local file system (plain absolute paths and `file://` URIs).

    A path may be deleted only when all of these hold:
    - it is absolute (a relative path depends on a working directory the collector does not know);
    - its realpath lies strictly inside a resolved root (roots are normalised, then resolved with
      `os.path.realpath`), by whole components: never a root itself, nor above one, nor a sibling
      such as `root2`;
    - the entry itself (its parent directory resolved, plus its name) lies strictly inside a
      resolved root too, so a symlinked parent directory cannot lead the delete elsewhere.

    A checkpoint that is a symlink to somewhere inside a root is deleted as a link: the link is
    removed, never its target. Directories are removed with `shutil.rmtree`, which does not follow
    symlinks inside the tree. A root that resolves to `/` is ignored (everything would be inside
    it). The checks and the delete are separate system calls, so a process that swaps a directory
    for a symlink in between is not guarded against; `rmtree` itself refuses a symlink.
    """

    def inspect(self, path: str, roots: Sequence[str]) -> FileCheck:
        """The path's state, realpath and size (bytes of the file, or of the files and links in a
        directory tree, symlinks not followed). A missing path is MISSING, not an error."""
        return self._check(path, roots)[0]

    def delete(self, path: str, roots: Sequence[str]) -> int:
        """Removes `path` (a file, a directory tree, or a symlink: the link only) after checking
        it again, and returns the bytes freed as `inspect` counts them. A missing path returns 0,
        so a second run after a half-finished one just works. Raises OutsideRootsError when the
        path is not safely inside a root; other OSErrors (permissions) propagate."""
        check, entry = self._check(path, roots)
        if check.state is FileState.OUTSIDE_ROOTS:
            raise OutsideRootsError(f"refusing to delete {path!r}: {check.reason}")
        if check.state is FileState.MISSING:
            return 0
        try:
            if stat.S_ISDIR(os.lstat(entry).st_mode):
                shutil.rmtree(entry)
            else:
                os.unlink(entry)
        except OSError as error:
            # Gone meanwhile (another collector): fine. Anything else, or a tree only partly gone,
            # is reported.
            if not _unreachable(error) or os.path.lexists(entry):
                raise
        return check.size

    def _check(self, path: str, roots: Sequence[str]) -> tuple[FileCheck, str]:
        """The check, and the entry to act on: the parent directory resolved plus the name, so a
        symlink is acted on as a link."""
        try:
            local = _local_path(path)
        except _Refused as refused:
            return FileCheck(path, FileState.OUTSIDE_ROOTS, "", 0, str(refused)), ""
        resolved = os.path.realpath(local)

        def outside(reason: str) -> tuple[FileCheck, str]:
            return FileCheck(path, FileState.OUTSIDE_ROOTS, resolved, 0, reason), ""

        real_roots = _resolved_roots(roots)
        if not real_roots:
            return outside("the study declares no usable local checkpoint root")
        listed = ", ".join(real_roots)
        parent, name = os.path.split(local.rstrip("/"))
        if name in ("", ".", ".."):
            return outside("it does not name an entry (it ends in '.' or '..')")
        entry = os.path.join(os.path.realpath(parent or "/"), name)
        if resolved in real_roots or entry in real_roots:
            return outside(f"it is or points to a checkpoint root ({listed}), not a checkpoint inside one")
        if not _strictly_inside(resolved, real_roots):
            return outside(f"it resolves to {resolved}, outside every checkpoint root ({listed})")
        if not _strictly_inside(entry, real_roots):
            return outside(f"it lies in {os.path.dirname(entry)}, outside every checkpoint root ({listed})")
        try:
            info = os.lstat(entry)
        except OSError as error:
            if _unreachable(error):
                return FileCheck(path, FileState.MISSING, resolved, 0), entry
            raise
        size = _tree_size(entry) if stat.S_ISDIR(info.st_mode) else info.st_size
        return FileCheck(path, FileState.PRESENT, resolved, size), entry


class _Refused(Exception):
    """A path that names no local entry; the message says why."""


def _local_path(path: str) -> str:
    """The absolute local path that `path` names; raises _Refused when it names none."""
    if any(unicodedata.category(c) == "Cc" for c in path):
        raise _Refused("it contains a control character")
    uri = _URI.fullmatch(path)
    if uri is not None:
        if uri.group(1).lower() != "file" or uri.group(2) not in ("", "localhost"):
            raise _Refused(_NOT_LOCAL)
        path = uri.group(3)
        if "%" in path:
            raise _Refused("it is a percent-encoded file URI; write the path as it is")
    if not path.startswith("/"):
        raise _Refused("it is relative; the collector cannot know the worker's working directory")
    return path


def _unreachable(error: OSError) -> bool:
    """The entry does not exist as named: gone, a file where a directory was expected, or a
    symlink loop on the way."""
    return error.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)


def _resolved_roots(roots: Sequence[str]) -> tuple[str, ...]:
    """The local roots, normalised then resolved. A root that is not a valid local root (an
    object-store URI, a relative path) or that resolves to `/` contains nothing here."""
    resolved: list[str] = []
    for i, root in enumerate(roots):
        try:
            normal = normalize_root(root, f"roots[{i}]")
        except InvalidArgumentError:
            continue
        if normal.startswith("/"):
            real = os.path.realpath(normal)
            if real != "/":
                resolved.append(real)
    return tuple(dict.fromkeys(resolved))


def _strictly_inside(path: str, roots: Sequence[str]) -> bool:
    """`path` is a descendant of a root by whole components. Both come from `realpath`, so they
    are absolute, normalised and carry no trailing slash."""
    return any(path.startswith(root + "/") for root in roots)


def _tree_size(top: str) -> int:
    """Bytes of the files and symlinks (the links themselves) under `top`, not following links
    (iteratively: a deep tree must not exhaust the recursion limit). Entries that vanish while
    counting are skipped: another collector may be deleting them."""
    total = 0
    pending = [top]
    while pending:
        try:
            entries = list(os.scandir(pending.pop()))
        except OSError as error:
            if _unreachable(error):
                continue
            raise
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                else:
                    total += entry.stat(follow_symlinks=False).st_size
            except FileNotFoundError:
                continue
    return total
