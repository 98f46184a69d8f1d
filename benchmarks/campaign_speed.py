"""How long a certification campaign takes on SimLab, and what the harness adds to the
bench's own time. Prints ``name=value`` lines; asserts nothing.

Runs a scenario pack (default: the shipped catalogue ``suites/sts-core``) through the
campaign API against SimLab's built-in meter at ``--speed`` (the simulated clock's speed),
and reads the figures from the run's record and from a stopwatch on the runner's thread:

* ``campaign_wall_s``: real time from opening the campaign (SimLab start, drivers opened and
  identified) to the record written; ``open_s`` is the opening part alone;
* ``scenarios`` (run, with ``pass``/``fail``/``error``/``skip``, and the ids of any that
  failed or erred: the reference meter should have none), ``steps`` (setup steps
  excluded), ``token_steps`` (steps that inject: ``token``, ``raw``, ``key_change``) and
  ``injected_tokens`` (a key change injects one token per section);
* ``modelled_s``: the bench time the scenarios took;
* per injected token: ``token_step_ms`` (real time of the injecting steps),
  ``token_bench_ms`` (the part the runner spent waiting for the bench: inside a driver or
  relay-probe call, waiting for the meter's answer on the display, or sleeping on the bench
  clock) and ``token_overhead_ms``, the harness's own time: the rest (minting, choosing and
  judging, journalling with fsync, evidence files, the record), with ``_<carrier>``
  variants. The bench part is physics and protocol: key presses at the robot's hold and
  gap, IEC 62056-21's 300-baud option select (6 characters, 200 ms of line time per
  readout), SimLab's human-scale display floors.

SimLab keeps a result message, a class-1 test display, a lockout and the load switch test's
open time at least 0.5 to 1.5 s real on any clock (README, "Fast clocks"): above about
``--speed 30`` those floors stretch the meter's declared times past the windows some
scenarios allow, so the reference meter fails them. The catalogue's figures are taken at
the default speed.

On ``--bench virtual`` (SimLab on virtual time) there is no real-time floor and no wire:
the bench part is the simulation itself (the meter and plant brought from event to event,
the camera's frames rendered and decoded), and modelled time is exact.

``--figures`` prints, in one run, the figures a release is held to, each measured as a user
would run it (a fresh process, start-up included):

* ``virtual_catalogue_wall_s``: ``stslab certify --bench virtual --no-report`` over the whole
  catalogue on the reference meter, pinned to one core (``taskset -c 0`` where it exists);
* ``selftest_virtual_all_kills_wall_s``: ``stslab selftest --bench virtual --all-kills
  --workers 2`` (the reference meter and every defect through every scenario);
* ``sim_n4_wall_s``: ``stslab certify -n 4 --no-report`` on wire SimLab at the validated
  speed (four benches at once), with its verdicts;
* the harness's overhead per injected token on both benches (in process, as above).

Usage: ``python benchmarks/campaign_speed.py [--bench sim|virtual] [--pack DIR] [--speed N]
[--dut NAME] [--select TEXT] [--figures]``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from stslab.campaign import DisplayWatch, Runner
from stslab.clock import BenchClock
from stslab.pack import PackError
from stslab.session import DEFAULT_PACK, Campaign, CampaignConfig, CampaignError

INJECTING = ("token", "raw", "key_change")

#: Runner methods that wait for the meter rather than work (the display's answer).
RUNNER_WAITS = ("_post_entry_readings", "_post_entry_readings_all")


class BenchStopwatch:
    """Real seconds the runner's thread spends waiting for the bench, per step.

    Only the thread that runs the scenarios counts (the display watch reads the camera on
    a thread of its own, in parallel); nested calls (the relay probe asking the analyser)
    count once.
    """

    def __init__(self) -> None:
        self.thread = threading.current_thread()
        self._depth = 0
        self._waited = 0.0
        #: (scenario id, step index) -> (step wall s, bench s)
        self.steps: dict[tuple[str, int], tuple[float, float]] = {}

    @contextmanager
    def waiting(self) -> Iterator[None]:
        if threading.current_thread() is not self.thread:
            yield
            return
        self._depth += 1
        started = time.perf_counter()
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._waited += time.perf_counter() - started

    def wrap(self, owner: Any, name: str) -> None:
        method = getattr(owner, name)

        @functools.wraps(method)
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.waiting():
                return method(*args, **kwargs)

        setattr(owner, name, timed)

    def wrap_public(self, obj: Any) -> None:
        for name in dir(type(obj)):
            if not name.startswith("_") and callable(getattr(type(obj), name, None)):
                self.wrap(obj, name)

    def wrap_steps(self) -> Callable[[], None]:
        """Time every step; returns the undo."""
        run_step = Runner._run_step

        def timed(runner: Runner, scenario: Any, index: int, *args: Any) -> Any:
            waited, started = self._waited, time.perf_counter()
            result = run_step(runner, scenario, index, *args)
            self.steps[(scenario.id, index)] = (
                time.perf_counter() - started,
                self._waited - waited,
            )
            return result

        Runner._run_step = timed  # type: ignore[method-assign]
        return lambda: setattr(Runner, "_run_step", run_step)


def run_campaign(
    pack: Path, speed: float, dut: str | None, select: tuple[str, ...], bench: str = "sim"
) -> tuple[dict[str, Any], float, float, BenchStopwatch]:
    """(record, campaign wall time, opening time, stopwatch) of one campaign on SimLab."""
    from simlab.clock import VirtualClock
    from simlab.virtual import VirtualCamera, VirtualDisplayWatch, _Shown

    watch = BenchStopwatch()
    undo: list[Callable[[], None]] = [watch.wrap_steps()]
    waits: tuple[tuple[Any, tuple[str, ...]], ...] = (
        (Runner, RUNNER_WAITS),
        (DisplayWatch, ("wait_first", "stop")),
        (BenchClock, ("sleep", "pause")),
        # On virtual time: the simulation's own work and the camera's frames.
        (VirtualClock, ("advance_to",)),
        (VirtualDisplayWatch, ("wait_first", "stop", "wait_change")),
        (VirtualCamera, ("_decode", "_image")),
    )
    for cls, names in waits:
        for name in names:
            original = getattr(cls, name)
            undo.append(functools.partial(setattr, cls, name, original))
            watch.wrap(cls, name)
    png = _Shown.frame_png
    undo.append(functools.partial(setattr, _Shown, "frame_png", png))
    _Shown.frame_png = property(lambda shown: _timed_png(watch, png, shown))  # type: ignore[method-assign,assignment]
    try:
        with tempfile.TemporaryDirectory(prefix="stslab-campaign-speed-") as out:
            config = CampaignConfig(bench=bench, out=Path(out), pack=pack, speed=speed, dut=dut,
                                    select=select)  # fmt: skip
            started = time.perf_counter()
            with Campaign(config) as campaign:
                opened = time.perf_counter() - started
                for driver in campaign.drivers.values():
                    watch.wrap_public(driver)
                if campaign.handles.relay is not None:
                    watch.wrap_public(campaign.handles.relay)
                for scenario in campaign.pending():
                    campaign.run_scenario(scenario)
                record = campaign.finish()
            return record, time.perf_counter() - started, opened, watch
    finally:
        for restore in reversed(undo):
            restore()


def _timed_png(watch: BenchStopwatch, png: Any, shown: Any) -> bytes:
    with watch.waiting():
        return png.fget(shown)


def injections(step: dict[str, Any]) -> tuple[str, int]:
    """(carrier, tokens injected) of one step."""
    action = step["action"]
    carrier = str(action.get("carrier") or "?")
    tokens = len(action.get("sections", [])) if step["kind"] == "key_change" else 1
    return carrier, tokens


def per_token(record: dict[str, Any], watch: BenchStopwatch) -> dict[str, tuple[float, float, int]]:
    """Per carrier (and "all"): (summed step wall s, summed bench s, tokens injected)."""
    out: dict[str, list[float]] = {}
    for scenario in record["scenarios"]:
        for step in scenario["steps"]:
            if step["kind"] not in INJECTING or not step["action"]:
                continue  # a step that failed before it injected anything
            timed = watch.steps.get((scenario["id"], step["index"]))
            if timed is None:
                continue
            carrier, tokens = injections(step)
            for key in (carrier, "all"):
                total = out.setdefault(key, [0.0, 0.0, 0])
                total[0] += timed[0]
                total[1] += timed[1]
                total[2] += tokens
    return {k: (v[0], v[1], int(v[2])) for k, v in out.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pack", type=Path, default=DEFAULT_PACK, help="scenario pack folder")
    parser.add_argument(
        "--speed", type=float, default=CampaignConfig().speed, help="SimLab clock speed"
    )
    parser.add_argument("--dut", default=None, help="SimLab meter profile (built-in name/file)")
    parser.add_argument("--select", action="append", default=[], help="scenario ids containing")
    parser.add_argument("--bench", default="sim", choices=("sim", "virtual"), help="SimLab bench")
    parser.add_argument("--figures", action="store_true", help="the release figures (see above)")
    args, _ = parser.parse_known_args()  # run_all.py passes every script the same arguments
    if args.figures:
        return figures(args)
    try:
        record, wall, opened, watch = run_campaign(
            args.pack, args.speed, args.dut, tuple(args.select), args.bench
        )
    except (CampaignError, PackError, ValueError) as exc:  # a pack or scenario that won't load
        print(f"campaign_speed: cannot run {args.pack}: {exc}", file=sys.stderr)
        return 2
    report(record, wall, opened, watch, args.bench, args.speed)
    return 0


def report(
    record: dict[str, Any],
    wall: float,
    opened: float,
    watch: BenchStopwatch,
    bench: str,
    speed: float,
    prefix: str = "",
) -> None:
    """The figures of one in-process campaign."""
    summary = record["summary"]
    steps = [s for sc in record["scenarios"] for s in sc["steps"] if s["kind"] != "setup"]
    token_steps = [s for s in steps if s["kind"] in INJECTING]
    kinds = Counter(s["kind"] for s in token_steps)

    def show(name: str, value: Any) -> None:
        print(f"{prefix}{name}={value}")

    show("pack", f"{record['pack']['id']} {record['pack']['version']}")
    show("bench", bench)
    if bench == "sim":
        show("speed", f"{speed:g}")
    show("campaign_wall_s", f"{wall:.2f}")
    show("open_s", f"{opened:.2f}")
    show("scenarios", summary["scenarios"])
    for outcome in ("PASS", "FAIL", "ERROR", "SKIP"):
        show(outcome.lower(), summary[outcome])
    for outcome in ("FAIL", "ERROR"):  # a reference meter should have none: figures are suspect
        ids = [sc["id"] for sc in record["scenarios"] if sc["outcome"] == outcome]
        if ids:
            show(f"{outcome.lower()}_ids", ",".join(ids))
    show("steps", len(steps))
    show("token_steps", len(token_steps))
    for kind in INJECTING:
        show(f"token_steps_{kind}", kinds.get(kind, 0))
    show("modelled_s", f"{summary['modelled_s']:.1f}")
    per = per_token(record, watch)
    for carrier in ["all", *sorted(k for k in per if k != "all")]:
        step_s, bench_s, count = per[carrier]
        if not count:
            continue
        suffix = "" if carrier == "all" else f"_{carrier}"
        show(f"injected_tokens{suffix}", count)
        show(f"token_step_ms{suffix}", f"{1000 * step_s / count:.1f}")
        show(f"token_bench_ms{suffix}", f"{1000 * bench_s / count:.1f}")
        show(f"token_overhead_ms{suffix}", f"{1000 * (step_s - bench_s) / count:.2f}")


def _stslab(*args: str, cwd: Path, one_core: bool = False) -> tuple[float, int, str]:
    """(wall seconds, exit status, output) of one ``stslab`` command in a fresh process."""
    command = [sys.executable, "-m", "stslab", *args]
    if one_core and shutil.which("taskset"):
        command = ["taskset", "-c", "0", *command]
    env = {**os.environ, "COLUMNS": "200"}
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    return time.perf_counter() - started, proc.returncode, proc.stdout + proc.stderr


def _verdicts(out: Path) -> str:
    runs = sorted(out.iterdir()) if out.exists() else []
    if not runs or not (runs[-1] / "record.json").exists():
        return "no record"
    summary = json.loads((runs[-1] / "record.json").read_text())["summary"]
    return " ".join(f"{k.lower()}={summary[k]}" for k in ("PASS", "FAIL", "ERROR", "SKIP"))


def figures(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="stslab-figures-") as tmp:
        work = Path(tmp)
        wall, code, _ = _stslab("certify", "--bench", "virtual", "--no-report", "-q",
                                "--out", str(work / "v"), cwd=work, one_core=True)  # fmt: skip
        print(f"virtual_catalogue_wall_s={wall:.2f} (exit {code}; {_verdicts(work / 'v')})")
        wall, code, text = _stslab("selftest", "--bench", "virtual", "--all-kills",
                                   "--workers", "2", cwd=work)  # fmt: skip
        killed = next((ln for ln in text.splitlines() if ln.startswith("defects killed")), "?")
        print(f"selftest_virtual_all_kills_wall_s={wall:.2f} (exit {code}; {killed})")
        wall, code, text = _stslab("certify", "-n", "4", "--no-report", "-q",
                                   "--out", str(work / "n4"), cwd=work)  # fmt: skip
        if code == 2:
            print(f"sim_n4_wall_s=n/a ({text.strip().splitlines()[-1] if text.strip() else ''})")
        else:
            print(f"sim_n4_wall_s={wall:.2f} (exit {code}; {_verdicts(work / 'n4')})")
    for bench in ("virtual", "sim"):
        record, wall, opened, watch = run_campaign(
            args.pack, args.speed, args.dut, tuple(args.select), bench
        )
        report(record, wall, opened, watch, bench, args.speed, prefix=f"{bench}_")
    return 0


if __name__ == "__main__":
    sys.exit(main())
