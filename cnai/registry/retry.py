"""Bounded retries with exponential backoff around MLflow calls.

MLflow's own HTTP client retries for minutes by default; while a cnai step talks to
MLflow that is turned down (see :func:`mlflow_http_policy`) and this module retries
instead, so the total wait is bounded and the final error names the store.

Tuning (environment): ``CNAI_MLFLOW_RETRIES`` attempts per call (default 5) and
``CNAI_MLFLOW_RETRY_DELAY`` seconds before the first retry (default 0.5, doubling,
at most 8 s between attempts).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from cnai.errors import CnaiError, UsageError
from cnai.retrying import mlflow_policy

T = TypeVar("T")

# MLflow error codes that may succeed when tried again (server busy, network, locks).
TRANSIENT_CODES = frozenset(
    {
        "INTERNAL_ERROR",
        "TEMPORARILY_UNAVAILABLE",
        "SERVICE_UNDER_MAINTENANCE",
        "DEADLINE_EXCEEDED",
        "REQUEST_LIMIT_EXCEEDED",
        "RESOURCE_EXHAUSTED",
        "ABORTED",
        "IO_ERROR",
        "COULD_NOT_ACQUIRE_LOCK",
        "UNPARSEABLE_HTTP_ERROR",
    }
)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry one call."""

    attempts: int = 5
    """Tries per call, the first included (at least 1)."""
    first_delay_s: float = 0.5
    """Pause before the second try; doubles after each failure, capped at 8 s
    (:func:`cnai.retrying.mlflow_policy`)."""

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> RetryPolicy:
        """The policy set by ``CNAI_MLFLOW_RETRIES`` / ``CNAI_MLFLOW_RETRY_DELAY``."""
        env = os.environ if environ is None else environ
        try:
            attempts = int(env.get("CNAI_MLFLOW_RETRIES", cls.attempts))
            delay = float(env.get("CNAI_MLFLOW_RETRY_DELAY", cls.first_delay_s))
        except ValueError as exc:
            raise UsageError(
                f"CNAI_MLFLOW_RETRIES / CNAI_MLFLOW_RETRY_DELAY: not a number ({exc})"
            ) from exc
        if attempts < 1 or delay < 0:
            raise UsageError("CNAI_MLFLOW_RETRIES must be >= 1 and CNAI_MLFLOW_RETRY_DELAY >= 0")
        return cls(attempts=attempts, first_delay_s=delay)


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` looks like a failure that a later attempt may not hit."""
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException):
        return exc.error_code in TRANSIENT_CODES or "database is locked" in str(exc)
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    try:
        import requests
    except ImportError:  # pragma: no cover - requests ships with mlflow
        return False
    return isinstance(exc, (requests.ConnectionError, requests.Timeout))


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message, shortened for a one-line report."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def call(
    what: str,
    fn: Callable[[], T],
    *,
    store: str,
    policy: RetryPolicy | None = None,
    before_retry: Callable[[], T | None] | None = None,
) -> T:
    """Run ``fn``; retry transient failures with backoff; CnaiError when they persist.

    Args:
        what: what the call does, for the error message ("create model version").
        fn: the call.
        store: the MLflow URI, named in the error.
        policy: attempts and delays; default from the environment.
        before_retry: for calls that are not idempotent: run before each retry; a
            non-None result means the earlier attempt did take effect and is returned.
    """
    policy = policy or RetryPolicy.from_env()
    started = time.monotonic()

    def give_up(exc: BaseException, attempts: int) -> CnaiError:
        return CnaiError(
            f"MLflow at {store}: {what} failed after {attempts} attempt(s) over "
            f"{time.monotonic() - started:.1f}s: {first_line(exc)}"
        )

    tries = 0

    def attempt() -> T:
        nonlocal tries
        tries += 1
        if tries > 1 and before_retry is not None:
            done = before_retry()
            if done is not None:
                return done
        return fn()

    retrying = mlflow_policy(policy.attempts, policy.first_delay_s, is_transient, give_up)
    return retrying(attempt)


@contextmanager
def mlflow_http_policy(timeout_s: int = 30) -> Iterator[None]:
    """Turn MLflow's own HTTP retries off (cnai retries instead) for the block.

    Values the user set explicitly are left alone; everything is restored after.
    """
    wanted = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout_s),
    }
    added = [key for key in wanted if key not in os.environ]
    for key in added:
        os.environ[key] = wanted[key]
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)
