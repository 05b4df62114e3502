"""Hostile and careless input against the events gateway and its git hook (issue 18, 1-10).

Every test here drives a real ``cnai events serve`` (or the real CLI / hook) on
127.0.0.1 with a recorder launcher, and names the item of issue 18 it covers.
Limits are lowered through the home's config file so each test takes seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
import yaml

from tests.conftest import run_cli
from tests.test_events_support import (
    SECRET,
    TOKEN,
    GatewayProcess,
    argv_params,
    push_payload,
    recorded,
    signed_headers,
    start_gateway,
    write_recorder,
)


def _gateway(
    tmp_path: Path,
    events: dict[str, Any] | None = None,
    sleep: float = 0.0,
    name: str = "home",
) -> tuple[GatewayProcess, Path]:
    """A gateway whose runs are the recorder; ``events`` goes into the config file."""
    home = tmp_path / name
    home.mkdir(parents=True, exist_ok=True)
    if events:
        (home / "config.yaml").write_text(yaml.safe_dump({"events": events}))
    record = tmp_path / f"{name}-runs.jsonl"
    launcher = f"{sys.executable} {write_recorder(tmp_path)}"
    process = start_gateway(
        home,
        ["--launcher", launcher],
        env={"RECORDER_FILE": str(record), "RECORDER_SLEEP": str(sleep)},
    )
    return process, record


@contextlib.contextmanager
def _running(
    tmp_path: Path, events: dict[str, Any] | None = None, sleep: float = 0.0
) -> Iterator[tuple[GatewayProcess, Path]]:
    process, record = _gateway(tmp_path, events, sleep)
    try:
        yield process, record
    finally:
        assert process.stop() == 0


def _signed(payload: dict[str, Any] | bytes, delivery: str | None = None) -> tuple[bytes, dict]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return body, signed_headers(body, delivery)


def _wait(predicate: Any, timeout: float = 20) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def _runs(process: GatewayProcess) -> dict[str, int]:
    return dict(requests.get(process.url + "/healthz", timeout=5).json()["runs"])


def _host_port(process: GatewayProcess) -> tuple[str, int]:
    host, port = process.url.removeprefix("http://").split(":")
    return host, int(port)


# -- item 1 -------------------------------------------------------------------------


def test_nul_or_lone_surrogate_in_a_pushed_field_is_400_and_the_branch_keeps_running(
    tmp_path: Path,
) -> None:
    """Item 1: `after` with a NUL byte or a lone surrogate is refused (400, no run); the
    branch is not wedged: the next valid push runs to completion."""
    with _running(tmp_path) as (process, record):
        for after in ("a" * 39 + "\x00", "\udcff" + "a" * 39):
            body = json.dumps(push_payload(after=after)).encode()  # JSON escapes both
            response = process.post("/push", body, signed_headers(body))
            assert response.status_code == 400, response.text
            assert "git_sha" in response.json()["reason"]
        assert _runs(process) == {}
        ok = process.push(push_payload(after="c" * 40))
        assert ok.status_code == 202
        assert process.wait_run(ok.json()["run_id"], timeout=20)["status"] == "succeeded"
        assert [argv_params(r["argv"])["git_sha"] for r in recorded(record)] == ["c" * 40]


def test_a_launch_failure_fails_only_that_run(tmp_path: Path) -> None:
    """Item 1: a run whose launch raises (here a NUL in a recorded argument, as a push of an
    older version could leave behind) is marked failed with the reason, and the next run
    of the same branch still starts."""
    from cnai.events.runner import RunQueue
    from cnai.events.store import EventStore, RunRecord

    store = EventStore(tmp_path / "events")
    marker = tmp_path / "ran.txt"
    launcher = ["/bin/sh", "-c", f'echo "$0" >> "{marker}"']

    def record(run_id: str, sha: str) -> RunRecord:
        return RunRecord(
            run_id, run_id, "main", {"git_sha": sha}, "queued", time.time(),
            None, None, None, None, None,
        )  # fmt: skip

    async def scenario() -> None:
        queue = RunQueue(store, launcher, tmp_path / "logs")
        for run_id, sha in (("bad", "x\x00y"), ("good", "ok")):
            store.record("src", "push", run_id, "accepted", record(run_id, sha))
            queue.submit(run_id, "main")
        deadline = time.time() + 20
        while time.time() < deadline:
            good = store.run("good")
            if good is not None and good.status not in ("queued", "running"):
                break
            await asyncio.sleep(0.05)
        await queue.close()

    asyncio.run(scenario())
    bad, good = store.run("bad"), store.run("good")
    store.close()
    assert bad is not None and bad.status == "failed"
    assert bad.message and "NUL" in bad.message
    assert good is not None and good.status == "succeeded"


def test_running_out_of_file_descriptors_keeps_the_run_queued_until_it_can_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 3: a launch failing with EMFILE ("Too many open files") is not recorded as a
    failed run: the run stays queued and starts once descriptors are available."""
    import errno

    from cnai.events import runner
    from cnai.events.store import EventStore, RunRecord

    real = asyncio.create_subprocess_exec
    failures = [0]

    async def scarce(*args: Any, **kwargs: Any) -> Any:
        if failures[0] < 2:
            failures[0] += 1
            raise OSError(errno.EMFILE, "Too many open files")
        return await real(*args, **kwargs)

    monkeypatch.setattr(runner.asyncio, "create_subprocess_exec", scarce)
    store = EventStore(tmp_path / "events")
    seen: list[str] = []

    async def scenario() -> None:
        queue = runner.RunQueue(
            store, ["/bin/true"], tmp_path / "logs", on_event=lambda e: seen.append(str(e))
        )
        run = RunRecord("r1", "d1", "main", {}, "queued", time.time(), *[None] * 5)
        store.record("src", "push", "d1", "accepted", run)
        queue.submit("r1", "main")
        deadline = time.time() + 20
        while time.time() < deadline:
            got = store.run("r1")
            if got is not None and got.status not in ("queued", "running"):
                break
            await asyncio.sleep(0.05)
        await queue.close()

    asyncio.run(scenario())
    final = store.run("r1")
    store.close()
    assert failures[0] == 2
    assert final is not None and final.status == "succeeded", final


