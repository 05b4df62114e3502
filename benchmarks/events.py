"""Events gateway speed on loopback: delivery-to-run-started latency and rejection throughput.

Ours: a real ``cnai events serve`` subprocess (HMAC check, JSON parse, dedup in SQLite,
the Sensor's filters and parameter mapping, a durable run record, a per-branch queue).
Baseline, measured in the same run: a bare stdlib ``ThreadingHTTPServer`` that answers the
same requests with no checks at all (it launches the same command at once / answers 401).

- latency: sequential signed push deliveries; "run started" is the timestamp the launched
  process itself writes (``date +%s.%N``), minus the moment the request was sent;
- throughput: rejected requests (bad signature) per second, 32 concurrent keep-alive clients:
  a warm-up of 500 requests (connections opened, first-request costs paid), then the
  median of 3 rounds of 3,000 (one round is well under a second, so one scheduling
  hiccup on a loaded machine would otherwise decide the figure). The gateway's own CPU
  time per rejected request is reported too (``rejected_cpu_us``): it does not depend
  on what else the machine runs.

The gateway runs with its default limits except the Sensor's ``rateLimit`` (6 starts a
minute per branch), switched off with ``events.rate_limit: none`` in the home's config:
60 back-to-back runs of one branch measure the gateway, not the rate limit.

Targets: p95 latency <= 25 ms; >= 3,000 rejected requests/s.
The last line is one JSON object (ratio: ours/baseline p95 latency, lower is better).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import psutil
import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cnai.events.signature import github_signature  # noqa: E402

SECRET = "benchmark-secret"
LATENCY_DELIVERIES = 60
REJECTED_REQUESTS = 3000
REJECTED_WARMUP = 500
REJECTED_ROUNDS = 3
CONCURRENCY = 32


def _launcher(record: Path) -> list[str]:
    """A run that only records when it started (extra run arguments are ignored)."""
    return ["/bin/sh", "-c", f'date +%s.%N >> "{record}"', "launcher"]


def _payload(index: int) -> bytes:
    sha = f"{index + 1:040x}"
    return json.dumps(
        {
            "ref": "refs/heads/main",
            "before": "b" * 40,
            "after": sha,
            "deleted": False,
            "commits": [{"id": sha, "added": [], "modified": ["steps/train.py"], "removed": []}],
            "repository": {"name": "cnai", "full_name": "cnai-dev/cnai"},
        }
    ).encode()


def _headers(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": github_signature(secret, body),
    }


def _wait_lines(path: Path, count: int, timeout: float = 30) -> list[float]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists():
            lines = path.read_text().split()
            if len(lines) >= count:
                return [float(x) for x in lines]
        time.sleep(0.001)
    raise RuntimeError(f"only {path.read_text().split() if path.exists() else []} runs started")


def measure_latency(url: str, record: Path) -> list[float]:
    """Milliseconds from sending each delivery to its run's process starting."""
    latencies = []
    with requests.Session() as session:
        for i in range(LATENCY_DELIVERIES):
            body = _payload(i)
            headers = _headers(body)
            sent = time.time()
            response = session.post(url + "/push", data=body, headers=headers, timeout=30)
            if response.status_code != 202:
                raise RuntimeError(f"delivery {i}: {response.status_code} {response.text}")
            started = _wait_lines(record, i + 1)[i]
            latencies.append((started - sent) * 1000)
    return latencies


def measure_rejections(url: str, server_pid: int | None = None) -> tuple[float, float | None]:
    """Rejected (bad signature) requests per second (median of the rounds), and the
    server's CPU microseconds per rejected request when its pid is given."""
    body = _payload(0)
    headers = _headers(body, secret="wrong")
    server = psutil.Process(server_pid) if server_pid else None

    async def run() -> tuple[float, float | None]:
        connector = aiohttp.TCPConnector(limit=CONCURRENCY)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def burst(count: int) -> float:
                remaining = iter(range(count))

                async def client() -> None:
                    for _ in remaining:
                        async with session.post(url + "/push", data=body, headers=headers) as r:
                            await r.read()
                            if r.status != 401:
                                raise RuntimeError(f"expected 401, got {r.status}")

                started = time.perf_counter()
                await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
                return count / (time.perf_counter() - started)

            await burst(REJECTED_WARMUP)
            cpu_before = sum(server.cpu_times()[:2]) if server else 0.0
            rates = [await burst(REJECTED_REQUESTS) for _ in range(REJECTED_ROUNDS)]
            cpu = sum(server.cpu_times()[:2]) - cpu_before if server else None
            per_request = None
            if cpu is not None:
                per_request = cpu * 1e6 / (REJECTED_REQUESTS * REJECTED_ROUNDS)
            return statistics.median(rates), per_request

    return asyncio.run(run())


