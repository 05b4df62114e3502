"""cnai.retrying: the one retry policy (tenacity) and its three named uses."""

from __future__ import annotations

import pytest

from cnai.contract import ContractError
from cnai.errors import CnaiError, UsageError
from cnai.retrying import (
    CATALOG_OPEN_ATTEMPTS,
    COMMIT_ATTEMPTS,
    catalog_open_policy,
    commit_delay,
    commit_policy,
    mlflow_policy,
)


class Flaky:
    """Raises ``errors`` in turn, then returns "ok"."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def _give_up(exc: BaseException, attempts: int) -> CnaiError:
    return CnaiError(f"gave up after {attempts}: {exc}")


def _always(exc: BaseException) -> bool:
    return True


@pytest.mark.parametrize("bad", [UsageError("bad flag"), ContractError("bad column")])
def test_bad_input_is_never_retried(bad: UsageError) -> None:
    for retrying in (
        mlflow_policy(5, 0.0, _always, _give_up),
        commit_policy(_always, _give_up),
        catalog_open_policy(_always, _give_up),
    ):
        flaky = Flaky(bad)
        with pytest.raises(type(bad)):
            retrying.copy(sleep=lambda _: None)(flaky)
        assert flaky.calls == 1


def test_mlflow_policy_backs_off_with_jitter_and_gives_up_with_the_count() -> None:
    pauses: list[float] = []
    retrying = mlflow_policy(6, 1.0, _always, _give_up).copy(sleep=pauses.append)
    flaky = Flaky(*[ConnectionError("down")] * 6)
    with pytest.raises(CnaiError, match="gave up after 6: down"):
        retrying(flaky)
    assert flaky.calls == 6
    for pause, base in zip(pauses, [1, 2, 4, 8, 8], strict=True):
        assert 0.8 * base <= pause < 1.2 * base


def test_what_is_not_transient_is_raised_as_is() -> None:
    retrying = mlflow_policy(5, 0.0, lambda e: isinstance(e, ConnectionError), _give_up)
    flaky = Flaky(KeyError("missing"))
    with pytest.raises(KeyError):
        retrying(flaky)
    assert flaky.calls == 1


def test_commit_policy_tries_eight_times_with_capped_jittered_pauses() -> None:
    pauses: list[float] = []
    announced: list[int] = []
    retrying = commit_policy(
        _always, _give_up, lambda state: announced.append(state.attempt_number)
    ).copy(sleep=pauses.append)
    flaky = Flaky(*[RuntimeError("conflict")] * COMMIT_ATTEMPTS)
    with pytest.raises(CnaiError, match=f"gave up after {COMMIT_ATTEMPTS}"):
        retrying(flaky)
    assert COMMIT_ATTEMPTS == 8 and announced == list(range(1, 8))
    for attempt, pause in enumerate(pauses, start=1):
        base = min(2.0, 0.05 * 2**attempt)
        assert 0.5 * base <= pause < 1.5 * base
    assert all(0.5 * 2.0 <= commit_delay(9) < 1.5 * 2.0 for _ in range(20))


def test_catalog_open_policy_waits_a_tenth_more_each_time_then_recovers() -> None:
    pauses: list[float] = []
    retrying = catalog_open_policy(_always, _give_up).copy(sleep=pauses.append)
    flaky = Flaky(*[RuntimeError("database is locked")] * (CATALOG_OPEN_ATTEMPTS - 1))
    assert retrying(flaky) == "ok"
    assert flaky.calls == 5
    assert pauses == pytest.approx([0.1, 0.2, 0.3, 0.4])
