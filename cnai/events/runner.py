"""Background runs: one at a time per branch, in acceptance order, none dropped.

A run is a subprocess: the *launcher* argv, then ``-p name=value`` for each Workflow
argument, then ``--run-id ID --json``. The default launcher is ``cnai --home H run``
(the local engine); any command accepting the same arguments can replace it.
Output goes to ``<home>/events/logs/<run-id>.log``.

Failure behaviour:

- a launch that fails for lack of resources (no file descriptors, processes or
  memory) leaves the run queued and is retried with a growing pause; any other launch
  failure fails that run alone, with the reason as its ``message``, and the branch
  moves on to its next run;
- the Sensor trigger's ``rateLimit`` (or the ``events.rate_limit`` setting) bounds run
  starts per branch: at most N starts in any window of one unit; runs over it wait,
  queued, and are never dropped (Argo Events delays triggers the same way);
- each run is its own process group, stopped as a group; its pid is recorded, so a
  gateway started after a crash adopts a run that is still going (the branch waits
  for it) instead of starting the next run beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

import psutil

from cnai.events.limits import RateLimit
from cnai.events.store import EventStore, RunRecord

SECRET_ENV_PREFIXES = ("CNAI_GITHUB_WEBHOOK", "CNAI_DATA_WEBHOOK")
"""Environment variables never passed on to runs (the gateway's secrets)."""

TRANSIENT_ERRNOS = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EAGAIN, errno.ENOBUFS, errno.ENOSPC}
)
"""Launch errors that mean "not now": the run stays queued and is retried."""
RETRY_PAUSE = (0.2, 10.0)
"""First and longest pause between launch attempts after a transient error (seconds)."""


def default_launcher(home: Path, pipeline: str | None = None) -> list[str]:
    """``python -m cnai --home HOME run [--pipeline NAME]``: the local engine."""
    argv = [sys.executable, "-m", "cnai", "--home", str(home), "run"]
    return [*argv, "--pipeline", pipeline] if pipeline else argv


def launcher_argv(launcher: Sequence[str], arguments: Mapping[str, str], run_id: str) -> list[str]:
    """The full command for one run."""
    argv = list(launcher)
    for name, value in arguments.items():
        argv += ["-p", f"{name}={value}"]
    return [*argv, "--run-id", run_id, "--json"]


def argument_problem(text: str) -> str | None:
    """Why ``text`` cannot go on a command line or into a file, or None when it can."""
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (lone surrogate)"
    return None


