"""``stslab lab`` and ``certify --place/--reserve`` on bad input: one clear line, exit 2,
nothing started or acquired; ``lab export --print`` without a coordinator."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from stslab.cli import app
from tests.stslab.lab.test_place import bench_text

runner = CliRunner()


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def test_export_print_shows_the_exporter_configuration(tmp_path: Path) -> None:
    (tmp_path / "map.yaml").write_text("segments: {}\n")
    bench = tmp_path / "bench.yaml"
    bench.write_text(bench_text())
    result = runner.invoke(app, ["lab", "export", str(bench), "--name", "bench-a", "--hostname",
                                 "lab-pc-1", "--print"])  # fmt: skip
    assert result.exit_code == 0, result.output
    group = yaml.safe_load(result.output)["bench-a"]
    assert group["keypad"]["cls"] == "RawSerialPort"
    assert group["analyzer"]["url"] == "lab-pc-1::5025::SOCKET"


def test_export_of_a_bad_bench_file_names_file_line_and_key(tmp_path: Path) -> None:
    bench = tmp_path / "bench.yaml"
    bench.write_text(bench_text().replace("driver: kpr1", "driver: nosuch"))
    result = runner.invoke(app, ["lab", "export", str(bench), "--print"])
    assert result.exit_code == 2
    assert f"{bench}:" in result.output and "instruments.keypad.driver" in result.output


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--reserve", "room"], "'room' is not KEY=VALUE"),
        (["--place", "a", "--reserve", "room=2"], "give --place or --reserve, not both"),
        (["--place", "a", "--bench", "sim"], "takes its bench from the place"),
    ],
)
def test_certify_on_a_place_refuses_bad_options(args: list[str], said: str, tmp_path) -> None:
    result = runner.invoke(app, ["certify", "--out", str(tmp_path), *args])
    assert result.exit_code == 2
    assert said in result.output
    assert not any(tmp_path.iterdir())  # no run folder


def test_an_unreachable_coordinator_is_one_line(tmp_path: Path) -> None:
    pytest.importorskip("labgrid", reason="labgrid is not installed (pip install 'stslab[lab]')")
    address = closed_port()
    result = runner.invoke(app, ["lab", "status", "--coordinator", address])
    assert result.exit_code == 2
    assert f"coordinator {address}" in result.output
    result = runner.invoke(app, ["certify", "--place", "a", "--coordinator", address, "--out",
                                 str(tmp_path)])  # fmt: skip
    assert result.exit_code == 2
    assert f"--place: coordinator {address}" in result.output
    assert not any(tmp_path.iterdir())
