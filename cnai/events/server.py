"""The local events gateway: the EventSources' webhooks and the Sensor, on 127.0.0.1.

For each delivery, in order: method (405), size against ``maxPayloadSize`` (413),
authentication (401: HMAC signature for GitHub, bearer token for the data webhook),
JSON body (400), delivery id dedup (200 ``duplicate``), the Sensor's filters (200
``filtered: <reason>``), then the run is recorded and queued and the answer is 202 with
its id. One JSON log line per delivery goes to stderr.

Also: ``GET /healthz`` and ``GET /runs/<id>``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from aiohttp import web

from cnai.events.runner import RunQueue
from cnai.events.signature import verify_bearer, verify_github_signature
from cnai.events.spec import EventsSpec, Route
from cnai.events.store import EventStore, RunRecord

DELIVERY_HEADER = "X-GitHub-Delivery"
IDEMPOTENCY_HEADER = "Idempotency-Key"
_MAX_ID = 200


@dataclass
class GatewayConfig:
    """How one gateway runs."""

    spec: EventsSpec
    """The loaded YAML."""
    state_dir: Path
    """``<home>/events``: database, logs, gateway.json."""
    launcher: Sequence[str]
    """Command prefix that starts a run."""
    secrets: Mapping[str, str] = field(default_factory=dict)
    """Env var name -> secret value, for the routes' ``secret_env``."""
    insecure: bool = False
    """Accept deliveries on routes whose secret is not set (no authentication)."""
    extra_arguments: Mapping[str, str] = field(default_factory=dict)
    """Workflow arguments added to every run (event-mapped ones win)."""
    log_stream: TextIO | None = None
    """Where the per-delivery JSON lines go (stderr by default; None-like: silent)."""
    quiet: bool = False
    """Do not write the per-delivery lines."""


def missing_secrets(spec: EventsSpec, available: Mapping[str, str]) -> list[str]:
    """Env vars the routes need that are not set."""
    needed = {r.secret_env for r in spec.routes if r.secret_env}
    return sorted(name for name in needed if not available.get(name))


