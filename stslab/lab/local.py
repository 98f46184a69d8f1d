"""A lab on this computer: a labgrid coordinator, N SimLab benches on their real transports,
and one exporter per bench (each serving its serial devices through ser2net), as places
``sim-1`` … ``sim-N``. For demonstrations and CI; a real lab runs the same pieces on
several computers.

Every process started is recorded (by its id) in the lab folder's ``lab.json``; ``down``
stops those process groups and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from stslab.lab.coordinator import Coordinator, LabError
from stslab.lab.place import BENCH_RESOURCE

STATE = "lab.json"


def ser2net_path() -> str | None:
    """ser2net as labgrid's exporter finds it (PATH, then /usr/sbin)."""
    return shutil.which("ser2net") or (
        "/usr/sbin/ser2net" if os.path.isfile("/usr/sbin/ser2net") else None
    )


def labgrid_tool(name: str) -> str:
    """A labgrid command, next to this Python first (a virtual environment's bin)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise LabError(f"{name} not found: install labgrid (pip install 'stslab[lab]')")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(argv: list[str], log: Path, cwd: Path) -> subprocess.Popen:
    # Its own process group: stopping it stops what it started (an exporter's ser2net).
    with log.open("ab") as out:
        return subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip


def _wait(what: str, ready: Any, proc: subprocess.Popen, log: Path, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
            raise LabError(f"{what} exited (status {proc.returncode}): " + " | ".join(tail))
        value = ready()
        if value:
            return value
        time.sleep(0.2)
    raise LabError(f"{what} not ready within {timeout_s:g} s (log: {log})")


def up(directory: Path, benches: int, *, port: int | None = None, speed: float = 20.0,
       timeout_s: float = 60.0) -> dict[str, Any]:  # fmt: skip
    """Start the lab; returns its state (coordinator address, places, processes)."""
    if ser2net_path() is None:
        raise LabError("ser2net not found: install it (apt-get install ser2net)")
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / STATE).exists():
        raise LabError(f"a lab is already up in {directory} (stslab lab down --dir {directory})")
    port = port or free_port()
    address = f"127.0.0.1:{port}"
    state: dict[str, Any] = {"coordinator": address, "places": [], "processes": []}
    procs: list[subprocess.Popen] = []

    def keep(role: str, proc: subprocess.Popen) -> None:
        procs.append(proc)
        state["processes"].append({"role": role, "pid": proc.pid})
        _save(directory, state)

    try:
        log = directory / "coordinator.log"
        coord = _spawn([labgrid_tool("labgrid-coordinator"), "-l", address], log, directory)
        keep("coordinator", coord)
        _wait("the coordinator", lambda: _reachable(address), coord, log, timeout_s)
        stslab = [sys.executable, "-m", "stslab"]
        for k in range(1, benches + 1):
            name = f"sim-{k}"
            folder = directory / name
            folder.mkdir(exist_ok=True)
            bench_file = folder / "bench.yaml"
            bench_file.unlink(missing_ok=True)
            log = folder / "simlab.log"
            sim = _spawn([*stslab, "sim", "--speed", str(speed), "--bench-out",
                          str(bench_file)], log, folder)  # fmt: skip
            keep(f"simlab {name}", sim)
            _wait(f"SimLab {name}", bench_file.exists, sim, log, timeout_s)
            keep(f"exporter {name}", start_exporter(folder, name, address))
            state["places"].append(name)
            _save(directory, state)
        with Coordinator(address) as c:
            for name, proc in zip(state["places"], procs[2::2], strict=True):
                _wait(f"the exporter of {name}", lambda n=name: _published(c, n), proc,
                      directory / name / "exporter.log", timeout_s)  # fmt: skip
    except BaseException:
        stop(state)
        (directory / STATE).unlink(missing_ok=True)
        raise
    return state


def start_exporter(folder: Path, name: str, address: str) -> subprocess.Popen:
    """``stslab lab export`` for the SimLab bench in ``folder``, as place ``name``."""
    argv = [sys.executable, "-m", "stslab", "lab", "export", str(folder / "bench.yaml"),
            "--name", name, "--coordinator", address, "--hostname", "127.0.0.1"]  # fmt: skip
    return _spawn(argv, folder / "exporter.log", folder)


def restart_exporter(directory: Path, name: str, timeout_s: float = 30.0) -> int:
    """Start place ``name``'s exporter again (after it died); returns its process id."""
    state = read_state(directory)
    if name not in state["places"]:
        raise LabError(f"no place {name} in the lab in {directory}")
    proc = start_exporter(directory / name, name, state["coordinator"])
    role = f"exporter {name}"
    state["processes"] = [p for p in state["processes"] if p["role"] != role]
    state["processes"].append({"role": role, "pid": proc.pid})
    _save(directory, state)
    with Coordinator(state["coordinator"]) as c:
        _wait(role, lambda: _published(c, name), proc, directory / name / "exporter.log",
              timeout_s)  # fmt: skip
    return proc.pid


def _reachable(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


def _published(coordinator: Coordinator, place: str) -> bool:
    view = coordinator.places().get(place)
    return view is not None and BENCH_RESOURCE in view.resources


def _save(directory: Path, state: dict[str, Any]) -> None:
    path = directory / STATE
    path.with_suffix(".tmp").write_text(json.dumps(state, indent=1))
    path.with_suffix(".tmp").replace(path)


def read_state(directory: Path) -> dict[str, Any]:
    path = directory / STATE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise LabError(f"no lab is up in {directory}") from None
    except (OSError, ValueError) as exc:
        raise LabError(f"{path}: unreadable: {exc}") from None


def down(directory: Path) -> list[str]:
    """Stop every process the lab started (exporters first, the coordinator last)."""
    state = read_state(directory)
    stopped = stop(state)
    (directory / STATE).unlink(missing_ok=True)
    return stopped


def stop(state: dict[str, Any], grace_s: float = 5.0) -> list[str]:
    stopped = []
    for entry in reversed(state["processes"]):
        pid = entry["pid"]
        try:
            os.killpg(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            continue
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        stopped.append(f"{entry['role']} (process {pid})")
    return stopped


def _alive(pid: int) -> bool:
    try:
        done, _status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass  # not our child (lab down from another shell): ask the kernel
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True
