"""The whole simulated bench, started and stopped in-process.

:class:`SimBench` builds the clock, the plant, the meter and every simulated instrument, each
on its own transport (ptys for the keypad robot, optical port and card writer; HTTP for the
camera; TCP for the SCPI instruments), and describes them in a bench file the harness loads
like any hardware bench. Tests reach through a side door that only SimLab has: the meter's
true state and each device's transport faults.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml

from dut.profile import MeterProfile
from simlab.camera import CameraServer
from simlab.card_writer import CardPresenter, CardWriter
from simlab.clock import SimClock
from simlab.faults import TransportFaults
from simlab.keypad_robot import KeypadRobot
from simlab.meter import MeterSnapshot, SimMeter, create_meter, load_model
from simlab.optical_port import OpticalPort
from simlab.plant import LoadRating, Plant
from simlab.scpi.chroma_61500 import Chroma61500
from simlab.scpi.chroma_63800 import Chroma63800
from simlab.scpi.yokogawa_wt310 import YokogawaWT310

ROLES = ("keypad", "port", "card", "presenter", "display", "analyzer", "source", "load")

#: role -> registry name of the harness driver that speaks to SimLab's device.
DRIVERS = {
    "keypad": "kpr1",
    "port": "iec62056-21",
    "card": "msr605",
    "presenter": "automatic",
    "display": "camera-segment",
    "analyzer": "wt300",
    "source": "chroma61500",
    "load": "chroma63800",
}

#: What the simulated instruments' calibration certificates state: expanded uncertainties
#: (k = 2) plausible for a calibrated instrument of each kind, so a SimLab report shows the
#: whole chain from certificate to result. The port, keypad and card writer measure nothing.
UNCERTAINTIES: dict[str, dict[str, Any]] = {
    "analyzer": {"k": 2, "voltage": "0.05 % + 0.02 V", "current": "0.05 % + 0.5 mA",
                 "power": "0.1 % + 0.1 W", "energy": "0.1 % + 0.01 Wh", "time": "5 ms"},
    "display": {"k": 2, "time": "20 ms"},  # a frame's time stamp against the bench clock
    "source": {"k": 2, "voltage": "0.1 % + 0.2 V"},
    "load": {"k": 2, "current": "0.1 % + 10 mA", "power": "0.2 % + 0.5 W"},
}  # fmt: skip


class SimulatedBench:
    """What every SimLab bench offers besides its devices: the bench file that describes it,
    and the side door to the meter's true state."""

    #: The bench's name in its bench file and the record; the drivers that reach its roles.
    bench_name = "simlab"
    drivers: dict[str, str] = DRIVERS
    file_header = "# Written by stslab sim: SimLab's simulated bench.\n"
    speed: float
    segment_map_path: Path
    meter: SimMeter

    profile: MeterProfile
    clock: Any
    supply_v: float
    _started: bool

    def addresses(self) -> dict[str, str]:
        raise NotImplementedError

    def start(self) -> Any:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._started

    def _powered_plant(self) -> Plant:
        """The circuit on the bench's clock, the load rated for the meter, the source on."""
        rated = self.profile.rated_current_a
        rating = LoadRating(max_current_a=rated, max_power_w=rated * 250)
        plant = Plant(self.clock, load_rating=rating)
        plant.set_source_frequency(50.0)
        plant.set_source_voltage(self.supply_v)
        plant.set_source_output(True)
        return plant

    def bench_document(self, profile_path: str | None = None) -> dict[str, Any]:
        """The bench file (as data) describing this simulated bench."""
        return describe_bench(
            self.bench_name,
            self.drivers,
            self.addresses(),
            self.segment_map_path,
            clock_speed=self.speed,
            profile_path=profile_path,
        )

    def write_bench_file(self, path: str | Path, profile_path: str | None = None) -> Path:
        path = Path(path)
        text = self.file_header + yaml.safe_dump(self.bench_document(profile_path), sort_keys=False)
        path.write_text(text)
        return path

    def true_state(self) -> MeterSnapshot:
        """The meter's real state, as no harness can see it (side door: SimLab only)."""
        return self.meter.snapshot()

    faults: dict[str, TransportFaults]

    def fault(self, role: str) -> TransportFaults:
        """The transport faults of one device (set attributes to inject, ``clear()`` to heal)."""
        return self.faults[role]


