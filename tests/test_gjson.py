"""gjson paths on raw JSON text, and event data built as Argo Events' EventSources do."""

from __future__ import annotations

import json

import pytest
from aiohttp.test_utils import make_mocked_request
from hypothesis import given, settings
from hypothesis import strategies as st

from cnai.argo.semantics import gojson
from cnai.argo.semantics.gjson import Kind, PathError, compile_path, format_float, unescape
from cnai.events.filters import compile_filters
from cnai.events.params import compile_parameter
from cnai.events.server import _event_data
from cnai.events.spec import Route

PAYLOAD = (
    '{ "n": 1e-07, "big": 12345678901234567890, "neg": -9007199254740993,\n'
    '  "obj": {"z": 1,  "a": [1, 2.50], "s": "caf\\u00e9 <b>"},\n'
    '  "u": "caf\\u00e9 \\ud83d\\ude00", "lone": "\\udcff!", "half": 2.5, "one": 1.0,\n'
    '  "t": true, "nil": null, "dup": 1, "dup": 2 }'
)


def _string(path: str, document: str = PAYLOAD) -> str:
    return compile_path(path).get(document).string()


def test_numbers_come_out_as_gjson_formats_them() -> None:
    assert _string("n") == "0.0000001"  # gjson: FormatFloat('f', -1), not "1e-07"
    assert _string("big") == "12345678901234567890"  # digits only: the raw text
    assert _string("neg") == "-9007199254740993"
    assert _string("half") == "2.5"
    assert _string("one") == "1"
    assert format_float(1e21) == "1000000000000000000000"
    assert format_float(-0.0) == "-0"


def test_objects_are_the_raw_text_and_strings_are_unescaped() -> None:
    assert _string("obj") == '{"z": 1,  "a": [1, 2.50], "s": "caf\\u00e9 <b>"}'
    assert _string("obj.a") == "[1, 2.50]"
    assert _string("u") == "café 😀"
    assert _string("lone") == "\ufffd!"  # Go's utf8.EncodeRune of a lone surrogate
    assert _string("t") == "true"
    result = compile_path("nil").get(PAYLOAD)
    assert result.exists() and result.kind == Kind.NULL and result.string() == ""
    assert _string("dup") == "1"  # gjson takes the first of duplicate keys
    assert unescape("a\\qb") == "a"  # gjson stops at a bad escape


def test_wildcards_count_and_each() -> None:
    document = '{"list": [{"x": 1}, {"x": "two"}, {"y": 3}, 4], "key*": 5, "kez": 6}'
    assert _string("l?st.#", document) == "4"
    assert _string("l*.#.x", document) == '[1,"two"]'
    assert _string("ke?", document) == "6"
    assert _string("key\\*", document) == "5"
    assert _string("list.3", document) == "4"
    assert not compile_path("list.4").get(document).exists()
    assert not compile_path("list.x").get(document).exists()


@pytest.mark.parametrize(
    ("path", "construct"),
    [
        ("a.#(b==1)", "query"),
        ("a|b", "pipe"),
        ("a.@reverse", "modifier"),
        ("{a,b}", "object multipath"),
        ("[a,[b]]", "nested selector"),
        ("[x:a]", "named selector"),
        ("!true", "literal"),
        ("..a", "JSON-lines"),
        ("a.*\\.b", "wildcard"),
        ("a..b", "empty key"),
    ],
)
def test_unsupported_syntax_is_refused_by_name(path: str, construct: str) -> None:
    with pytest.raises(PathError, match=construct):
        compile_path(path)


def _route(kind: str) -> Route:
    return Route(
        endpoint="/e", port=12000, method="POST", source="s", event="e", kind=kind,
        secret_env=None, max_payload=1 << 20,
    )  # fmt: skip


