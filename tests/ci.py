"""The suite's rules for CI (`CI=true`, as every CI service sets it), as pytest hooks that
tests/conftest.py installs. Kept free of Django so that they can be tested on their own
(tests/test_ci.py).

In CI a skipped test is a failure: a test that skips because a file, a tool or a
service is missing proves nothing, and a green run would claim it passed. A test that
really must be able to skip there says so with `@pytest.mark.allow_skip_in_ci(reason)`.
Expected failures (xfail) are not skips and are left alone.
"""

import os
from typing import Any

import pytest

CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}

ALLOW_MARKER = "allow_skip_in_ci"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{ALLOW_MARKER}(reason): this test may skip even when CI is set (say why).",
    )


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr: Any = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def _as_failure(report: pytest.TestReport | pytest.CollectReport) -> None:
    report.outcome = "failed"
    report.longrepr = (
        f"{_skip_reason(report)}\n"
        "This would have been skipped, but CI is set: a test that needs a file, a tool or a "
        "service must find it in CI. Provide it, or mark the test "
        f"@pytest.mark.{ALLOW_MARKER}(reason) if skipping there is really intended."
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report: pytest.TestReport = yield
    if (
        CI
        and report.skipped
        and not hasattr(report, "wasxfail")
        and item.get_closest_marker(ALLOW_MARKER) is None
    ):
        _as_failure(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    """A module that skips itself (pytest.importorskip, pytest.skip(allow_module_level))."""
    report: pytest.CollectReport = yield
    if CI and report.skipped:
        _as_failure(report)
    return report