class SimBench(SimulatedBench):
    """A complete simulated bench around one simulated meter.

    ``profile``: a :class:`MeterProfile` (default: the built-in default meter). ``speed``: the
    clock speed. ``defects``: names from :mod:`simlab.defects`. ``model``: a SimMeter subclass
    or ``module:Class``. ``noise``: the camera's noise preset. ``supply_v``: the AC source's
    voltage at start (the source output is on, so the meter is powered).
    """

    def __init__(
        self,
        profile: MeterProfile | None = None,
        *,
        speed: float = 1.0,
        defects: tuple[str, ...] | list[str] = (),
        model: type[SimMeter] | str | None = None,
        noise: str = "none",
        seed: int | None = None,
        supply_v: float = 230.0,
        workdir: str | Path | None = None,
    ) -> None:
        self.profile = profile or MeterProfile.builtin("default")
        self.speed = speed
        self.defects = tuple(defects)
        self.model = load_model(model) if isinstance(model, str) else model
        self.noise = noise
        self.seed = seed
        self.supply_v = supply_v
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else None
        self._started = False
        self._lock = threading.Lock()
        self.faults: dict[str, TransportFaults] = {
            role: TransportFaults(seed=seed) for role in ROLES if role != "presenter"
        }

    # -- life cycle -----------------------------------------------------------------------

    def start(self) -> SimBench:
        with self._lock:
            if self._started:
                return self
            self._closers: list[Any] = []
            try:
                self._start()
            except BaseException:
                self._close_all()
                raise
            self._started = True
        return self

    def _start(self) -> None:
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="stslab-sim-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.clock = SimClock(self.speed)
        self.plant = self._powered_plant()
        self.meter = create_meter(self.profile, self.plant, model=self.model, defects=self.defects)
        self.meter.start()
        self._closers.append(self.meter.stop)
        link = self.workdir
        self.keypad_robot = KeypadRobot(
            self.meter, self.clock, link=str(link / "keypad"), faults=self.faults["keypad"]
        )
        self._closers.append(self.keypad_robot.close)
        meter = self.meter
        self.optical_port = OpticalPort(
            meter,
            self.clock,
            link=str(link / "port"),
            faults=self.faults["port"],
            powered=lambda: meter.powered,
        )
        self._closers.append(self.optical_port.close)
        self.card_writer = CardWriter(link=str(link / "card"), faults=self.faults["card"])
        self._closers.append(self.card_writer.close)
        self.presenter = CardPresenter(self.card_writer, self.meter, automatic=True)
        self.camera = CameraServer(
            self.meter.layout,
            self.meter.display_state,
            noise=self.noise,
            seed=self.seed,
            faults=self.faults["display"],
        ).start()
        self._closers.append(self.camera.stop)
        self.segment_map_path = self.workdir / "display-map.yaml"
        self.segment_map_path.write_text(
            self.camera.frame_layout.to_yaml("# segment map of SimLab's camera view (calibrated)\n")
        )
        self.analyzer = YokogawaWT310(
            self.plant, serial="SIM91K0001", faults=self.faults["analyzer"]
        )
        self.analyzer.start()
        self._closers.append(self.analyzer.stop)
        self.source = Chroma61500(self.plant, faults=self.faults["source"])
        self.source.start()
        self._closers.append(self.source.stop)
        self.load = Chroma63800(self.plant, faults=self.faults["load"])
        self.load.start()
        self._closers.append(self.load.stop)

    def stop(self) -> None:
        with self._lock:
            if not self._started:
                return
            self._started = False
            self._close_all()

    def _close_all(self) -> None:
        errors = []
        for close in reversed(getattr(self, "_closers", [])):
            try:
                close()
            except Exception as exc:  # teardown goes on; report at the end
                errors.append(exc)
        self._closers = []
        if self._own_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        if errors:
            raise errors[0]

    # -- the bench file -------------------------------------------------------------------

    def addresses(self) -> dict[str, str]:
        return {
            "keypad": self.keypad_robot.address,
            "port": self.optical_port.address,
            "card": self.card_writer.address,
            "presenter": "simlab:auto",
            "display": self.camera.url,
            "analyzer": self.analyzer.resource,
            "source": self.source.resource,
            "load": self.load.resource,
        }


def describe_bench(
    name: str,
    drivers: dict[str, str],
    addresses: dict[str, str],
    segment_map_path: Path,
    *,
    clock_speed: float,
    profile_path: str | None = None,
) -> dict[str, Any]:
    """A SimLab bench file (as data): each role's driver and address, simulated instruments
    calibrated today for a year, with the uncertainties their certificates would state."""
    today = date.today()
    instruments: dict[str, Any] = {}
    for role in ROLES:
        entry: dict[str, Any] = {
            "driver": drivers[role],
            "address": addresses[role],
            "timeout_s": 5.0,
        }
        if role == "display":
            entry["options"] = {"segment_map": str(segment_map_path)}
        if role in ("analyzer", "source", "load"):
            entry["read_termination"] = "\n"
            entry["write_termination"] = "\n"
        if role != "presenter":
            entry["calibration"] = {
                "certificate": f"SIMLAB-{role.upper()}",
                "date": today.isoformat(),
                "due": (today + timedelta(days=365)).isoformat(),
                "note": "simulated instrument",
            }
            if role in UNCERTAINTIES:
                entry["calibration"]["uncertainty"] = dict(UNCERTAINTIES[role])
        instruments[role] = entry
    doc: dict[str, Any] = {
        "bench_version": 1,
        "name": name,
        "simulated": True,
        "clock_speed": clock_speed,
        "instruments": instruments,
    }
    if profile_path:
        doc["dut_profile"] = profile_path
    return doc