class Gateway:
    """The aiohttp application and what it drives."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.store = EventStore(config.state_dir)
        self.queue = RunQueue(
            self.store,
            config.launcher,
            config.state_dir / "logs",
            on_event=lambda e: self._log({"kind": "run", **e}),
        )
        self.app = web.Application(client_max_size=1024)
        for route in config.spec.routes:
            self.app.router.add_route("*", route.endpoint, self._handler(route))
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/runs/{run_id}", self._run)

    def _log(self, entry: dict[str, Any]) -> None:
        if self.config.quiet:
            return
        stream = self.config.log_stream or sys.stderr
        line = json.dumps({"ts": round(time.time(), 3), **entry}, default=str)
        print(line, file=stream, flush=True)

    def _handler(self, route: Route) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.Response:
            status, body, log = await self._deliver(route, request)
            self._log({"kind": "delivery", "endpoint": route.endpoint, "status": status, **log})
            return web.json_response(body, status=status)

        return handle

    async def _deliver(
        self, route: Route, request: web.Request
    ) -> tuple[int, dict[str, Any], dict[str, Any]]:
        """(HTTP status, response body, log fields) for one request."""
        event = request.headers.get("X-GitHub-Event", route.event)
        log: dict[str, Any] = {"event": event[:100], "delivery": None, "run_id": None}

        def reject(status: int, reason: str) -> tuple[int, dict[str, Any], dict[str, Any]]:
            log["decision"] = f"rejected: {reason}"
            return status, {"status": "rejected", "reason": reason}, log

        if request.method != route.method:
            return reject(405, f"method {request.method} not allowed (use {route.method})")
        if request.content_length is not None and request.content_length > route.max_payload:
            return reject(413, f"payload over maxPayloadSize {route.max_payload} bytes")
        body = await _read_limited(request, route.max_payload)
        if body is None:
            return reject(413, f"payload over maxPayloadSize {route.max_payload} bytes")
        secret = self.config.secrets.get(route.secret_env or "")
        if route.secret_env and not secret and not self.config.insecure:
            return reject(401, "gateway has no secret configured")
        if secret and route.kind == "github":
            signature = request.headers.get("X-Hub-Signature-256")
            if not signature:
                return reject(401, "missing X-Hub-Signature-256")
            if not verify_github_signature(secret, body, signature):
                return reject(401, "bad signature")
        elif secret and not verify_bearer(secret, request.headers.get("Authorization")):
            return reject(401, "missing or bad bearer token")
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, ValueError):
            return reject(400, "body is not valid JSON")
        if not isinstance(payload, dict):
            return reject(400, "body must be a JSON object")
        delivery_id = _delivery_id(route, request)
        if delivery_id is None:
            return reject(400, f"{DELIVERY_HEADER} header missing or malformed")
        log["delivery"] = delivery_id
        seen = self.store.claim_delivery(delivery_id, route.source, route.event)
        if seen is not None:
            log["decision"] = "duplicate"
            log["run_id"] = self.store.delivery_run(delivery_id)
            duplicate = {"status": "duplicate", "delivery": delivery_id, "previous": seen}
            return 200, duplicate, log
        data = _event_data(route, request, payload)
        evaluation = self.config.spec.evaluate(route, data)
        if not evaluation.decision.passed:
            decision = f"filtered: {evaluation.decision.reason}"
            self.store.decide(delivery_id, decision)
            log["decision"] = decision
            return 200, {"status": "filtered", "reason": decision, "delivery": delivery_id}, log
        arguments = {**self.config.extra_arguments, **evaluation.arguments}
        run = RunRecord(
            id=new_run_id(),
            delivery_id=delivery_id,
            branch=arguments.get("git_branch") or "(default)",
            arguments=arguments,
            status="queued",
            created_at=time.time(),
            started_at=None,
            finished_at=None,
            exit_code=None,
            phase=None,
            log_path=None,
        )
        self.store.decide(delivery_id, "accepted", run)
        self.queue.submit(run.id, run.branch)
        log.update(decision="accepted", run_id=run.id, dependency=evaluation.dependency)
        body_out: dict[str, Any] = {
            "status": "accepted",
            "run_id": run.id,
            "delivery": delivery_id,
            "dependency": evaluation.dependency,
            "arguments": evaluation.arguments,
        }
        return 202, body_out, log

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "runs": self.store.counts()})

    async def _run(self, request: web.Request) -> web.Response:
        record = self.store.run(request.match_info["run_id"])
        if record is None:
            return web.json_response({"status": "not found"}, status=404)
        return web.json_response(record.to_dict())

    async def start(self, host: str, port: int) -> tuple[web.AppRunner, int]:
        """Resume queued runs and listen; returns the runner and the bound port."""
        resumed = self.queue.resume()
        if resumed:
            self._log({"kind": "resume", "run_ids": resumed})
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, port, backlog=1024)
        await site.start()
        bound = runner.addresses[0][1] if runner.addresses else port
        return runner, int(bound)

    async def stop(self, runner: web.AppRunner) -> None:
        """Stop listening and stop the run workers."""
        await runner.cleanup()
        await self.queue.close()
        self.store.close()


def new_run_id() -> str:
    """A Kubernetes-style name: ``cnai-retrain-`` and 8 random lowercase hex digits."""
    return f"cnai-retrain-{secrets.token_hex(4)}"


def _delivery_id(route: Route, request: web.Request) -> str | None:
    header = DELIVERY_HEADER if route.kind == "github" else IDEMPOTENCY_HEADER
    value = request.headers.get(header)
    if value is None:
        if route.kind == "github":
            return None
        return f"{route.event}-{uuid.uuid4()}"
    value = value.strip()
    if not value or len(value) > _MAX_ID or not value.isprintable():
        return None
    return value if route.kind == "github" else f"{route.event}-{value}"


def _event_data(route: Route, request: web.Request, payload: dict[str, Any]) -> dict[str, Any]:
    """The event JSON Argo Events' EventSource would publish for this delivery."""
    headers: dict[str, list[str]] = {}
    for name, value in request.headers.items():
        if name.lower() in ("authorization", "x-hub-signature-256", "x-hub-signature"):
            continue
        headers.setdefault(_canonical(name), []).append(value)
    if route.kind == "github":
        # The GitHub EventSource copies these two headers into the body.
        body = dict(payload)
        body["X-GitHub-Event"] = request.headers.get("X-GitHub-Event", "")
        body["X-GitHub-Delivery"] = request.headers.get(DELIVERY_HEADER, "")
        return {"headers": headers, "body": body}
    return {"header": headers, "body": payload}


def _canonical(name: str) -> str:
    """Go's canonical header form: ``x-github-event`` -> ``X-Github-Event``."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


async def _read_limited(request: web.Request, limit: int) -> bytes | None:
    """The body, or None as soon as it grows past ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.readany()
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)


async def serve(
    config: GatewayConfig,
    host: str,
    port: int,
    ready: Callable[[str, int], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run the gateway until ``stop`` is set."""
    gateway = Gateway(config)
    runner, bound = await gateway.start(host, port)
    if ready is not None:
        ready(host, bound)
    try:
        await (stop or asyncio.Event()).wait()
    finally:
        await gateway.stop(runner)
