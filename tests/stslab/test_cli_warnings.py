"""Normal use of the command line prints no warnings of the libraries underneath (the report
commands are checked with the reports, in ``tests/reports/test_cli_report.py``)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["certify", "--help"],
        ["report", "--help"],
        ["token", "generate", "--class", "1", "--subclass", "0", "--control", "FFFFFFFFF",
         "--mfr-code", "0"],
        ["token", "decode", "29054347139309851356", "--dk", "0ABC12DEF3456789"],
        ["sim", "--list-defects"],
    ],
)  # fmt: skip
def test_a_command_prints_no_library_warnings(args: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    done = subprocess.run([sys.executable, "-W", "default", "-m", "stslab", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert done.stdout
