"""Events gateway soak: hostile load on 127.0.0.1, then memory and runs are checked.

One real ``cnai events serve`` (recorder launcher, default limits except short read
timeouts so the run ends in seconds, and no start rate limit so all runs finish) gets,
at once:

- ``slow_connections`` connections trickling their headers one byte at a time;
- ``large_bodies`` unauthenticated bodies of ``large_body_bytes`` (bad signature);
- ``deliveries`` valid and invalid deliveries: ``valid_runs`` distinct signed pushes,
  then replays of them (duplicates), filtered pushes, bad signatures, signed garbage
  and data-webhook posts without a token.

Checked afterwards: the gateway's resident memory is back within the bound of where
it started, exactly ``valid_runs`` runs were queued, and every answer was one of those
expected for its kind. Full size (issue 18): 200 slow connections, 30 x 25 MiB bodies,
1,000 deliveries. The last line is one JSON object (ratio: memory after / before).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.events import wait_for_gateway  # noqa: E402
from cnai.events.signature import github_signature  # noqa: E402

SECRET = "soak-secret"
TOKEN = "soak-token"
MEMORY_BOUND_MB = 20
"""Resident memory allowed above the warmed-up start once the load is over."""
RECORDER = (
    "import json, os, sys, time\n"
    "with open(os.environ['RECORDER_FILE'], 'a') as f:\n"
    "    f.write(json.dumps({'argv': sys.argv[1:], 'start': time.time()}) + '\\n')\n"
    "print(json.dumps({'phase': 'Succeeded'}))\n"
)
EXPECTED: dict[str, set[Any]] = {
    "valid": {202},
    "replay": {200},
    "filtered": {200},
    "bad_signature": {401},
    "garbage": {400},
    "data_no_token": {401},
    "large": {401, 503, 413, "reset"},
    "slow": {"closed", 503},
}


def _push(sha: str, ref: str = "refs/heads/main") -> bytes:
    return json.dumps(
        {
            "ref": ref,
            "before": "b" * 40,
            "after": sha,
            "deleted": False,
            "commits": [{"id": sha, "added": [], "modified": ["steps/train.py"], "removed": []}],
            "repository": {"name": "cnai", "full_name": "cnai-dev/cnai"},
        }
    ).encode()


def _signed(body: bytes, delivery: str | None = None, secret: str = SECRET) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": github_signature(secret, body),
    }


def _start(home: Path, record: Path) -> tuple[subprocess.Popen[bytes], str]:
    home.mkdir(parents=True, exist_ok=True)
    events = {"header_timeout": 2, "body_timeout": 5, "rate_limit": "none"}
    (home / "config.yaml").write_text(yaml.safe_dump({"events": events}))
    script = home / "recorder.py"
    script.write_text(RECORDER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNAI_")}
    env.update(
        CNAI_GITHUB_WEBHOOK_SECRET=SECRET, CNAI_DATA_WEBHOOK_TOKEN=TOKEN, RECORDER_FILE=str(record)
    )
    command = [sys.executable, "-m", "cnai", "--home", str(home), "events", "serve"]
    command += ["--port", "0", "--launcher", f"{sys.executable} {script}"]
    stderr = (home / "gateway.stderr").open("wb")
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    return process, wait_for_gateway(process, home)


async def _slow(host: str, port: int, seconds: float) -> str | int:
    """Trickle headers; how the gateway ended it."""
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        return "closed"
    try:
        request = b"POST /push HTTP/1.1\r\nHost: soak\r\nX-Padding: " + b"x" * 200
        deadline = time.monotonic() + seconds
        for byte in request:
            if time.monotonic() > deadline:
                return "open"
            writer.write(bytes([byte]))
            await writer.drain()
            try:
                answer = await asyncio.wait_for(reader.read(64), timeout=0.2)
            except TimeoutError:
                continue
            if not answer:
                return "closed"
            return 503 if b" 503 " in answer else answer.decode(errors="replace")[:40]
        return "open"
    except OSError:
        return "closed"
    finally:
        writer.close()


async def _large(host: str, port: int, size: int) -> str | int:
    """An unauthenticated body of ``size`` bytes sent at full speed; its answer."""
    try:
        reader, writer = await asyncio.open_connection(host, port)
        head = (
            f"POST /push HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\n"
            f"X-Hub-Signature-256: sha256={'0' * 64}\r\nX-GitHub-Delivery: large\r\n"
            f"Content-Length: {size}\r\n\r\n"
        ).encode()
        writer.write(head)
        chunk = b"x" * 65536
        sent = 0
        while sent < size:
            piece = chunk[: min(len(chunk), size - sent)]
            writer.write(piece)
            await writer.drain()
            sent += len(piece)
        line = await asyncio.wait_for(reader.readline(), timeout=30)
        writer.close()
        return int(line.split()[1]) if line else "reset"
    except (OSError, TimeoutError, IndexError, ValueError):
        return "reset"


async def _deliveries(url: str, count: int, valid: int) -> list[tuple[str, int]]:
    plan: list[tuple[str, str, bytes, dict[str, str]]] = []
    firsts = []
    for i in range(valid):
        body = _push(f"{i + 1:040x}")
        headers = _signed(body, delivery=f"soak-{i}")
        plan.append(("valid", "/push", body, headers))
        firsts.append((body, headers))
    kinds = ["replay", "filtered", "bad_signature", "garbage", "data_no_token"]
    for i in range(count - valid):
        kind = kinds[i % len(kinds)]
        if kind == "replay":
            body, headers = firsts[i % valid]
            plan.append((kind, "/push", body, headers))
        elif kind == "filtered":
            body = _push("f" * 40, ref=f"refs/heads/dev{i}")
            plan.append((kind, "/push", body, _signed(body)))
        elif kind == "bad_signature":
            body = _push("e" * 40)
            plan.append((kind, "/push", body, _signed(body, secret="wrong")))
        elif kind == "garbage":
            body = bytes([i % 256]) * 40 + b"{"
            plan.append((kind, "/push", body, _signed(body)))
        else:
            plan.append((kind, "/data-updated", b'{"rows_added": 5}', {}))
    results: list[tuple[str, int]] = []
    connector = aiohttp.TCPConnector(limit=16)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def send(kind: str, endpoint: str, body: bytes, headers: dict[str, str]) -> None:
            for _ in range(20):  # a 503 (busy) is retried, as the git hook's spool would
                async with session.post(url + endpoint, data=body, headers=headers) as r:
                    await r.read()
                    if r.status != 503:
                        results.append((kind, r.status))
                        return
                await asyncio.sleep(0.25)
            results.append((kind, 503))

        await asyncio.gather(*(send(*item) for item in plan[:valid]))  # originals first
        await asyncio.gather(*(send(*item) for item in plan[valid:]))
    return results


def soak(
    folder: Path,
    slow_connections: int = 200,
    large_bodies: int = 30,
    large_body_bytes: int = 25 * 1024 * 1024 - 100 * 1024,
    deliveries: int = 1000,
    valid_runs: int = 20,
) -> dict[str, Any]:
    """Run the soak against a fresh gateway under ``folder``; the summary."""
    record = folder / "soak-runs.jsonl"
    process, url = _start(folder / "soak-home", record)
    host, port = url.removeprefix("http://").split(":")
    gateway = psutil.Process(process.pid)
    try:

        async def warm() -> None:
            async with aiohttp.ClientSession() as session:
                for _ in range(50):
                    body = _push("d" * 40, ref="refs/heads/warm")
                    async with session.post(url + "/push", data=body, headers=_signed(body)) as r:
                        await r.read()

        asyncio.run(warm())
        rss_before = gateway.memory_info().rss
        peak = [rss_before]
        started = time.time()

        async def load() -> tuple[list[str | int], list[str | int], list[tuple[str, int]]]:
            async def sample() -> None:
                while True:
                    peak[0] = max(peak[0], gateway.memory_info().rss)
                    await asyncio.sleep(0.1)

            sampler = asyncio.create_task(sample())
            slow = [_slow(host, int(port), 8) for _ in range(slow_connections)]
            large = [_large(host, int(port), large_body_bytes) for _ in range(large_bodies)]
            slow_task = asyncio.gather(*slow)
            large_task = asyncio.gather(*large)
            answers = await _deliveries(url, deliveries, valid_runs)
            out = (list(await slow_task), list(await large_task), answers)
            sampler.cancel()
            return out

        slow_results, large_results, answers = asyncio.run(load())
        deadline = time.time() + 60
        while time.time() < deadline:
            runs = _get_json(url + "/healthz")["runs"]
            if not runs.get("queued") and not runs.get("running"):
                break
            time.sleep(0.2)
        time.sleep(1.0)
        rss_after = gateway.memory_info().rss
        health = _get_json(url + "/healthz")
        runs, refused = health["runs"], health.get("refused_connections")
    finally:
        process.terminate()
        process.wait(timeout=30)
    statuses: dict[str, Counter[Any]] = {}
    for kind, status in [
        *(("slow", s) for s in slow_results),
        *(("large", s) for s in large_results),
        *answers,
    ]:
        statuses.setdefault(kind, Counter())[status] += 1
    unexpected = {
        kind: {str(k): v for k, v in counts.items() if k not in EXPECTED[kind]}
        for kind, counts in statuses.items()
        if any(k not in EXPECTED[kind] for k in counts)
    }
    recorded = len(record.read_text().splitlines()) if record.exists() else 0
    mb = 1024 * 1024
    return {
        "benchmark": "events_soak",
        "slow_connections": slow_connections,
        "large_bodies": large_bodies,
        "large_body_bytes": large_body_bytes,
        "deliveries": deliveries,
        "valid_runs": valid_runs,
        "runs_queued": sum(runs.values()),
        "runs_started": recorded,
        "runs": runs,
        "statuses": {k: {str(s): n for s, n in v.items()} for k, v in statuses.items()},
        "unexpected_statuses": unexpected,
        "refused_connections": refused,
        "rss_before_mb": round(rss_before / mb, 1),
        "rss_peak_mb": round(peak[0] / mb, 1),
        "rss_after_mb": round(rss_after / mb, 1),
        "memory_bound_mb": MEMORY_BOUND_MB,
        "seconds": round(time.time() - started, 1),
    }


def _get_json(url: str) -> dict[str, Any]:
    """GET a JSON document with the standard library (outside any event loop)."""
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as response:
        return dict(json.loads(response.read()))


def main() -> dict[str, Any]:
    """The full-size soak; the summary with ratio = memory after / before."""
    with tempfile.TemporaryDirectory() as tmp:
        result = soak(Path(tmp))
    ok = (
        result["runs_queued"] == result["valid_runs"]
        and not result["unexpected_statuses"]
        and result["rss_after_mb"] - result["rss_before_mb"] <= MEMORY_BOUND_MB
    )
    return {
        **result,
        "metric": "rss_after_over_before",
        "ours": result["rss_after_mb"],
        "baseline": result["rss_before_mb"],
        "ratio": round(result["rss_after_mb"] / result["rss_before_mb"], 3),
        "unit": "MB",
        "meets_targets": ok,
    }


if __name__ == "__main__":
    print(json.dumps(main()))
