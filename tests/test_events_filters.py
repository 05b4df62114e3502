"""Filter, expression, path and parameter semantics (Argo Events v1.9's), and the HMAC."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cnai.argo.semantics.gjson import PathError, compile_path
from cnai.argo.semantics.govaluate import GovaluateError as ExprError
from cnai.argo.semantics.govaluate import compile_expression as compile_expr
from cnai.events.filters import compile_filters
from cnai.events.signature import github_signature, verify_bearer, verify_github_signature
from cnai.events.spec import EventsSpec, Route, load_spec
from tests.test_events_support import push_payload


def test_github_documented_signature_test_vector() -> None:
    # https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
    secret, payload = "It's a Secret to Everybody", b"Hello, World!"
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert github_signature(secret, payload) == expected
    assert verify_github_signature(secret, payload, expected)
    assert not verify_github_signature(secret, payload + b"!", expected)
    assert not verify_github_signature(secret, payload, expected.upper())
    assert not verify_github_signature(secret, payload, None)
    assert not verify_github_signature(secret, payload, "sha256=é")


@given(st.binary(), st.text(min_size=1))
def test_signature_matches_stdlib_hmac(body: bytes, secret: str) -> None:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert verify_github_signature(secret, body, f"sha256={digest}")


def test_bearer() -> None:
    assert verify_bearer("tok", "Bearer tok")
    assert not verify_bearer("tok", "Bearer tok2")
    assert not verify_bearer("tok", "tok")
    assert not verify_bearer("tok", None)


def test_gjson_paths() -> None:
    doc = {"a": {"b.c": 1, "list": [{"x": 1}, {"x": 2}, {"y": 3}]}, "e": []}
    assert compile_path("a.b\\.c").get(doc).string() == "1"
    assert compile_path("a.list.1.x").get(doc).string() == "2"
    assert compile_path("a.list.#").get(doc).string() == "3"
    assert compile_path("a.list.#.x").get(doc).string() == "[1,2]"
    assert not compile_path("a.missing").get(doc).exists()
    assert not compile_path("a.list.9").get(doc).exists()
    assert compile_path("[a.list.#.x,nope,e]").get(doc).string() == "[[1,2],[]]"
    for bad in ("a|b", "a.@reverse", "a.#(x==1)", "a.#[x==1]", "{a}", "!true", "..a", "a..b"):
        with pytest.raises(PathError):
            compile_path(bad)


def test_expr_subset() -> None:
    expr = compile_expr('repo == "x/y" && (sha !~ "^0+$" || n > 2) && ref =~ "main"')
    params = {"repo": "x/y", "sha": "000", "n": 3, "ref": "refs/heads/main-old"}
    assert expr.evaluate(params) is True  # =~ is unanchored, like Argo's
    assert expr.evaluate({**params, "n": 1}) is False
    assert compile_expr("a + 'b' == 'xb'").evaluate({"a": "x"}) is True
    assert compile_expr("!flag").evaluate({"flag": False}) is True
    with pytest.raises(ExprError):
        compile_expr("a =~ 'x'").evaluate({"a": 1})  # govaluate: a type error, not False
    # What govaluate itself rejects when parsing (Argo Events registers no functions).
    for bad in ("len(a) > 1", "a.b == 1", "a =", "(a"):
        with pytest.raises(ExprError):
            compile_expr(bad)
    # The rest of govaluate is supported now (one evaluator, issue 14), as Argo Events runs it.
    assert compile_expr("a ? b : c").evaluate({"a": True, "b": "x", "c": "y"}) == "x"
    assert compile_expr("a IN ('x', 'y')").evaluate({"a": "y"}) is True
    with pytest.raises(ExprError, match="comparator 'in'"):
        compile_expr("a IN ('x')").evaluate({"a": "x"})  # one value in parentheses: no array
    assert compile_expr("a & b").evaluate({"a": 6, "b": 3}) == 2.0
    assert compile_expr("-a").evaluate({"a": 2}) == -2.0


def test_data_filter_semantics() -> None:
    event = {"body": {"ref": "refs/heads/main-old", "n": 5, "flag": False, "s": "TRUE"}}
    unanchored = compile_filters(
        {"data": [{"path": "body.ref", "type": "string", "value": ["refs/heads/main"]}]}, None, "t"
    )
    assert unanchored.evaluate(event).passed  # why our YAML anchors every regex
    anchored = compile_filters(
        {"data": [{"path": "body.ref", "type": "string", "value": ["^refs/heads/main$"]}]},
        None,
        "t",
    )
    decision = anchored.evaluate(event)
    assert not decision.passed and decision.reason == "ref refs/heads/main-old"
    number = {"path": "body.n", "type": "number", "comparator": ">=", "value": ["5"]}
    assert compile_filters({"data": [number]}, None, "t").evaluate(event).passed
    number_lt = {**number, "comparator": "<"}
    assert not compile_filters({"data": [number_lt]}, None, "t").evaluate(event).passed
    boolean = {"path": "body.flag", "type": "bool", "value": ["false"]}
    assert compile_filters({"data": [boolean]}, None, "t").evaluate(event).passed
    string_bool = {"path": "body.s", "type": "bool", "value": ["true"]}
    assert compile_filters({"data": [string_bool]}, None, "t").evaluate(event).passed
    missing = {"path": "body.nope", "type": "string", "value": ["."]}
    either = compile_filters({"data": [missing, boolean], "dataLogicalOperator": "or"}, None, "t")
    both = compile_filters({"data": [missing, boolean]}, None, "t")
    assert either.evaluate(event).passed and not both.evaluate(event).passed
    not_equal = {"path": "body.ref", "type": "string", "comparator": "!=", "value": ["^x"]}
    assert compile_filters({"data": [not_equal]}, None, "t").evaluate(event).passed


@pytest.fixture(scope="module")
def spec() -> EventsSpec:
    return load_spec()


def _route(spec: EventsSpec, endpoint: str) -> Route:
    route = spec.route(endpoint)
    assert route is not None
    return route


def _github(payload: dict[str, Any]) -> dict[str, Any]:
    return {"headers": {}, "body": {**payload, "X-GitHub-Event": "push"}}


def test_sensor_accepts_a_relevant_push_on_main_and_maps_parameters(spec: EventsSpec) -> None:
    route = _route(spec, "/push")
    result = spec.evaluate(route, _github(push_payload(after="9" * 40)))
    assert result.decision.passed and result.dependency == "github-push"
    assert result.arguments == {
        "git_sha": "9" * 40,
        "git_branch": "main",
        "repository": "cnai-dev/cnai",
        "trigger": "push",
    }


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (push_payload(ref="refs/heads/dev"), "ref refs/heads/dev"),
        (push_payload(ref="refs/heads/main-old"), "ref refs/heads/main-old"),
        (push_payload(ref="refs/tags/v1"), "ref refs/tags/v1"),
        (push_payload(modified=("README.md",)), "README.md"),
        (push_payload(modified=("docs/steps/x.md",)), "docs/steps/x.md"),
        (push_payload(deleted=True, after="0" * 40), "after=" + "0" * 40),
        (push_payload(repository="someone/else"), "someone/else"),
    ],
)
def test_sensor_filters_irrelevant_pushes(
    spec: EventsSpec, payload: dict[str, Any], reason: str
) -> None:
    result = spec.evaluate(_route(spec, "/push"), _github(payload))
    assert not result.decision.passed
    assert reason in result.decision.reason


def test_sensor_paths_filter_counts_added_and_removed(spec: EventsSpec) -> None:
    payload = push_payload(modified=("README.md",))
    payload["commits"].append(
        {"id": "x", "added": [], "modified": [], "removed": ["pipelines/experiments/a.yaml"]}
    )
    assert spec.evaluate(_route(spec, "/push"), _github(payload)).decision.passed


def test_sensor_data_webhook(spec: EventsSpec) -> None:
    route = _route(spec, "/data-updated")
    s3: dict[str, Any] = {
        "header": {},
        "body": {"EventName": "s3:ObjectCreated:Put", "Key": "landing/x.parquet"},
    }
    job = {"header": {}, "body": {"table": "cnai.digits", "rows_added": 10}}
    nothing = {"header": {}, "body": {"rows_added": 0}}
    removed = {"header": {}, "body": {"EventName": "s3:ObjectRemoved:Delete"}}
    for event in (s3, job):
        result = spec.evaluate(route, event)
        assert result.decision.passed and result.arguments["trigger"] == "data"
        assert result.arguments["git_sha"] == ""
        assert result.arguments["git_branch"] == "main"  # the default branch's mutex
    for event in (nothing, removed):
        assert not spec.evaluate(route, event).decision.passed
