"""One certification campaign's session: bench, DUT, job, pack, ledger, journal, runner.

A :class:`Campaign` opens everything one bench needs (SimLab in-process for ``bench="sim"``
on its real transports, or on virtual time for ``bench="virtual"``, or the drivers of a bench
file), runs scenarios through the :class:`~stslab.campaign.Runner`,
journals every step, and always tears the bench down (load off, source off, actuators
released, drivers closed). The same object serves ``stslab certify``, the pytest plugin and
the Robot Framework library. A run over several benches at once has one Campaign per bench
(one per pytest-xdist worker) in one run folder (:mod:`stslab.run`).
"""

from __future__ import annotations

import hashlib
import json
import os
import typing
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from dut.profile import MeterProfile, ProfileError
from instruments.base import InstrumentError
from sts.codec import parse_digits, split_class
from sts.errors import TokenFormatError
from stslab.atomic import replace_file
from stslab.bench import Bench, BenchError, load_bench, opened
from stslab.benchlock import BenchBusy, BenchLock
from stslab.campaign import NOMINAL_SUPPLY_V, BenchHandles, Runner, ScenarioResult, StepResult
from stslab.clock import BenchClock, Clock
from stslab.declared import coverage
from stslab.factory import TokenFactory, key_state_from_profile
from stslab.job import Job, JobError, demo_job, load_job
from stslab.journal import Journal
from stslab.ledger import KeyState, Ledger, ledger_path, load_ledger
from stslab.pack import PackError, PackStatus, trusted_keys, verify_pack
from stslab.recovery import NotAtRest, key_as_ledger
from stslab.run import (
    RunError,
    RunPlan,
    Shard,
    ended_scenarios,
    journal_path,
    new_run_dir,
    safe_name,
    shard_dir,
    shard_entries,
    shard_state,
)
from stslab.scenario import Scenario, ScenarioError, load_scenarios
from stslab.sideeffect import twin_declaration
from stslab.uncertainty import decision_record

Mode = Literal["accredited", "pre-submission"]

DEFAULT_PACK = Path(str(resources.files("suites").joinpath("sts-core")))
DEV_KEYS = Path(str(resources.files("suites").joinpath("keys")))


class CampaignError(Exception):
    """A campaign cannot start or resume (bad input or a refused accredited run)."""