class _BareHandler(BaseHTTPRequestHandler):
    """No checks: read the body; launch (record mode) or answer 401 (reject mode)."""

    protocol_version = "HTTP/1.1"
    launcher: ClassVar[list[str]] = []
    reject = False

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.reject:
            status, body = 401, b'{"status": "rejected"}'
        else:
            subprocess.Popen(self.launcher, stdin=subprocess.DEVNULL)
            status, body = 202, b'{"status": "accepted"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return


def _bare_server(launcher: list[str], reject: bool) -> tuple[ThreadingHTTPServer, str]:
    handler = type("Handler", (_BareHandler,), {"launcher": launcher, "reject": reject})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _start_gateway(home: Path, launcher: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text(json.dumps({"events": {"rate_limit": "none"}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNAI_")}
    env.update(CNAI_GITHUB_WEBHOOK_SECRET=SECRET, CNAI_DATA_WEBHOOK_TOKEN="benchmark-token")
    command = [sys.executable, "-m", "cnai", "--home", str(home), "events", "serve"]
    command += ["--port", "0", "--launcher", " ".join(_quote(a) for a in launcher)]
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return process, wait_for_gateway(process, home)


def wait_for_gateway(process: subprocess.Popen[bytes], home: Path) -> str:
    """The URL a starting ``cnai events serve`` of ``home`` writes to its state file."""
    state = home / "events" / "gateway.json"
    deadline = time.time() + 60
    while time.time() < deadline:
        if state.exists() and state.read_text().strip():
            return str(json.loads(state.read_text())["url"])
        if process.poll() is not None:
            raise RuntimeError("gateway exited at start-up")
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("gateway did not start")


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> dict[str, Any]:
    """Run both measurements against both servers; the summary."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ours_record, base_record = folder / "ours.txt", folder / "base.txt"
        gateway, url = _start_gateway(folder / "home", _launcher(ours_record))
        try:
            ours_latency = measure_latency(url, ours_record)
            ours_rps, ours_cpu = measure_rejections(url, gateway.pid)
        finally:
            gateway.terminate()
            gateway.wait(timeout=30)
        server, base_url = _bare_server(_launcher(base_record), reject=False)
        try:
            base_latency = measure_latency(base_url, base_record)
        finally:
            server.shutdown()
        server, base_url = _bare_server([], reject=True)
        try:
            base_rps, _ = measure_rejections(base_url)
        finally:
            server.shutdown()
    p95, base_p95 = _p(ours_latency, 0.95), _p(base_latency, 0.95)
    throughput = {
        "benchmark": "events_rejected_throughput",
        "ours": round(ours_rps, 1),
        "baseline": round(base_rps, 1),
        "ratio": round(ours_rps / base_rps, 3),
        "higher_is_better": True,
        "unit": "requests/s",
        "target": ">= 3000",
        "rejected_cpu_us": round(ours_cpu, 1) if ours_cpu is not None else None,
        "rounds": REJECTED_ROUNDS,
        "requests_per_round": REJECTED_REQUESTS,
    }
    print(json.dumps(throughput))
    return {
        "benchmark": "events",
        "metric": "delivery_to_run_started_p95",
        "ours": round(p95, 2),
        "baseline": round(base_p95, 2),
        "ratio": round(p95 / base_p95, 3),
        "unit": "ms",
        "p50_ms": round(statistics.median(ours_latency), 2),
        "baseline_p50_ms": round(statistics.median(base_latency), 2),
        "deliveries": LATENCY_DELIVERIES,
        "rejected_rps": throughput["ours"],
        "rejected_rps_baseline": throughput["baseline"],
        "rejected_ratio": throughput["ratio"],
        "rejected_cpu_us": throughput["rejected_cpu_us"],
        "meets_targets": p95 <= 25 and ours_rps >= 3000,
        "targets": {"p95_ms": 25, "rejected_rps": 3000},
        "cpus": os.cpu_count(),
    }


if __name__ == "__main__":
    print(json.dumps(main()))
