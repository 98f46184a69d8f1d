"""The bench file: SimLab's and the hardware example load; every mistake names the file, the
key path and the line; calibration status becomes deviations (and refusals in accredited
mode); ``stslab bench check`` identifies every role and names the one that does not answer."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from simlab.bench import ROLES, SimBench
from stslab.bench import BenchError, CalibrationStatus, load_bench, parse_bench
from stslab.cli import main
from stslab.pack import generate_key, sign_pack
from stslab.session import Campaign, CampaignConfig, CampaignError, InputError, check_inputs
from tests.stslab.test_pack import NOT_APPLICABLE_SCENARIO, write_pack

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "bench-hardware.yaml"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimBench]:
    with SimBench(speed=1.0) as bench:
        yield bench


def sim_bench_file(sim: SimBench, path: Path, **changes: dict[str, Any]) -> Path:
    """SimLab's bench file with per-role entry changes (None removes a key)."""
    doc = sim.bench_document()
    for role, change in changes.items():
        entry = doc["instruments"][role]
        for key, value in change.items():
            if value is None:
                entry.pop(key, None)
            else:
                entry[key] = value
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# --- loading --------------------------------------------------------------------------------


def test_simlabs_bench_file_loads(sim: SimBench, tmp_path: Path) -> None:
    path = sim.write_bench_file(tmp_path / "bench.yaml", "meter.yaml")
    bench = load_bench(path)
    assert bench.simulated is True
    assert bench.clock_speed == 1.0
    assert bench.dut_profile == "meter.yaml"
    assert tuple(bench.instruments) == ROLES
    assert bench.source_file == str(path)
    assert bench.instruments["analyzer"].read_termination == "\n"
    assert bench.deviations(date.today()) == []


def test_the_hardware_example_loads() -> None:
    bench = load_bench(EXAMPLE)
    assert (bench.name, bench.simulated) == ("sts-bench-2", False)
    assert set(bench.instruments) == set(ROLES)
    analyzer = bench.instruments["analyzer"]
    assert (analyzer.driver, analyzer.options) == ("wt300", {"element": 1})
    assert analyzer.calibration.certificate == "CAL-2026-1187"
    assert bench.instruments["display"].options["segment_map"] == "maps/sl100-camera2.yaml"


EXAMPLE_TEXT = EXAMPLE.read_text()
KEYPAD_TIMEOUT = "    timeout_s: 10\n"  # the keypad entry's timeout line


