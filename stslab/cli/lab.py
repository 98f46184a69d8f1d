"""``stslab lab``: benches as labgrid places (export, status, release, a local lab up/down),
and the place side of ``stslab certify --place/--reserve``."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from stslab.cli.errors import ArgumentError

app = typer.Typer(help="A lab of many benches: benches as labgrid places.", no_args_is_help=True)

CoordinatorOption = Annotated[
    str | None,
    typer.Option(help="labgrid coordinator HOST[:PORT] (default: LG_COORDINATOR, else "
                 "127.0.0.1:20408)."),
]  # fmt: skip
LabDir = Annotated[Path, typer.Option("--dir", help="Folder of the local lab's processes.")]
DEFAULT_DIR = Path.home() / ".stslab" / "lab"


def _lab_error(option: str, exc: Exception) -> ArgumentError:
    return ArgumentError(option, str(exc))


@app.command("export")
def export(
    bench_file: Annotated[Path, typer.Argument(help="The bench file to publish.")],
    name: Annotated[
        str | None, typer.Option(help="Place name (default: the bench's name).")
    ] = None,
    coordinator: CoordinatorOption = None,
    hostname: Annotated[
        str | None,
        typer.Option(help="Host name clients reach this computer by (default: its hostname)."),
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option(help="Extra place tag KEY=VALUE (repeatable).")
    ] = None,
    print_only: Annotated[
        bool, typer.Option("--print", help="Print the exporter configuration and exit.")
    ] = False,
) -> None:
    """Publish a bench as a labgrid place: run the labgrid exporter for its instruments
    (serial devices through ser2net) and tag the place; Ctrl-C stops it."""
    from stslab.bench import BenchError, check_bench, load_bench
    from stslab.lab.coordinator import Coordinator, LabError, coordinator_address
    from stslab.lab.hold import parse_filters
    from stslab.lab.place import (
        PlaceError,
        exporter_config,
        exporter_yaml,
        identities_of,
        place_tags,  # fmt: skip
        tag_value,
    )

    console = Console(file=sys.stdout)
    try:
        bench = load_bench(bench_file)
    except BenchError as exc:
        raise ArgumentError("BENCH_FILE", str(exc)) from None
    place = name or tag_value(bench.name).replace("_", "-")
    host = hostname or socket.gethostname()
    try:
        config = exporter_config(bench, place, host)
        extra = parse_filters(tag or [])
    except (PlaceError, LabError) as exc:
        option = "--tag" if isinstance(exc, LabError) else "BENCH_FILE"
        raise ArgumentError(option, str(exc)) from None
    text = exporter_yaml(config)
    if print_only:
        sys.stdout.write(text)
        return
    # The instruments answer here, before ser2net holds the serial ports.
    checks = check_bench(bench)
    for r in checks:
        if not r.ok:
            console.print(f"[yellow]{r.role}: {r.error} (no identity tag)[/]")
    tags = place_tags(bench, identities_of(checks), extra)
    address = coordinator_address(coordinator)
    folder = Path(tempfile.mkdtemp(prefix="stslab-export-"))
    config_file = folder / f"{place}.yaml"
    config_file.write_text(text)
    try:
        with Coordinator(address) as c:
            c.ensure_place(place, [f"{place}/{place}/*"], tags)
    except LabError as exc:
        raise _lab_error("--coordinator", exc) from None
    console.print(f"place {place} on {address}: {len(config[place]) - 1} resources, tags "
                  + " ".join(f"{k}={v}" for k, v in tags.items()))  # fmt: skip
    # labgrid's exporter, its serial ports ready as soon as ser2net listens (stslab.lab.exporter)
    argv = [sys.executable, "-m", "stslab.lab.exporter", "-c", address, "-n", place,
            "--hostname", host, str(config_file)]  # fmt: skip
    child = subprocess.Popen(argv)
    # Stopping this command stops the exporter (which stops its ser2net).
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, _f: child.send_signal(s))
    code = child.wait()
    config_file.unlink(missing_ok=True)
    folder.rmdir()
    raise typer.Exit(code if code > 0 else 0)


@app.command("status")
def status(coordinator: CoordinatorOption = None) -> None:
    """The places, who holds each, and the campaigns waiting for one."""
    from stslab.lab.coordinator import Coordinator, LabError, coordinator_address, lease_expired

    console = Console(file=sys.stdout)
    address = coordinator_address(coordinator)
    try:
        with Coordinator(address) as c:
            places = c.places()
            reservations = c.reservations()
    except LabError as exc:
        raise _lab_error("--coordinator", exc) from None
    import time

    table = Table("place", "exporter", "held by", "lease", "tags", title=f"places on {address}")
    for name in sorted(places):
        p = places[name]
        expired = lease_expired(p.comment, time.time())
        lease = "" if expired is None else "expired" if expired else "held"
        exporters = ", ".join(sorted(p.exporters)) or "[yellow]none[/]"
        shown = ("bench", "simulated")
        tags = " ".join(f"{k}={v}" for k, v in sorted(p.tags.items()) if k in shown)
        table.add_row(name, exporters, p.acquired or "free", lease, tags)
    console.print(table)
    waiting = [r for r in reservations if r.state == "waiting"]
    for r in reservations:
        if r.state != "waiting":
            continue
        wanted = " ".join(f"{k}={v}" for k, v in r.filters.items())
        console.print(f"waiting: {r.owner} for {wanted} (reservation {r.token})")
    if not waiting:
        console.print("no campaign waiting")


@app.command("release")
def release(
    place: Annotated[str, typer.Argument(help="The place to free.")],
    coordinator: CoordinatorOption = None,
) -> None:
    """Free a place whatever holds it (a client that died without releasing it)."""
    from stslab.lab.coordinator import Coordinator, LabError, coordinator_address

    try:
        with Coordinator(coordinator_address(coordinator)) as c:
            view = c.place(place)
            if not view.acquired:
                Console(file=sys.stdout).print(f"place {place} is free")
                return
            c.release(place, fromuser=view.acquired)
            if view.reservation:
                c.cancel(view.reservation)
    except LabError as exc:
        raise ArgumentError("PLACE", str(exc)) from None
    Console(file=sys.stdout).print(f"released place {place} (held by {view.acquired})")


@app.command("up")
def lab_up(
    benches: Annotated[
        int, typer.Option(help="How many SimLab benches (places sim-1 … sim-N).")
    ] = 2,
    directory: LabDir = DEFAULT_DIR,
    port: Annotated[
        int | None, typer.Option(help="Coordinator port (default: a free one).")
    ] = None,
    speed: Annotated[float, typer.Option(help="SimLab clock speed.")] = 20.0,
) -> None:
    """Start a lab on this computer: a labgrid coordinator, N SimLab benches on their real
    transports, ser2net and one exporter per bench; prints the places."""
    from stslab.lab.coordinator import LabError
    from stslab.lab.local import up

    if benches < 1:
        raise ArgumentError("--benches", "must be at least 1")
    try:
        state = up(directory, benches, port=port, speed=speed)
    except LabError as exc:
        raise ArgumentError("lab up", str(exc)) from None
    console = Console(file=sys.stdout)
    console.print(f"coordinator {state['coordinator']}; places: {', '.join(state['places'])}")
    console.print(f"export LG_COORDINATOR={state['coordinator']}")
    console.print(f"stop with: stslab lab down --dir {directory}")


@app.command("down")
def lab_down(directory: LabDir = DEFAULT_DIR) -> None:
    """Stop everything ``stslab lab up`` started."""
    from stslab.lab.coordinator import LabError
    from stslab.lab.local import down

    try:
        stopped = down(directory)
    except LabError as exc:
        raise ArgumentError("--dir", str(exc)) from None
    Console(file=sys.stdout).print("stopped: " + (", ".join(stopped) or "nothing was running"))


# -- certify --place / --reserve -------------------------------------------------------------


def hold_for(
    place: str | None,
    reserve: list[str],
    coordinator: str | None,
    mode: str,
    console: Console,
    benches: int = 1,
) -> Any:
    """The place hold for ``certify --place/--reserve`` (with ``--reserve``, up to
    ``benches`` places), already being taken in the background (the caller releases it if
    it gives up)."""
    from stslab.lab.coordinator import LabError, coordinator_address
    from stslab.lab.hold import PlaceHold, parse_filters

    if place is not None and reserve:
        raise ArgumentError("--reserve", "give --place or --reserve, not both")
    try:
        filters = parse_filters(reserve) if reserve else None
    except LabError as exc:
        raise ArgumentError("--reserve", str(exc)) from None
    hold = PlaceHold(coordinator_address(coordinator), place=place, filters=filters,
                     accredited=mode == "accredited", say=console.print,
                     benches=benches if filters else 1)  # fmt: skip
    return hold.acquire_early()


def take_place(hold: Any, out: Path, resume: Path | None) -> tuple[list[Path], Any]:
    """Acquire the places (or wait for a reservation), write a bench file for each and return
    them with the pytest plugin that guards the places while the run goes on. A resumed run's
    bench file is rewritten where the run's plan names it for that place. On any error the
    hold lets go."""
    from instruments.base import load_builtin_drivers
    from stslab.lab.campaign import PlaceGuard
    from stslab.lab.coordinator import LabError

    plan = None
    if resume is not None:
        from stslab.run import RunError, RunPlan

        try:
            plan = RunPlan.read(resume)
        except RunError as exc:
            hold.release()
            raise ArgumentError("--resume", str(exc)) from None
    # The bench files name drivers: load them while the coordinator answers.
    load_builtin_drivers()
    try:
        hold.acquire()
        files = []
        for name in hold.places:
            path = out / "places" / f"{name}.yaml"
            if plan is not None:  # the bench file the run's plan names for this place
                shard = [s.bench for s in plan.shards if s.name == name]
                path = Path(shard[0] if shard else plan.shards[0].bench)
            files.append(hold.write_bench_file(path, name))
    except LabError as exc:
        hold.release()
        raise ArgumentError("--reserve" if hold.filters else "--place", str(exc)) from None
    except BaseException:
        hold.release()
        raise
    # SIGTERM ends the run like Ctrl-C, so the places are released on the way out.
    signal.signal(signal.SIGTERM, _interrupt)
    return files, PlaceGuard(hold)


def _interrupt(_sig: int, _frame: Any) -> None:
    raise KeyboardInterrupt