def test_webhook_event_data_is_go_marshal_of_the_raw_body() -> None:
    request = make_mocked_request("POST", "/e", headers={"Content-Type": "application/json"})
    text = _event_data(_route("webhook"), request, json.loads(PAYLOAD), PAYLOAD)
    assert text.startswith('{"header":{"Content-Type":["application/json"]},"body":{"n":1e-07,')
    # json.RawMessage is compacted with HTML escaping; key order and escapes are kept.
    assert _string("body.obj", text) == '{"z":1,"a":[1,2.50],"s":"caf\\u00e9 \\u003cb\\u003e"}'
    assert _string("body.n", text) == "0.0000001"
    assert _string("body.big", text) == "12345678901234567890"
    assert _string("body.u", text) == "café 😀"


def test_github_event_data_is_decoded_and_marshalled_again() -> None:
    request = make_mocked_request(
        "POST", "/e", headers={"X-GitHub-Event": "push", "X-GitHub-Delivery": "d1"}
    )
    text = _event_data(_route("github"), request, json.loads(PAYLOAD), PAYLOAD)
    assert '"X-GitHub-Delivery":"d1","X-GitHub-Event":"push"' in text  # sorted map keys
    assert _string("body.n", text) == "0.0000001"
    assert _string("body.big", text) == "12345678901234567000"  # float64, as Go decodes it
    assert _string("body.obj", text) == '{"a":[1,2.5],"s":"café \\u003cb\\u003e","z":1}'


def test_go_json_float_and_fmt_formats() -> None:
    assert (
        gojson.marshal([1e-07, 1e21, 1e20, 100.0, 0.5, -0.0])
        == "[1e-7,1e+21,100000000000000000000,100,0.5,-0]"
    )
    assert [gojson.format_value(v) for v in (1e-07, 100.0, 1e6, 123456.0, 0.0001)] == [
        "1e-07", "100", "1e+06", "123456", "0.0001",
    ]  # fmt: skip
    assert gojson.quote("a\x01\b\u2028&") == '"a\\u0001\\b\\u2028\\u0026"'


def test_filters_and_parameters_read_the_event_text() -> None:
    text = '{"body": {"n": 1e-07, "obj": {"b": 1, "a": [true]}, "big": 12345678901234567890}}'
    data = compile_filters(
        {"data": [{"path": "body.n", "type": "string", "value": ["^0\\.0000001$"]}]}, None, "t"
    )
    assert data.evaluate(text).passed
    number = compile_filters(
        {"data": [{"path": "body.big", "type": "number", "comparator": ">", "value": ["1e19"]}]},
        None,
        "t",
    )
    assert number.evaluate(text).passed

    def resolve(key: str) -> str | None:
        raw = {"src": {"dependencyName": "d", "dataKey": key}, "dest": "spec.x"}
        return compile_parameter(raw, "p").resolve({"d": text})

    assert resolve("body.obj") == '{"b": 1, "a": [true]}'
    assert resolve("body.n") == "0.0000001"
    assert resolve("body.big") == "12345678901234567890"
    template = {"src": {"dependencyName": "d", "dataTemplate": "{{ .Input.body.n }}"}, "dest": "a"}
    assert compile_parameter(template, "p").resolve({"d": text}) == "1e-07"  # Go's %v


_KEYS = st.text(alphabet="abcxyz_-0123456789", min_size=1, max_size=6)
_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.text(max_size=12),
)
_DOCS = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_KEYS, inner, max_size=4)),
    max_leaves=12,
)


def _leaves(value: object, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _leaves(v, (*path, k))]
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(v, (*path, str(i)))]
    return [(path, value)]


@settings(max_examples=150, deadline=None)
@given(doc=st.dictionaries(_KEYS, _DOCS, min_size=1, max_size=4), ascii_only=st.booleans())
def test_every_leaf_of_any_document_reads_back(doc: dict[str, object], ascii_only: bool) -> None:
    """Scanning the raw text finds every leaf json.dumps wrote, escapes and all."""
    text = json.dumps(doc, ensure_ascii=ascii_only, indent=1 if ascii_only else None)
    for path, value in _leaves(doc):
        result = compile_path(".".join(path)).get(text)
        assert result.exists()
        if value is None:
            assert result.kind == Kind.NULL and result.raw == "null"
        elif isinstance(value, bool):
            assert result.string() == ("true" if value else "false")
        else:
            assert result.string() == str(value)