# -- item 2 -------------------------------------------------------------------------


def test_bad_input_after_the_delivery_id_is_400_and_does_not_burn_the_id(
    tmp_path: Path,
) -> None:
    """Item 2: a 4000-digit `rows_added`, a lone surrogate in the body and a 0xff byte in
    X-GitHub-Event are 400 (not 500), and a redelivery of the same id with good input is
    handled (not answered `duplicate`)."""
    with _running(tmp_path) as (process, _):
        data = {"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": "k-digits"}
        huge = b'{"rows_added": ' + b"9" * 4000 + b"}"
        assert process.post("/data-updated", huge, data).status_code == 400
        fine = process.post("/data-updated", b'{"rows_added": 3}', data)
        assert fine.status_code == 202, fine.text

        surrogate = json.dumps(push_payload(after="\udcff")).encode()  # escaped in JSON
        body, headers = _signed(surrogate, delivery="d-surrogate")
        assert process.post("/push", body, headers).status_code == 400
        assert process.push(push_payload(after="1" * 40), delivery="d-surrogate").status_code == 202
        # Filtered with a lone surrogate in the reason: recorded (escaped), not a 500.
        body, headers = _signed(push_payload(ref="refs/heads/\udcff"), delivery="d-ref")
        filtered = process.post("/push", body, headers)
        assert filtered.status_code == 200 and "\\udcff" in filtered.json()["reason"]

        body, headers = _signed(push_payload(after="2" * 40), delivery="d-header")
        headers["X-GitHub-Event"] = b"push\xff"  # type: ignore[assignment]
        assert process.post("/push", body, headers).status_code == 400
        assert process.push(push_payload(after="2" * 40), delivery="d-header").status_code == 202


