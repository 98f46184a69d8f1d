"""What a person sees while ``stslab certify`` runs: in a terminal a live view that moves
(scenario and step per bench, counts, the number selected as the total); without one a line
per finished scenario."""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 240.0
SELECTED = ("STS-TID-001", "STS-TID-002", "STS-TID-003", "STS-TID-004")
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r")


def _args(out: Path) -> list[str]:
    args = [sys.executable, "-m", "stslab", "certify", "-n", "2", "--out", str(out),
            "--no-report"]  # fmt: skip
    for sid in SELECTED:
        args += ["-k", sid]
    return args


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "TERM": "xterm-256color", "COLUMNS": "140"}


def _screens_on_a_terminal(out: Path) -> list[tuple[float, str]]:
    """Run certify on a pseudo-terminal; what it wrote, in the chunks it came in."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 140, 0, 0))
    proc = subprocess.Popen(_args(out), stdin=slave, stdout=slave, stderr=slave, env=_env(),
                            close_fds=True)  # fmt: skip
    os.close(slave)
    chunks: list[tuple[float, str]] = []
    start = time.monotonic()
    try:
        while time.monotonic() - start < RUN_TIMEOUT_S:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                text = ANSI.sub(b"", data).decode(errors="replace")
                chunks.append((time.monotonic() - start, text))
            elif proc.poll() is not None:
                break
        assert proc.wait(timeout=30) == 0, "".join(c for _, c in chunks)[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return chunks


def test_the_live_view_moves_while_the_run_goes_on(tmp_path: Path) -> None:
    chunks = _screens_on_a_terminal(tmp_path / "runs")
    heads = [(t, m) for t, text in chunks
             for m in re.finditer(r"certify (\d+)/(\d+) scenarios · pass (\d+)", text)]  # fmt: skip
    assert heads, "".join(c for _, c in chunks)[-2000:]
    # the total is what -k selected, not the catalogue
    assert {int(m[2]) for _, m in heads} == {len(SELECTED)}
    # counts rise over time
    done = [int(m[1]) for _, m in heads]
    assert done == sorted(done) and len(set(done)) >= 3
    assert done[-1] == len(SELECTED)
    # one row per bench, with the scenario and step it is running, changing over time
    text = "".join(c for _, c in chunks)
    assert "simlab-1" in text and "simlab-2" in text
    running = set(re.findall(r"(STS-TID-00\d) step (\d)/(\d)", text))
    assert len({sid for sid, _, _ in running}) >= 2
    assert len(running) >= 4  # several steps of several scenarios were shown
    # and the display refreshed while scenarios ran, not only at their ends
    times = sorted({round(t) for t, _ in heads})
    assert len(times) >= 3


def test_without_a_terminal_each_finished_scenario_is_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(_args(tmp_path / "runs"), env=_env(), capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = re.findall(r"^(STS-TID-\d+) (PASS|FAIL|ERROR|SKIP) (simlab-[12]) (\d+\.\d) s "
                       r"\((\d+)/(\d+)\)$", proc.stdout, re.MULTILINE)  # fmt: skip
    assert sorted(sid for sid, *_ in lines) == sorted(SELECTED)
    assert {total for *_, total in lines} == {str(len(SELECTED))}
    assert [int(n) for *_, n, _ in lines] == list(range(1, len(SELECTED) + 1))
    assert {outcome for _, outcome, *_ in lines} == {"PASS"}
    assert f"certify: {len(SELECTED)} scenarios planned" in proc.stdout
    assert "\x1b[" not in proc.stdout.split("campaign results")[0]  # no live-view escapes