class RunQueue:
    """Per-branch FIFO queues, each drained by one worker task."""

    def __init__(
        self,
        store: EventStore,
        launcher: Sequence[str],
        logs_dir: Path,
        env: Mapping[str, str] | None = None,
        on_event: Callable[[dict[str, object]], None] | None = None,
        rate_limit: RateLimit | None = None,
    ) -> None:
        self.store = store
        self.launcher = list(launcher)
        self.logs_dir = logs_dir
        base = dict(os.environ if env is None else env)
        self.env = {k: v for k, v in base.items() if not k.startswith(SECRET_ENV_PREFIXES)}
        self.on_event = on_event or (lambda _: None)
        self.rate_limit = rate_limit
        self._queues: dict[str, asyncio.Queue[str]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._running: dict[str, asyncio.subprocess.Process] = {}
        self._adopted: dict[str, set[str]] = {}

    def submit(self, run_id: str, branch: str) -> None:
        """Queue a run (already recorded as queued in the store)."""
        queue = self._queues.get(branch)
        if queue is None:
            queue = self._queues[branch] = asyncio.Queue()
            self._workers[branch] = asyncio.create_task(self._drain(branch, queue))
        queue.put_nowait(run_id)

    def resume(self) -> tuple[list[str], list[str]]:
        """After a restart: adopt runs still going, re-queue accepted ones.

        Returns (adopted run ids, re-queued run ids). A run left ``running`` whose
        process is gone is marked interrupted.
        """
        adopted = []
        for run in self.store.runs(("running",)):
            if _alive(run):
                adopted.append(run.id)
                self._adopted.setdefault(run.branch, set()).add(run.id)
                self.submit(run.id, run.branch)
            else:
                self._settle_orphan(run, "finished while no gateway was running")
        queued = self.store.runs(("queued",))
        for run in queued:
            self.submit(run.id, run.branch)
        return adopted, [r.id for r in queued]

    def pending(self) -> int:
        """Runs queued or running in this process."""
        return sum(q.qsize() for q in self._queues.values()) + len(self._running)

    async def close(self) -> None:
        """Stop workers; stop running processes (marked interrupted; queued stay queued)."""
        for task in self._workers.values():
            task.cancel()
        for task in self._workers.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _drain(self, branch: str, queue: asyncio.Queue[str]) -> None:
        while True:
            run_id = await queue.get()
            try:
                if run_id in self._adopted.get(branch, ()):
                    await self._follow_orphan(run_id)
                else:
                    await self._execute(run_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - one run's failure never stops its branch
                self._fail(run_id, f"gateway error: {type(exc).__name__}: {exc}")
            finally:
                queue.task_done()

    def _fail(self, run_id: str, message: str) -> None:
        with contextlib.suppress(Exception):
            record = self.store.run(run_id)
            if record is not None and record.status in ("queued", "running"):
                self.store.mark_finished(run_id, "failed", None, None, message[:2000])
        self.on_event({"run_id": run_id, "status": "failed", "error": message[:2000]})

    async def _wait_rate_limit(self, record: RunRecord) -> None:
        limit = self.rate_limit
        if limit is None:
            return
        announced = False
        while True:
            now = time.time()
            starts = self.store.starts_since(record.branch, now - limit.window)
            if len(starts) < limit.requests:
                return
            wait = starts[-limit.requests] + limit.window - now
            if not announced:
                announced = True
                self.on_event(
                    {
                        "run_id": record.id,
                        "status": "queued",
                        "waiting": f"rateLimit {limit.requests}/{limit.unit} on {record.branch}",
                        "seconds": round(max(wait, 0.0), 3),
                    }
                )
            await asyncio.sleep(max(wait, 0.01))

    async def _execute(self, run_id: str) -> None:
        record = self.store.run(run_id)
        if record is None or record.status != "queued":
            return
        argv = launcher_argv(self.launcher, record.arguments, run_id)
        bad = next(((a, p) for a in argv if (p := argument_problem(a))), None)
        if bad is not None:
            self._fail(run_id, f"cannot start: argument {bad[0][:80]!r} {bad[1]}")
            return
        await self._wait_rate_limit(record)
        log_path = self.logs_dir / f"{run_id}.log"
        pause = RETRY_PAUSE[0]
        while True:
            try:
                process = await self._spawn(argv, log_path)
                break
            except OSError as exc:
                if exc.errno not in TRANSIENT_ERRNOS:
                    self._fail(run_id, f"cannot start: {exc}")
                    return
                self.on_event(
                    {"run_id": run_id, "status": "queued", "retry_in": pause, "error": str(exc)}
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, RETRY_PAUSE[1])
            except (ValueError, UnicodeError) as exc:
                self._fail(run_id, f"cannot start: {exc}")
                return
        try:
            created = psutil.Process(process.pid).create_time()
        except (psutil.Error, OSError):  # e.g. no file descriptor left to read /proc
            created = None
        self.store.mark_started(run_id, log_path, process.pid, created)
        self.on_event({"run_id": run_id, "status": "running", "branch": record.branch})
        self._running[run_id] = process
        try:
            code = await process.wait()
        except asyncio.CancelledError:
            await _terminate(process.pid, process.wait)
            self.store.mark_finished(run_id, "interrupted", None, None, "the gateway stopped")
            raise
        finally:
            self._running.pop(run_id, None)
        phase = _phase(log_path)
        status = "succeeded" if code == 0 else "failed"
        message = None if code == 0 else f"exit code {code}"
        self.store.mark_finished(run_id, status, code, phase, message)
        self.on_event({"run_id": run_id, "status": status, "exit_code": code, "phase": phase})

    async def _spawn(self, argv: list[str], log_path: Path) -> asyncio.subprocess.Process:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            return await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )

    async def _follow_orphan(self, run_id: str) -> None:
        """Wait for a run a previous gateway started and that still runs."""
        record = self.store.run(run_id)
        if record is None or record.status != "running" or record.pid is None:
            return
        self.on_event({"run_id": run_id, "status": "running", "adopted_pid": record.pid})
        try:
            while _alive(record):
                await asyncio.sleep(0.25)
        except asyncio.CancelledError:
            await _terminate(record.pid, None)
            self.store.mark_finished(run_id, "interrupted", None, None, "the gateway stopped")
            raise
        self._settle_orphan(record, "adopted after a gateway restart")

    def _settle_orphan(self, run: RunRecord, how: str) -> None:
        """Record the outcome of a run whose process was not this gateway's child.

        Its exit code is unknown: the engine's printed phase decides; a run that
        printed none was cut short (``interrupted``).
        """
        phase = _phase(Path(run.log_path)) if run.log_path else None
        if phase is None:
            status, message = "interrupted", "the gateway stopped while it ran"
        else:
            status = "succeeded" if phase == "Succeeded" else "failed"
            message = f"{how}; its exit code is unknown"
        self.store.mark_finished(run.id, status, None, phase, message)
        self.on_event({"run_id": run.id, "status": status, "phase": phase, "orphan": how})


def _alive(run: RunRecord) -> bool:
    """Whether the run's recorded process is still the one that runs (not a reused pid)."""
    if run.pid is None:
        return False
    try:
        process = psutil.Process(run.pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        created = process.create_time()
    except (psutil.Error, OSError):
        return False
    return run.pid_started is None or abs(created - run.pid_started) < 1.0


async def _terminate(pid: int, wait: Callable[[], Awaitable[int]] | None) -> None:
    """SIGTERM the run's process group, SIGKILL it after 10 s."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if wait is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wait(), timeout=0.1)
        else:
            await asyncio.sleep(0.1)
        if not _group_alive(pid):
            return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    if wait is not None:
        await wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


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
