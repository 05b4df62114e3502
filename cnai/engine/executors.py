"""How one attempt of a leaf template runs on this machine.

- ``script``/``container``: the template's command and args (plus, for a script,
  the path of its evaluated ``source``, as Argo's executor appends it) run as a
  process in a per-task sandbox folder. ``python -m ...`` commands fork from the
  warm zygote when one is available; anything else is a plain subprocess.
  Container paths under ``/tmp`` (output files, Hera's ``hera__outputs_directory``,
  and container ``/tmp`` paths written in a command, its args or a script's source,
  such as ``echo world > /tmp/hello_world.txt``; see ``_reroot_text``) are re-rooted
  into the sandbox, which plays the container's filesystem.
- ``resource``: a KubeRay ``RayJob`` create; its ``spec.entrypoint`` runs as a
  process against the run's one local Ray runtime, and the RayJob status the
  operator would report (``jobStatus``/``jobDeploymentStatus``) is derived from
  the exit, then the template's success/failure conditions are evaluated on it.

A task reports why it failed the way a Kubernetes container does: by writing its
termination message file (``/dev/termination-log`` in a pod; locally the sandbox
file named by ``CNAI_TERMINATION_LOG``). The message joins the node's message
(``Error (exit code 2): <message>``), as Argo puts a container's termination
message into the node's. Exit code 2 is cnai's "bad input" (see
:mod:`cnai.engine.badinput`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from cnai.engine.badinput import (
    BAD_INPUT_EXIT_CODE,
    TERMINATION_LOG_ENV,
    read_termination_message,
)
from cnai.engine.expr import condition_matches, json_path, substitute, substitute_all
from cnai.engine.rayjob_status import LocalOutcome, kuberay_status
from cnai.engine.spec import check_resource, rayjob_head_env
from cnai.engine.zygote import Zygote
from cnai.errors import CnaiError, UsageError

CONTAINER_TMP = "/tmp/"
MAX_RESULT_BYTES = 256 * 1024
__all__ = ["BAD_INPUT_EXIT_CODE", "Attempt", "ProcessExecutor", "ResourceExecutor", "TaskContext"]
TERMINATION_LOG = "/dev/termination-log"
PYTHON_NAMES = ("python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}")


@dataclass
class Attempt:
    """The outcome of one attempt: a node phase, its outputs and a message."""

    phase: str
    message: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    """The task process's exit status (None: not run, killed, or not a process)."""


class _Process(Protocol):
    pid: int

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int | None: ...


POLL_SECONDS = 0.05
"""How often a waiting task thread checks cancellation and deadlines."""


def _exit_within(proc: _Process, seconds: float) -> int | None:
    """The exit status once ``proc`` ends within ``seconds``, else None.

    A plain process is waited for with the interpreter's own back-off (first checks
    after fractions of a millisecond), so a short task is noticed as soon as it ends
    rather than at the next fixed poll.
    """
    try:
        return proc.wait(seconds)
    except subprocess.TimeoutExpired:
        return None


@dataclass
class TaskContext:
    """What an executor needs for one attempt of one node."""

    node_id: str
    template: dict[str, Any]
    scope: dict[str, str]
    sandbox: Path
    log: Path
    env: dict[str, str]
    deadline: float | None
    """Absolute time (time.time()) the attempt must end by, or None."""
    cancelled: threading.Event
    ray_env: Callable[[], dict[str, str]]
    """RAY_ADDRESS (and Ray auth settings) of the run's Ray runtime, started on first call."""
    on_start: Callable[[int], None] = lambda pid: None
    """Told the pid (= process group) of the task process once it started."""
    keep_fds: tuple[int, ...] = ()
    """Descriptors the task process inherits: the mutexes the engine holds, so that they
    stay held until the task is gone even if the engine is killed."""


_TMP_IN_TEXT = re.compile(r"(?<![\w./~-])/tmp(?=/|[^\w.-]|$)(/[^/\s'\"`;|&<>()]+)?(/)?")
"""``/tmp`` as a path (not ``/tmpfoo``, not ``/var/tmp``) inside a command line or source,
with its first component below ``/tmp`` and whether the path goes deeper."""


