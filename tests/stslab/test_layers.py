"""The floors of the house: the harness core reads the meter declaration, not the simulator."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module",
    ["stslab.campaign", "stslab.session", "stslab.factory", "stslab.record", "dut.profile"],
)
def test_harness_modules_do_not_import_simlab(module: str) -> None:
    code = (
        f"import sys, {module}; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'simlab'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"{module} imports {out.stdout.strip()}"


def test_the_declaration_and_the_protocol_import_nothing_above_them() -> None:
    code = (
        "import sys, dut.profile, dut.card, sts.meter; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'simlab', 'stslab', 'instruments', 'fixtures', 'reports'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
