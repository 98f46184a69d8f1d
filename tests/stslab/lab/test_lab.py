"""A lab on localhost in real processes: a labgrid coordinator, two SimLab benches, ser2net and
one exporter per bench (``stslab lab up --benches 2``). Three campaigns started at once with
``--reserve`` share the two places (the third waits its turn); an exporter killed mid-campaign
makes it ERROR with the place named, and the run resumes on the place once it is back; a
stale lock is freed by ``stslab lab release``; accredited mode refuses a SimLab place before
acquiring it; bad input leaves the place free."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("labgrid", reason="labgrid is not installed (pip install 'stslab[lab]')")

from stslab.lab.coordinator import Coordinator
from stslab.lab.local import down, read_state, restart_exporter, ser2net_path, up

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(
        ser2net_path() is None, reason="ser2net is not installed (apt-get install ser2net)"
    ),
]

RUN_TIMEOUT_S = 240.0
SELECT = ["-k", "STS-TC-00"]  # three credit scenarios (the rest skip on this meter)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    directory = tmp_path_factory.mktemp("lab")
    state = up(directory, 2)
    env = {**os.environ, "LG_COORDINATOR": state["coordinator"],
           "STSLAB_LEDGER": str(directory / "ledger"), "COLUMNS": "200"}  # fmt: skip
    yield directory, state, env
    down(directory)


def certify(env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "stslab", "certify", "--no-report", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
    return proc.returncode, out


def run_folder(out: Path) -> Path:
    (folder,) = [p for p in out.iterdir() if (p / "run.json").exists()]
    return folder


@pytest.mark.parametrize("benches", [1, 2])
def test_three_campaigns_queue_on_two_places(lab, tmp_path: Path, benches: int) -> None:
    _directory, _state, env = lab
    procs = [certify(env, "--reserve", "simulated=yes", "--benches", str(benches), *SELECT,
                     "--out", str(tmp_path / f"r{k}"))
             for k in range(3)]  # fmt: skip
    results = [finish(p) for p in procs]
    for code, out in results:
        assert code == 0, out
    places = []
    for k in range(3):
        record = json.loads((run_folder(tmp_path / f"r{k}") / "record.json").read_text())
        assert record["summary"]["verdict"] == "PASS"
        assert 1 <= len(record["benches"]) <= benches
        for bench in record["benches"]:
            place = bench["bench"]["place"]
            assert place["exporter"] == place["name"] == bench["name"]
            assert place["host"] == "127.0.0.1" and place["reservation"]
            places.append(place["name"])
    assert sorted(set(places)) == ["sim-1", "sim-2"]
    waited = [out for _code, out in results if "waiting for a free place" in out]
    assert len(waited) >= 1  # two places, three campaigns: one waited its turn
    with Coordinator(env["LG_COORDINATOR"]) as c:
        assert not any(p.acquired for p in c.places().values())  # all released
        assert not c.reservations()


def test_an_exporter_lost_mid_campaign_is_an_error_and_the_run_resumes(lab, tmp_path) -> None:
    directory, _state, env = lab
    out = tmp_path / "runs"
    proc = certify(env, "--place", "sim-1", *SELECT, "--out", str(out))
    journal = None
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        found = list(out.glob("*/benches/sim-1/journal.jsonl"))
        if found and '"step"' in found[0].read_text():
            journal = found[0]
            break
        time.sleep(0.05)
    assert journal is not None, "the campaign never reached a step"
    (exporter,) = [p["pid"] for p in read_state(directory)["processes"]
                   if p["role"] == "exporter sim-1"]  # fmt: skip
    os.killpg(exporter, signal.SIGKILL)  # the exporter and its ser2net
    code, text = finish(proc)
    assert code == 3, text
    folder = run_folder(out)
    record = json.loads((folder / "record.json").read_text())
    assert record["summary"]["verdict"] != "FAIL"
    assert record["summary"]["FAIL"] == 0
    assert any(d.startswith("place sim-1: exporter sim-1 on 127.0.0.1 disappeared")
               for d in record["deviations"])  # fmt: skip
    assert any(i.get("place") == "sim-1" for i in record["interruptions"])
    with Coordinator(env["LG_COORDINATOR"]) as c:
        assert c.place("sim-1").acquired is None  # released on the way out

    restart_exporter(directory, "sim-1")
    code, text = finish(certify(env, "--resume", str(folder), "--place", "sim-1"))
    assert code == 0, text
    record = json.loads((folder / "record.json").read_text())
    assert record["complete"] and record["summary"]["verdict"] == "PASS"
    assert record["resumes"][-1]["place"]["name"] == "sim-1"


def test_a_stale_lock_is_released_and_accredited_mode_refuses_a_simlab_place(lab) -> None:
    _directory, _state, env = lab
    with Coordinator(env["LG_COORDINATOR"]) as c:
        c.acquire("sim-2")
        c.renew("sim-2", "a-client-that-died")
    # Held: a campaign asking for that place is refused, and the place stays held.
    # The pack is trusted, so what accredited mode refuses is the bench the place offers.
    dev_key = Path(__file__).resolve().parents[3] / "suites" / "keys" / "development.pub.pem"
    code, text = finish(certify(env, "--place", "sim-2", *SELECT, "--mode", "accredited",
                                "--pack-key", str(dev_key)))  # fmt: skip
    assert code == 2
    assert "accredited mode refuses place sim-2: a SimLab bench" in text
    status = subprocess.run([sys.executable, "-m", "stslab", "lab", "status"], env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert "sim-2" in status.stdout and "held" in status.stdout
    released = subprocess.run([sys.executable, "-m", "stslab", "lab", "release", "sim-2"],
                              env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert released.returncode == 0, released.stdout + released.stderr
    with Coordinator(env["LG_COORDINATOR"]) as c:
        assert c.place("sim-2").acquired is None
    # The place is taken while the inputs are checked: bad input lets it go again.
    code, text = finish(certify(env, "--place", "sim-2", "--dut", "no-such-profile.yaml"))
    assert code == 2 and "--dut" in text
    with Coordinator(env["LG_COORDINATOR"]) as c:
        assert c.place("sim-2").acquired is None


def test_a_reservation_takes_up_to_n_free_matching_places_one_bench_each(lab, tmp_path) -> None:
    _directory, _state, env = lab
    # sim-1 held by someone else: a campaign asking for two places runs on the free one.
    with Coordinator(env["LG_COORDINATOR"]) as c:
        c.acquire("sim-1")
    try:
        code, text = finish(certify(env, "--reserve", "simulated=yes", "--benches", "2",
                                    *SELECT, "--out", str(tmp_path / "one")))  # fmt: skip
    finally:
        with Coordinator(env["LG_COORDINATOR"]) as c:
            c.release("sim-1")
    assert code == 0, text
    record = json.loads((run_folder(tmp_path / "one") / "record.json").read_text())
    assert [b["bench"]["place"]["name"] for b in record["benches"]] == ["sim-2"]

    # Both free: one bench on each, every scenario run once, each place's meter its own ledger.
    code, text = finish(certify(env, "--reserve", "simulated=yes", "--benches", "2", *SELECT,
                                "--out", str(tmp_path / "two")))  # fmt: skip
    assert code == 0, text
    assert "acquired place sim-1" in text and "acquired place sim-2" in text
    record = json.loads((run_folder(tmp_path / "two") / "record.json").read_text())
    assert record["summary"]["verdict"] == "PASS"
    places = {b["name"]: b["bench"]["place"] for b in record["benches"]}
    assert sorted(places) == ["sim-1", "sim-2"]
    assert all(p["name"] == name and p["exporter"] == name for name, p in places.items())
    tokens = [p["reservation"] for p in places.values()]
    assert all(tokens) and len(set(tokens)) == 2  # one labgrid reservation per place
    ran = [s["bench"] for s in record["scenarios"] if s["outcome"] == "PASS"]
    assert len(ran) == 3 and set(ran) <= {"sim-1", "sim-2"}
    ledgers = Path(env["STSLAB_LEDGER"]) / "places"
    assert all(list((ledgers / name).glob("*.json")) for name in places)
    with Coordinator(env["LG_COORDINATOR"]) as c:
        assert not any(p.acquired for p in c.places().values())  # both released
        assert not c.reservations()
