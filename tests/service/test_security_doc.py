"""docs/security.md shows the policy table exactly as the server applies it."""

from __future__ import annotations

from pathlib import Path

from pbt_service.auth.policy import POLICY, markdown_table

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def test_the_documented_policy_table_is_the_one_the_server_applies() -> None:
    text = DOC.read_text()
    assert markdown_table() in text
    assert all(f"| `{method}` |" in text for method in POLICY)
