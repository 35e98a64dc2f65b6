"""Checkpoint roots: normalisation, rejections, and "strictly inside a root" against a reference
that resolves components with a stack."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pbt_service.core.checkpoint_paths import (
    MAX_LENGTH,
    MAX_ROOTS,
    is_under_roots,
    normalize_root,
    normalize_roots,
    require_under_roots,
)
from pbt_service.core.errors import InvalidArgumentError

# Names chosen so that sibling prefixes ("ckpt" / "ckpt2" / "ckp"), dots and empty components
# (duplicate slashes) come up often.
COMPONENTS = st.sampled_from(["data", "ckpt", "ckpt2", "ckp", "a", "b", ".", "..", "", "...", ".x"])


def reference(path: str) -> tuple[str, ...] | None:
    """The components of an absolute path after resolving `.`, `..` and empty parts; None when the
    path is relative, climbs above / or is / itself."""
    if not path.startswith("/"):
        return None
    stack: list[str] = []
    for part in path.split("/"):
        if part == "..":
            if not stack:
                return None
            stack.pop()
        elif part not in ("", "."):
            stack.append(part)
    return tuple(stack) or None


@st.composite
def paths(draw: st.DrawFn) -> str:
    parts = draw(st.lists(COMPONENTS, max_size=8))
    lead = draw(st.sampled_from(["/", "//", "///", ""]))
    tail = draw(st.sampled_from(["", "/", "//"]))
    return lead + "/".join(parts) + (tail if parts else "")


def under_reference(path: str, root: str) -> bool:
    p, r = reference(path), reference(root)
    return p is not None and r is not None and len(p) > len(r) and p[: len(r)] == r


@given(paths(), paths())
@example("/data/ckpt2/x", "/data/ckpt")
@example("/data/ckpt/../ckpt2/x", "/data/ckpt")
@example("//data/ckpt/x", "/data/ckpt")
@example("/data/ckpt", "/data/ckpt")
@example("data/ckpt/x", "/data")
def test_is_under_roots_agrees_with_a_stack_reference(path: str, root: str) -> None:
    assert is_under_roots(path, [root]) == under_reference(path, root)
    # The same through a file:// URI, on either side.
    assert is_under_roots("file://" + path, [root]) == (path.startswith("/") and under_reference(path, root))
    assert is_under_roots(path, ["file://" + root]) == (root.startswith("/") and under_reference(path, root))


@given(paths(), st.lists(paths(), max_size=4))
def test_nothing_outside_every_root_is_accepted(path: str, roots: list[str]) -> None:
    accepted = is_under_roots(path, roots)
    assert accepted == any(under_reference(path, root) for root in roots)
    if accepted:
        resolved = reference(path)
        assert resolved is not None
        assert any(
            (r := reference(root)) is not None and resolved[: len(r)] == r and resolved != r for root in roots
        )


@given(paths())
def test_normalisation_matches_the_reference_and_is_idempotent(path: str) -> None:
    expected = reference(path)
    if expected is None:
        with pytest.raises(InvalidArgumentError):
            normalize_root(path, "root")
        return
    normal = normalize_root(path, "root")
    assert normal == "/" + "/".join(expected)
    assert normalize_root(normal, "root") == normal
    assert normalize_root("file://" + path, "root") == normal
    assert "//" not in normal and not normal.endswith("/")


@pytest.mark.parametrize(
    ("root", "expected"),
    [
        ("/data/ckpt", "/data/ckpt"),
        ("/data//ckpt/", "/data/ckpt"),
        ("/data/x/../ckpt", "/data/ckpt"),
        ("//data/ckpt", "/data/ckpt"),
        ("/data/./ckpt/.", "/data/ckpt"),
        ("file:///data/ckpt", "/data/ckpt"),
        ("file://localhost/data/ckpt/", "/data/ckpt"),
        ("FILE:///data/ckpt", "/data/ckpt"),
        ("s3://bucket/prefix", "s3://bucket/prefix"),
        ("s3://bucket/prefix/", "s3://bucket/prefix"),
        ("S3://bucket/a/b", "s3://bucket/a/b"),
        ("gs://bucket/pbt runs/ckpt", "gs://bucket/pbt runs/ckpt"),
    ],
)
def test_normalize_root(root: str, expected: str) -> None:
    assert normalize_root(root, "checkpoints.roots[0]") == expected


@pytest.mark.parametrize(
    ("root", "why"),
    [
        ("", "is empty"),
        ("data/ckpt", "is relative"),
        ("./ckpt", "is relative"),
        ("~/ckpt", "is relative"),
        ("C:\\ckpt", "is relative"),
        ("/", "file-system root"),
        ("//", "file-system root"),
        ("/data/..", "file-system root"),
        ("/..", "above /"),
        ("/data/../../etc", "above /"),
        ("/data/ckpt\x00/x", "control character"),
        ("/data/ckpt\n", "control character"),
        ("/data/\x7fckpt", "control character"),
        ("/data/\x85ckpt", "control character"),
        ("file:///", "file-system root"),
        ("file://", "has no path"),
        ("file://otherhost/data", "another host"),
        ("file:///data/my%20ckpt", "percent-encoded"),
        ("s3://bucket", "whole bucket"),
        ("s3://bucket/", "whole bucket"),
        ("s3:///prefix", "no authority"),
        ("s3://bucket/a/../b", "segment"),
        ("s3://bucket/a//b", "segment"),
        ("s3://bucket/./a", "segment"),
        ("/" + "a" * MAX_LENGTH, f"longer than {MAX_LENGTH}"),
    ],
)
def test_normalize_root_rejects(root: str, why: str) -> None:
    with pytest.raises(InvalidArgumentError, match="checkpoints.roots\\[3\\]") as raised:
        normalize_root(root, "checkpoints.roots[3]")
    assert why in str(raised.value)


def test_a_long_value_is_quoted_as_a_short_prefix() -> None:
    value = "relative/" + "x" * 5000
    with pytest.raises(InvalidArgumentError) as raised:
        normalize_root(value, "root")
    message = str(raised.value)
    assert repr(value[:64] + "…") in message
    assert len(message) < 300


def test_normalize_roots_numbers_fields_drops_duplicates_and_keeps_order() -> None:
    roots = ["/b/ckpt", "/a/ckpt/", "file:///b/ckpt", "s3://x/y", "/a//ckpt"]
    assert normalize_roots(roots) == ("/b/ckpt", "/a/ckpt", "s3://x/y")
    assert normalize_roots([]) == ()
    with pytest.raises(InvalidArgumentError, match=r"checkpoints\.roots\[1\] 'rel'"):
        normalize_roots(["/ok", "rel"])
    with pytest.raises(InvalidArgumentError, match=r"study\.roots\[0\]"):
        normalize_roots(["/"], field="study.roots")


def test_normalize_roots_allows_at_most_sixteen() -> None:
    assert len(normalize_roots([f"/r{i}" for i in range(MAX_ROOTS)])) == MAX_ROOTS
    with pytest.raises(InvalidArgumentError, match="at most 16"):
        normalize_roots([f"/r{i}" for i in range(MAX_ROOTS + 1)])


@pytest.mark.parametrize(
    ("path", "roots", "under"),
    [
        ("/data/ckpt/t1/step-10", ["/data/ckpt"], True),
        ("/data/ckpt", ["/data/ckpt"], False),
        ("/data/ckpt/", ["/data/ckpt"], False),
        ("/data/ckpt/.", ["/data/ckpt"], False),
        ("/data/ckpt2/x", ["/data/ckpt"], False),
        ("/data/ckpt/../ckpt2/x", ["/data/ckpt"], False),
        ("/data/ckpt/../../home/someone", ["/data/ckpt"], False),
        ("/home/someone", ["/data/ckpt"], False),
        ("/data", ["/data/ckpt"], False),
        ("ckpt/x", ["/data/ckpt"], False),
        ("", ["/data/ckpt"], False),
        ("/data/ckpt/x\x00", ["/data/ckpt"], False),
        ("file:///data/ckpt/x", ["/data/ckpt"], True),
        ("/data/ckpt/x", ["file:///data/ckpt"], True),
        ("/home/x", ["/data/ckpt", "/home"], True),
        ("s3://bucket/prefix/t1", ["s3://bucket/prefix"], True),
        ("s3://bucket/prefix2/t1", ["s3://bucket/prefix"], False),
        ("s3://other/prefix/t1", ["s3://bucket/prefix"], False),
        ("gs://bucket/prefix/t1", ["s3://bucket/prefix"], False),
        ("s3://bucket/prefix/../../other/x", ["s3://bucket/prefix"], False),
        ("s3://bucket/other/../prefix/x", ["s3://bucket/prefix"], False),
        ("/bucket/prefix/x", ["s3://bucket/prefix"], False),
        ("/data/ckpt/x", ["relative", "/"], False),
        ("/data/ckpt/x", [], False),
    ],
)
def test_is_under_roots(path: str, roots: list[str], under: bool) -> None:
    assert is_under_roots(path, roots) is under


def test_require_under_roots_names_the_field_the_path_and_the_roots() -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        require_under_roots("/home/someone", ["/data/ckpt"], "measurement.checkpoint_path")
    assert str(raised.value) == (
        "measurement.checkpoint_path '/home/someone' is not under a checkpoint root of the study (/data/ckpt)"
    )
    with pytest.raises(InvalidArgumentError, match=r"\(/a, s3://b/c\): it is relative"):
        require_under_roots("ckpt/1", ["/a", "s3://b/c"], "measurement.checkpoint_path")
    with pytest.raises(InvalidArgumentError, match=r"'/data/ckpt' is not under"):
        require_under_roots("/data/ckpt", ["/data/ckpt"], "measurement.checkpoint_path")


def test_require_under_roots_is_a_no_op_without_roots_or_without_a_checkpoint() -> None:
    require_under_roots("/home/someone", [], "measurement.checkpoint_path")
    require_under_roots("", ["/data/ckpt"], "measurement.checkpoint_path")
    require_under_roots("/data/ckpt/x", ["/data/ckpt"], "measurement.checkpoint_path")
