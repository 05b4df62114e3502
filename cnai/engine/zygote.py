"""A warm launcher for ``python -m MODULE ...`` task processes.

Importing the pipeline's libraries (Hera's runner, PyIceberg, MLflow) costs several
seconds per fresh interpreter. The zygote imports them once, in the background,
with the same environment a task starts with, and then forks one child process
per task. Each child is still its own process: own environment, working
directory, stdout/stderr files and session; it runs the module exactly as
``python -m MODULE ARGS`` would (``runpy`` with ``alter_sys``) and exits with its
status. No task ever runs inside the zygote itself.

Preloading comes in two parts. *Early* modules (what the first task needs) are
imported before the first child is forked. *Later* modules (what only later tasks
need, e.g. MLflow) are imported in the background, while no request waits, and only
once the engine asks for them: a run that ends after its first task (a no-change
run of the retrain pipeline) never pays for them.

Protocol (JSON lines): the engine writes ``{"id", "argv", "env", "cwd", "stdout",
"stderr"}`` to stdin; the zygote answers ``{"id", "pid"}`` once forked and
``{"id", "exit"}`` when the child ends (``exit`` is the status, negative for a signal).
``{"load": [modules]}`` imports modules before anything written after it is served;
``{"later": [modules]}`` queues modules for the background. Neither is answered.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (no-op elsewhere)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


# ---------------------------------------------------------------- inside the zygote


def _child(request: dict[str, Any]) -> None:
    """Runs in the forked child: become the task process, then exit."""
    code = 0
    try:
        os.setsid()
        die_with_parent()
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(target, fd)
            os.close(target)
        sys.stdout = open(1, "w", closefd=False, buffering=1)  # noqa: SIM115
        sys.stderr = open(2, "w", closefd=False, buffering=1)  # noqa: SIM115
        if "numpy" in sys.modules:  # a fresh interpreter would draw a fresh global seed
            sys.modules["numpy"].random.seed()
        argv = list(request["argv"])
        if len(argv) < 2 or argv[0] != "-m":
            raise SystemExit(f"zygote: only 'python -m MODULE ...' runs warm, got {argv}")
        import runpy

        sys.argv = [argv[1], *argv[2:]]
        sys.path[0] = os.getcwd()  # what `python -m` puts first
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        if exc.code is None:
            code = 0
        elif isinstance(exc.code, int):
            code = exc.code
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:  # noqa: BLE001 - report like the interpreter would, then exit 1
        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
    os._exit(code)


def split_preload(preload: list[str]) -> tuple[list[str], list[str]]:
    """``EARLY... [-- LATER...]`` as (early, later) module lists."""
    if "--" not in preload:
        return [m for m in preload if m], []
    cut = preload.index("--")
    return [m for m in preload[:cut] if m], [m for m in preload[cut + 1 :] if m and m != "--"]


def _import_all(modules: list[str]) -> None:
    """Import each module; one that fails is left for the task to report."""
    for module in modules:
        with contextlib.suppress(Exception):
            importlib.import_module(module)


def _serve(preload: list[str]) -> None:
    """The zygote's loop: serve fork requests, reap children, preload between requests."""
    die_with_parent()
    out = sys.stdout
    children: dict[int, Any] = {}
    stdin = sys.stdin.buffer
    buffer = b""
    early, pending = split_preload(preload)
    _import_all(early)

    def reply(message: dict[str, Any]) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    def reap() -> None:
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            request_id = children.pop(pid, None)
            if request_id is not None:
                reply({"id": request_id, "exit": os.waitstatus_to_exitcode(status)})

    while True:
        timeout = 0.0 if pending else 0.05
        ready, _, _ = select.select([stdin], [], [], timeout)
        if ready:
            chunk = os.read(stdin.fileno(), 65536)
            if not chunk:  # the engine closed our stdin: it is done or gone
                return
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                request = json.loads(line)
                if "load" in request:
                    _import_all([str(m) for m in request["load"]])
                    continue
                if "later" in request:
                    pending += [str(m) for m in request["later"] if m not in pending]
                    continue
                pid = os.fork()
                if pid == 0:
                    _child(request)
                children[pid] = request["id"]
                reply({"id": request["id"], "pid": pid})
        reap()
        if pending and not ready:
            with contextlib.suppress(Exception):
                importlib.import_module(pending.pop(0))


def main() -> None:
    """``python -m cnai.engine.zygote EARLY... [-- LATER...]``: preload, then serve.

    EARLY modules are imported before the first child is forked (every task needs
    them); LATER modules are imported while no request is waiting.
    """
    _serve([m for m in sys.argv[1:] if m])


