"""Files replaced whole: a reader (another bench's process, a resume after a crash) sees the
old content or the new one, never half of either."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def replace_file(path: Path, data: bytes, *, sync: bool = True) -> None:
    """Write ``data`` to a scratch file beside ``path``, then rename it over ``path``.
    With ``sync`` the data reaches the disk before the rename (the ledger, the run plan)."""
    fd, scratch = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(scratch, path)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise
