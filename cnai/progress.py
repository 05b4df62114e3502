"""Progress for long work: rich on a terminal, plain lines otherwise.

Progress always goes to stderr so ``--json`` output on stdout stays parseable.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


class Progress:
    """Reports steps of one piece of work; ``quiet`` silences everything."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def info(self, message: str) -> None:
        """One line of progress."""
        if self.quiet:
            return
        if self.tty:
            from rich.console import Console

            Console(file=self.stream, highlight=False).print(f"[dim]•[/dim] {message}")
        else:
            print(message, file=self.stream, flush=True)

    @contextmanager
    def status(self, message: str) -> Iterator[None]:
        """A spinner on a TTY while the block runs; a start and a done line otherwise."""
        if self.quiet:
            yield
            return
        start = time.perf_counter()
        if self.tty:
            from rich.console import Console

            console = Console(file=self.stream, highlight=False)
            with console.status(message):
                yield
            console.print(f"[green]✓[/green] {message} ({time.perf_counter() - start:.1f}s)")
        else:
            print(f"{message} ...", file=self.stream, flush=True)
            yield
            print(
                f"{message}: done in {time.perf_counter() - start:.1f}s",
                file=self.stream,
                flush=True,
            )
