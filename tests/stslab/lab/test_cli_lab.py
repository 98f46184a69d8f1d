"""``stslab lab`` and ``certify --place/--reserve`` on bad input: one clear line, exit 2,
nothing started or acquired; ``lab export --print`` without a coordinator."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

from stslab.cli import main
from tests.stslab.lab.test_place import bench_text


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def test_export_print_shows_the_exporter_configuration(tmp_path: Path, capsys) -> None:
    (tmp_path / "map.yaml").write_text("segments: {}\n")
    bench = tmp_path / "bench.yaml"
    bench.write_text(bench_text())
    code = main(["lab", "export", str(bench), "--name", "bench-a", "--hostname", "lab-pc-1",
                 "--print"])  # fmt: skip
    assert code == 0
    group = yaml.safe_load(capsys.readouterr().out)["bench-a"]
    assert group["keypad"]["cls"] == "RawSerialPort"
    assert group["analyzer"]["url"] == "lab-pc-1::5025::SOCKET"


def test_export_of_a_bad_bench_file_names_file_line_and_key(tmp_path: Path, capsys) -> None:
    bench = tmp_path / "bench.yaml"
    bench.write_text(bench_text().replace("driver: kpr1", "driver: nosuch"))
    assert main(["lab", "export", str(bench), "--print"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert f"{bench}:" in err and "instruments.keypad.driver" in err


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--reserve", "room"], "--reserve: 'room' is not KEY=VALUE"),
        (["--place", "a", "--reserve", "room=2"], "give --place or --reserve, not both"),
        (["--place", "a", "--bench", "sim"], "takes its bench from the place"),
        (["--place", "a", "--benches", "2"], "--benches: --place names one bench"),
        (["--reserve", "room=2", "--benches", "0"], "--benches: must be at least 1"),
    ],
)
def test_certify_on_a_place_refuses_bad_options(args, said, tmp_path: Path, capsys) -> None:
    assert main(["certify", "--out", str(tmp_path), *args]) == 2
    assert said in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # no run folder


def test_an_unreachable_coordinator_is_one_line(tmp_path: Path, capsys) -> None:
    pytest.importorskip("labgrid", reason="labgrid is not installed (pip install 'stslab[lab]')")
    address = closed_port()
    assert main(["lab", "status", "--coordinator", address]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [f"stslab: error: --coordinator: coordinator {address}: cannot "
                                "connect (is labgrid-coordinator running there?)"]  # fmt: skip
    assert main(["certify", "--place", "a", "--coordinator", address, "--out",
                 str(tmp_path)]) == 2  # fmt: skip
    assert f"--place: coordinator {address}: cannot connect" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
