"""Without any process: which places a reservation may take besides the one labgrid's queue
gave it, the bench files of several SimLab places planned as one bench each (their meters
play the profile's serial, each with the place's own ledger), and the exporter's readiness
check for ser2net."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from stslab.lab.coordinator import PlaceView
from stslab.lab.exporter import listening, ser2net_argv
from stslab.lab.hold import PlaceHold, matches, published
from stslab.lab.place import BENCH_RESOURCE
from stslab.session import CampaignConfig, CampaignError, plan_shards


def view(name: str, tags: dict[str, str], *, bench: bool = True, up: bool = True) -> PlaceView:
    resources = {"keypad": ("exp", "NetworkSerialPort", {"host": "h", "port": 1}, up)}
    if bench:
        resources[BENCH_RESOURCE] = ("exp", "StslabBench", {}, True)
    return PlaceView(name, tags, None, "", None, [], resources)


def test_a_place_matches_filters_on_its_tags_and_its_name() -> None:
    place = view("sim-2", {"simulated": "yes", "bench": "simlab"})
    assert matches(place, {"simulated": "yes"})
    assert matches(place, {"simulated": "yes", "name": "sim-2"})
    assert not matches(place, {"simulated": "yes", "name": "sim-1"})
    assert not matches(place, {"simulated": "no"})
    assert not matches(place, {"room": "2"})


def test_only_a_place_whose_exporter_publishes_its_bench_and_devices_is_taken() -> None:
    assert published(view("a", {}))
    assert not published(view("a", {}, bench=False))  # no stslab lab export behind it
    assert not published(view("a", {}, up=False))  # a device gone


def test_a_named_place_is_one_bench() -> None:
    with pytest.raises(ValueError, match="a named place is one bench"):
        PlaceHold("127.0.0.1:1", place="sim-1", benches=2)
    with pytest.raises(ValueError, match="give a place or filters"):
        PlaceHold("127.0.0.1:1")


def place_bench(tmp_path: Path, place: str, *, simulated: bool = True, on_place: bool = True):
    doc = {
        "name": place,
        "simulated": simulated,
        "instruments": {"keypad": {"driver": "kpr1", "address": f"rfc2217://h:{len(place)}"}},
    }
    if on_place:
        doc["place"] = {"name": place, "coordinator": "c:1", "exporter": place, "host": "h",
                        "reservation": "TOKEN"}  # fmt: skip
    path = tmp_path / f"{place}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_several_simlab_places_are_one_bench_each_with_the_profiles_serial(tmp_path) -> None:
    files = [place_bench(tmp_path, "sim-1"), place_bench(tmp_path, "sim-2")]
    shards = plan_shards(CampaignConfig(bench=files[0]), files, 2)
    assert [s.name for s in shards] == ["sim-1", "sim-2"]
    assert [s.serial for s in shards] == [None, None]  # what each place's meter plays


@pytest.mark.parametrize(("simulated", "on_place"), [(False, True), (True, False)])
def test_other_benches_still_need_a_sample_each(tmp_path, simulated, on_place) -> None:
    files = [place_bench(tmp_path, n, simulated=simulated, on_place=on_place)
             for n in ("a", "b")]  # fmt: skip
    with pytest.raises(CampaignError, match="several real benches need one each"):
        plan_shards(CampaignConfig(bench=files[0]), files, 2)


def test_ser2net_is_ready_when_the_kernel_lists_its_port_as_listening(tmp_path: Path) -> None:
    header = "  sl  local_address rem_address   st tx_queue rx_queue\n"
    tcp = tmp_path / "tcp"
    tcp.write_text(header
                   + "   0: 00000000:9C41 00000000:0000 0A 00000000:00000000\n"  # 40001 listens
                   + "   1: 0100007F:9C42 0100007F:9C41 01 00000000:00000000\n")  # fmt: skip
    tcp6 = tmp_path / "tcp6"
    tcp6.write_text(header + "   0: 00000000000000000000000000000000:9C43 "
                    "00000000000000000000000000000000:0000 0A 00000000:00000000\n")  # fmt: skip
    assert listening(40001, (tcp, tcp6)) is True
    assert listening(40002, (tcp, tcp6)) is False  # connected, not listening
    assert listening(40003, (tcp, tcp6)) is True
    assert listening(40001, (tmp_path / "none",)) is None


def test_ser2net_serves_the_device_as_an_rfc2217_port() -> None:
    argv = ser2net_argv("/usr/sbin/ser2net", 40001, "/dev/pts/4", 9600)
    assert argv[:3] == ["/usr/sbin/ser2net", "-d", "-n"]
    config = yaml.safe_load("\n".join(argv[i + 1] for i, a in enumerate(argv) if a == "-Y"))
    assert config["connection"]["accepter"] == "telnet(rfc2217,mode=server),tcp,40001"
    assert config["connection"]["connector"].endswith(",/dev/pts/4,9600n81,local")