def test_a_claim_left_pending_by_an_older_gateway_is_not_a_decision(tmp_path: Path) -> None:
    """Item 2: a database holding a `pending` delivery (an older version's claim that
    failed) does not answer `duplicate` for it after a restart."""
    events = tmp_path / "home" / "events"
    events.mkdir(parents=True)
    db = sqlite3.connect(events / "gateway.db")
    db.executescript(
        "CREATE TABLE deliveries (id TEXT PRIMARY KEY, received_at REAL NOT NULL, "
        "source TEXT NOT NULL, event TEXT NOT NULL, decision TEXT NOT NULL, run_id TEXT);"
        "INSERT INTO deliveries VALUES ('stuck', 0, 'cnai-github', 'push', 'pending', NULL);"
        "INSERT INTO deliveries VALUES ('done', 0, 'cnai-github', 'push', 'filtered: x', NULL);"
    )
    db.commit()
    db.close()
    with _running(tmp_path) as (process, _):
        assert process.push(push_payload(after="3" * 40), delivery="stuck").status_code == 202
        again = process.push(push_payload(after="3" * 40), delivery="done")
        assert again.status_code == 200 and again.json()["status"] == "duplicate"


# -- item 3 -------------------------------------------------------------------------

_SHORT = {"header_timeout": 1, "body_timeout": 1}


def test_slow_headers_and_slow_bodies_are_cut_off(tmp_path: Path) -> None:
    """Item 3: a connection trickling its headers is closed after `header_timeout`; one
    trickling its body is answered 408 after `body_timeout`."""
    with _running(tmp_path, _SHORT) as (process, _):
        address = _host_port(process)
        headers_slow = socket.create_connection(address, timeout=10)
        headers_slow.sendall(b"POST /push HTTP/1.1\r\nHost: x\r\n")
        body_slow = socket.create_connection(address, timeout=10)
        body_slow.sendall(
            b"POST /data-updated HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + TOKEN.encode()
            + b"\r\nContent-Length: 1000\r\n\r\n{"
        )
        started = time.time()
        assert headers_slow.recv(1024) == b""  # closed by the gateway
        answer = body_slow.recv(4096)
        assert b" 408 " in answer.split(b"\r\n")[0], answer
        assert time.time() - started < 6
        headers_slow.close()
        body_slow.close()


def test_connections_over_the_cap_get_503_at_once(tmp_path: Path) -> None:
    """Item 3: with `max_connections` open, one more connection is answered 503 at once;
    once they close, deliveries are served again."""
    with _running(tmp_path, {"max_connections": 4, "header_timeout": 30}) as (process, _):
        address = _host_port(process)
        idle = [socket.create_connection(address, timeout=10) for _ in range(4)]
        time.sleep(0.2)
        extra = socket.create_connection(address, timeout=10)
        assert extra.recv(4096).startswith(b"HTTP/1.1 503")
        extra.close()
        for sock in idle:
            sock.close()
        assert _wait(lambda: requests.get(process.url + "/healthz", timeout=5).ok, 10)


def test_bodies_over_the_buffered_bytes_budget_get_503(tmp_path: Path) -> None:
    """Item 3: request bodies held at once are bounded by `max_buffered_bytes`: a body
    that does not fit while others are being received is answered 503 + Retry-After."""
    limits = {"max_buffered_bytes": 1_000_000, "body_timeout": 5}
    with _running(tmp_path, limits) as (process, _):
        address = _host_port(process)
        holder = socket.create_connection(address, timeout=10)
        holder.sendall(
            b"POST /push HTTP/1.1\r\nHost: x\r\nX-Hub-Signature-256: sha256=00\r\n"
            b"Content-Length: 900000\r\n\r\n{"
        )
        time.sleep(0.3)
        body = b'{"x": "' + b"y" * 300_000 + b'"}'
        response = process.post("/push", body, signed_headers(body))
        assert response.status_code == 503, response.text
        assert response.headers.get("Retry-After")
        holder.close()
        time.sleep(0.3)
        body, headers = _signed(push_payload(ref="refs/heads/dev"))
        assert process.post("/push", body, headers).status_code == 200
        # A gzip-encoded body (decoded length != Content-Length) is still read whole.
        headers["Content-Encoding"] = "gzip"
        headers["X-GitHub-Delivery"] = "gzip-1"
        answer = process.post("/push", gzip.compress(body), headers)
        assert answer.status_code == 200 and answer.json()["status"] == "filtered"


