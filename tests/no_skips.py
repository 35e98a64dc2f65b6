"""A pytest plugin (loaded by tests/conftest.py): a skipped test fails the run.

CI must run every test: PostgreSQL, Chromium, espeak-ng and the rest are installed by the test
command, so a skip means something is missing, and a green run must not hide it.
"""

from __future__ import annotations

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int) -> None:
    """A skipped test is a failed run: CI must run every test (PostgreSQL, Chromium, espeak-ng and
    the rest are installed by the test command), so a skip means something is missing. The
    message names each skipped test and why it skipped."""
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    terminalreporter.section("skipped tests fail the run", sep="=", red=True, bold=True)
    for report in skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        terminalreporter.write_line(f"{report.nodeid}: {reason}")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if exitstatus == pytest.ExitCode.OK and reporter is not None and reporter.stats.get("skipped"):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
