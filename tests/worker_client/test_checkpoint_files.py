"""LocalFiles: only entries strictly inside a checkpoint root, as the real file system resolves
them, can be deleted; everything else is OUTSIDE_ROOTS and left alone. Real files and symlinks."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker_client.checkpoint_files import (
    CheckpointFiles,
    FileCheck,
    FileState,
    LocalFiles,
    OutsideRootsError,
)

FILES: CheckpointFiles = LocalFiles()


@pytest.fixture
def base(tmp_path: Path) -> Path:
    """`root/` (the declared root) beside `outside/` and the sibling `root2/`."""
    base = Path(os.path.realpath(tmp_path))
    for name in ("root", "outside", "root2"):
        (base / name).mkdir()
    (base / "outside" / "precious").write_bytes(b"p" * 7)
    (base / "outside" / "dir").mkdir()
    (base / "outside" / "dir" / "f").write_bytes(b"d" * 3)
    (base / "root2" / "f").write_bytes(b"s")
    return base


def roots(base: Path) -> list[str]:
    return [str(base / "root")]


def refused(path: str, declared: list[str]) -> FileCheck:
    """Asserts that `path` is OUTSIDE_ROOTS and that delete refuses it; returns the check."""
    check = FILES.inspect(path, declared)
    assert check.state is FileState.OUTSIDE_ROOTS, check
    assert check.size == 0 and check.reason
    with pytest.raises(OutsideRootsError):
        FILES.delete(path, declared)
    return check


def test_a_file_inside_the_root_is_inspected_and_deleted(base: Path) -> None:
    path = base / "root" / "t1" / "ckpt-10"
    path.parent.mkdir()
    path.write_bytes(b"x" * 10)
    assert FILES.inspect(str(path), roots(base)) == FileCheck(str(path), FileState.PRESENT, str(path), 10)
    assert FILES.delete(str(path), roots(base)) == 10
    assert not path.exists() and path.parent.is_dir()


def test_a_missing_path_is_missing_and_deleting_it_again_is_harmless(base: Path) -> None:
    path = str(base / "root" / "t1" / "gone")
    assert FILES.inspect(path, roots(base)) == FileCheck(path, FileState.MISSING, path, 0)
    assert FILES.delete(path, roots(base)) == 0
    assert FILES.delete(path, roots(base)) == 0


def test_a_directory_counts_its_files_and_links_and_is_removed_whole(base: Path) -> None:
    top = base / "root" / "t1"
    (top / "a" / "b").mkdir(parents=True)
    (top / "f").write_bytes(b"1" * 3)
    (top / "a" / "g").write_bytes(b"2" * 5)
    (top / "a" / "b" / "h").write_bytes(b"3" * 7)
    (top / "a" / "out").symlink_to(base / "outside")  # counted as a link (its own size), not followed
    link_size = os.lstat(top / "a" / "out").st_size
    check = FILES.inspect(str(top), roots(base))
    assert (check.state, check.size) == (FileState.PRESENT, 15 + link_size)
    assert FILES.delete(str(top), roots(base)) == 15 + link_size
    assert not top.exists()
    assert (base / "outside" / "precious").read_bytes() == b"p" * 7
    assert (base / "outside" / "dir" / "f").exists()


def test_dotdot_escaping_the_root_is_refused(base: Path) -> None:
    refused(f"{base}/root/../outside/precious", roots(base))
    refused(f"{base}/root/../outside/dir", roots(base))
    refused(f"{base}/root/a/../../root2/f", roots(base))
    assert (base / "outside" / "precious").exists() and (base / "outside" / "dir" / "f").exists()


def test_dotdot_that_stays_inside_is_allowed(base: Path) -> None:
    (base / "root" / "a").mkdir()
    (base / "root" / "b").write_bytes(b"bb")
    assert FILES.delete(f"{base}/root/a/../b", roots(base)) == 2
    assert not (base / "root" / "b").exists()


def test_a_file_symlink_pointing_out_is_refused(base: Path) -> None:
    link = base / "root" / "link"
    link.symlink_to(base / "outside" / "precious")
    check = refused(str(link), roots(base))
    assert check.resolved == str(base / "outside" / "precious")
    assert "outside every checkpoint root" in check.reason
    assert link.is_symlink() and (base / "outside" / "precious").exists()


def test_a_directory_symlink_pointing_out_is_refused_and_so_is_anything_through_it(base: Path) -> None:
    link = base / "root" / "dlink"
    link.symlink_to(base / "outside" / "dir", target_is_directory=True)
    refused(str(link), roots(base))
    refused(str(link / "f"), roots(base))
    refused(str(link) + "/", roots(base))
    assert (base / "outside" / "dir" / "f").exists()


def test_a_symlinked_parent_directory_cannot_lead_the_delete_out(base: Path) -> None:
    """`root/sub -> outside`, and `outside/back -> root/x`: `root/sub/back` resolves inside the
    root, but the entry a delete would remove is `outside/back`."""
    (base / "root" / "x").write_bytes(b"x")
    (base / "root" / "sub").symlink_to(base / "outside", target_is_directory=True)
    (base / "outside" / "back").symlink_to(base / "root" / "x")
    check = refused(str(base / "root" / "sub" / "back"), roots(base))
    assert check.resolved == str(base / "root" / "x")
    assert "lies in" in check.reason
    assert (base / "outside" / "back").is_symlink() and (base / "root" / "x").exists()


def test_absolute_paths_elsewhere_and_sibling_prefixes_are_refused(base: Path) -> None:
    refused(str(base / "outside" / "precious"), roots(base))
    refused(str(base / "root2" / "f"), roots(base))
    refused(str(base / "root2"), roots(base))
    refused("/etc/passwd", roots(base))
    refused(str(base), roots(base))
    assert (base / "root2" / "f").exists()


@pytest.mark.parametrize("suffix", ["", "/", "/.", "//", "/x/..", "/../root"])
def test_the_root_itself_is_refused(base: Path, suffix: str) -> None:
    (base / "root" / "x").mkdir()
    (base / "root" / "x" / "f").write_bytes(b"f")
    refused(f"{base}/root{suffix}", roots(base))
    assert (base / "root" / "x" / "f").exists()


def test_a_link_to_the_root_is_refused(base: Path) -> None:
    (base / "root" / "self").symlink_to(base / "root", target_is_directory=True)
    refused(str(base / "root" / "self"), roots(base))


def test_relative_paths_are_refused_even_when_the_working_directory_would_match(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (base / "root" / "f").write_bytes(b"f")
    monkeypatch.chdir(base)
    refused("root/f", roots(base))
    monkeypatch.chdir(base / "root")
    refused("f", roots(base))
    refused("./f", roots(base))
    refused("", roots(base))
    assert (base / "root" / "f").exists()


def test_control_characters_are_refused(base: Path) -> None:
    refused(f"{base}/root/f\x00", roots(base))
    refused(f"{base}/root/f\n", roots(base))


def test_a_symlink_inside_the_root_is_deleted_as_a_link(base: Path) -> None:
    target = base / "root" / "best"
    target.mkdir()
    (target / "weights").write_bytes(b"w" * 100)
    link = base / "root" / "latest"
    link.symlink_to(target, target_is_directory=True)
    check = FILES.inspect(str(link), roots(base))
    assert check.state is FileState.PRESENT and check.resolved == str(target)
    assert check.size == os.lstat(link).st_size
    assert FILES.delete(str(link), roots(base)) == check.size
    assert not os.path.lexists(link)
    assert (target / "weights").read_bytes() == b"w" * 100


def test_file_uris_are_local_paths_and_other_schemes_are_refused(base: Path) -> None:
    path = base / "root" / "f"
    path.write_bytes(b"abc")
    assert FILES.inspect(f"file://{path}", [f"file://{base}/root"]).state is FileState.PRESENT
    assert FILES.delete(f"file://{path}", roots(base)) == 3
    assert not path.exists()
    check = refused("s3://bucket/prefix/t1", ["s3://bucket/prefix"])
    assert check.reason == "only local paths can be collected by LocalFiles"
    refused(f"file://otherhost{path}", roots(base))


def test_no_roots_or_unusable_roots_mean_nothing_is_inside(base: Path) -> None:
    (base / "root" / "f").write_bytes(b"f")
    path = str(base / "root" / "f")
    refused(path, [])
    refused(path, ["root", "s3://bucket/root", "/"])
    (base / "slash").symlink_to("/")
    refused(path, [str(base / "slash")])  # a root that resolves to / contains nothing
    assert (base / "root" / "f").exists()


def test_a_root_that_is_a_symlink_is_resolved(base: Path) -> None:
    (base / "rootlink").symlink_to(base / "root", target_is_directory=True)
    (base / "root" / "f").write_bytes(b"ff")
    (base / "root" / "g").write_bytes(b"g")
    declared = [str(base / "rootlink")]
    assert FILES.inspect(str(base / "rootlink" / "f"), declared).resolved == str(base / "root" / "f")
    assert FILES.delete(str(base / "rootlink" / "f"), declared) == 2
    assert FILES.delete(str(base / "root" / "g"), declared) == 1
    refused(str(base / "rootlink"), declared)


def test_delete_checks_again_instead_of_trusting_inspect(base: Path) -> None:
    path = base / "root" / "f"
    path.write_bytes(b"f")
    assert FILES.inspect(str(path), roots(base)).state is FileState.PRESENT
    path.unlink()
    path.symlink_to(base / "outside" / "precious")
    with pytest.raises(OutsideRootsError, match="refusing to delete"):
        FILES.delete(str(path), roots(base))
    assert (base / "outside" / "precious").exists()


def test_a_path_below_a_file_or_through_a_symlink_loop_is_missing(base: Path) -> None:
    (base / "root" / "f").write_bytes(b"f")
    (base / "root" / "loop").symlink_to(base / "root" / "loop")
    assert FILES.inspect(str(base / "root" / "f" / "x"), roots(base)).state is FileState.MISSING
    assert FILES.inspect(str(base / "root" / "loop" / "x"), roots(base)).state is FileState.MISSING
    assert FILES.delete(str(base / "root" / "loop" / "x"), roots(base)) == 0


# A random tree under base/{root,outside,root2} with random symlinks in every direction, then a
# delete of a random path: nothing outside the root may change.

AREAS = ("root", "outside", "root2")
NAMES = st.sampled_from(["a", "b"])  # few names, so that links and paths often meet
LINK_TARGETS = st.one_of(
    st.tuples(st.sampled_from(AREAS), st.lists(NAMES, max_size=2)).map(lambda t: ("abs", "/".join((t[0], *t[1])))),
    st.sampled_from([("raw", ".."), ("raw", "../.."), ("raw", "../outside"), ("raw", "a"), ("raw", "/"),
                     ("raw", "../../outside/a"), ("base", "")]),
)
ENTRY = st.tuples(
    st.sampled_from(("root", "root", "outside", "root2")),
    st.lists(NAMES, min_size=1, max_size=3),
    st.sampled_from(["file", "dir", "link", "link"]),
    LINK_TARGETS,
)
PARTS = st.sampled_from(["a", "b", "c", "..", ".", ""])


def build(base: Path, entries: list[tuple[str, list[str], str, tuple[str, str]]]) -> None:
    for area in AREAS:
        (base / area).mkdir()
    (base / "outside" / "keep").write_bytes(b"keep")
    for area, parts, kind, (target_kind, target) in entries:
        path = base.joinpath(area, *parts)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)  # may go through a symlink: still before the snapshot
            if kind == "file":
                path.write_bytes(("/".join(parts)).encode())
            elif kind == "dir":
                path.mkdir()
            elif target_kind == "abs":
                path.symlink_to(base / target)
            elif target_kind == "base":
                path.symlink_to(base)
            else:
                path.symlink_to(target)
        except OSError:
            continue


def snapshot(base: Path, skip: Path) -> dict[str, tuple[str, bytes | str]]:
    """Every entry under `base` except those inside `skip`: its kind and content or link target."""
    seen: dict[str, tuple[str, bytes | str]] = {}
    pending = [base]
    while pending:
        for entry in os.scandir(pending.pop()):
            path = Path(entry.path)
            if path.parent == skip or skip in path.parents:
                continue
            name = str(path.relative_to(base))
            if entry.is_symlink():
                seen[name] = ("link", os.readlink(path))
            elif entry.is_dir(follow_symlinks=False):
                seen[name] = ("dir", "")
                pending.append(path)
            else:
                seen[name] = ("file", path.read_bytes())
    return seen


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    entries=st.lists(ENTRY, max_size=12),
    data=st.data(),
    form=st.sampled_from(["plain", "file-uri", "trailing-slash", "root-link"]),
)
def test_deleting_any_path_changes_nothing_outside_the_root(
    entries: list[tuple[str, list[str], str, tuple[str, str]]], data: st.DataObject, form: str
) -> None:
    # Mostly a path that was built (a file, a directory or a link), sometimes with more parts.
    if entries and data.draw(st.integers(0, 3), label="built") > 0:
        area, parts = entries[data.draw(st.integers(0, len(entries) - 1), label="entry")][:2]
        parts = parts + data.draw(st.lists(st.one_of(NAMES, PARTS), max_size=2), label="more")
    else:
        area, parts = data.draw(st.sampled_from(AREAS), label="area"), data.draw(st.lists(PARTS, max_size=4))
    with tempfile.TemporaryDirectory() as temporary:
        base = Path(os.path.realpath(temporary))
        build(base, entries)
        declared = [str(base / "root")]
        path = "/".join((str(base), area, *parts))
        if form == "file-uri":
            path = "file://" + path
        elif form == "trailing-slash":
            path += "/"
        elif form == "root-link":
            (base / "rootlink").symlink_to(base / "root", target_is_directory=True)
            declared = [str(base / "rootlink")]
            if area == "root":
                path = "/".join((str(base), "rootlink", *parts))
        before = snapshot(base, base / "root")
        real = os.path.realpath(path.removeprefix("file://"))
        check = FILES.inspect(path, declared)
        try:
            freed = FILES.delete(path, declared)
        except OutsideRootsError:
            assert check.state is FileState.OUTSIDE_ROOTS
        else:
            assert check.state is not FileState.OUTSIDE_ROOTS
            assert freed == check.size
            assert real.startswith(f"{base}/root/")  # a link pointing out is refused, even though harmless
        assert snapshot(base, base / "root") == before
        assert (base / "root").is_dir() and not (base / "root").is_symlink()