def test_rejections_are_logged_at_a_bounded_rate(tmp_path: Path) -> None:
    """Item 3: a flood of rejected requests writes at most `log_limit_per_minute` lines
    of that kind plus one summary with the count of the rest."""
    process, _ = _gateway(tmp_path, {"log_limit_per_minute": 5})
    try:
        body = b"{}"
        with requests.Session() as session:
            for _ in range(60):
                r = session.post(
                    process.url + "/push", data=body, headers=signed_headers(body, secret="x")
                )
                assert r.status_code == 401
    finally:
        assert process.stop() == 0
    lines = process.log_lines()
    rejected = [e for e in lines if e.get("kind") == "delivery" and e.get("status") == 401]
    assert len(rejected) == 5
    summary = [e for e in lines if e.get("kind") == "suppressed"]
    assert summary == [
        {"ts": summary[0]["ts"], "kind": "suppressed", "what": "rejected 401", "count": 55}
    ]


def test_soak_memory_returns_and_exactly_the_expected_runs(tmp_path: Path) -> None:
    """Item 3 (bounded soak, small): 60 slow connections, 10 unauthenticated 5 MiB bodies
    and 300 valid and invalid deliveries; afterwards the gateway's memory is back within
    MEMORY_BOUND_MB (20 MiB) of where it started and exactly the 20 valid distinct pushes
    were queued.
    (benchmarks/events_soak.py runs the full 200 + 30 x 25 MiB + 1,000 version.)"""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.events_soak import MEMORY_BOUND_MB, soak

    result = soak(
        tmp_path,
        slow_connections=60,
        large_bodies=10,
        large_body_bytes=5 * 1024 * 1024,
        deliveries=300,
        valid_runs=20,
    )
    assert result["runs_queued"] == 20, result
    assert result["unexpected_statuses"] == {}, result
    assert result["rss_after_mb"] - result["rss_before_mb"] <= MEMORY_BOUND_MB, result


# -- item 4 -------------------------------------------------------------------------


def test_a_replayed_body_with_fresh_ids_coalesces_into_one_pending_run(tmp_path: Path) -> None:
    """Item 4: one captured signed body replayed 29 times with fresh delivery ids, while
    the branch is busy, queues one run; the others answer `coalesced` with its id."""
    with _running(tmp_path, sleep=2) as (process, record):
        busy = process.push(push_payload(after="9" * 40))
        assert busy.status_code == 202
        _wait(lambda: process.run(busy.json()["run_id"])["status"] == "running")
        body = json.dumps(push_payload(after="8" * 40)).encode()
        answers = [process.post("/push", body, signed_headers(body)) for _ in range(29)]
        assert [a.status_code for a in answers].count(202) == 1
        coalesced = [a.json() for a in answers if a.status_code == 200]
        assert len(coalesced) == 28 and {c["status"] for c in coalesced} == {"coalesced"}
        queued_id = next(a.json()["run_id"] for a in answers if a.status_code == 202)
        assert {c["run_id"] for c in coalesced} == {queued_id}
        process.wait_run(queued_id, timeout=30)
        assert len(recorded(record)) == 2


def test_the_branch_queue_is_capped_and_the_sensor_rate_limit_holds(tmp_path: Path) -> None:
    """Item 4: past `max_queued_per_branch` a delivery gets 429 and nothing is recorded
    (a redelivery later is handled); runs start at most `requestsPerUnit` per unit per
    branch (Argo Events' `rateLimit`): the third of 2/Minute waits, queued."""
    limits = {"max_queued_per_branch": 2, "rate_limit": {"unit": "Minute", "requestsPerUnit": 2}}
    with _running(tmp_path, limits, sleep=0.5) as (process, record):
        answers = [
            process.push(push_payload(after=f"{i + 1:040x}"), delivery=f"cap-{i}") for i in range(4)
        ]
        # The first starts at once; two more queue; the fourth finds the queue full.
        assert [a.status_code for a in answers] == [202, 202, 202, 429], [a.text for a in answers]
        assert "max_queued_per_branch" in answers[3].json()["reason"]
        assert answers[3].headers.get("Retry-After")
        _, second, third = (a.json()["run_id"] for a in answers[:3])
        assert process.wait_run(second, timeout=20)["status"] == "succeeded"
        time.sleep(1.0)
        assert process.run(third)["status"] == "queued"  # 2 starts this minute already
        assert len(recorded(record)) == 2
        again = process.push(push_payload(after=f"{4:040x}"), delivery="cap-3")
        assert again.status_code == 202  # the refused delivery was not recorded