class InputError(CampaignError):
    """An input file that does not load (the message names file, line and key); ``option``
    is the command-line option that gave it (``--dut``, ``--job``, ``--pack``, ``--bench``)."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option


def load_dut(ref: str | None) -> MeterProfile:
    """The DUT profile, with its vending key reachable (a key file or variable it names)."""
    try:
        profile = MeterProfile.load(ref)
        profile.decoder_key()
    except ProfileError as exc:
        raise InputError("--dut", str(exc)) from None
    return profile


#: Bench names that start SimLab in this process: on its real transports, or on virtual time.
SIMLAB_BENCHES = ("sim", "virtual")


def is_simlab(bench: str) -> bool:
    """SimLab in-process, on its real transports or on virtual time."""
    return bench in SIMLAB_BENCHES


def select_scenarios(scenarios: list[Scenario], select: tuple[str, ...]) -> list[Scenario]:
    """The scenarios whose id contains one of ``select`` (all when it is empty)."""
    if not select:
        return list(scenarios)
    return [s for s in scenarios if any(k in s.id for k in select)]


def load_pack(directory: Path) -> list[Scenario]:
    """Every scenario of the pack, validated; a scenario id used twice is refused."""
    from stslab.pack import scenario_files

    scenarios: list[Scenario] = []
    try:
        for path in scenario_files(directory):
            scenarios += load_scenarios(path)
    except ScenarioError as exc:
        raise InputError("--pack", str(exc)) from None
    seen: dict[str, Scenario] = {}
    for s in scenarios:
        first = seen.setdefault(s.id, s)
        if first is not s:
            raise InputError(
                "--pack",
                f"{s.source_file}:{s.source_line}: scenario {s.id}: id: {s.id!r} is also the id "
                f"of a scenario at {first.source_file}:{first.source_line}",
            )
    return scenarios


def check_inputs(config: CampaignConfig) -> None:
    """Read and validate every input file of a campaign (DUT profile, job, scenario pack and
    manifest, bench file) without opening a bench or writing anything: commands call it
    before they start, so a bad file changes nothing. Raises :class:`InputError`."""
    Campaign(config).load_inputs()


#: The fastest SimLab clock at which the shipped catalogue is validated (all PASS on the
#: reference meter); faster runs are recorded with a deviation.
VALIDATED_SIM_SPEED = 20.0


@dataclass
class CampaignConfig:
    bench: str = "sim"
    dut: str | None = None
    job: str | None = None
    out: Path = Path("runs")
    pack: Path = DEFAULT_PACK
    mode: Mode = "pre-submission"
    speed: float = VALIDATED_SIM_SPEED
    defects: tuple[str, ...] = ()
    noise: str = "none"
    ledger_dir: Path | None = None
    pack_keys: tuple[Path, ...] = ()
    select: tuple[str, ...] = ()
    seed: int | None = None
    #: SimLab meter model (``module:Class``, a simlab.meter.SimMeter subclass).
    model: str | None = None


def config_to_json(config: CampaignConfig) -> dict[str, Any]:
    """Every campaign option as JSON (paths as text, tuples as lists)."""
    out: dict[str, Any] = {}
    for f in fields(config):
        value = getattr(config, f.name)
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = [str(v) if isinstance(v, Path) else v for v in value]
        out[f.name] = value
    return out


def config_from_json(data: dict[str, Any]) -> CampaignConfig:
    """The inverse of :func:`config_to_json`; keys it does not know are left out."""
    hints = typing.get_type_hints(CampaignConfig)
    values: dict[str, Any] = {}
    for f in fields(CampaignConfig):
        if f.name not in data:
            continue
        value, hint = data[f.name], str(hints[f.name])
        if value is not None and "Path" in hint:
            value = tuple(Path(v) for v in value) if "tuple" in hint else Path(value)
        elif isinstance(value, list):
            value = tuple(value)
        values[f.name] = value
    return CampaignConfig(**values)


def plan_shards(
    config: CampaignConfig, benches: list[str], count: int = 1, *, job: Job | None = None
) -> list[Shard]:
    """The benches of a run and the sample on each: ``count`` SimLab benches (``benches`` is
    ``["sim"]``), or one per bench file. The job's ``samples`` name each bench's sample;
    SimLab samples without one get the profile's serial with ``-K`` appended. ``job``: the
    job already loaded (else it is read from ``config``)."""
    job = job or _load_job(config.job)
    model_serial: str | None = None
    if len(benches) == 1 and is_simlab(benches[0]):
        names = [f"simlab-{k}" for k in range(1, count + 1)]
        kinds = benches * count
    else:
        if any(is_simlab(b) for b in benches):
            raise CampaignError("SimLab benches and bench files do not mix in one run")
        if count not in (1, len(benches)):
            raise CampaignError(f"{count} benches asked for, {len(benches)} bench files given")
        names = []
        for b in benches:
            try:
                names.append(safe_name(load_bench(b).name))
            except BenchError as exc:
                raise CampaignError(str(exc)) from None
        kinds = list(benches)
        for name in names:
            if names.count(name) > 1:
                raise CampaignError(f"two bench files are named {name!r}: bench names must "
                                    "differ (the name key of each bench file)")  # fmt: skip
    shards = []
    serials: dict[str, str] = {}
    for name, kind in zip(names, kinds, strict=True):
        sample = job.samples.get(name)
        serial = sample.serial if sample else None
        if serial is None and len(names) > 1 and not _simlab_place(kind):
            if not is_simlab(kind):
                raise CampaignError(f"{config.job or 'the job'}: samples: names no sample "
                                    f"for bench {name!r} (several real benches need one "
                                    "each)")  # fmt: skip
            model_serial = model_serial or load_dut(config.dut).meter.serial
            serial = f"{model_serial}-{name.rsplit('-', 1)[-1]}"
        if serial is not None and serial in serials:
            raise CampaignError(f"benches {serials[serial]!r} and {name!r} have the same sample "
                                f"serial {serial!r}")  # fmt: skip
        if serial is not None:
            serials[serial] = name
        shards.append(Shard(name, kind, serial, sample.pan if sample else None))
    unknown = sorted(set(job.samples) - set(names))
    if unknown:
        raise CampaignError(f"{config.job}: samples: no bench named {', '.join(unknown)} in "
                            f"this run (benches: {', '.join(names)})")  # fmt: skip
    return shards


def _simlab_place(bench: str) -> bool:
    """A bench file built from a labgrid place that a SimLab bench publishes: its meter plays
    the profile's serial whatever the job says, with a ledger of its own (the place's)."""
    if is_simlab(bench):
        return False
    try:
        loaded = load_bench(bench)
    except BenchError:
        return False
    return loaded.simulated and loaded.place is not None


def start_run(config: CampaignConfig, shards: list[Shard], scenarios: list[str]) -> RunInfo:
    """Create the run folder and write its plan (before any bench opens)."""
    run_id, directory = new_run_dir(config.out)
    RunPlan(run_id, _now(), config_to_json(config), shards, scenarios).write(directory)
    return RunInfo(run_id, directory)


def _load_job(ref: str | None) -> Job:
    try:
        return load_job(ref) if ref else demo_job()
    except JobError as exc:
        raise InputError("--job", str(exc)) from None


@dataclass
class RunInfo:
    run_id: str
    directory: Path
    resumed: int = 0


class Campaign:
    """Open with :meth:`open` (or as a context manager); run scenarios; close.

    On its own (``run`` not given) a campaign makes a one-bench run folder, or with
    ``resume`` continues the interrupted bench of one. Given ``run`` and ``shard`` it opens
    that bench of a run someone else planned (a pytest-xdist worker), continuing its journal
    if it has one.
    """

    def __init__(self, config: CampaignConfig, resume: Path | None = None, *,
                 run: Path | None = None, shard: str | None = None) -> None:  # fmt: skip
        self.config = config
        self.resume_dir = resume
        self._run_dir = run
        self._shard_name = shard
        self.shard: Shard | None = None
        self.resuming = False
        self.results: list[ScenarioResult] = []
        self.deviations: list[str] = []
        self.interruptions: list[dict[str, Any]] = []
        self._sim = None
        self._drivers_cm = None
        self.drivers: dict[str, Any] = {}
        self.journal: Journal | None = None
        self.completed: set[str] = set()
        self.on_step = None
        self.bench_lock: BenchLock | None = None

    # -- opening ----------------------------------------------------------------------------

    def open(self) -> Campaign:
        if self._sim is not None or self._drivers_cm is not None:
            raise CampaignError("the campaign is already open")
        self.load_inputs()
        if self._run_dir is None and self.shard is None:
            self.shard = plan_shards(self.config, [self.config.bench], job=self.job)[0]
        self.profile = _sample_profile(self.profile, self.shard)
        if is_simlab(self.config.bench):
            self._start_sim()  # before the run folder: a meter SimLab cannot play changes nothing
        else:
            self._lock_bench()  # before the run folder: a bench in use changes nothing
        try:
            self._open_run_dir()
            if self.bench_lock is not None:
                self.bench_lock.name_run(self.run.run_id)
            self._open_bench()
            self._open_ledger()
            self._start_journal()
            self.runner = Runner(self.profile, self.handles, self.factory, self.journal,
                                 on_step=self._on_step,
                                 rule=self.job.decision_rule)  # fmt: skip
            if self.resuming:
                self._reestablish()
        except BaseException:
            self.close()
            raise
        return self

    def _lock_bench(self) -> None:
        """One campaign per bench file (stslab.benchlock); refused at once when in use."""
        plan = getattr(self, "_plan", None)
        try:
            self.bench_lock = BenchLock(self.config.bench).acquire(plan and plan.run_id)
        except BenchBusy as exc:
            raise InputError("--bench", str(exc)) from None

    def load_inputs(self) -> None:
        """Read and validate the DUT profile, the job, the pack and the bench file (not
        SimLab's, which is written when it starts). Opens nothing, writes nothing."""
        self.prepare()
        cfg = self.config
        if not is_simlab(cfg.bench):
            try:
                self.bench: Bench = load_bench(cfg.bench)
            except BenchError as exc:
                raise InputError("--bench", str(exc)) from None
            gaps = self.bench.uncertainty_gaps() if cfg.mode == "accredited" else []
            if gaps:  # a result without its uncertainty cannot go on an accredited report
                raise InputError("--bench", "; ".join(gaps))

    def prepare(self) -> Campaign:
        """Everything that can be checked before a bench opens: the run's plan (a resume),
        the DUT profile, the job, the pack and its signature, the mode."""
        if self.resume_dir is not None or self._run_dir is not None:
            self._prepare_resume()
        cfg = self.config
        self.profile = load_dut(cfg.dut)
        self.job: Job = _load_job(cfg.job)
        self.pack_scenarios = load_pack(cfg.pack)  # the whole pack, selected or not
        self.scenarios = select_scenarios(self.pack_scenarios, cfg.select)
        self.pack = self._check_pack()
        if cfg.mode == "accredited" and is_simlab(cfg.bench):
            raise CampaignError("accredited mode needs a real bench, not SimLab")
        return self

    def _check_pack(self) -> PackStatus:
        cfg = self.config
        trusted = {}
        for p in cfg.pack_keys:
            try:
                trusted[p.name.removesuffix(".pub.pem")] = p.read_text()
            except OSError as exc:
                raise InputError("--pack-key", f"{p}: cannot read: {exc.strerror}") from None
        if cfg.mode == "pre-submission":
            trusted = {**trusted, **{f"{k} (development key)": v
                                     for k, v in trusted_keys(DEV_KEYS).items()}}  # fmt: skip
        try:
            status = verify_pack(cfg.pack, trusted)
        except PackError as exc:
            raise InputError("--pack", str(exc)) from None
        if cfg.mode == "accredited" and not status.untampered:
            raise CampaignError(
                "accredited mode refuses this scenario pack: " + "; ".join(status.problems)
            )
        for problem in status.problems:
            self.deviations.append(f"scenario pack: {problem}")
        return status

    def _open_run_dir(self) -> None:
        if self._run_dir is not None:
            self.run = RunInfo(self._plan.run_id, self._run_dir, resumed=int(self.resuming))
        else:
            assert self.shard is not None  # planned when the campaign opened
            ids = [s.id for s in self.scenarios]
            self.run = start_run(self.config, [self.shard], ids)
            self._plan = RunPlan.read(self.run.directory)
        self.directory = shard_dir(self.run.directory, self.shard.name)
        self.directory.mkdir(parents=True, exist_ok=True)

    def _start_sim(self) -> None:
        """SimLab for ``sim`` (real transports) or ``virtual`` (virtual time), with the meter
        model and defects asked for; a model or profile SimLab cannot play is bad input."""
        from simlab.defects import lookup
        from simlab.meter import load_model

        cfg = self.config
        try:
            lookup(cfg.defects)
        except ValueError as exc:
            raise InputError("--defect", str(exc)) from None
        try:
            model = load_model(cfg.model) if cfg.model else None
        except ValueError as exc:
            raise InputError("--model", str(exc)) from None
        try:
            if cfg.bench == "virtual":
                from simlab.virtual import VirtualBench

                self._sim = VirtualBench(self.profile, defects=cfg.defects, model=model,
                                         noise=cfg.noise, seed=cfg.seed).start()  # fmt: skip
            else:
                from simlab.bench import SimBench

                self._sim = SimBench(
                    self.profile,
                    speed=cfg.speed,
                    defects=cfg.defects,
                    model=model,
                    noise=cfg.noise,
                    seed=cfg.seed,
                ).start()
        except ValueError as exc:  # a profile SimLab cannot play (a text its LCD cannot show …)
            raise InputError("--dut", str(exc)) from None

    def _open_bench(self) -> None:
        if self._sim is not None:
            bench_file = self.directory / "bench.yaml"
            self._sim.write_bench_file(bench_file, self.profile.source)
            self.bench = load_bench(bench_file)
        self._calibration_gate()
        self._clock_gate()
        port = self.profile.port
        extra = {"port": {"password": port.password, "token_register": port.token_register,
                          "device_address": port.device_address}}  # fmt: skip
        # One thread owns virtual time; a wire bench opens every instrument at once.
        self._drivers_cm = opened(self.bench, extra=extra,
                                  parallel=self.config.bench != "virtual")  # fmt: skip
        try:
            self.drivers = self._drivers_cm.__enter__()
        except InstrumentError as exc:
            self._drivers_cm = None
            raise CampaignError(f"cannot open the bench: {exc}") from None
        self.identities: dict[str, str] = {}
        source = self.drivers.get("source")
        if source is not None:
            # The last campaign's teardown left the supply off, and an unpowered meter's
            # port does not answer: power it before asking every instrument who it is.
            try:
                source.set_voltage(NOMINAL_SUPPLY_V)
                source.output(True)
            except InstrumentError as exc:
                raise CampaignError(f"source: cannot power the meter: {exc}") from None

        def identify(role: str) -> str:
            try:
                return str(self.drivers[role].identify())
            except (InstrumentError, NotImplementedError) as exc:
                raise CampaignError(f"{role}: cannot identify the instrument: {exc}") from None

        if self.config.bench == "virtual":
            self.identities = {role: identify(role) for role in self.drivers}
        else:
            with ThreadPoolExecutor(max_workers=max(1, len(self.drivers))) as pool:
                futures = {role: pool.submit(identify, role) for role in self.drivers}
            self.identities = {role: future.result() for role, future in futures.items()}
        # SimLab on virtual time owns the clock; any other bench runs on real time.
        virtual = self._sim is not None and self.config.bench == "virtual"
        clock: Clock = self._sim.clock if virtual else BenchClock(self.bench.clock_speed)
        relay = None
        if "analyzer" in self.drivers:
            from instruments.relay import RelayProbe

            relay = RelayProbe(self.drivers["analyzer"], 230.0,
                               interval_s=max(0.005, 0.1 / clock.speed),
                               clock=clock.monotonic, sleep=clock.pause)  # fmt: skip
        floors = self._sim.meter.real_floors() if self._sim is not None and not virtual else {}
        self.handles = BenchHandles(self.drivers, clock, simulated=self.bench.simulated,
                                    relay=relay, sim_actions=self._sim_actions(),
                                    calibrations=self.bench.calibrations(),
                                    exact_time=virtual, real_floors=floors)  # fmt: skip

    def _sim_actions(self) -> dict:
        if self._sim is None:
            return {}
        return {"raise_tamper": self._sim.meter.set_tamper}

    def _calibration_gate(self) -> None:
        problems = self.bench.deviations(date.today())
        if self.config.mode == "accredited":
            if self.bench.simulated:
                raise CampaignError("accredited mode needs a real bench, not SimLab")
            if problems:
                raise CampaignError("accredited mode refuses: " + "; ".join(problems))
        self.deviations += [f"instrument {p}" for p in problems]

    def _clock_gate(self) -> None:
        speed = self.bench.clock_speed
        if self.bench.simulated and speed > VALIDATED_SIM_SPEED:
            self.deviations.append(
                f"SimLab clock speed {speed:g} is above {VALIDATED_SIM_SPEED:g}, the highest at "
                "which the catalogue is validated against the reference meter: SimLab keeps "
                "displays, lockouts and the load switch test at least 0.5-1.5 s real, which "
                "stretches the meter's declared times past some scenarios' windows"
            )

    def _open_ledger(self) -> None:
        cfg = self.config
        simlab = is_simlab(cfg.bench)
        home = Path(os.environ.get("STSLAB_LEDGER") or Path.home() / ".stslab/ledger")
        place = self.bench.place
        if place is not None and self.bench.simulated:
            home = home / "places" / place.name  # every SimLab place's meter plays one serial
        directory = cfg.ledger_dir or (self.run.directory / "ledger" if simlab else home)
        path = ledger_path(directory, self.profile.meter.serial)
        ledger = load_ledger(path)
        if ledger is None:
            ledger = Ledger(
                serial=self.profile.meter.serial,
                pan=self.profile.meter.pan,
                key=key_state_from_profile(self.profile),
                store_floor=self.profile.tokens.manufacture_tid,
                path=path,
            )
            ledger.save()
        self.ledger = ledger
        self.factory = TokenFactory(self.profile, ledger, seed=cfg.seed)

    # -- journal ------------------------------------------------------------------------------

    def _start_journal(self) -> None:
        assert self.shard is not None
        self.journal = Journal(journal_path(self.run.directory, self.shard.name))
        if self.resuming:
            repaired = self.journal.repaired  # a record the killed process left half written
            place = self.bench.place
            self.journal.append("resume", {"at": _now(), "completed": sorted(self.completed),
                                           "bench": self.shard.name, "process": os.getpid(),
                                           **({"journal_repaired": repaired} if repaired
                                              else {}),
                                           **({"place": place.model_dump(mode="json")}
                                              if place else {})})  # fmt: skip
            return
        p = self.profile
        self.journal.append(
            "start",
            {
                "run_id": self.run.run_id,
                "at": _now(),
                "mode": self.config.mode,
                "config": config_to_json(self.config),
                "shard": {"name": self.shard.name, "bench": self.shard.bench,
                          "process": os.getpid()},
                "job": self.job.model_dump(mode="json"),
                "dut": {
                    "profile": p.name, "make": p.meter.make, "model": p.meter.model,
                    "serial": p.meter.serial, "firmware": p.meter.firmware, "pan": p.meter.pan,
                    "ea": p.key.ea, "dkga": p.key.dkga, "krn": self.ledger.key.krn,
                    "kt": self.ledger.key.kt, "ti": self.ledger.key.ti,
                    "key_fingerprint": self.factory.current_key.fingerprint,
                    "profile_sha256": _sha256_path(p.source),
                    "declared": p.tokens.model_dump(mode="json"),
                    "carriers": list(p.carriers),
                    # What the reference twin compares after every step, what not and why.
                    "twin": twin_declaration(p),
                    # An engineering sample's PAN with a wrong check digit, taken as given.
                    **({"pan_check_digit": note} if (note := p.meter.check_digit_note()) else {}),
                },
                "bench": self._bench_record(),
                "pack": {"id": self.pack.pack_id, "version": self.pack.version,
                         "title": self.pack.title, "manifest_sha256": self.pack.manifest_sha256,
                         "standards": self.pack.standards, "signed": self.pack.signed,
                         "signature_valid": self.pack.signature_valid,
                         "signer": self.pack.signer, "untampered": self.pack.untampered,
                         "files": self.pack.files},
                "scenarios": list(self._plan.scenarios),
                "decision_rule": decision_record(self.job.decision_rule),
                "declared_parameters": [row.to_json() for row in coverage(self.pack_scenarios, p)],
                "deviations": list(self.deviations),
            },
        )  # fmt: skip

    def _bench_record(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.bench.name,
            "simulated": self.bench.simulated,
            "clock_speed": self.bench.clock_speed,
            "instruments": {},
        }
        if self.bench.place is not None:
            out["place"] = self.bench.place.model_dump(mode="json")
        cfg = self.config
        if is_simlab(cfg.bench):
            out["simlab"] = {
                "time": "virtual" if cfg.bench == "virtual" else f"real x{cfg.speed:g}",
                "model": cfg.model or "simlab.meter:SimMeter",
                "defects": list(cfg.defects),
            }
        today = date.today()
        for role, inst in self.bench.instruments.items():
            cal = inst.calibration
            out["instruments"][role] = {
                "driver": inst.driver,
                "address": inst.address,
                "identity": self.identities.get(role),
                "calibration": cal.model_dump(mode="json") if cal else None,
                "calibration_status": inst.calibration_status(today, role).value,
            }
        return out

    def _on_step(self, scenario: Scenario, step: StepResult) -> None:
        # Evidence frames are kept beside the journal, by hash; the journal keeps the hash.
        for ev in step.evidence:
            png = ev.pop("png", None)
            if png:
                path = self.run.directory / "evidence" / f"{ev['sha256']}.png"
                if not path.exists():
                    replace_file(path, png, sync=False)  # benches share evidence/
                ev["file"] = f"evidence/{path.name}"
        if self.on_step is not None:
            self.on_step(scenario, step)

    # -- running ------------------------------------------------------------------------------

    def run_scenario(self, scenario: Scenario) -> ScenarioResult:
        assert self.journal is not None
        if scenario.id in self.completed:
            raise CampaignError(f"scenario {scenario.id} already completed in this run")
        self.journal.append("scenario_start", {"scenario": scenario.id, "at": _now()})
        result = self.runner.run(scenario)
        summary = {k: v for k, v in result.to_json().items() if k != "steps"}
        self.journal.append("scenario_end", summary)
        self.results.append(result)
        self.completed.add(scenario.id)
        return result

    def pending(self) -> list[Scenario]:
        return [s for s in self.scenarios if s.id not in self.completed]

    # -- resume -------------------------------------------------------------------------------

    def _prepare_resume(self) -> None:
        """Read the run's plan; continue this bench's journal if it has one."""
        run_dir = self._run_dir if self._run_dir is not None else self.resume_dir
        assert run_dir is not None
        try:
            self._plan = RunPlan.read(run_dir)
            if self._shard_name is None:
                self._shard_name = self._only_unfinished(run_dir)
            self.shard = self._plan.shard(self._shard_name)
            entries = shard_entries(run_dir, self.shard.name)
        except RunError as exc:
            raise CampaignError(str(exc)) from None
        self._run_dir = run_dir
        path = journal_path(run_dir, self.shard.name)
        self.config = config_from_json(self._plan.config)
        self.config.bench = self.shard.bench
        self.config.out = run_dir.parent
        if not entries:
            return  # this bench had not started (or died writing its first record): it starts
        if entries[0].kind != "start":
            raise CampaignError(f"{path}: the journal has no start record")
        if shard_state(entries) == "finished":
            raise CampaignError(f"{run_dir}: the run already finished on bench {self.shard.name}")
        self.resuming = True
        self._entries = entries
        ended = set(ended_scenarios(entries))
        self.completed = set(ended)
        started = [e.data["scenario"] for e in entries if e.kind == "scenario_start"]
        cut = [s for s in started if s not in ended]
        last = entries[-1]
        self.interruptions.append(
            {"at": datetime.fromtimestamp(last.t, UTC).isoformat(timespec="seconds"),
             "during": cut[-1] if cut else None, "resumed_at": _now(),
             "bench": self.shard.name}
        )  # fmt: skip

    def _only_unfinished(self, run_dir: Path) -> str:
        """The bench to resume when none is named: the run's only unfinished one."""
        left = [s.name for s in self._plan.shards
                if shard_state(shard_entries(run_dir, s.name)) != "finished"]  # fmt: skip
        if not left:
            raise CampaignError(f"{run_dir}: the run already finished")
        if len(left) > 1:
            raise CampaignError(f"{run_dir}: {len(left)} benches did not finish "
                                f"({', '.join(left)}); resume with stslab certify "
                                "--resume")  # fmt: skip
        return left[0]

    def _reestablish(self) -> None:
        """Bring the meter back to the state the journal says it had; the ledger follows a
        key change the kill cut short if the meter took it."""
        assert self.journal is not None
        # What reached the meter, in order: ("enter", digits) or ("supply_lost", None), or
        # ("operator", action) for what SimLab's operator did.
        events: list[tuple[str, Any]] = []
        pending: tuple[KeyState, bool] | None = None
        # Every entry is journalled before it is entered; a journal written before entries
        # had records of their own holds each token in its step record.
        own_records = any(e.kind == "entry" for e in self._entries)
        for e in self._entries:
            if e.kind == "entry":
                events.append(("enter", e.data["digits"]))
            elif e.kind == "key_change_entry":  # journalled before it was entered
                events.append(("enter", e.data["digits"]))
                pending = (KeyState(**e.data["new_key"]), e.data["ro"])
            elif e.kind == "step":
                if e.data["outcome"] != "ERROR":  # the set's answers were read: no longer pending
                    pending = None
                action = e.data.get("action", {})
                if not own_records and action.get("digits"):
                    events.append(("enter", action["digits"]))
                events += _meter_events(e.data)
        note: dict[str, Any] = {"interruption": self.interruptions[-1]}
        if self._sim is not None:
            # SimLab's meter does not outlive the harness process: replay every entry, and
            # every loss of supply between them (it drops a partial key change set).
            operator = self._sim_actions()
            tests = 0
            for kind, arg in events:
                if kind == "enter" and _meter_test(arg):
                    # A test sequence changes nothing a meter keeps, and replayed it would
                    # run (displays, the load switch test) long after the real one ended.
                    tests += 1
                elif kind == "enter":
                    self._sim.meter.enter_token(arg, "replay")
                elif kind == "supply_lost":
                    self._sim.meter.power_cycle()
                elif arg in operator:
                    operator[arg]()
            counts = Counter(kind for kind, _ in events)
            note["replayed_entries"] = counts["enter"] - tests
            if tests:
                note["test_tokens_not_replayed"] = tests
            if counts["supply_lost"]:
                note["replayed_supply_losses"] = counts["supply_lost"]
            if counts["operator"]:
                note["replayed_operator_actions"] = counts["operator"]
        else:
            note["check"] = "meter state taken from the ledger (real meters keep their state)"
        self.runner.key_change_pending = pending
        if "port" in self.drivers:
            try:
                key, followed = key_as_ledger(self.runner, self.drivers["port"].readout())
            except NotAtRest as exc:
                raise CampaignError(str(exc)) from None
            note["readout"] = key
            if followed:
                note["ledger"] = followed
        self.journal.append("reestablished", note)
        during = self.interruptions[-1].get("during")
        self.runner.unsettle("interruption", "resumed after an interruption"
                             + (f" during {during}" if during else ""))  # fmt: skip

    # -- closing ------------------------------------------------------------------------------

    def teardown(self) -> list[str]:
        """Load off, source off, actuators released; every part attempted, faults listed."""
        problems = []
        runner = getattr(self, "runner", None)
        if "source" in self.drivers and runner is not None:
            runner.supply_lost()  # before the command, which a fault may cut short
        for role, action in (("load", lambda d: d.load(False)),
                             ("source", lambda d: d.output(False)),
                             ("keypad", lambda d: d.abort())):  # fmt: skip
            driver = self.drivers.get(role)
            if driver is None:
                continue
            try:
                action(driver)
            except (InstrumentError, OSError) as exc:
                problems.append(f"teardown {role}: {exc}")
        return problems

    def finish(self, write_record: bool = True) -> dict[str, Any] | None:
        """End this bench's part: teardown, the end record; then (unless another process
        gathers the run's benches) the run's record file. Returns the record."""
        problems = self.teardown()
        assert self.journal is not None
        self.journal.append("end", {"at": _now(), "teardown_problems": problems,
                                    "complete": not self.pending()})  # fmt: skip
        return write_run_record(self.run.directory) if write_record else None

    def close(self) -> None:
        runner = getattr(self, "runner", None)
        if runner is not None:
            runner.stop_watching()
        if self._drivers_cm is not None:
            try:
                self.teardown()
            finally:
                self._drivers_cm.__exit__(None, None, None)
                self._drivers_cm = None
        if self.journal is not None:
            self.journal.close()
        if self._sim is not None:
            self._sim.stop()
            self._sim = None
        if self.bench_lock is not None:
            self.bench_lock.release()  # after teardown: the bench is free once it is safe

    def __enter__(self) -> Campaign:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _meter_test(digits: str) -> bool:
    """Whether ``digits`` are a class-1 token (a meter test or display request)."""
    try:
        return split_class(parse_digits(digits))[0] == 1
    except TokenFormatError:
        return False


def _meter_events(step: dict[str, Any]) -> list[tuple[str, Any]]:
    """What a completed step did to the meter besides entries: its supply lost (a power
    cycle, the source switched off) or an action of SimLab's operator. A step that ERRORed
    did an unknown part of it; the scenario it cut short runs again from its start."""
    if step["outcome"] == "ERROR":
        return []
    action = step.get("action") or {}
    kind = step.get("kind")
    if kind == "power_cycle" or (kind == "source" and action.get("output") is False):
        return [("supply_lost", None)]
    if kind == "operator" and action.get("sim_action"):
        return [("operator", action["sim_action"])]
    return []


def write_run_record(run_dir: Path) -> dict[str, Any]:
    """Build the run's record from every bench's journal and write record.json."""
    from stslab.record import build_record

    record = build_record(run_dir)
    text = json.dumps(record, indent=1, sort_keys=True)
    replace_file(run_dir / "record.json", text.encode(), sync=False)
    return record


def _sample_profile(profile: MeterProfile, shard: Shard | None) -> MeterProfile:
    """The profile of the sample on this bench: the model's, with the sample's identity."""
    if shard is None or (shard.serial is None and shard.pan is None):
        return profile
    meter = profile.meter.model_copy(
        update={k: v for k, v in (("serial", shard.serial), ("pan", shard.pan)) if v}
    )
    return profile.model_copy(update={"meter": meter})


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _sha256_path(path: str) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None
