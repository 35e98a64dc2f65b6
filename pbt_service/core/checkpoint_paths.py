"""Checkpoint roots: the lexical rules that keep a reported checkpoint path inside a study's roots.

A study may declare checkpoint roots (local directories or URIs); the garbage collector deletes
checkpoints, so a worker that reports `/home/someone` must be refused when it reports, not
discovered when the collector runs. These rules are pure string work: no file is looked at, so
symlinks are the collector's business (`worker_client.checkpoint_files`), and the service checks
what it can without seeing the worker's file system.

Forms accepted:
- an absolute POSIX path: duplicate slashes collapse, `.` and `..` resolve lexically, a trailing
  slash goes (`/data//x/../ckpt/` is `/data/ckpt`);
- `file:///path` (or `file://localhost/path`): the local path `/path`, written as it is (a
  percent-encoded file URI is refused rather than decoded differently from the worker);
- `scheme://authority/path` for other schemes (`s3://bucket/prefix`): kept as a URI. Object keys
  are literal strings, so `s3://b/x/../y` is not `s3://b/y` to an object store; such URIs may not
  contain empty, `.` or `..` segments (only a trailing slash is dropped), which keeps "inside the
  root" meaning the same thing here and in a future object-store collector.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from pbt_service.core.errors import InvalidArgumentError

MAX_LENGTH = 1024
"""Longest root or checkpoint path accepted, in characters."""
MAX_ROOTS = 16
"""Most checkpoint roots one study may declare."""
_QUOTE_PREFIX = 64
_URI = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://([^/]*)(.*)", re.DOTALL)


@dataclass(frozen=True)
class _Location:
    """A normalised path: `scheme` and `authority` are empty for a local path."""

    scheme: str
    authority: str
    parts: tuple[str, ...]

    def text(self) -> str:
        path = "/" + "/".join(self.parts)
        return f"{self.scheme}://{self.authority}{path}" if self.scheme else path

    def strictly_contains(self, other: _Location) -> bool:
        """`other` is a descendant by whole components, never `self` itself."""
        return (
            (self.scheme, self.authority) == (other.scheme, other.authority)
            and len(other.parts) > len(self.parts)
            and other.parts[: len(self.parts)] == self.parts
        )


def _shorten(value: str) -> str:
    """`value` cut to a short prefix, so that an error message about a huge value stays readable."""
    return value if len(value) <= _QUOTE_PREFIX else value[:_QUOTE_PREFIX] + "…"


def _quote(value: str) -> str:
    return repr(_shorten(value))


def _parse(value: str) -> _Location | str:
    """The normalised location, or why `value` is not acceptable (a phrase after the value)."""
    if not value:
        return "is empty"
    if len(value) > MAX_LENGTH:
        return f"is longer than {MAX_LENGTH} characters"
    if any(unicodedata.category(c) == "Cc" for c in value):
        return "contains a control character"
    uri = _URI.fullmatch(value)
    if uri is None:
        if not value.startswith("/"):
            return ("is relative; give an absolute path or a URI such as file:///data/ckpt "
                    "(the service cannot know a worker's working directory)")
        return _resolve_local(value)
    scheme, authority, path = uri.group(1).lower(), uri.group(2), uri.group(3)
    if scheme == "file":
        if authority not in ("", "localhost"):
            return "names another host; a file URI must be file:///path (a local path)"
        if not path.startswith("/"):
            return "has no path; a file URI must be file:///path"
        if "%" in path:
            return "is percent-encoded; write the path as it is (file:///data/my ckpt)"
        return _resolve_local(path)
    if not authority:
        return "has no authority; a URI must be scheme://authority/path"
    segments = path.split("/")[1:]
    if segments and segments[-1] == "":
        segments.pop()  # one trailing slash
    if any(s in ("", ".", "..") for s in segments):
        return "has an empty, '.' or '..' segment, which object stores take literally"
    if not segments:
        return "is a whole bucket or host; name a prefix inside it"
    return _Location(scheme, authority, tuple(segments))


def _resolve_local(path: str) -> _Location | str:
    """Resolves `.`, `..` and duplicate slashes of an absolute path by components (unlike
    `posixpath.normpath`, a leading `//` is not kept)."""
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return "goes above / with '..'"
            parts.pop()
        else:
            parts.append(part)
    if not parts:
        return "is the file-system root; name a directory inside it"
    return _Location("", "", tuple(parts))


def normalize_root(root: str, field: str) -> str:
    """The normalised form of a declared checkpoint root (see the module docstring). Raises
    InvalidArgumentError naming `field` when `root` is empty, relative, holds a control character,
    is `/` (or a URI with no path), climbs above `/`, or is longer than `MAX_LENGTH`."""
    location = _parse(root)
    if isinstance(location, str):
        raise InvalidArgumentError(f"{field} {_quote(root)} {location}")
    return location.text()


def normalize_roots(roots: Sequence[str], field: str = "checkpoints.roots") -> tuple[str, ...]:
    """Each root normalised (field `field[i]` in errors), duplicates dropped, order kept; at most
    `MAX_ROOTS`, so that checking a path stays cheap and a message can list them all."""
    if len(roots) > MAX_ROOTS:
        raise InvalidArgumentError(f"{field} has {len(roots)} roots; at most {MAX_ROOTS} are allowed")
    normalised = (normalize_root(root, f"{field}[{i}]") for i, root in enumerate(roots))
    return tuple(dict.fromkeys(normalised))


def is_under_roots(path: str, roots: Sequence[str]) -> bool:
    """Whether `path` lies strictly inside one of `roots`, by whole components after
    normalisation: `/data/ckpt/a` is under `/data/ckpt`, `/data/ckpt2` and `/data/ckpt` itself are
    not (a checkpoint is an entry inside a root, and deleting the root would delete them all). A
    path that cannot be normalised (relative, control characters, ...) is under no root; so is
    anything when a root cannot be normalised, for that root."""
    location = _parse(path)
    if isinstance(location, str):
        return False
    for root in roots:
        parsed = _parse(root)
        if not isinstance(parsed, str) and parsed.strictly_contains(location):
            return True
    return False


def require_under_roots(path: str, roots: Sequence[str], field: str) -> None:
    """Raises InvalidArgumentError naming `field` unless `path` is strictly inside one of `roots`.
    Does nothing when the study declares no roots or there is no checkpoint (`path` empty)."""
    if not roots or not path or is_under_roots(path, roots):
        return
    listed = ", ".join(_shorten(root) for root in roots)
    message = f"{field} {_quote(path)} is not under a checkpoint root of the study ({listed})"
    problem = _parse(path)
    if isinstance(problem, str):
        message += f": it {problem}"
    raise InvalidArgumentError(message)