def _reroot_text(text: str, sandbox: Path, roots: set[str]) -> str:
    """``text`` with its container ``/tmp`` paths moved under the sandbox's ``tmp``.

    A container's ``/tmp`` is its own, so ``/tmp`` itself, a file directly in it and
    anything in the top folders the template's outputs are read from (``roots``) are
    re-rooted. Deeper paths in other folders stay host paths: locally they name this
    machine's folders (a test's or user's scratch folder), which a pod could not see.
    """

    def moved(match: re.Match[str]) -> str:
        first, deeper = match.group(1), match.group(2)
        if first is None or deeper is None or first.lstrip("/") in roots:
            return str(sandbox / "tmp") + (first or "") + (deeper or "")
        return match.group(0)

    return _TMP_IN_TEXT.sub(moved, text)


def _output_roots(template: dict[str, Any]) -> set[str]:
    """The top folders under ``/tmp`` that the template's output parameters are read from."""
    roots: set[str] = set()
    for output in (template.get("outputs") or {}).get("parameters") or []:
        parts = Path(str((output.get("valueFrom") or {}).get("path") or "")).parts
        if len(parts) > 3 and parts[:2] == ("/", "tmp"):
            roots.add(parts[2])
    return roots


def _reroot(path: str, sandbox: Path) -> Path:
    """A container path as a path inside the task's sandbox."""
    return sandbox / path.lstrip("/")


def _wait(proc: _Process, ctx: TaskContext) -> tuple[int | None, str]:
    """Wait for ``proc``; kill its process group on deadline or cancellation."""
    while True:
        code = _exit_within(proc, POLL_SECONDS)
        if code is not None:
            return code, ""
        reason = ""
        if ctx.cancelled.is_set():
            reason = "cancelled: the run stopped"
        elif ctx.deadline is not None and time.time() > ctx.deadline:
            reason = "Pod was active on the node longer than the specified deadline"
        if reason:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            deadline = time.time() + 10
            while proc.poll() is None and time.time() < deadline:
                time.sleep(0.05)
            return None, reason


def _python(argv: list[str]) -> list[str]:
    """Run the image's ``python`` as this interpreter (same installed packages)."""
    if argv and argv[0] in PYTHON_NAMES:
        return [sys.executable, *argv[1:]]
    return argv


class ProcessExecutor:
    """Runs script and container templates."""

    def __init__(self, zygote: Zygote | None) -> None:
        self.zygote = zygote

    def run(self, ctx: TaskContext) -> Attempt:
        """One attempt of a script/container template."""
        tmpl = ctx.template
        kind = "script" if "script" in tmpl else "container"
        process = tmpl[kind]
        where = f"template {tmpl['name']}"
        roots = _output_roots(tmpl)
        command = [
            _reroot_text(substitute(str(c), ctx.scope, where), ctx.sandbox, roots)
            for c in process.get("command") or []
        ]
        args = [
            _reroot_text(substitute(str(a), ctx.scope, where), ctx.sandbox, roots)
            for a in process.get("args") or []
        ]
        if not command:
            return Attempt("Error", f"{where}: no command (an image default is unknown locally)")
        (ctx.sandbox / "tmp").mkdir(parents=True, exist_ok=True)
        if kind == "script":
            script = _reroot("/argo/staging/script", ctx.sandbox)
            script.parent.mkdir(parents=True, exist_ok=True)
            source = substitute(str(process.get("source", "")), ctx.scope, where)
            script.write_text(_reroot_text(source, ctx.sandbox, roots))
            args = [*args, str(script)]
        env = dict(ctx.env)
        termination = _termination_log(ctx.sandbox)
        env[TERMINATION_LOG_ENV] = str(termination)
        for item in process.get("env") or []:
            value = substitute(str(item.get("value", "")), ctx.scope, where)
            if value.startswith(CONTAINER_TMP):
                value = str(_reroot(value, ctx.sandbox))
            env[str(item["name"])] = value
        for output in (tmpl.get("outputs") or {}).get("parameters") or []:
            path = (output.get("valueFrom") or {}).get("path")
            if path:
                _reroot(path, ctx.sandbox).parent.mkdir(parents=True, exist_ok=True)
        stdout = ctx.sandbox / "stdout"
        stdout.unlink(missing_ok=True)
        proc: _Process
        try:
            if (
                self.zygote is not None
                and self.zygote.alive
                and command[0] in PYTHON_NAMES
                and len(command) == 1
                and args[:1] == ["-m"]
            ):
                proc = self.zygote.spawn(args, env, ctx.sandbox, stdout, ctx.log)
            else:
                with open(stdout, "ab") as out, open(ctx.log, "ab") as err:
                    proc = subprocess.Popen(
                        _python(command) + args,
                        cwd=ctx.sandbox,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=err,
                        start_new_session=True,
                        pass_fds=ctx.keep_fds,
                    )
        except OSError as exc:
            return Attempt("Error", f"cannot start {command[0]}: {exc}")
        ctx.on_start(proc.pid)
        code, reason = _wait(proc, ctx)
        result = stdout.read_bytes()[:MAX_RESULT_BYTES].decode(errors="replace")
        with contextlib.suppress(OSError), open(ctx.log, "a") as log:
            log.write(result)
        if code is None:
            return Attempt("Failed", reason)
        if code != 0:
            message = f"Error (exit code {code})"
            told = read_termination_message(termination)
            return Attempt("Failed", f"{message}: {told}" if told else message, exit_code=code)
        attempt = _collect_outputs(tmpl, ctx, result.rstrip("\n"))
        attempt.exit_code = 0
        return attempt


