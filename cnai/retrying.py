"""The one retry policy of cnai, on tenacity, with a named policy for each use.

Every policy retries only what its predicate calls transient and never bad input
(:class:`~cnai.errors.UsageError`, which includes ``ContractError``): that is
re-raised on the first attempt. When the attempts run out, ``give_up`` (if given) turns
the last failure into the error the caller reports; otherwise it is re-raised as is.

- :func:`mlflow_policy`: MLflow calls (``cnai.registry.retry``): ``attempts`` tries,
  waits ``first_delay_s`` doubling, capped at 8 s, each times a jitter in [0.8, 1.2).
- :func:`commit_policy`: an Iceberg commit racing other writers (ingest): 8 tries,
  waits ``min(2, 0.05 * 2**n) * [0.5, 1.5)`` after try ``n``.
- :func:`catalog_open_policy`: opening a catalog while another process creates its
  SQLite tables: 5 tries, waits 0.1 s times the try's number.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import NoReturn

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from cnai.errors import UsageError

MLFLOW_MAX_DELAY_S = 8.0
"""The longest pause between two MLflow attempts (before jitter)."""

COMMIT_ATTEMPTS = 8
"""Tries of one ingest commit against concurrent writers."""

CATALOG_OPEN_ATTEMPTS = 5
"""Tries to open a catalog whose tables another process is creating."""

Wait = Callable[[RetryCallState], float]
GiveUp = Callable[[BaseException, int], BaseException]


def retryable(predicate: Callable[[BaseException], bool]) -> Callable[[BaseException], bool]:
    """``predicate``, but never for bad input (UsageError and its subclasses)."""
    return lambda exc: not isinstance(exc, UsageError) and predicate(exc)


def policy(
    attempts: int,
    wait: Wait,
    transient: Callable[[BaseException], bool],
    *,
    give_up: GiveUp | None = None,
    before_sleep: Callable[[RetryCallState], None] | None = None,
) -> Retrying:
    """A tenacity ``Retrying`` with cnai's rules (see the module docstring)."""

    def exhausted(state: RetryCallState) -> NoReturn:
        assert state.outcome is not None
        exc = state.outcome.exception()
        assert exc is not None
        if give_up is None:
            raise exc
        raise give_up(exc, state.attempt_number) from exc

    return Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait,
        retry=retry_if_exception(retryable(transient)),
        retry_error_callback=exhausted,
        before_sleep=before_sleep,
    )


def mlflow_policy(
    attempts: int,
    first_delay_s: float,
    transient: Callable[[BaseException], bool],
    give_up: GiveUp,
) -> Retrying:
    """MLflow calls: exponential backoff from ``first_delay_s``, capped, +-20% jitter."""

    def wait(state: RetryCallState) -> float:
        delay = first_delay_s * 2 ** (state.attempt_number - 1)
        return min(delay, MLFLOW_MAX_DELAY_S) * (0.8 + 0.4 * random.random())

    return policy(attempts, wait, transient, give_up=give_up)


def commit_delay(attempt: int) -> float:
    """The pause after failed commit ``attempt`` (1-based), jitter included."""
    return min(2.0, 0.05 * 2**attempt) * (0.5 + random.random())


def commit_policy(
    transient: Callable[[BaseException], bool],
    give_up: GiveUp,
    before_sleep: Callable[[RetryCallState], None] | None = None,
) -> Retrying:
    """An Iceberg commit that lost a race with another writer."""
    return policy(
        COMMIT_ATTEMPTS,
        lambda state: commit_delay(state.attempt_number),
        transient,
        give_up=give_up,
        before_sleep=before_sleep,
    )


def catalog_open_policy(transient: Callable[[BaseException], bool], give_up: GiveUp) -> Retrying:
    """Opening a catalog while another process creates its tables."""
    return policy(
        CATALOG_OPEN_ATTEMPTS,
        lambda state: 0.1 * state.attempt_number,
        transient,
        give_up=give_up,
    )
