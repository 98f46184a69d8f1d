"""``stslab sim``: run SimLab, the simulated bench, in the foreground."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Column, Table

from stslab.cli.errors import ArgumentError


def load_profile(ref: str | None):  # type: ignore[no-untyped-def]
    """A meter profile from a file path, or a built-in name (``default``, ``ea11``, ``ea09``)."""
    from dut.profile import MeterProfile, ProfileError

    try:
        profile = MeterProfile.load(ref)
        profile.decoder_key()  # the vending key it names must be there
    except ProfileError as exc:
        raise ArgumentError("--profile", str(exc)) from None
    return profile


def sim(
    profile: Annotated[
        str | None, typer.Option(help="Meter profile YAML, or a built-in: default, ea11.")
    ] = None,
    speed: Annotated[float, typer.Option(help="Clock speed: N times real time.")] = 1.0,
    defect: Annotated[
        list[str] | None, typer.Option("--defect", help="A meter defect (repeatable).")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Meter model class as module:Class (a SimMeter subclass).")
    ] = None,
    noise: Annotated[str, typer.Option(help="Camera noise: none, low, medium, high.")] = "none",
    seed: Annotated[int | None, typer.Option(help="Seed for camera geometry and noise.")] = None,
    bench_out: Annotated[
        Path | None, typer.Option("--bench-out", help="Write the bench file here.")
    ] = None,
    list_defects: Annotated[
        bool, typer.Option("--list-defects", help="Print the defect catalogue and exit.")
    ] = False,
    duration: Annotated[
        float | None, typer.Option(help="Stop by itself after this many real seconds.")
    ] = None,
) -> None:
    """Start the simulated bench (meter, plant and every instrument) until Ctrl-C."""
    console = Console()
    if list_defects:
        _print_defects(console)
        return
    from simlab.bench import SimBench
    from simlab.defects import lookup
    from simlab.lcd import NOISE_LEVELS

    meter_profile = load_profile(profile)
    if speed <= 0:
        raise ArgumentError("--speed", f"{speed} is not a positive speed")
    if noise not in NOISE_LEVELS:
        raise ArgumentError("--noise", f"{noise!r} is not one of {', '.join(NOISE_LEVELS)}")
    try:
        lookup(defect or ())
    except ValueError as exc:
        raise ArgumentError("--defect", str(exc)) from None
    started = time.perf_counter()
    try:
        bench = SimBench(
            meter_profile, speed=speed, defects=defect or (), model=model, noise=noise, seed=seed
        )
    except ValueError as exc:
        raise ArgumentError("--model", str(exc)) from None
    try:
        bench.start()
    except ValueError as exc:  # e.g. a display vocabulary the profile's LCD cannot show
        raise ArgumentError("--profile", str(exc)) from None
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        with bench:
            ready = time.perf_counter() - started
            if bench_out is not None:
                bench.write_bench_file(bench_out, meter_profile.source)
            _print_bench(console, bench, ready, bench_out)
            stop.wait(duration)
            console.print("stopping SimLab …")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    console.print("SimLab stopped; ptys and ports released.")


def _print_bench(console: Console, bench, ready: float, bench_out: Path | None) -> None:  # type: ignore[no-untyped-def]
    p = bench.profile
    console.print(
        f"[bold]SimLab[/] meter {p.meter.make} {p.meter.model} (PAN {p.meter.pan}, "
        f"EA{p.key.ea}, key {p.key_fingerprint()}) clock x{bench.speed:g}"
        + (f", defects: {', '.join(bench.defects)}" if bench.defects else "")
    )
    table = Table("role", "driver", "address")
    from simlab.bench import DRIVERS

    for role, address in bench.addresses().items():
        table.add_row(role, DRIVERS[role], address)
    console.print(table)
    if bench_out is not None:
        console.print(f"bench file: {bench_out}")
    console.print(f"ready in {ready * 1000:.0f} ms — Ctrl-C stops")


def _print_defects(console: Console) -> None:
    from simlab.defects import CATALOGUE

    width = max(len(d.name) for d in CATALOGUE)
    table = Table(
        Column("defect", no_wrap=True, min_width=width), "rule it breaks", "what the meter does"
    )
    for d in CATALOGUE:
        table.add_row(d.name, d.rule, d.description)
    console.print(table)