# -- item 5 -------------------------------------------------------------------------


def test_deeply_nested_json_is_400(tmp_path: Path) -> None:
    """Item 5: 100,000 levels of nesting answer 400 (not 500), and so does anything
    deeper than `max_json_depth`; a normal payload still passes."""
    with _running(tmp_path, {"max_json_depth": 20}) as (process, _):
        deep = b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        response = process.post("/push", deep, signed_headers(deep))
        assert response.status_code == 400, response.text
        assert "max_json_depth" in response.json()["reason"]
        payload = push_payload(ref="refs/heads/dev")
        payload["nested"] = json.loads("[" * 25 + "]" * 25)
        body, headers = _signed(payload)
        assert process.post("/push", body, headers).status_code == 400
        body, headers = _signed(push_payload(ref="refs/heads/dev"))
        assert process.post("/push", body, headers).status_code == 200
        assert "RecursionError" not in process.stderr_path.read_text()


# -- item 6 -------------------------------------------------------------------------


def test_github_and_data_routes_do_not_share_delivery_ids(tmp_path: Path) -> None:
    """Item 6: GitHub delivery `data-updated-K` and data-webhook key `K` are different
    deliveries."""
    with _running(tmp_path) as (process, _):
        first = process.push(push_payload(ref="refs/heads/dev"), delivery="data-updated-K")
        assert first.status_code == 200 and first.json()["status"] == "filtered"
        data = {"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": "K"}
        second = process.post("/data-updated", b'{"rows_added": 1}', data)
        assert second.status_code == 202, second.text
        replay = process.post("/data-updated", b'{"rows_added": 1}', data)
        assert replay.json()["status"] == "duplicate"


# -- item 7 -------------------------------------------------------------------------


def test_a_second_gateway_on_one_home_exits_2_naming_the_first(tmp_path: Path) -> None:
    """Item 7: while a gateway serves a home, a second one exits 2 naming the holder's
    pid, and leaves the first's gateway.json in place."""
    with _running(tmp_path) as (process, _):
        state = process.home / "events" / "gateway.json"
        before = state.read_text()
        from tests.test_events_support import SECRETS_ENV

        second = run_cli(["events", "serve", "--port", "0"], process.home, env=SECRETS_ENV)
        assert second.returncode == 2, second.stderr
        assert f"pid {process.process.pid}" in second.stderr
        assert state.read_text() == before
        assert requests.get(process.url + "/healthz", timeout=5).ok


def test_after_sigkill_a_restarted_gateway_adopts_the_running_run(tmp_path: Path) -> None:
    """Item 7: SIGKILL of the gateway leaves its run going; the next gateway adopts it
    (not `interrupted`) and starts the branch's next run only after it ended."""
    process, record = _gateway(tmp_path, sleep=4)
    first = process.push(push_payload(after="a1" * 20)).json()["run_id"]
    second = process.push(push_payload(after="b2" * 20)).json()["run_id"]
    assert _wait(lambda: process.run(first)["status"] == "running")
    process.process.send_signal(signal.SIGKILL)
    process.process.wait()
    launcher = f"{sys.executable} {write_recorder(tmp_path)}"
    again = start_gateway(
        process.home,
        ["--launcher", launcher],
        env={"RECORDER_FILE": str(record), "RECORDER_SLEEP": "0.2"},
    )
    try:
        assert again.run(first)["status"] in ("running", "succeeded")  # not interrupted
        try:
            done = again.wait_run(first, timeout=20)
        except AssertionError as exc:  # say what the orphan's process was doing
            pid = again.run(first)["pid"]
            try:
                proc = psutil.Process(pid)
                state = f"{proc.status()} {proc.cmdline()} {proc.create_time()}"
            except psutil.Error as err:
                state = repr(err)
            detail = f"pid {pid}: {state}; {again.stderr_path.read_text()}"
            raise AssertionError(f"{exc}; {detail}") from exc
        assert done["status"] == "succeeded" and done["phase"] == "Succeeded"
        assert again.wait_run(second, timeout=20)["status"] == "succeeded"
    finally:
        assert again.stop() == 0
    spans = sorted((r["start"], r["end"]) for r in recorded(record))
    assert len(spans) == 2 and spans[1][0] >= spans[0][1] - 0.05, spans


