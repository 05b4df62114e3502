"""Fast checks of the register step's parts: the gate rule, retries, lineage, card, specs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cnai.cli.main import main
from cnai.errors import CnaiError, UsageError
from cnai.registry import retry
from cnai.registry.card import CardInput, card_path, render
from cnai.registry.gate import Decision, decide
from cnai.registry.lineage import ARGO_WORKFLOW_NAME, GIT_SHA, Lineage, argo_context
from cnai.registry.query import parse_model_spec
from tests.conftest import free_port

accuracy = st.integers(min_value=0, max_value=500).map(lambda k: k / 500)


@given(candidate=accuracy, champion=accuracy, min_delta=st.sampled_from([0.0, 0.002, 0.01, 0.1]))
def test_gate_promotes_exactly_when_the_gain_is_positive_and_at_least_min_delta(
    candidate: float, champion: float, min_delta: float
) -> None:
    decision = decide(candidate, champion, min_delta, "3")
    gain = round(candidate - champion, 9)
    assert decision.promoted == (gain > 0 and gain >= min_delta)
    assert "champion v3" in decision.reason


@given(score=accuracy, min_delta=st.sampled_from([0.0, 0.05]))
def test_gate_ties_keep_the_incumbent(score: float, min_delta: float) -> None:
    decision = decide(score, score, min_delta)
    assert not decision.promoted
    assert "tie" in decision.reason


def test_gate_promotes_when_there_is_no_champion() -> None:
    assert decide(0.1, None, 0.5) == Decision(True, "no champion yet; test_accuracy 0.1000")


def test_gate_gain_exactly_min_delta_is_enough_despite_float_noise() -> None:
    # 0.95 - 0.94 is 0.010000000000000009 in binary floats; 0.3 - 0.29 is 0.009999999999999953.
    assert decide(0.95, 0.94, 0.01).promoted
    assert decide(0.3, 0.29, 0.01).promoted
    assert not decide(0.3, 0.29, 0.011).promoted


def test_retry_gives_up_after_the_configured_attempts_with_one_clear_line() -> None:
    import requests

    port = free_port()  # nothing listens there: a stopped server
    calls: list[float] = []

    def probe() -> None:
        calls.append(time.monotonic())
        requests.get(f"http://127.0.0.1:{port}/health", timeout=1)

    policy = retry.RetryPolicy(attempts=3, first_delay_s=0.05)
    with pytest.raises(CnaiError) as info:
        retry.call("read the run", probe, store=f"http://127.0.0.1:{port}", policy=policy)
    message = str(info.value)
    assert len(calls) == 3
    # Backoff doubles: pauses of at least 0.05*0.8 then 0.1*0.8 seconds (jitter +-20%).
    assert calls[1] - calls[0] >= 0.04
    assert calls[2] - calls[1] >= 0.08
    assert f"MLflow at http://127.0.0.1:{port}: read the run failed after 3 attempt(s)" in message
    assert "\n" not in message


def test_retry_recovers_when_a_transient_failure_clears() -> None:
    failures = [ConnectionRefusedError("refused"), TimeoutError("slow")]

    def flaky() -> str:
        if failures:
            raise failures.pop(0)
        return "ok"

    policy = retry.RetryPolicy(attempts=3, first_delay_s=0.01)
    assert retry.call("x", flaky, store="s", policy=policy) == "ok"


def test_retry_does_not_retry_what_cannot_succeed() -> None:
    from mlflow.exceptions import MlflowException

    calls = []

    def missing() -> None:
        calls.append(1)
        raise MlflowException("Run 'x' not found", error_code=3001)  # RESOURCE_DOES_NOT_EXIST

    with pytest.raises(MlflowException):
        retry.call("read", missing, store="s", policy=retry.RetryPolicy(5, 0.01))
    assert calls == [1]


def test_retry_before_retry_finds_an_effect_whose_response_was_lost() -> None:
    created: list[str] = []

    def create() -> str:
        created.append("v1")
        raise ConnectionResetError("response lost")

    found = retry.call(
        "create",
        create,
        store="s",
        policy=retry.RetryPolicy(3, 0.01),
        before_retry=lambda: created[0] if created else None,
    )
    assert found == "v1"
    assert created == ["v1"]  # not created twice


def test_retry_policy_from_env_rejects_nonsense() -> None:
    with pytest.raises(UsageError, match="CNAI_MLFLOW_RETRIES"):
        retry.RetryPolicy.from_env({"CNAI_MLFLOW_RETRIES": "many"})
    with pytest.raises(UsageError):
        retry.RetryPolicy.from_env({"CNAI_MLFLOW_RETRIES": "0"})
    assert retry.RetryPolicy.from_env({"CNAI_MLFLOW_RETRIES": "2"}).attempts == 2


def test_lineage_tags_leave_out_what_was_not_recorded() -> None:
    lineage = Lineage("r1", "m-1", "cnai.digits", 42, "abc", git_sha=None, trigger="push")
    tags = lineage.tags()
    assert tags["cnai.snapshot_id"] == "42"
    assert tags["cnai.trigger"] == "push"
    assert GIT_SHA not in tags
    assert ARGO_WORKFLOW_NAME not in tags


def test_argo_context_reads_the_workflow_env() -> None:
    env = {"ARGO_WORKFLOW_NAME": "cnai-retrain-x7", "ARGO_WORKFLOW_UID": "u-1"}
    assert argo_context(env) == ("cnai-retrain-x7", "u-1")
    assert argo_context({}) == (None, None)


def test_model_card_names_the_snapshot_code_and_decision() -> None:
    lineage = Lineage("run9", "m-9", "cnai.digits", 77, "dv1", git_sha="deadbee", git_branch="main")
    text = render(
        CardInput(
            model_name="digits-classifier",
            version="4",
            lineage=lineage,
            metrics={"test_accuracy": 0.9, "test_rows": 160.0},
            run_metrics={"val_accuracy": 0.88},
            params={"lr": "0.003"},
            decision=Decision(False, "a tie keeps the incumbent"),
            champion_version="3",
            classes=(0, 1),
            features=64,
        )
    )
    for expected in ("snapshot id | 77", "deadbee", "main", "dv1", "run9", "| lr | 0.003 |"):
        assert expected in text
    assert "champion after the decision: v3" in text
    assert "## Intended use" in text and "## Limitations" in text
    assert card_path("digits-classifier", "4") == "model_card/digits-classifier-v4.md"


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("digits-classifier", ("digits-classifier", None, None)),
        ("digits-classifier@champion", ("digits-classifier", "champion", None)),
        ("digits-classifier/12", ("digits-classifier", None, "12")),
    ],
)
def test_model_spec_forms(spec: str, parsed: tuple[str, str | None, str | None]) -> None:
    assert parse_model_spec(spec) == parsed


def test_model_spec_rejects_two_aliases() -> None:
    with pytest.raises(UsageError, match="NAME@ALIAS"):
        parse_model_spec("m@a@b")


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--run-id", "abc", "--min-delta", "-0.1"], "--min-delta"),
        (["--run-id", "abc", "--model-name", "a/b"], "--model-name"),
        (["--run-id", "not a run"], "--run-id"),
        ([], "--run-id"),
    ],
)
def test_register_rejects_bad_input_with_exit_2(
    args: list[str], names: str, tmp_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--home", str(tmp_home), "register", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert names in err
    assert len(err.splitlines()) == 1
