"""The end-of-run leak scan (tests/conftest.py) holds in a parallel run: what a ``sessionctl``
subprocess prints in one xdist process fails the whole run, reported by the controller.

An inner pytest run (pytester) with two processes uses this suite's own hooks; one of its tests
runs a real ``sessionctl`` command that echoes an e-mail address in its error message."""

from __future__ import annotations

import pytest

from streams.devkit.paths import REPO

pytestmark = pytest.mark.integration

CONFTEST = "from tests.conftest import pytest_configure, pytest_sessionfinish, pytest_testnodedown  # noqa: F401\n"
RUNS_SESSIONCTL = """
from tests.support.cli import sessionctl

def test_a_tool_refuses_a_bad_option():
    sessionctl("export", "--from", {value!r}, "--to", "2026-01-01T00:00:00Z", "-o", "out.jsonl", expect=2)
"""
QUIET = """
def test_nothing_spawned():
    assert True
"""


def inner_run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, value: str) -> pytest.RunResult:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_tool=RUNS_SESSIONCTL.format(value=value), test_quiet=QUIET)
    return pytester.runpytest_subprocess("-p", "xdist", "-n", "2", "--dist", "loadfile", "-p", "no:cacheprovider")


def test_an_email_printed_by_sessionctl_in_a_parallel_process_fails_the_run(pytester, monkeypatch):
    result = inner_run(pytester, monkeypatch, "planted.shopper@example.com")
    result.assert_outcomes(passed=2)  # every test passed: the leak alone fails the run
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*leaked what must never be logged*", "*e-mail address*planted*"])


def test_the_same_run_without_an_email_passes(pytester, monkeypatch):
    result = inner_run(pytester, monkeypatch, "yesterday")
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.OK
