"""How a task says "bad input" (never retried) apart from a runtime failure (may be retried).

A task that rejects its input exits with :data:`BAD_INPUT_EXIT_CODE` (2, the same
code the ``cnai`` CLI uses for bad input) after writing the reason to its
termination message file, as a Kubernetes container does (``/dev/termination-log``;
the local engine names a sandbox file in ``CNAI_TERMINATION_LOG``). A runtime
failure exits 1. The pipeline's retry strategies carry
:data:`RETRY_UNLESS_BAD_INPUT` as their ``expression``, so the same compiled spec
stops retrying bad input on an Argo cluster (the controller evaluates it) and in
the local engine (:mod:`cnai.engine.retryexpr`), and Argo and the local engine
both put the termination message into the node's message.

Runner-script task functions opt in with :func:`exits_on_bad_input`; the RayJob
entrypoint (:mod:`cnai.engine.entrypoint`) does the same for its step functions.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from cnai.errors import UsageError

BAD_INPUT_EXIT_CODE = 2
"""Exit status of a task that refused its input."""

RETRY_UNLESS_BAD_INPUT = f"asInt(lastRetry.exitCode) != {BAD_INPUT_EXIT_CODE}"
"""``retryStrategy.expression``: retry anything but a bad-input exit."""

TERMINATION_LOG_ENV = "CNAI_TERMINATION_LOG"
"""Environment variable naming the termination message file (set by the local engine)."""

DEFAULT_TERMINATION_LOG = "/dev/termination-log"
"""Where Kubernetes reads a container's termination message."""

MAX_TERMINATION_MESSAGE = 4096
"""Kubernetes keeps at most this many bytes of a termination message."""

F = TypeVar("F", bound=Callable[..., Any])


def write_termination_message(message: str) -> None:
    """Write ``message`` where the container runtime (or the local engine) reads it.

    Best effort, and only where a runtime reads it: the file the local engine names,
    or the one Kubernetes mounts in a pod (never a new file under /dev on a laptop).
    """
    named = os.environ.get(TERMINATION_LOG_ENV)
    path = Path(named or DEFAULT_TERMINATION_LOG)
    if not named and not path.is_file():
        return
    data = message.encode("utf-8", errors="replace")[:MAX_TERMINATION_MESSAGE]
    with contextlib.suppress(OSError):
        path.write_bytes(data)


def read_termination_message(path: Path) -> str:
    """The termination message a task left in ``path`` (one line), or ``""``."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_TERMINATION_MESSAGE)
    except OSError:
        return ""
    return " ".join(data.decode("utf-8", errors="replace").split())


def report_bad_input(error: UsageError) -> int:
    """Print ``error`` on stderr, leave it as the termination message; the exit status."""
    print(f"cnai: error: {error}", file=sys.stderr, flush=True)
    write_termination_message(str(error))
    return BAD_INPUT_EXIT_CODE


class BadInputExitError(SystemExit, UsageError):
    """A UsageError that also ends the task process with :data:`BAD_INPUT_EXIT_CODE`.

    Callers in the same process still catch it as a UsageError; left uncaught (as in
    a task process) the interpreter exits with status 2 and no traceback.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = BAD_INPUT_EXIT_CODE
        self.data = None


def exits_on_bad_input(function: F) -> F:
    """Make a task function end its process with exit status 2 when it raises UsageError.

    The reason goes to stderr and the termination message first. The wrapper keeps
    the function's name, module, signature and annotations, so Hera compiles and
    runs it exactly as the undecorated function.
    """

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except BadInputExitError:
            raise
        except UsageError as exc:
            report_bad_input(exc)
            raise BadInputExitError(str(exc)) from None

    return wrapper  # type: ignore[return-value]