def _line(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


@pytest.mark.parametrize(
    ("case", "text", "where", "says"),
    [
        (
            "unknown key",
            EXAMPLE_TEXT.replace(KEYPAD_TIMEOUT, KEYPAD_TIMEOUT + "    baud: 9600\n", 1),
            ("instruments.keypad.baud", "baud: 9600"),
            "unknown key",
        ),
        (
            "missing key",
            EXAMPLE_TEXT.replace(
                "    address: /dev/serial/by-id/usb-Optical_Probe_IEC62056-21_OP-7731-if00-port0\n",
                "",
            ),
            ("instruments.port.address", "  port:"),
            "Field required",
        ),
        (
            "wrong type",
            EXAMPLE_TEXT.replace(KEYPAD_TIMEOUT, "    timeout_s: fast\n", 1),
            ("instruments.keypad.timeout_s", "timeout_s: fast"),
            "valid number",
        ),
        (
            "unknown driver",
            EXAMPLE_TEXT.replace("driver: kpr1", "driver: kpr9"),
            ("instruments.keypad.driver", "driver: kpr9"),
            "unknown driver 'kpr9'",
        ),
        (
            "calibration due before its date",
            EXAMPLE_TEXT.replace("due: 2027-02-02", "due: 2025-02-02"),
            ("instruments.keypad.calibration", 'calibration: {certificate: "KPR'),
            "due is before the calibration date",
        ),
        (
            "driver in the wrong role",
            EXAMPLE_TEXT.replace("driver: kpr1", "driver: wt300"),
            ("instruments.keypad.driver", "driver: wt300"),
            "analyzer",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 40 else "",
)
def test_a_mistake_names_file_key_and_line(
    tmp_path: Path, case: str, text: str, where: tuple[str, str], says: str
) -> None:
    key, needle = where
    path = tmp_path / "bench.yaml"
    path.write_text(text)
    with pytest.raises(BenchError) as info:
        load_bench(path)
    message = str(info.value)
    assert f"{path}:{_line(text, needle)}: {key}: " in message, message
    assert says in message, message


def test_an_unknown_role_is_named(tmp_path: Path) -> None:
    text = EXAMPLE_TEXT.replace("  keypad:\n", "  robot:\n")
    with pytest.raises(BenchError, match=r"b\.yaml:8: instruments\.robot"):
        parse_bench(text, "b.yaml")


def test_a_missing_bench_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match=r"absent\.yaml: cannot read bench file"):
        load_bench(tmp_path / "absent.yaml")


# --- calibration ----------------------------------------------------------------------------


def test_calibration_status_of_each_instrument() -> None:
    bench = load_bench(EXAMPLE)
    today = date(2026, 6, 1)
    status = {role: inst.calibration_status(today, role) for role, inst in
              bench.instruments.items()}  # fmt: skip
    assert status["presenter"] is CalibrationStatus.NOT_REQUIRED
    assert {s for r, s in status.items() if r != "presenter"} == {CalibrationStatus.VALID}
    assert bench.deviations(today) == []


def test_overdue_calibrations_are_deviations() -> None:
    bench = load_bench(EXAMPLE)
    later = date(2027, 2, 10)  # after port, card and keypad were due, before the rest
    assert bench.deviations(later) == [
        "keypad: calibration KPR-FUNC-2026-0042 was due 2027-02-02",
        "port: calibration OPT-2026-7731 was due 2027-01-15",
        "card: calibration MSR-2026-0007 was due 2027-01-20",
    ]
    assert bench.instruments["keypad"].calibration_status(later, "keypad") is (
        CalibrationStatus.OVERDUE
    )


def test_a_missing_calibration_record_is_a_deviation(sim: SimBench, tmp_path: Path) -> None:
    path = sim_bench_file(sim, tmp_path / "bench.yaml", analyzer={"calibration": None})
    bench = load_bench(path)
    assert bench.instruments["analyzer"].calibration_status(date.today(), "analyzer") is (
        CalibrationStatus.MISSING
    )
    assert bench.deviations(date.today()) == ["analyzer: no calibration record"]


OVERDUE = {"certificate": "CAL-OLD-1", "date": "2019-01-01", "due": "2020-01-01",
           "uncertainty": {"energy": "0.1 %", "time": "5 ms"}}  # fmt: skip


def test_a_campaign_records_an_overdue_instrument(sim: SimBench, tmp_path: Path) -> None:
    bench = sim_bench_file(sim, tmp_path / "bench.yaml", analyzer={"calibration": OVERDUE})
    pack = write_pack(tmp_path / "pack", {"a.yaml": NOT_APPLICABLE_SCENARIO})
    config = CampaignConfig(bench=str(bench), out=tmp_path / "runs", pack=pack,
                            ledger_dir=tmp_path / "ledger")  # fmt: skip
    with Campaign(config) as campaign:
        for scenario in campaign.pending():
            campaign.run_scenario(scenario)
        record = campaign.finish()
    assert "instrument analyzer: calibration CAL-OLD-1 was due 2020-01-01" in record["deviations"]
    analyzer = record["bench"]["instruments"]["analyzer"]
    assert analyzer["calibration_status"] == "overdue"
    assert analyzer["identity"].startswith("YOKOGAWA")


def _accredited_config(bench: Path, tmp_path: Path) -> CampaignConfig:
    """An accredited campaign on ``bench`` (claimed real) with a signed pack and its key."""
    doc = yaml.safe_load(bench.read_text())
    doc["simulated"] = False
    bench.write_text(yaml.safe_dump(doc, sort_keys=False))
    private, public = generate_key()
    pack = write_pack(tmp_path / "pack", {"a.yaml": NOT_APPLICABLE_SCENARIO})
    sign_pack(pack, private)
    key = tmp_path / "owner.pub.pem"
    key.write_text(public)
    return CampaignConfig(bench=str(bench), out=tmp_path / "runs", pack=pack,
                          mode="accredited", pack_keys=(key,),
                          ledger_dir=tmp_path / "ledger")  # fmt: skip


def test_accredited_mode_refuses_an_overdue_instrument(sim: SimBench, tmp_path: Path) -> None:
    # A bench file that claims real instruments, so the calibration rule is what refuses.
    bench = sim_bench_file(sim, tmp_path / "bench.yaml", analyzer={"calibration": OVERDUE})
    campaign = Campaign(_accredited_config(bench, tmp_path))
    with pytest.raises(CampaignError) as info:
        campaign.open()
    campaign.close()
    assert str(info.value) == (
        "accredited mode refuses: analyzer: calibration CAL-OLD-1 was due 2020-01-01"
    )


def test_accredited_mode_refuses_an_instrument_without_its_uncertainty(
    sim: SimBench, tmp_path: Path
) -> None:
    doc = sim.bench_document()
    partial = {**doc["instruments"]["analyzer"]["calibration"], "uncertainty": {"energy": "0.1 %"}}
    bench = sim_bench_file(sim, tmp_path / "bench.yaml", analyzer={"calibration": partial})
    config = _accredited_config(bench, tmp_path)
    with pytest.raises(InputError) as info:
        check_inputs(config)
    message = str(info.value)
    text = bench.read_text()
    at = text.index("uncertainty:", text.index("  analyzer:"))
    line = text[:at].count("\n") + 1
    assert message == (
        f"{bench}:{line}: instruments.analyzer.calibration.uncertainty: accredited mode needs the "
        "calibration uncertainty of time (with the certificate's k)"
    )
    assert "\n" not in message
    assert not config.out.exists()  # nothing written
    # A pre-submission run takes the same bench; its budgets say what is missing.
    check_inputs(CampaignConfig(bench=str(bench), out=tmp_path / "runs", pack=config.pack))


def test_simlabs_instruments_state_their_uncertainty(sim: SimBench, tmp_path: Path) -> None:
    bench = load_bench(sim.write_bench_file(tmp_path / "bench.yaml"))
    assert bench.uncertainty_gaps() == []
    analyzer = bench.calibrations()["analyzer"]
    assert analyzer.k == 2
    assert analyzer.statements["energy"].expanded(1000.0) == pytest.approx(1.01)  # 0.1 % + 0.01
    assert bench.calibrations()["display"].statements["time"].expanded(3.0) == 0.02


@pytest.mark.parametrize(
    ("uncertainty", "says"),
    [
        ("0.1 % of reading", "give the expanded uncertainty per quantity"),
        ({"energy": "0.1 parsecs"}, "'parsecs' is not a unit of energy"),
        ({"energy": "about 0.1 %"}, "is not an uncertainty"),
        ({"colour": "1 %"}, "unknown key"),
        ({"k": 0, "time": "1 ms"}, "greater than 0"),
    ],
)
def test_a_bad_uncertainty_names_file_line_and_key(
    tmp_path: Path, uncertainty: Any, says: str
) -> None:
    doc = yaml.safe_load(EXAMPLE_TEXT)
    doc["instruments"]["analyzer"]["calibration"]["uncertainty"] = uncertainty
    text = yaml.safe_dump(doc, sort_keys=False)
    with pytest.raises(BenchError) as info:
        parse_bench(text, "b.yaml")
    message = str(info.value)
    assert "b.yaml:" in message and "instruments.analyzer.calibration.uncertainty" in message
    assert says in message, message


# --- stslab bench check ---------------------------------------------------------------------


def _power_the_meter(sim: SimBench) -> None:
    """Supply on (a campaign's teardown switches it off; an unpowered meter's optical port
    rightly does not answer)."""
    sim.plant.set_source_voltage(230.0)
    sim.plant.set_source_output(True)


def _rows(out: str) -> dict[str, str]:
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if cells and cells[0] in ROLES:
            rows[cells[0]] = cells[-1]
    return rows


def test_bench_check_finds_every_role_answering(
    sim: SimBench, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("COLUMNS", "400")
    _power_the_meter(sim)
    path = sim.write_bench_file(tmp_path / "bench.yaml")
    assert main(["bench", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "bench simlab (simulated)" in out
    assert _rows(out) == {role: "ok" for role in ROLES}


def test_bench_check_names_the_role_that_does_not_answer(
    sim: SimBench, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("COLUMNS", "400")
    _power_the_meter(sim)
    path = sim_bench_file(sim, tmp_path / "bench.yaml", analyzer={"timeout_s": 0.5})
    sim.fault("analyzer").silent = True
    try:
        assert main(["bench", "check", str(path)]) == 1
    finally:
        sim.fault("analyzer").clear()
    out = capsys.readouterr().out
    rows = _rows(out)
    assert rows.pop("analyzer").startswith("FAILED")
    assert rows == {role: "ok" for role in ROLES if role != "analyzer"}
    assert "failed: analyzer" in out


def test_bench_check_refuses_a_missing_bench_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "check", str(tmp_path / "absent.yaml")]) == 2
    assert "absent.yaml: cannot read bench file" in capsys.readouterr().err


def test_bench_check_refuses_a_bad_bench_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bench.yaml"
    path.write_text(EXAMPLE_TEXT.replace("driver: kpr1", "driver: kpr9"))
    assert main(["bench", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:9: instruments.keypad.driver: unknown driver 'kpr9'" in err
