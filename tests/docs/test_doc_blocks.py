"""The docs test's own rules: every markdown file is covered, every block is something it knows how to
treat, few are skipped and each says why, every substitution still matches, and the harness itself
reports a broken block by its file, line and command."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.docs.doc_blocks import (
    CONSOLE,
    ROOT,
    SCHEMA_MARKERS,
    Block,
    all_blocks,
    doc_files,
    problems,
    read_blocks,
    split_comment,
    transcript,
)
from tests.docs.doc_runner import SUBSTITUTIONS, Context, environment, python_bin, run_block, shell_script
from tests.docs.pip_stand_in import check as check_pip
from worker_client.cli import load_study_config
from worker_client.replay import load_plan

MAX_SKIPPED = 23
"""Blocks not run (benchmarks of minutes to an hour, the flood and token-cost benchmarks of docs/security.md
among them; Docker, Kubernetes: the five of docs/deploy.md; the test command itself); keep it small."""
NOT_DOCS = frozenset({".git", ".venv", "runs", "node_modules"})


def test_every_markdown_file_of_the_repository_is_a_tested_doc() -> None:
    found = sorted(
        str(path.relative_to(ROOT)) for path in ROOT.rglob("*.md")
        if not any(part in NOT_DOCS or part.startswith(".") or part.endswith(".egg-info")
                   for part in path.relative_to(ROOT).parts[:-1])
    )
    assert found == doc_files()


def test_every_block_has_a_known_language_and_valid_markers() -> None:
    found = [problem for block in all_blocks() for problem in problems(block)]
    assert not found, "\n".join(found)


def test_few_blocks_are_skipped_and_each_says_why() -> None:
    skipped = [f"{b.where}: {b.skip_reason}" for b in all_blocks() if b.skip_reason is not None]
    print("\n".join(skipped))
    assert len(skipped) <= MAX_SKIPPED, "\n".join(skipped)


def test_every_substitution_still_matches_a_documented_block() -> None:
    texts = {doc: [b.text for b in read_blocks(doc) if b.runs or b.file is not None] for doc in doc_files()}
    stale = [rule.why for rule in SUBSTITUTIONS
             if not any(re.search(rule.pattern, text) for doc in rule.docs or texts for text in texts[doc])]
    assert not stale, f"substitutions that match nothing any more (remove them): {stale}"


def test_a_saved_file_is_used_by_a_later_block_of_its_doc() -> None:
    unused = []
    for doc in doc_files():
        blocks = read_blocks(doc)
        for index, block in enumerate(blocks):
            if block.file is None:
                continue
            names = {block.file, block.file.removesuffix(".py").replace("/", ".")}
            if not any(name in later.text for later in blocks[index + 1:] if later.runs for name in names):
                unused.append(f"{block.where}: {block.file} is run by no later block")
    assert not unused, "\n".join(unused)


def test_json_blocks_load_as_what_they_show(tmp_path: Path) -> None:
    """A study config (as `pbt-worker --create-study` reads it) or a replay plan (as replay loads it)."""
    for block in (b for b in all_blocks() if b.language == "json"):
        path = tmp_path / "block.json"
        path.write_text(block.text)
        if "segments" in json.loads(block.text):
            assert load_plan(path).finals, block.where
        else:
            assert load_study_config(path).objectives, block.where


def test_sql_blocks_carry_the_marker_that_the_schema_test_reads_right_above_the_fence() -> None:
    sql = [b for b in all_blocks() if b.language == "sql"]
    assert sql and all(b.doc == "docs/schema.md" and b.markers[-1].kind in SCHEMA_MARKERS for b in sql)


def fake(language: str, text: str, markers: str = "") -> Block:
    """A block of a made-up doc, at line 3 (markers, then the fence)."""
    doc = f"intro\n\n{markers}```{language}\n{text}```\n"
    return read_blocks("fake.md", doc)[0]


def test_markers_and_untagged_commands_are_read() -> None:
    skipped = fake("bash", "docker compose up\n", "<!-- docs-test: skip: needs a Docker daemon, which CI lacks -->\n")
    assert skipped.skip_reason == "needs a Docker daemon, which CI lacks" and not skipped.runs
    assert problems(fake("bash", "x\n", "<!-- docs-test: skip: slow -->\n"))
    assert problems(fake("", "pbt-results studies\n"))
    assert problems(fake("text", "$ python -m examples.demo\n"))
    assert not problems(fake("text", "usage: pbt-results plan TRIAL_ID\n"))
    assert problems(fake("python", "x = 1\n", "<!-- docs-test: file: mypkg/train.py -->\n")), "prose must say where"


def test_a_transcript_is_commands_with_their_expected_exit_status() -> None:
    block = fake(CONSOLE, "$ pbt-results plan 999\npbt-results: trial 999 not found   (exit 2)\n"
                          "$ pbt-results replay p.json \\\n    --dry-run\nok\n")
    assert [(c.text, c.line, c.exit_code) for c in transcript(block)] == [
        ("pbt-results plan 999", 4, 2), ("pbt-results replay p.json \\\n    --dry-run", 6, 0)]
    assert split_comment("""pbt-worker --evaluator "python e.py # not a comment" -- x  # comment""") == (
        """pbt-worker --evaluator "python e.py # not a comment" -- x""", "# comment")


def test_a_server_line_runs_in_the_background_until_the_block_ends() -> None:
    script = shell_script(fake("bash", "pbt-service serve --port 123   # a comment\npbt-results studies\n"),
                          "pbt-service serve --port 123   # a comment\npbt-results studies\n")
    assert "pbt-service serve --port 123 &  # a comment\n__docs_await $! 123\npbt-results studies" in script.text
    with pytest.raises(ValueError, match="--port"):
        shell_script(fake("bash", "pbt-dashboard --service x\n"), "pbt-dashboard --service x\n")


def test_pip_installs_of_the_project_are_checked_not_run() -> None:
    assert check_pip(["install", "-e", ".[server,examples]"], ROOT) is None
    assert "no extra nope" in str(check_pip(["install", ".[nope]"], ROOT))
    assert "from its clone" in str(check_pip(["install", "pbt-service[dashboard]"], ROOT))


@pytest.mark.parametrize(("language", "text", "where", "shown"), [
    ("bash", "echo fine\npbt-results --no-such-flag studies\necho never\n", "fake.md:5",
     "pbt-results --no-such-flag studies"),
    (CONSOLE, "$ true\n$ pbt-results --help > /dev/null\n(exit 3)\n", "fake.md:5", "$ pbt-results --help"),
    ("python", "import os\n\nos.no_such_function()\n", "fake.md:6", "os.no_such_function()"),
])
def test_a_broken_block_fails_with_its_file_line_command_and_output(
    language: str, text: str, where: str, shown: str, tmp_path: Path
) -> None:
    failure = run_block(fake(language, text), Context(tmp_path, {}), environment(python_bin()))
    assert failure is not None
    message = str(failure)
    assert message.startswith(f"fake.md:3 ({language}) failed: exit ") and f"at {where}\n    {shown}" in message
    assert "--- stderr ---" in message and "--- stdout ---" in message
