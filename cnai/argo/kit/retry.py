"""The pipeline's two retry strategies.

:func:`transient` retries runtime failures of small tasks but never bad input: a task
that refuses its parameters exits 2 (:mod:`cnai.engine.badinput`) and the expression
stops the retries, on Argo and in the local engine alike. :func:`ray_retry` retries a
RayJob once (a fresh Ray cluster), with a longer backoff.
"""

from __future__ import annotations

from typing import Any

from cnai.engine.badinput import RETRY_UNLESS_BAD_INPUT


def transient(limit: int = 3) -> Any:
    """Hera ``RetryStrategy``: ``limit`` retries on failure, 10 s doubling to 10 min, never
    on a bad-input exit."""
    from hera.workflows import RetryStrategy
    from hera.workflows import models as m

    return RetryStrategy(
        limit=limit,
        retry_policy="OnFailure",
        expression=RETRY_UNLESS_BAD_INPUT,
        backoff=m.Backoff(duration="10s", factor=m.IntOrString(2), max_duration="10m"),
    )


def ray_retry(limit: int = 1) -> Any:
    """Hera ``RetryStrategy`` of RayJob steps: ``limit`` retries, 30 s doubling to 30 min."""
    from hera.workflows import RetryStrategy
    from hera.workflows import models as m

    return RetryStrategy(
        limit=limit,
        retry_policy="OnFailure",
        backoff=m.Backoff(duration="30s", factor=m.IntOrString(2), max_duration="30m"),
    )