def _termination_log(sandbox: Path) -> Path:
    """The sandbox file playing the container's termination message file (emptied)."""
    path = _reroot(TERMINATION_LOG, sandbox)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    return path


def _collect_outputs(tmpl: dict[str, Any], ctx: TaskContext, result: str | None) -> Attempt:
    parameters: dict[str, str] = {}
    for output in (tmpl.get("outputs") or {}).get("parameters") or []:
        source = output.get("valueFrom") or {}
        path = source.get("path")
        if path:
            try:
                # Argo trims one trailing newline (workflow/executor/executor.go:780-781).
                text = _reroot(path, ctx.sandbox).read_text()
                parameters[output["name"]] = text[:-1] if text.endswith("\n") else text
            except OSError:
                if "default" in source:
                    parameters[output["name"]] = str(source["default"])
                else:
                    return Attempt(
                        "Error", f"output parameter {output['name']}: open {path}: no such file"
                    )
    outputs: dict[str, Any] = {"parameters": parameters}
    if result is not None:
        outputs["result"] = result
    return Attempt("Succeeded", "", outputs)


class ResourceExecutor:
    """Runs ``resource`` templates that create a KubeRay RayJob."""

    def run(self, ctx: TaskContext) -> Attempt:
        """One attempt: run the RayJob's entrypoint, then apply the conditions."""
        tmpl = ctx.template
        resource = tmpl["resource"]
        where = f"template {tmpl['name']}"
        text = substitute(str(resource.get("manifest", "")), ctx.scope, f"{where}.manifest")
        problems = check_resource({**resource, "manifest": text}, where)
        if problems:
            return Attempt("Error", "; ".join(problems))
        manifest: dict[str, Any] = yaml.safe_load(text)
        spec = manifest.get("spec") or {}
        try:
            argv = _python(shlex.split(str(spec["entrypoint"])))
        except ValueError as exc:
            return Attempt("Error", f"{where}: entrypoint does not parse: {exc}")
        deadline = ctx.deadline
        if spec.get("activeDeadlineSeconds"):
            try:
                seconds = float(spec["activeDeadlineSeconds"])
            except (TypeError, ValueError):
                return Attempt("Error", f"{where}: activeDeadlineSeconds must be a number")
            job_deadline = time.time() + seconds
            deadline = job_deadline if deadline is None else min(deadline, job_deadline)
        ctx.sandbox.mkdir(parents=True, exist_ok=True)
        job_id = f"local-{uuid.uuid4().hex[:12]}"
        outcome, message = self._execute(ctx, manifest, argv, deadline, job_id)
        status = {**kuberay_status(outcome, message), "jobId": job_id}
        obj = {**manifest, "status": status}
        return self._conclude(tmpl, resource, obj, where)

    def _execute(
        self,
        ctx: TaskContext,
        manifest: dict[str, Any],
        argv: list[str],
        deadline: float | None,
        job_id: str,
    ) -> tuple[LocalOutcome, str]:
        """Run the entrypoint; how it ended, in KubeRay's terms, and why."""
        try:
            ray_env = ctx.ray_env()
        except CnaiError as exc:
            return LocalOutcome.SUBMISSION_FAILED, f"cannot start the local Ray runtime: {exc}"
        termination = _termination_log(ctx.sandbox)
        env = {
            **ctx.env,
            **rayjob_head_env(manifest),
            **ray_env,
            "CNAI_ENGINE_PID": str(os.getpid()),
            TERMINATION_LOG_ENV: str(termination),
        }
        try:
            with open(ctx.log, "ab") as log:
                log.write(f"RayJob {job_id}: {shlex.join(argv)}\n".encode())
                log.flush()
                proc = subprocess.Popen(
                    argv,
                    cwd=ctx.sandbox,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    pass_fds=ctx.keep_fds,
                )
        except OSError as exc:
            return LocalOutcome.SUBMISSION_FAILED, f"cannot start {argv[0]}: {exc}"
        ctx.on_start(proc.pid)
        wait_ctx = TaskContext(**{**ctx.__dict__, "deadline": deadline})
        code, reason = _wait(proc, wait_ctx)
        if code == 0:
            return LocalOutcome.SUCCEEDED, "entrypoint exit code 0"
        if code is not None:
            told = read_termination_message(termination)
            return LocalOutcome.APP_FAILED, f"entrypoint exit code {code}" + (
                f": {told}" if told else ""
            )
        if ctx.cancelled.is_set():
            return LocalOutcome.STOPPED, reason
        return LocalOutcome.DEADLINE_EXCEEDED, reason

    @staticmethod
    def _conclude(
        tmpl: dict[str, Any], resource: dict[str, Any], obj: dict[str, Any], where: str
    ) -> Attempt:
        """Argo's verdict on the terminal RayJob ``obj``, then the template's outputs.

        As Argo v4.1.2's executor does (workflow/executor/resource.go lines 279-305):
        the step fails when ANY requirement of ``failureCondition`` holds, and succeeds
        when ALL of ``successCondition`` hold. When neither holds, Argo keeps polling
        the (terminal) RayJob until the step's deadline: that is reported as a failure
        naming the hang instead of waiting for it.
        """
        status = obj["status"]
        failure, success = resource.get("failureCondition"), resource.get("successCondition")
        if failure and condition_matches(
            failure, obj, f"{where}.failureCondition", any_requirement=True
        ):
            return Attempt(
                "Failed",
                f"failure condition {failure!r} matched ({status['message']})",
                exit_code=1,
            )
        if success and not condition_matches(success, obj, f"{where}.successCondition"):
            return Attempt(
                "Failed",
                f"neither {success!r} nor failure condition {failure!r} matches the terminal "
                f"RayJob status {status['jobStatus']!r}/{status['jobDeploymentStatus']!r} "
                f"({status['message']}): in a cluster this step would wait until its deadline",
                exit_code=1,
            )
        if not success and status["jobDeploymentStatus"] != "Complete":
            return Attempt("Failed", status["message"], exit_code=1)
        parameters: dict[str, str] = {}
        for output in (tmpl.get("outputs") or {}).get("parameters") or []:
            source = output.get("valueFrom") or {}
            if "jsonPath" not in source:
                return Attempt("Error", f"output {output['name']}: resource outputs need jsonPath")
            try:
                parameters[output["name"]] = json_path(obj, source["jsonPath"], where)
            except UsageError as exc:
                if "default" not in source:
                    return Attempt("Error", str(exc))
                parameters[output["name"]] = str(source["default"])
        return Attempt("Succeeded", "", {"parameters": parameters})


def evaluate_args(values: dict[str, Any], scope: dict[str, str], where: str) -> dict[str, Any]:
    """Substitute references in a mapping of argument values."""
    return dict(substitute_all(values, scope, where))
