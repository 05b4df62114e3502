"""Background runs: one at a time per branch, in acceptance order, none dropped.

A run is a subprocess: the *launcher* argv, then ``-p name=value`` for each Workflow
argument, then ``--run-id ID --json``. The default launcher is ``cnai --home H run``
(the local engine); any command accepting the same arguments can replace it.
Output goes to ``<home>/events/logs/<run-id>.log``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from cnai.events.store import EventStore

SECRET_ENV_PREFIXES = ("CNAI_GITHUB_WEBHOOK", "CNAI_DATA_WEBHOOK")
"""Environment variables never passed on to runs (the gateway's secrets)."""


def default_launcher(home: Path) -> list[str]:
    """``python -m cnai --home HOME run``: the local engine."""
    return [sys.executable, "-m", "cnai", "--home", str(home), "run"]


def launcher_argv(launcher: Sequence[str], arguments: Mapping[str, str], run_id: str) -> list[str]:
    """The full command for one run."""
    argv = list(launcher)
    for name, value in arguments.items():
        argv += ["-p", f"{name}={value}"]
    return [*argv, "--run-id", run_id, "--json"]


class RunQueue:
    """Per-branch FIFO queues, each drained by one worker task."""

    def __init__(
        self,
        store: EventStore,
        launcher: Sequence[str],
        logs_dir: Path,
        env: Mapping[str, str] | None = None,
        on_event: Callable[[dict[str, object]], None] | None = None,
    ) -> None:
        self.store = store
        self.launcher = list(launcher)
        self.logs_dir = logs_dir
        base = dict(os.environ if env is None else env)
        self.env = {k: v for k, v in base.items() if not k.startswith(SECRET_ENV_PREFIXES)}
        self.on_event = on_event or (lambda _: None)
        self._queues: dict[str, asyncio.Queue[str]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._running: dict[str, asyncio.subprocess.Process] = {}

    def submit(self, run_id: str, branch: str) -> None:
        """Queue a run (already recorded as queued in the store)."""
        queue = self._queues.get(branch)
        if queue is None:
            queue = self._queues[branch] = asyncio.Queue()
            self._workers[branch] = asyncio.create_task(self._drain(branch, queue))
        queue.put_nowait(run_id)

    def resume(self) -> list[str]:
        """Re-queue runs a previous gateway accepted but never started; their ids."""
        self.store.interrupt_running()
        queued = self.store.runs(("queued",))
        for run in queued:
            self.submit(run.id, run.branch)
        return [r.id for r in queued]

    def pending(self) -> int:
        """Runs queued or running in this process."""
        return sum(q.qsize() for q in self._queues.values()) + len(self._running)

    async def close(self) -> None:
        """Stop workers; terminate running processes (marked interrupted; queued stay queued)."""
        for task in self._workers.values():
            task.cancel()
        for task in self._workers.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _drain(self, branch: str, queue: asyncio.Queue[str]) -> None:
        while True:
            run_id = await queue.get()
            try:
                await self._execute(run_id)
            finally:
                queue.task_done()

    async def _execute(self, run_id: str) -> None:
        record = self.store.run(run_id)
        if record is None or record.status != "queued":
            return
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.logs_dir / f"{run_id}.log"
        argv = launcher_argv(self.launcher, record.arguments, run_id)
        self.store.mark_started(run_id, log_path)
        self.on_event({"run_id": run_id, "status": "running", "branch": record.branch})
        try:
            with log_path.open("ab") as log:
                process = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=asyncio.subprocess.STDOUT,
                    env=self.env,
                    start_new_session=True,
                )
        except OSError as exc:
            self.store.mark_finished(run_id, "failed", None, None)
            self.on_event({"run_id": run_id, "status": "failed", "error": str(exc)})
            return
        self._running[run_id] = process
        try:
            code = await process.wait()
        except asyncio.CancelledError:
            await _terminate(process)
            self.store.mark_finished(run_id, "interrupted", None, None)
            raise
        finally:
            self._running.pop(run_id, None)
        phase = _phase(log_path)
        status = "succeeded" if code == 0 else "failed"
        self.store.mark_finished(run_id, status, code, phase)
        self.on_event({"run_id": run_id, "status": status, "exit_code": code, "phase": phase})


async def _terminate(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        await asyncio.wait_for(process.wait(), timeout=10)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


def _phase(log_path: Path) -> str | None:
    """``phase`` of the last JSON object line the run printed, if any."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines[-200:]):
        line = line.strip()
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(data, dict) and "phase" in data:
                return str(data["phase"])
    return None
