"""The per-task progress view of a running workflow (stderr).

On a terminal: a live table of tasks with phase and elapsed time. Otherwise: one
plain line per task transition, so logs and CI output stay readable.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO

_MARK = {
    "Succeeded": "✓",
    "Failed": "✗",
    "Error": "✗",
    "Skipped": "○",
    "Omitted": "○",
    "Running": "▶",
    "Pending": "…",
}


class RunView:
    """Shows task transitions; ``quiet`` shows nothing."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)()) and not quiet
        self._nodes: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._live: Any = None
        self._title = ""

    def start(self, title: str) -> None:
        """Begin showing the run called ``title``."""
        self._title = title
        if self.quiet:
            return
        if self.tty:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(
                get_renderable=self._table,
                console=Console(file=self.stream),
                refresh_per_second=4,
                transient=False,
            )
            self._live.start()
        else:
            self._print(f"run {title}: started")

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(title=self._title, show_edge=False, pad_edge=False)
        for column in ("task", "phase", "time", "note"):
            table.add_column(column)
        with self._lock:
            nodes = list(self._nodes.values())
        for node in nodes:
            started = node.get("started_at")
            if node.get("duration_seconds") is not None:
                elapsed = float(node["duration_seconds"])
            elif started:
                elapsed = time.time() - float(started)
            else:
                elapsed = 0.0
            note = "memoized" if node.get("memoized") else (node.get("message") or "")[:60]
            phase = node.get("phase", "")
            table.add_row(node["name"], f"{_MARK.get(phase, ' ')} {phase}", f"{elapsed:.1f}s", note)
        return table

    def update(self, node: dict[str, Any]) -> None:
        """A node changed phase."""
        phase = node.get("phase", "")
        with self._lock:
            before = self._nodes.get(node["id"], {}).get("phase")
            self._nodes[node["id"]] = dict(node)
        if self.quiet or self.tty or before == phase:
            return
        detail = []
        if node.get("duration_seconds") is not None and phase != "Running":
            detail.append(f"{float(node['duration_seconds']):.1f}s")
        if node.get("memoized"):
            detail.append("memoized")
        if node.get("message") and phase not in ("Running", "Succeeded"):
            detail.append(str(node["message"]))
        suffix = f" ({'; '.join(detail)})" if detail else ""
        self._print(f"  {_MARK.get(phase, ' ')} {node['name']}: {phase}{suffix}")

    def info(self, message: str) -> None:
        """A line about the run as a whole."""
        if self.quiet:
            return
        if self._live is not None:
            self._live.console.print(message)
        else:
            self._print(message)

    def stop(self, phase: str, duration: float) -> None:
        """The run ended."""
        if self.quiet:
            return
        if self._live is not None:
            self._live.stop()
            self._live = None
        self._print(f"run {self._title}: {phase} in {duration:.1f}s")

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)