# -- items 8 and 9 ----------------------------------------------------------------


def _git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    full_env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "T",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "T",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_CONFIG_GLOBAL": os.devnull,
        **(env or {}),
    }
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=full_env, capture_output=True, text=True, check=True
    )
    return result.stdout + result.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_push_while_the_gateway_is_down_is_spooled_and_flushed(tmp_path: Path) -> None:
    """Item 8: a push made while the gateway is down is saved in the repository and
    delivered by `cnai events flush` (once, with its original delivery id)."""
    home = tmp_path / "home"
    home.mkdir()
    origin = tmp_path / "origin.git"
    _git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    port = _free_port()
    url = f"http://127.0.0.1:{port}/push"
    installed = run_cli(["events", "install-hook", "--repo", str(origin), "--url", url], home)
    assert installed.returncode == 0, installed.stderr
    work = tmp_path / "work"
    _git(tmp_path, "clone", "-q", str(origin), str(work))
    (work / "steps").mkdir()
    (work / "steps" / "a.py").write_text("x = 1\n")
    _git(work, "add", "-A")
    _git(work, "commit", "-q", "-m", "code")
    sha = _git(work, "rev-parse", "HEAD").strip()
    out = _git(work, "push", "origin", "HEAD:main", env={"CNAI_GITHUB_WEBHOOK_SECRET": SECRET})
    assert "saved" in out and "Traceback" not in out, out
    assert len(list((origin / "cnai-events-spool").glob("*.json"))) == 1

    record = tmp_path / "runs.jsonl"
    launcher = f"{sys.executable} {write_recorder(tmp_path)}"
    gateway = start_gateway(
        home, ["--launcher", launcher, "--port", str(port)], env={"RECORDER_FILE": str(record)}
    )
    try:
        spooled = next((origin / "cnai-events-spool").glob("*.json"))
        saved = spooled.read_text()
        env = {"CNAI_GITHUB_WEBHOOK_SECRET": SECRET}
        flushed = run_cli(["events", "flush", "--repo", str(origin), "--json"], home, env=env)
        assert flushed.returncode == 0, flushed.stderr
        assert flushed.json()["sent"] == 1 and flushed.json()["left"] == 0
        assert not list((origin / "cnai-events-spool").glob("*.json"))
        assert _wait(lambda: len(recorded(record)) == 1)
        assert argv_params(recorded(record)[0]["argv"])["git_sha"] == sha
        # The same delivery resent (its answer lost, say) is a duplicate, not a second run.
        spooled.write_text(saved)
        again = run_cli(["events", "flush", "--repo", str(origin), "--json"], home, env=env)
        assert again.returncode == 0 and again.json()["sent"] == 1
        time.sleep(0.5)
        assert len(recorded(record)) == 1
        assert [e["decision"] for e in gateway.log_lines() if e.get("kind") == "delivery"] == [
            "accepted",
            "duplicate",
        ]
    finally:
        assert gateway.stop() == 0


def _commit_step(work: Path, name: str) -> str:
    (work / "steps").mkdir(exist_ok=True)
    (work / "steps" / name).write_text(f"{name} = 1\n")
    _git(work, "add", "-A")
    _git(work, "commit", "-q", "-m", name)
    return _git(work, "rev-parse", "HEAD").strip()


