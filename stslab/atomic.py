"""Files replaced whole, or created once: a reader (another bench's process, a resume after a
crash) sees the old content or the new one, never half of either."""

from __future__ import annotations

import errno
import os
import re
import tempfile
from pathlib import Path

from stslab import crash


def replace_file(
    path: Path, data: bytes, *, sync: bool = True, crash_point: str | None = None
) -> None:
    """Write ``data`` to a scratch file beside ``path``, then rename it over ``path``.
    With ``sync`` the data reaches the disk before the rename (the ledger, the run plan).
    ``crash_point`` names the moment between the two for :mod:`stslab.crash`."""
    fd, scratch = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
        if crash_point is not None:
            crash.point(crash_point)
        os.replace(scratch, path)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise


def create_file(path: Path, data: bytes, *, torn_point: str | None = None) -> None:
    """Create ``path`` with ``data``, complete or not at all, never over an existing file
    (:class:`FileExistsError`): a signed report is written once. The data goes to a scratch
    file, reaches the disk, then is linked in under its name. ``torn_point`` names the moment
    half of it is written, for :mod:`stslab.crash`."""
    fd, scratch = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        os.fchmod(fd, 0o644 & ~_umask())  # a report is for reading: not the scratch's 0600
        with os.fdopen(fd, "wb") as fh:
            if torn_point is not None:
                crash.point(torn_point, lambda: (fh.write(data[: len(data) // 2]), fh.flush()))
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(scratch, path)  # fails on an existing name: nothing is overwritten
        except FileExistsError:
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path)) from None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            # A file system without hard links: exclusive creation, written in place.
            with open(path, "xb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
    finally:
        Path(scratch).unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: A scratch file of :func:`replace_file` or :func:`create_file`: ``.NAME-`` and the eight
#: characters :func:`tempfile.mkstemp` adds.
_SCRATCH = re.compile(r"\.(?P<name>.+)-[a-z0-9_]{8}")


def remove_scratch(directory: Path) -> list[Path]:
    """Remove the scratch files a killed process left under ``directory`` (their content
    never became a file's: the file has its old content or none). Only for a folder no
    running process writes to. Returns what was removed."""
    removed = []
    for path in sorted(directory.rglob(".*-*")):
        if path.is_file() and _SCRATCH.fullmatch(path.name):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
