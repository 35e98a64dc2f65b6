"""docs/operations.md's settings table is `SERVE_OPTIONS`, row for row, so it cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

from pbt_service.options import SERVE_OPTIONS

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
HEADER = "| Flag | Variable | Default | Meaning |"
AUTH_TOKEN_ROW = ("(none)", "`PBT_AUTH_TOKEN`", "unset")
"""The one setting that is a variable only (so that the token never shows in `ps`)."""


def table_rows() -> list[tuple[str, ...]]:
    """The cells of the settings table's rows (the lines after its header and rule)."""
    lines = DOC.read_text().splitlines()
    start = lines.index(HEADER) + 2
    rows: list[tuple[str, ...]] = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append(tuple(cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]))
    return rows


def test_the_settings_table_is_serve_options() -> None:
    expected = [(f"`{o.flag}`", f"`{o.variable}`", o.shown_default, o.help) for o in SERVE_OPTIONS]
    rows = table_rows()
    assert rows[:-1] == expected, "regenerate docs/operations.md's settings table from SERVE_OPTIONS"
    assert rows[-1][:3] == AUTH_TOKEN_ROW


def test_every_metric_the_server_serves_is_documented() -> None:
    from pbt_service.observability.metrics import Metrics
    from pbt_service.store.sql_storage import SqlStorage

    storage = SqlStorage.from_url("sqlite://")
    try:
        names = {family.name for family in Metrics(storage).registry.collect()}
    finally:
        storage.close()
    documented = set(re.findall(r"^\| `(pbt_\w+)` \|", DOC.read_text(), re.MULTILINE))
    served = {name + "_total" if name + "_total" in documented else name for name in names}
    assert served == documented