def test_the_next_push_resends_spooled_deliveries_first(tmp_path: Path) -> None:
    """Item 8: deliveries saved while the gateway was down go out, oldest first, before
    the next push's own, once the gateway is back."""
    home = tmp_path / "home"
    home.mkdir()
    origin = tmp_path / "origin.git"
    _git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    port = _free_port()
    url = f"http://127.0.0.1:{port}/push"
    installed = run_cli(["events", "install-hook", "--repo", str(origin), "--url", url], home)
    assert installed.returncode == 0, installed.stderr
    work = tmp_path / "work"
    _git(tmp_path, "clone", "-q", str(origin), str(work))
    env = {"CNAI_GITHUB_WEBHOOK_SECRET": SECRET}
    first = _commit_step(work, "a.py")
    assert "saved" in _git(work, "push", "origin", "HEAD:main", env=env)
    record = tmp_path / "runs.jsonl"
    launcher = f"{sys.executable} {write_recorder(tmp_path)}"
    gateway = start_gateway(
        home, ["--launcher", launcher, "--port", str(port)], env={"RECORDER_FILE": str(record)}
    )
    try:
        second = _commit_step(work, "b.py")
        out = _git(work, "push", "origin", "main", env=env)
        assert out.index("(resent) -> 202") < out.rindex("-> 202"), out
        assert not list((origin / "cnai-events-spool").glob("*.json"))
        assert _wait(lambda: len(recorded(record)) == 2)
        shas = [argv_params(r["argv"])["git_sha"] for r in recorded(record)]
        assert shas == [first, second]
    finally:
        assert gateway.stop() == 0


def test_install_hook_refuses_a_bad_url_and_the_hook_never_raises(tmp_path: Path) -> None:
    """Item 9: `--url notaurl` or a URL with a space is refused at install (exit 2); a
    hook installed with a bad URL anyway reports one line per ref, no traceback."""
    origin = tmp_path / "origin.git"
    _git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    for url in ("notaurl", "http://127.0.0.1:1/pu sh", "ftp://x/push", "http://:80/"):
        result = run_cli(["events", "install-hook", "--repo", str(origin), "--url", url], tmp_path)
        assert result.returncode == 2, (url, result.stderr)
        assert "--url" in result.stderr
    assert not (origin / "hooks" / "post-receive").exists()
    zero = "0" * 40
    lines = f"{zero} {'1' * 40} refs/heads/main\n{zero} {'2' * 40} refs/heads/dev\n"
    hook = subprocess.run(
        [sys.executable, "-m", "cnai.events.hook", "--url", "notaurl", "--repository", "o/n"],
        input=lines,
        capture_output=True,
        text=True,
        env={**os.environ, "GIT_DIR": str(origin), "CNAI_GITHUB_WEBHOOK_SECRET": SECRET},
        timeout=60,
    )
    assert hook.returncode == 0
    assert "Traceback" not in hook.stderr + hook.stdout
    assert "refs/heads/main" in hook.stderr and "refs/heads/dev" in hook.stderr


# -- item 10 ------------------------------------------------------------------------


def test_serve_port_out_of_range_is_exit_2_naming_the_flag(tmp_path: Path) -> None:
    """Item 10: `events serve --port 99999` exits 2 naming --port (was OverflowError)."""
    from tests.test_events_support import SECRETS_ENV

    for port in ("99999", "-1", "abc"):
        result = run_cli(["events", "serve", "--port", port], tmp_path, env=SECRETS_ENV)
        assert result.returncode == 2, result.stderr
        assert "--port" in result.stderr and "Traceback" not in result.stderr


def test_bad_limit_settings_are_exit_2_naming_the_setting(tmp_path: Path) -> None:
    """Items 3-5: the gateway's limits are settings; a bad value is refused at start-up
    (exit 2) naming `config events.<key>`."""
    from tests.test_events_support import SECRETS_ENV

    cases = [
        ({"max_connections": "many"}, "events.max_connections"),
        ({"header_timeout": 0}, "events.header_timeout"),
        ({"max_json_depth": 2.5}, "events.max_json_depth"),
        ({"rate_limit": {"unit": "Day", "requestsPerUnit": 1}}, "events.rate_limit.unit"),
        ({"rate_limit": {"unit": "Minute", "requestsPerUnit": 0}}, "requestsPerUnit"),
        ({"max_queue": 3}, "events.max_queue"),
    ]
    for index, (events, named) in enumerate(cases):
        home = tmp_path / f"h{index}"
        home.mkdir()
        (home / "config.yaml").write_text(yaml.safe_dump({"events": events}))
        result = run_cli(["events", "serve", "--port", "0"], home, env=SECRETS_ENV)
        assert result.returncode == 2, (events, result.stderr)
        assert named in result.stderr and "Traceback" not in result.stderr, result.stderr
