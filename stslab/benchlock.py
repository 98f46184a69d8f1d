"""One campaign per bench: a lock a second campaign meets at once, and a crash does not keep.

A campaign on a bench file holds an exclusive ``flock`` on a lock file for as long as its
bench is open; the file names the holder (run id, process id, host, since). A second campaign
on the same bench file finds the lock taken and refuses at once, naming the run that holds
it. The operating system drops an flock when its process ends, however it ends (``kill -9``
included), so a crashed campaign leaves a lock file that the next campaign simply takes.

Lock files live in ``~/.stslab/locks/`` (``STSLAB_LOCK_DIR`` to put them elsewhere), one per
bench file, named by the file's name and a digest of its resolved path. This is for one host;
benches shared between hosts are reserved through labgrid places.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LOCK_DIR_VARIABLE = "STSLAB_LOCK_DIR"


class BenchBusy(Exception):
    """The bench is in use by another campaign; the message names its run and process."""


def lock_path(bench_file: str | Path) -> Path:
    """The lock file of a bench file."""
    resolved = Path(bench_file).resolve()
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    folder = os.environ.get(LOCK_DIR_VARIABLE) or Path.home() / ".stslab" / "locks"
    return Path(folder) / f"{resolved.stem}-{digest}.lock"


class BenchLock:
    """The lock on one bench file, held from :meth:`acquire` to :meth:`release`."""

    def __init__(self, bench_file: str | Path) -> None:
        self.bench_file = Path(bench_file)
        self.path = lock_path(bench_file)
        self._fd = -1

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def acquire(self, run_id: str | None = None) -> BenchLock:
        """Take the lock or raise :class:`BenchBusy` at once (never waits)."""
        if self.held:
            return self
        self._fd = _take(self.bench_file, self.path)
        self.name_run(run_id)
        return self

    def name_run(self, run_id: str | None) -> None:
        """Write who holds the lock (again, once the run id is known)."""
        if not self.held:
            return
        holder = {"run_id": run_id, "pid": os.getpid(), "host": socket.gethostname(),
                  "since": datetime.now(UTC).isoformat(timespec="seconds"),
                  "bench_file": str(self.bench_file.resolve())}  # fmt: skip
        data = json.dumps(holder).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def release(self) -> None:
        """Let the lock go (closing the file drops the flock). Idempotent."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self) -> BenchLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _take(bench_file: Path, path: Path) -> int:
    """The lock file's descriptor with the flock taken; BenchBusy naming the holder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise BenchBusy(busy_message(bench_file, read_holder(path))) from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_holder(path: Path) -> dict[str, Any] | None:
    """Who the lock file says holds it (None when it cannot be read)."""
    try:
        data = json.loads(path.read_text() or "null")
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def busy_message(bench_file: Path, holder: dict[str, Any] | None) -> str:
    if not holder:
        who = "another campaign (it has not named itself yet)"
    else:
        run = holder.get("run_id") or "a run still starting"
        who = (f"run {run} (process {holder.get('pid')} on {holder.get('host')}, since "
               f"{holder.get('since')})")  # fmt: skip
    return f"{bench_file}: the bench is in use by {who}; one campaign per bench"


def refuse_if_busy(bench_file: str | Path) -> None:
    """Raise :class:`BenchBusy` when a campaign holds the bench (nothing is kept or written)."""
    os.close(_take(Path(bench_file), lock_path(bench_file)))
