"""One campaign per bench: a second campaign on a bench file in use refuses at once, naming
the run that holds it, and changes nothing; the bench is free again when the first closes,
and a holder killed with SIGKILL leaves no lock behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from simlab.virtual import VirtualBench
from stslab.benchlock import BenchBusy, BenchLock, refuse_if_busy
from stslab.cli import main
from stslab.session import Campaign, CampaignConfig, InputError

REPO = Path(__file__).resolve().parents[2]
HOLDER_DEADLINE_S = 60.0  # interpreter start on a busy machine


@pytest.fixture
def bench_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A bench file (SimLab on virtual time, reached by address like any bench); lock files
    in the test's own folder."""
    monkeypatch.setenv("STSLAB_LOCK_DIR", str(tmp_path / "locks"))
    with VirtualBench() as bench:
        yield bench.write_bench_file(tmp_path / "bench.yaml")


def _config(tmp_path: Path, bench_file: Path, out: str) -> CampaignConfig:
    return CampaignConfig(bench=str(bench_file), out=tmp_path / out,
                          ledger_dir=tmp_path / "ledger", select=("STS-TC-001",))  # fmt: skip


def test_a_second_campaign_on_a_bench_in_use_refuses_naming_the_run(
    tmp_path: Path, bench_file: Path
) -> None:
    with Campaign(_config(tmp_path, bench_file, "first")) as first:
        with pytest.raises(InputError) as refused:
            Campaign(_config(tmp_path, bench_file, "second")).open()
        message = str(refused.value)
        assert refused.value.option == "--bench"
        assert f"in use by run {first.run.run_id}" in message
        assert f"process {os.getpid()}" in message
        assert not (tmp_path / "second").exists()  # nothing was created
    with Campaign(_config(tmp_path, bench_file, "second")) as second:  # free once closed
        assert second.run.directory.exists()


def test_certify_refuses_a_bench_in_use_at_once(
    tmp_path: Path, bench_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Campaign(_config(tmp_path, bench_file, "first")) as first:
        out = tmp_path / "runs"
        code = main(["certify", "--bench", str(bench_file), "--out", str(out), "--quiet",
                     "--no-report", "-k", "STS-TC-001"])  # fmt: skip
        err = capsys.readouterr().err
    assert code == 2
    assert "--bench" in err and f"in use by run {first.run.run_id}" in err
    assert not out.exists() or not any(out.iterdir())


def test_a_killed_holder_leaves_no_lock_behind(tmp_path: Path, bench_file: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\n"
         "from stslab.benchlock import BenchLock\n"
         "BenchLock(sys.argv[1]).acquire('RUN-HELD')\n"
         "print('held', flush=True)\n"
         "time.sleep(600)\n",
         str(bench_file)],
        cwd=REPO, stdout=subprocess.PIPE, text=True, env={**os.environ},
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(BenchBusy, match=f"run RUN-HELD \\(process {holder.pid} "):
            refuse_if_busy(bench_file)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(HOLDER_DEADLINE_S)
    with BenchLock(bench_file) as lock:  # the lock file is still there; its lock is not
        assert lock.held and lock.path.exists()
