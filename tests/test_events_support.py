"""Helpers shared by the events tests: a real gateway subprocess and signed deliveries.

(Holds no tests itself.)
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from cnai.events.signature import github_signature

REPO = Path(__file__).resolve().parents[1]
SECRET = "test-webhook-secret"
TOKEN = "test-data-token"
SHA = "a" * 40
SECRETS_ENV = {"CNAI_GITHUB_WEBHOOK_SECRET": SECRET, "CNAI_DATA_WEBHOOK_TOKEN": TOKEN}


def push_payload(
    ref: str = "refs/heads/main",
    after: str = SHA,
    modified: tuple[str, ...] = ("steps/train.py",),
    deleted: bool = False,
    repository: str = "cnai-dev/cnai",
) -> dict[str, Any]:
    """A minimal GitHub push payload."""
    return {
        "ref": ref,
        "before": "b" * 40,
        "after": after,
        "created": False,
        "deleted": deleted,
        "forced": False,
        "commits": [{"id": after, "added": [], "modified": list(modified), "removed": []}],
        "repository": {"name": repository.split("/")[1], "full_name": repository},
    }


def signed_headers(
    body: bytes, delivery: str | None = None, secret: str = SECRET, event: str = "push"
) -> dict[str, str]:
    """Headers GitHub would send for ``body``."""
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": github_signature(secret, body),
    }


RECORDER = textwrap.dedent(
    """
    import json, os, sys, time
    start = time.time()
    time.sleep(float(os.environ.get("RECORDER_SLEEP", "0")))
    with open(os.environ["RECORDER_FILE"], "a") as f:
        f.write(json.dumps({"argv": sys.argv[1:], "start": start, "end": time.time()}) + "\\n")
    print(json.dumps({"phase": "Succeeded"}))
    """
)


def write_recorder(folder: Path) -> Path:
    """A launcher script that records its arguments (one JSON line per run)."""
    script = folder / "recorder.py"
    script.write_text(RECORDER)
    return script


def recorded(path: Path) -> list[dict[str, Any]]:
    """The runs a recorder launcher saw."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def argv_params(argv: list[str]) -> dict[str, str]:
    """``-p name=value`` pairs of a launcher argv."""
    out = {}
    for flag, value in itertools.pairwise(argv):
        if flag == "-p":
            name, _, val = value.partition("=")
            out[name] = val
    return out


@dataclass
class GatewayProcess:
    """A running ``cnai events serve`` subprocess."""

    process: subprocess.Popen[str]
    home: Path
    url: str
    stderr_path: Path

    def post(self, endpoint: str, body: bytes, headers: Mapping[str, str]) -> requests.Response:
        """POST raw bytes."""
        return requests.post(self.url + endpoint, data=body, headers=dict(headers), timeout=30)

    def push(self, payload: dict[str, Any], delivery: str | None = None) -> requests.Response:
        """A correctly signed push delivery."""
        body = json.dumps(payload).encode()
        return self.post("/push", body, signed_headers(body, delivery))

    def run(self, run_id: str) -> dict[str, Any]:
        """``GET /runs/<id>``."""
        return dict(requests.get(f"{self.url}/runs/{run_id}", timeout=10).json())

    def wait_run(self, run_id: str, timeout: float = 60) -> dict[str, Any]:
        """Poll until the run has finished."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            record = self.run(run_id)
            if record.get("status") in ("succeeded", "failed", "interrupted"):
                return record
            time.sleep(0.1)
        raise AssertionError(f"run {run_id} did not finish in {timeout}s: {self.run(run_id)}")

    def stop(self) -> int:
        """SIGTERM and wait; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)

    def log_lines(self) -> list[dict[str, Any]]:
        """The structured JSON lines the gateway wrote to stderr."""
        out = []
        for line in self.stderr_path.read_text().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out


def start_gateway(
    home: Path,
    extra_args: list[str] | None = None,
    env: Mapping[str, str] | None = None,
    with_secrets: bool = True,
) -> GatewayProcess:
    """Start ``cnai events serve --port 0`` and wait until it listens."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CNAI_")}
    if with_secrets:
        full_env.update(SECRETS_ENV)
    full_env.update(env or {})
    home.mkdir(parents=True, exist_ok=True)
    stderr_path = home / f"gateway-{uuid.uuid4().hex[:6]}.stderr"
    state = home / "events" / "gateway.json"
    state.unlink(missing_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "cnai", "--home", str(home), "events", "serve", "--port", "0"]
        + (extra_args or []),
        cwd=REPO,
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=stderr_path.open("w"),
        text=True,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        if state.exists():
            try:
                url = json.loads(state.read_text())["url"]
            except (ValueError, KeyError):
                url = None
            if url:
                return GatewayProcess(process, home, url, stderr_path)
        if process.poll() is not None:
            raise AssertionError(f"gateway exited: {stderr_path.read_text()}")
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"gateway did not start: {stderr_path.read_text()}")