# ---------------------------------------------------------------- engine side


def task_base_env() -> dict[str, str]:
    """The environment every task process starts from: this one, less cnai's own settings
    and the Ray/MLflow addresses (a task gets those from the run's settings), plus the
    project's (:func:`cnai.project.task_env`: ``CNAI_PROJECT``, ``PYTHONPATH`` with the
    project root first, and this process's ``CNAI_CONFIG``/``CNAI_PROJECT_CONFIG``), so
    every task, the zygote and the local Ray runtime import the project's modules and
    read the same configuration files as this process."""
    from cnai.project import find_project, task_env

    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CNAI_") and k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")
    }
    base.update(task_env(find_project()))
    return base


def start_zygote(preload: list[str]) -> Zygote:
    """A zygote for tasks of a run started from this process and working directory."""
    return Zygote(list(preload), task_base_env(), Path(os.getcwd()))


@dataclass
class _Pending:
    pid: int | None = None
    exit: int | None = None
    started: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)


class Zygote:
    """The engine's handle on one zygote process (thread-safe).

    ``preload`` is ``EARLY... [-- LATER...]``: the early modules are imported at once,
    the later ones only after :meth:`load_later` (see the module docstring).
    """

    def __init__(self, preload: list[str], env: dict[str, str], cwd: Path) -> None:
        self._lock = threading.Lock()
        self._next = 0
        self._pending: dict[int, _Pending] = {}
        early, self._later = split_preload(preload)
        self._later_asked = False
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cnai.engine.zygote", *early],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        stream: IO[bytes] = self.proc.stdout  # type: ignore[assignment]
        for line in stream:
            message = json.loads(line)
            with self._lock:
                item = self._pending.get(message["id"])
            if item is None:
                continue
            if "pid" in message:
                item.pid = int(message["pid"])
                item.started.set()
            if "exit" in message:
                item.exit = int(message["exit"])
                item.done.set()
        with self._lock:  # the zygote is gone: nothing pending will finish
            for item in self._pending.values():
                if item.exit is None:
                    item.exit = -int(signal.SIGKILL)
                item.started.set()
                item.done.set()

    @property
    def alive(self) -> bool:
        """True while the zygote process runs."""
        return self.proc.poll() is None

    def _send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        with self._lock:
            self.proc.stdin.write((json.dumps(message) + "\n").encode())
            self.proc.stdin.flush()

    def load(self, preload: list[str]) -> None:
        """Add ``EARLY... [-- LATER...]`` modules: early ones load before the next fork."""
        early, later = split_preload(preload)
        with self._lock:
            self._later += [m for m in later if m not in self._later]
            resend = self._later_asked and bool(later)
        with contextlib.suppress(OSError):  # a dead zygote: tasks start cold instead
            if early:
                self._send({"load": early})
            if resend:
                self._send({"later": later})

    def load_later(self) -> None:
        """Start importing the later modules in the background (once; no-op after)."""
        with self._lock:
            if self._later_asked or not self._later:
                self._later_asked = True
                return
            self._later_asked = True
            later = list(self._later)
        with contextlib.suppress(OSError):
            self._send({"later": later})

    def spawn(
        self, argv: list[str], env: dict[str, str], cwd: Path, stdout: Path, stderr: Path
    ) -> ZygoteChild:
        """Fork a child running ``python ARGV`` (``-m MODULE ...`` only)."""
        with self._lock:
            self._next += 1
            request_id = self._next
            item = self._pending[request_id] = _Pending()
        request = {
            "id": request_id,
            "argv": argv,
            "env": env,
            "cwd": str(cwd),
            "stdout": str(stdout),
            "stderr": str(stderr),
        }
        self._send(request)
        item.started.wait()
        return ZygoteChild(item)

    def close(self) -> None:
        """Stop the zygote (children it still has die with it)."""
        with contextlib.suppress(OSError):
            if self.proc.stdin:
                self.proc.stdin.close()
        try:
            # Tasks are done: an idle zygote exits on the closed stdin at once; one busy
            # with a background import has nothing left worth waiting for.
            self.proc.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class ZygoteChild:
    """A task process forked by the zygote; the subset of Popen the engine uses."""

    def __init__(self, item: _Pending) -> None:
        self._item = item
        self.pid = item.pid or 0

    def poll(self) -> int | None:
        """The exit status, or None while running."""
        return self._item.exit if self._item.done.is_set() else None

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait up to ``timeout`` seconds; the exit status or None."""
        self._item.done.wait(timeout)
        return self.poll()


if __name__ == "__main__":
    main()
