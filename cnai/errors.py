"""Error types that map to the CLI's exit codes.

Every command raises one of these instead of printing and exiting itself, so the
same step functions can run under the CLI, the local engine or a cluster pod.
"""

from __future__ import annotations

from typing import Any


class CnaiError(Exception):
    """A runtime failure: the input was fine but the work could not be done (exit 1).

    ``data``, when given, is printed as the command's ``--json`` object before exiting.
    """

    exit_code: int = 1

    def __init__(self, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.data = data


class UsageError(CnaiError):
    """Bad input or usage: a file, flag or value breaks a rule (exit 2).

    The message names the input and the rule it breaks, in one line.
    """

    exit_code = 2
