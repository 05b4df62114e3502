"""One gateway per home: an exclusive lock on ``<home>/events/gateway.lock``.

The lock is an advisory ``flock`` (fcntl, standard library), released by the kernel
when the holder exits however it exits, SIGKILL included, so a crashed gateway never
leaves a stale lock. The holder writes its pid into the file for the message a second
gateway prints.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from cnai.errors import UsageError


class GatewayLock:
    """The home's events folder, held by one gateway process at a time."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "gateway.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock; UsageError naming the holder's pid when another gateway has it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise UsageError(
                f"{self.path.parent}: another gateway (pid {holder}) already serves this "
                "home; stop it first or use another --home"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Give the lock up (the file stays; an unlocked file is no lock)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None
