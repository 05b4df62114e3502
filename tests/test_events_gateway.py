"""The local events gateway over real HTTP on 127.0.0.1 (a real `cnai events serve`).

Runs are started through a recorder launcher (a real subprocess that writes its argv),
so these tests check what the gateway passes to the engine without running the pipeline;
test_events_e2e.py runs the real `cnai run` once.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import run_cli
from tests.test_events_support import (
    SECRET,
    SECRETS_ENV,
    TOKEN,
    GatewayProcess,
    argv_params,
    push_payload,
    recorded,
    signed_headers,
    start_gateway,
    write_recorder,
)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, Path]]:
    """One gateway for this module, launching the recorder with two fixed parameters."""
    home = tmp_path_factory.mktemp("events-home")
    record = home / "runs.jsonl"
    launcher = f"{sys.executable} {write_recorder(home)}"
    process = start_gateway(
        home,
        ["--launcher", launcher, "-p", "epochs=1", "-p", "workers=1"],
        env={"RECORDER_FILE": str(record)},
    )
    yield process, record
    assert process.stop() == 0


def _wait_records(record: Path, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        seen = recorded(record)
        if len(seen) >= count:
            return seen
        time.sleep(0.05)
    return recorded(record)


def test_accepted_push_runs_engine_with_mapped_parameters(gateway: tuple) -> None:
    process, record = gateway
    before = len(recorded(record))
    response = process.push(push_payload(after="c" * 40))
    assert response.status_code == 202
    answer = response.json()
    run_id = answer["run_id"]
    assert answer["arguments"] == {
        "git_sha": "c" * 40,
        "git_branch": "main",
        "repository": "cnai-dev/cnai",
        "trigger": "push",
    }
    finished = process.wait_run(run_id)
    assert finished["status"] == "succeeded" and finished["phase"] == "Succeeded"
    argv = _wait_records(record, before + 1)[-1]["argv"]
    assert argv[-3:] == ["--run-id", run_id, "--json"]
    assert argv_params(argv) == {
        "epochs": "1",
        "workers": "1",
        "git_sha": "c" * 40,
        "git_branch": "main",
        "repository": "cnai-dev/cnai",
        "trigger": "push",
    }
    log = [e for e in process.log_lines() if e.get("run_id") == run_id and "delivery" in e]
    assert log and log[0]["decision"] == "accepted" and log[0]["event"] == "push"


def test_other_branch_is_filtered_with_reason(gateway: tuple) -> None:
    process, record = gateway
    before = len(recorded(record))
    response = process.push(push_payload(ref="refs/heads/dev"))
    assert response.status_code == 200
    assert response.json()["reason"] == "filtered: ref refs/heads/dev"
    time.sleep(0.3)
    assert len(recorded(record)) == before


def test_bad_or_missing_signature_is_401_and_no_run(gateway: tuple) -> None:
    process, _ = gateway
    before = requests.get(f"{process.url}/healthz", timeout=5).json()["runs"]
    body = json.dumps(push_payload()).encode()
    wrong = signed_headers(body, secret="not-the-secret")
    missing = {k: v for k, v in signed_headers(body).items() if k != "X-Hub-Signature-256"}
    tampered = signed_headers(body)
    for headers, payload in ((wrong, body), (missing, body), (tampered, body + b" ")):
        response = process.post("/push", payload, headers)
        assert response.status_code == 401, response.text
        # The same answer every time (the encoded rejection is cached per reason).
        assert response.headers["Content-Type"] == "application/json; charset=utf-8"
        assert response.json()["status"] == "rejected"
    repeated = [process.post("/push", body, wrong) for _ in range(3)]
    assert [r.json() for r in repeated] == [{"status": "rejected", "reason": "bad signature"}] * 3
    after = requests.get(f"{process.url}/healthz", timeout=5).json()["runs"]
    assert sum(after.values()) == sum(before.values())
    decisions = [e["decision"] for e in process.log_lines() if e.get("status") == 401]
    assert "rejected: bad signature" in decisions
    assert "rejected: missing X-Hub-Signature-256" in decisions


def test_oversize_payload_is_413(gateway: tuple) -> None:
    process, _ = gateway
    limit = 1024 * 1024  # eventsource-data.yaml maxPayloadSize
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    big = b'{"rows_added": 1, "pad": "' + b"x" * limit + b'"}'
    assert process.post("/data-updated", big, headers).status_code == 413
    # Chunked, no Content-Length: the limit still holds while streaming.
    chunks = iter([big[i : i + 65536] for i in range(0, len(big), 65536)])
    response = requests.post(
        process.url + "/data-updated", data=chunks, headers=headers, timeout=30
    )
    assert response.status_code == 413
    # The GitHub endpoint takes GitHub's 25 MB: a 2 MiB push is not too large.
    payload = push_payload(ref="refs/heads/dev")
    payload["padding"] = "y" * (2 * limit)
    assert process.push(payload).status_code == 200


def test_replayed_delivery_runs_once(gateway: tuple) -> None:
    process, record = gateway
    before = len(recorded(record))
    payload = push_payload(after="d" * 40)
    first = process.push(payload, delivery="replay-1")
    assert first.status_code == 202
    second = process.push(payload, delivery="replay-1")
    assert second.status_code == 200 and second.json()["status"] == "duplicate"
    process.wait_run(first.json()["run_id"])
    time.sleep(0.3)
    assert len(recorded(record)) == before + 1


def test_data_webhook_needs_bearer_token(gateway: tuple) -> None:
    process, _ = gateway
    body = json.dumps({"rows_added": 12, "table": "cnai.digits"}).encode()
    assert process.post("/data-updated", body, {}).status_code == 401
    bad = {"Authorization": "Bearer nope"}
    assert process.post("/data-updated", body, bad).status_code == 401
    good = {"Authorization": f"Bearer {TOKEN}"}
    response = process.post("/data-updated", body, good)
    assert response.status_code == 202
    assert response.json()["arguments"]["trigger"] == "data"
    nothing_new = json.dumps({"rows_added": 0}).encode()
    filtered = process.post("/data-updated", nothing_new, good)
    assert filtered.status_code == 200 and filtered.json()["status"] == "filtered"
    process.wait_run(response.json()["run_id"])


def test_malformed_json_and_wrong_method(gateway: tuple) -> None:
    process, _ = gateway
    for body in (b"{not json", b"", b"[1, 2]", b"\xff\xfe", b'"just a string"'):
        response = process.post("/push", body, signed_headers(body))
        assert response.status_code == 400, body
    assert requests.get(process.url + "/push", timeout=5).status_code == 405
    assert requests.get(process.url + "/healthz", timeout=5).json()["status"] == "ok"


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children),
    max_leaves=20,
)
_push_keys = st.sampled_from(
    ["ref", "after", "deleted", "commits", "repository", "X-GitHub-Event", "rows_added", "x"]
)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=st.one_of(
        st.binary(max_size=300),
        _json.map(lambda v: json.dumps(v).encode()),
        st.dictionaries(_push_keys, _json).map(lambda v: json.dumps(v).encode()),
    ),
    endpoint=st.sampled_from(["/push", "/data-updated"]),
    sign=st.booleans(),
)
def test_fuzzed_payloads_never_5xx_and_never_run_unless_accepted(
    gateway: tuple, body: bytes, endpoint: str, sign: bool
) -> None:
    process, _ = gateway
    headers = signed_headers(body) if sign else {"X-GitHub-Delivery": "fuzz"}
    headers["Authorization"] = f"Bearer {TOKEN}" if sign else "Bearer wrong"
    before = requests.get(process.url + "/healthz", timeout=5).json()["runs"]
    response = process.post(endpoint, body, headers)
    assert response.status_code < 500
    after = requests.get(process.url + "/healthz", timeout=5).json()["runs"]
    new_runs = sum(after.values()) - sum(before.values())
    assert new_runs == (1 if response.status_code == 202 else 0)
    if not sign:
        assert response.status_code == 401


def test_200_concurrent_junk_plus_one_valid_is_exactly_one_run(gateway: tuple) -> None:
    process, record = gateway
    before = len(recorded(record))
    valid_body = json.dumps(push_payload(after="e" * 40)).encode()
    junk: list[tuple[str, bytes, dict[str, str]]] = []
    for i in range(200):
        body = json.dumps(push_payload(after="f" * 40)).encode()
        kind = i % 5
        if kind == 0:  # bad signature
            junk.append(("/push", body, signed_headers(body, secret="wrong")))
        elif kind == 1:  # no signature
            junk.append(("/push", body, {"X-GitHub-Delivery": f"j{i}"}))
        elif kind == 2:  # signed garbage
            garbage = bytes([i % 256]) * 50
            junk.append(("/push", garbage, signed_headers(garbage)))
        elif kind == 3:  # filtered branch
            dev = json.dumps(push_payload(ref=f"refs/heads/dev{i}")).encode()
            junk.append(("/push", dev, signed_headers(dev)))
        else:  # data webhook without token
            junk.append(("/data-updated", b'{"rows_added": 5}', {}))

    async def fire() -> list[int]:
        async with aiohttp.ClientSession() as session:

            async def one(endpoint: str, body: bytes, headers: dict[str, str]) -> int:
                async with session.post(process.url + endpoint, data=body, headers=headers) as r:
                    await r.read()
                    return r.status

            tasks = [one(*item) for item in junk]
            tasks.insert(100, one("/push", valid_body, signed_headers(valid_body)))
            return list(await asyncio.gather(*tasks))

    statuses = asyncio.run(fire())
    assert statuses.count(202) == 1
    assert all(s < 500 for s in statuses)
    seen = _wait_records(record, before + 1)
    time.sleep(0.5)
    seen = recorded(record)
    assert len(seen) == before + 1
    assert argv_params(seen[-1]["argv"])["git_sha"] == "e" * 40


def test_runs_on_one_branch_queue_one_at_a_time_none_lost(tmp_path: Path) -> None:
    record = tmp_path / "runs.jsonl"
    launcher = f"{sys.executable} {write_recorder(tmp_path)}"
    process = start_gateway(
        tmp_path / "home",
        ["--launcher", launcher],
        env={"RECORDER_FILE": str(record), "RECORDER_SLEEP": "0.3"},
    )
    try:

        async def burst() -> list[int]:
            async with aiohttp.ClientSession() as session:

                async def one(i: int) -> int:
                    body = json.dumps(push_payload(after=f"{i + 1:040x}")).encode()
                    url = process.url + "/push"
                    async with session.post(url, data=body, headers=signed_headers(body)) as r:
                        return r.status

                return list(await asyncio.gather(*(one(i) for i in range(5))))

        started = time.time()
        assert asyncio.run(burst()) == [202] * 5
        assert time.time() - started < 1.0  # answered at once, not after the runs
        seen = _wait_records(record, 5, timeout=60)
        assert sorted(argv_params(r["argv"])["git_sha"] for r in seen) == [
            f"{i + 1:040x}" for i in range(5)
        ]
        spans = sorted((r["start"], r["end"]) for r in seen)
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end - 0.05, "two runs of one branch overlapped"
    finally:
        assert process.stop() == 0


def test_queued_runs_and_delivery_ids_survive_a_restart(tmp_path: Path) -> None:
    record = tmp_path / "runs.jsonl"
    launcher = f"{sys.executable} {write_recorder(tmp_path)}"
    home = tmp_path / "home"
    env = {"RECORDER_FILE": str(record), "RECORDER_SLEEP": "30"}
    first = start_gateway(home, ["--launcher", launcher], env=env)
    payload_a, payload_b = push_payload(after="1" * 40), push_payload(after="2" * 40)
    run_a = first.push(payload_a, delivery="restart-a").json()["run_id"]
    run_b = first.push(payload_b, delivery="restart-b").json()["run_id"]
    deadline = time.time() + 10
    while first.run(run_a)["status"] != "running" and time.time() < deadline:
        time.sleep(0.05)
    assert first.run(run_b)["status"] == "queued"
    assert first.stop() == 0

    second = start_gateway(home, ["--launcher", launcher], env={**env, "RECORDER_SLEEP": "0"})
    try:
        assert second.run(run_a)["status"] == "interrupted"
        assert second.wait_run(run_b)["status"] == "succeeded"
        replay = second.push(payload_a, delivery="restart-a")
        assert replay.status_code == 200 and replay.json()["status"] == "duplicate"
    finally:
        assert second.stop() == 0
    assert [argv_params(r["argv"])["git_sha"] for r in recorded(record)] == ["2" * 40]


def test_refuses_to_start_without_secrets_unless_insecure(tmp_path: Path) -> None:
    result = run_cli(["events", "serve", "--port", "0"], tmp_path)
    assert result.returncode == 2
    assert "CNAI_DATA_WEBHOOK_TOKEN is not set" in result.stderr
    only_github = {"CNAI_GITHUB_WEBHOOK_SECRET": SECRET}
    result = run_cli(["events", "serve", "--port", "0"], tmp_path, env=only_github)
    assert result.returncode == 2
    process = start_gateway(tmp_path / "insecure", ["--insecure"], with_secrets=False)
    try:
        body = json.dumps(push_payload(ref="refs/heads/dev")).encode()
        headers = {"X-GitHub-Delivery": "insecure-1", "X-GitHub-Event": "push"}
        assert process.post("/push", body, headers).status_code == 200
    finally:
        assert process.stop() == 0
    assert "WARNING --insecure" in process.stderr_path.read_text()
    assert SECRETS_ENV["CNAI_GITHUB_WEBHOOK_SECRET"] not in process.stderr_path.read_text()
