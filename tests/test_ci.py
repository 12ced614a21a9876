"""tests/ci.py: under CI=true a skip is a failure, unless the test allows it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

SAMPLE = """
import pytest

def test_skips():
    pytest.skip("a file is missing")

@pytest.mark.allow_skip_in_ci("needs a GPU")
def test_allowed():
    pytest.skip("no GPU")

@pytest.mark.xfail(reason="known")
def test_expected_failure():
    assert False
"""


def run(tmp_path: Path, ci: str) -> str:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {**os.environ, "CI": ci}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:django",
         "-p", "tests.ci", "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path)],
        cwd=Path(__file__).resolve().parent.parent, env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("ci", "summary"),
    [("true", "1 failed, 1 skipped, 1 xfailed"), ("", "2 skipped, 1 xfailed")],
)
def test_a_skip_fails_under_ci_unless_allowed(tmp_path: Path, ci: str, summary: str) -> None:
    assert run(tmp_path, ci).startswith(summary)
