"""The local events gateway: the EventSources' webhooks and the Sensor, on 127.0.0.1.

For each delivery, in order: method (405), size against ``maxPayloadSize`` (413),
header encoding (400), bearer token of the data webhook (401, before any body is
read), body read within ``body_timeout`` (408) and the buffered-bytes budget (503),
GitHub HMAC signature (401), JSON body and its nesting depth (400), delivery id (400),
dedup per route (200 ``duplicate``), the Sensor's filters (200 ``filtered: <reason>``;
an event the filters cannot evaluate is 400), workflow arguments that cannot go on a
command line (400), then the run is recorded and queued and the answer is 202 with
its id; an identical run already queued on the branch answers 200 ``coalesced`` and a
branch whose queue is full 429. A delivery is recorded only with its final decision,
so any failure before that leaves nothing behind and a redelivery is handled afresh.
One JSON log line per delivery goes to stderr (rejections and errors rate-limited).

Also: ``GET /healthz`` and ``GET /runs/<id>``.

Server stack: aiohttp, which this gateway already used, kept rather than replaced by
uvicorn/starlette: its HTTP parser is C (llhttp), it streams bodies with flow control,
it closes a connection that has not sent complete headers within its keep-alive
timeout (from the moment it connects), and it bounds header sizes. Uvicorn here would
run on the pure-Python h11 parser (httptools is not installed), several times slower,
and has no body read timeout either. What aiohttp lacks is added in this module with
its public API only: a cap on open connections (checked when a connection is accepted,
:class:`_CappedListener`), a deadline for reading a body, a budget of body bytes
held at once across requests (:class:`BodyBudget`; a body with a Content-Length is read
into one buffer of that size, no second copy), handing freed body memory back to the
OS (:class:`_HeapTrim`) and rate-limited error logging (:class:`BoundedLog`). All
limits are settings (:mod:`cnai.events.limits`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
import secrets
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from aiohttp import web

from cnai.argo.semantics import gojson
from cnai.events.limits import GatewayLimits
from cnai.events.runner import RunQueue, argument_problem
from cnai.events.signature import verify_bearer, verify_github_signature
from cnai.events.spec import EventsSpec, Route
from cnai.events.store import EventStore, RunRecord

DELIVERY_HEADER = "X-GitHub-Delivery"
IDEMPOTENCY_HEADER = "Idempotency-Key"
_MAX_ID = 200
UNBUDGETED_BYTES = 64 * 1024
"""The first bytes of each body are outside ``max_buffered_bytes`` (so small deliveries
are never refused for lack of budget); they are bounded by ``max_connections`` instead."""
EVALUATION_ERRORS = (
    ValueError,
    TypeError,
    OverflowError,
    ArithmeticError,
    RecursionError,
    UnicodeError,
    KeyError,
    IndexError,
)
"""What the Sensor's filters and parameters may raise on a hostile event: answered 400."""


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
    limits: GatewayLimits = field(default_factory=GatewayLimits)
    """Connection, body, queue, rate and log bounds."""


def missing_secrets(spec: EventsSpec, available: Mapping[str, str]) -> list[str]:
    """Env vars the routes need that are not set."""
    needed = {r.secret_env for r in spec.routes if r.secret_env}
    return sorted(name for name in needed if not available.get(name))


@functools.lru_cache(maxsize=256)
def _rejection_body(reason: str) -> bytes:
    """The JSON body of a rejection (cached: a flood of one bad request encodes it once)."""
    return json.dumps({"status": "rejected", "reason": reason}).encode()


class RefusedError(Exception):
    """A request answered without a run: HTTP status and the reason shown to the client."""

    def __init__(self, status: int, reason: str, headers: Mapping[str, str] | None = None):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = dict(headers or {})


class BoundedLog:
    """JSON log lines, at most ``per_minute`` per kind per minute; the rest are counted.

    When a kind's minute is over, the next line of that kind (or :meth:`flush`) first
    writes ``{"kind": "suppressed", "what": KIND, "count": N}``.
    """

    def __init__(self, write: Callable[[dict[str, Any]], None], per_minute: int) -> None:
        self._write = write
        self.per_minute = per_minute
        self._windows: dict[str, tuple[float, int, int]] = {}

    def __call__(self, what: str, entry: dict[str, Any]) -> None:
        """Write ``entry`` unless ``what`` already had its lines this minute."""
        now = time.monotonic()
        start, written, dropped = self._windows.get(what, (now, 0, 0))
        if now - start >= 60:
            if dropped:
                self._write({"kind": "suppressed", "what": what, "count": dropped})
            start, written, dropped = now, 0, 0
        if written < self.per_minute:
            self._write(entry)
            written += 1
        else:
            dropped += 1
        self._windows[what] = (start, written, dropped)

    def flush(self) -> None:
        """Write the pending suppressed counts."""
        for what, (_, _, dropped) in self._windows.items():
            if dropped:
                self._write({"kind": "suppressed", "what": what, "count": dropped})
        self._windows.clear()


class BodyBudget:
    """Request body bytes held at once across all requests."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self, size: int) -> bool:
        """Reserve ``size`` more bytes; False (nothing reserved) when they do not fit."""
        if self.held + size > self.limit:
            return False
        self.held += size
        return True

    def give(self, size: int) -> None:
        """Release bytes reserved with :meth:`take`."""
        self.held = max(0, self.held - size)


class Gateway:
    """The aiohttp application and what it drives."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.limits = config.limits
        self.store = EventStore(config.state_dir)
        self.bounded = BoundedLog(self._log, self.limits.log_limit_per_minute)
        rate_limit = None if self.limits.rate_limit_disabled else self.limits.rate_limit
        if rate_limit is None and not self.limits.rate_limit_disabled:
            rate_limit = config.spec.trigger.rate_limit
        self.rate_limit = rate_limit
        self.queue = RunQueue(
            self.store,
            config.launcher,
            config.state_dir / "logs",
            on_event=lambda e: self._log({"kind": "run", **e}),
            rate_limit=rate_limit,
        )
        self.budget = BodyBudget(self.limits.max_buffered_bytes)
        self._trim = _HeapTrim()
        self.refused_connections = 0
        self.app = web.Application(client_max_size=1024)
        for route in config.spec.routes:
            self.app.router.add_route("*", route.endpoint, self._handler(route))
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/runs/{run_id}", self._run)
        self._listener: asyncio.Server | None = None

    def _log(self, entry: dict[str, Any]) -> None:
        if self.config.quiet:
            return
        stream = self.config.log_stream or sys.stderr
        line = json.dumps({"ts": round(time.time(), 3), **entry}, default=str)
        with contextlib.suppress(OSError, ValueError):
            print(line, file=stream, flush=True)

    def log_error(self, where: str, exc: BaseException) -> None:
        """One rate-limited error line with a short traceback."""
        text = "".join(traceback.format_exception(exc, limit=6))[-4000:]
        entry = {"kind": "error", "where": where, "error": f"{type(exc).__name__}: {exc}"[:500]}
        self.bounded(f"error {where} {type(exc).__name__}", {**entry, "traceback": text})

    def _handler(self, route: Route) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.Response:
            log: dict[str, Any] = {"event": None, "delivery": None, "run_id": None}
            headers: dict[str, str] = {}
            reserved = [0]
            body: dict[str, Any] | bytes
            try:
                status, body = await self._deliver(route, request, log, reserved)
            except RefusedError as rejected:
                status = rejected.status
                body = _rejection_body(rejected.reason)
                headers = rejected.headers
                log["decision"] = f"rejected: {rejected.reason}"
            except Exception as exc:  # noqa: BLE001 - answered 500, logged (bounded), nothing kept
                self.log_error("delivery", exc)
                status, body = 500, {"status": "error", "reason": "internal error (see log)"}
                log["decision"] = f"error: {type(exc).__name__}"
            finally:
                self.budget.give(reserved[0])  # the body is no longer held
                if reserved[0] and not self.budget.held:
                    self._trim.after_large_bodies()
            entry = {"kind": "delivery", "endpoint": route.endpoint, "status": status, **log}
            if status >= 400:
                self.bounded(f"rejected {status}", entry)
            else:
                self._log(entry)
            if isinstance(body, bytes):
                response = web.Response(
                    body=body,
                    status=status,
                    headers=headers,
                    content_type="application/json",
                    charset="utf-8",
                )
            else:
                response = web.json_response(body, status=status, headers=headers)
            if status in (408, 413, 503) or (status >= 400 and not request.content.at_eof()):
                response.force_close()
            return response

        return handle

    async def _read_body(
        self, route: Route, request: web.Request, reserved: list[int]
    ) -> bytes | bytearray:
        length = request.content_length
        if length is not None and length <= UNBUDGETED_BYTES and request.content.is_eof():
            # A small body already received in full (the common case): no timer, no budget.
            return await request.content.read()
        busy = RefusedError(
            503,
            f"gateway busy: request bodies held at once are at events.max_buffered_bytes "
            f"{self.limits.max_buffered_bytes}; retry later",
            {"Retry-After": "5"},
        )
        if length is not None and length > UNBUDGETED_BYTES:
            if not self.budget.take(length - UNBUDGETED_BYTES):
                raise busy
            reserved[0] += length - UNBUDGETED_BYTES
        chunks: list[bytes] = []
        size = 0
        # One allocation and no join copy when the length is known (aiohttp decompresses
        # a Content-Encoding body, whose decoded length is not Content-Length).
        encoded = request.headers.get("Content-Encoding", "identity") != "identity"
        buffer = bytearray(length) if length and not encoded else None
        try:
            async with asyncio.timeout(self.limits.body_timeout):
                while True:
                    chunk = await request.content.readany()
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > route.max_payload:
                        raise RefusedError(
                            413, f"payload over maxPayloadSize {route.max_payload} bytes"
                        )
                    if size - UNBUDGETED_BYTES > reserved[0]:
                        extra = size - UNBUDGETED_BYTES - reserved[0]
                        if not self.budget.take(extra):
                            raise busy
                        reserved[0] += extra
                    if buffer is not None and size <= len(buffer):
                        buffer[size - len(chunk) : size] = chunk
                    else:
                        chunks.append(chunk)
        except TimeoutError:
            raise RefusedError(
                408, f"body not received within events.body_timeout {self.limits.body_timeout}s"
            ) from None
        except (OSError, EOFError):
            raise RefusedError(400, "connection lost before the body was complete") from None
        if buffer is not None:
            if size != len(buffer):
                raise RefusedError(400, f"body of {size} bytes, Content-Length said {len(buffer)}")
            return bytes(buffer) if len(buffer) <= UNBUDGETED_BYTES else buffer
        return b"".join(chunks)

    async def _deliver(
        self, route: Route, request: web.Request, log: dict[str, Any], reserved: list[int]
    ) -> tuple[int, dict[str, Any]]:
        """(HTTP status, response body) for one request; RefusedError for the refusals."""
        if request.method != route.method:
            raise RefusedError(405, f"method {request.method} not allowed (use {route.method})")
        if request.content_length is not None and request.content_length > route.max_payload:
            raise RefusedError(413, f"payload over maxPayloadSize {route.max_payload} bytes")
        for name, value in request.headers.items():
            if not value.isascii() and argument_problem(value):
                raise RefusedError(400, f"header {name[:60]}: not valid UTF-8")
        event = request.headers.get("X-GitHub-Event", route.event)
        log["event"] = event[:100]
        if not event.isprintable():
            raise RefusedError(400, "X-GitHub-Event header: not printable")
        secret = self.config.secrets.get(route.secret_env or "")
        if route.secret_env and not secret and not self.config.insecure:
            raise RefusedError(401, "gateway has no secret configured")
        bearer = request.headers.get("Authorization")
        if secret and route.kind != "github" and not verify_bearer(secret, bearer):
            raise RefusedError(401, "missing or bad bearer token")
        if secret and route.kind == "github" and not request.headers.get("X-Hub-Signature-256"):
            raise RefusedError(401, "missing X-Hub-Signature-256")
        body = await self._read_body(route, request, reserved)
        if secret and route.kind == "github":
            signature = request.headers.get("X-Hub-Signature-256")
            if not verify_github_signature(secret, body, signature):
                raise RefusedError(401, "bad signature")
        payload, text = _parse_json(body, self.limits.max_json_depth)
        del body
        delivery_id = _delivery_id(route, request)
        if delivery_id is None:
            raise RefusedError(400, f"{_id_header(route)} header missing or malformed")
        log["delivery"] = delivery_id
        seen = self.store.seen(route.source, route.event, delivery_id)
        if seen is not None:
            return self._duplicate(delivery_id, seen, log)
        data = _event_data(route, request, payload, text)
        del payload, text
        try:
            evaluation = self.config.spec.evaluate(route, data)
        except EVALUATION_ERRORS as exc:
            raise RefusedError(
                400, f"event cannot be evaluated by the Sensor: {type(exc).__name__}"
            ) from None
        if not evaluation.decision.passed:
            decision = _storable(f"filtered: {evaluation.decision.reason}")
            admission = self.store.record(route.source, route.event, delivery_id, decision)
            if admission.outcome == "duplicate":
                return self._duplicate(delivery_id, (admission.previous or "", None), log)
            log["decision"] = decision
            return 200, {"status": "filtered", "reason": decision, "delivery": delivery_id}
        arguments = {**self.config.extra_arguments, **evaluation.arguments}
        for name, value in arguments.items():
            problem = argument_problem(name) or argument_problem(value)
            if problem is None and not (name + value).isprintable():
                problem = "contains a control character"
            if problem is None and len((name + value).encode()) > self.limits.max_argument_bytes:
                problem = f"is over events.max_argument_bytes {self.limits.max_argument_bytes}"
            if problem is not None:
                raise RefusedError(
                    400, f"workflow argument {_storable(name)[:60]}: value {problem}"
                )
        run = RunRecord(
            id=new_run_id(self.config.spec.trigger.workflow_template),
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
        admission = self.store.record(
            route.source,
            route.event,
            delivery_id,
            "accepted",
            run,
            max_queued=self.limits.max_queued_per_branch,
        )
        if admission.outcome == "duplicate":
            return self._duplicate(delivery_id, (admission.previous or "", None), log)
        if admission.outcome == "full":
            raise RefusedError(
                429,
                f"branch {run.branch[:100]} has {admission.queued} runs queued "
                f"(events.max_queued_per_branch); retry later",
                {"Retry-After": "60"},
            )
        if admission.outcome == "coalesced":
            log.update(decision=f"coalesced (run {admission.run_id})", run_id=admission.run_id)
            return 200, {
                "status": "coalesced",
                "run_id": admission.run_id,
                "delivery": delivery_id,
                "reason": "an identical run is already queued on this branch",
            }
        self.queue.submit(run.id, run.branch)
        log.update(decision="accepted", run_id=run.id, dependency=evaluation.dependency)
        return 202, {
            "status": "accepted",
            "run_id": run.id,
            "delivery": delivery_id,
            "dependency": evaluation.dependency,
            "arguments": evaluation.arguments,
        }

    def _duplicate(
        self, delivery_id: str, seen: tuple[str, str | None], log: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        decision, run_id = seen
        previous = f"{decision} (run {run_id})" if run_id else decision
        log["decision"] = "duplicate"
        log["run_id"] = run_id
        return 200, {"status": "duplicate", "delivery": delivery_id, "previous": previous}

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "status": "ok",
                "runs": self.store.counts(),
                "buffered_bytes": self.budget.held,
                "refused_connections": self.refused_connections,
            }
        )

    async def _run(self, request: web.Request) -> web.Response:
        record = self.store.run(request.match_info["run_id"])
        if record is None:
            return web.json_response({"status": "not found"}, status=404)
        return web.json_response(record.to_dict())

    async def start(self, host: str, port: int) -> tuple[web.AppRunner, int]:
        """Resume queued runs and listen; returns the runner and the bound port."""
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self._loop_error)
        adopted, resumed = self.queue.resume()
        if adopted:
            self._log({"kind": "adopt", "run_ids": adopted})
        if resumed:
            self._log({"kind": "resume", "run_ids": resumed})
        runner = web.AppRunner(
            self.app,
            access_log=None,
            handle_signals=False,
            keepalive_timeout=self.limits.header_timeout,
            lingering_time=1.0,
        )
        await runner.setup()
        server = runner.server
        assert server is not None
        listener = _CappedListener(server, self.limits.max_connections, self)
        self._listener = await loop.create_server(listener, host, port, backlog=1024)
        bound = self._listener.sockets[0].getsockname()[1]
        return runner, int(bound)

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, BaseException):
            self.log_error("loop", exc)
        else:
            message = str(context.get("message"))[:500]
            self.bounded("error loop", {"kind": "error", "where": "loop", "error": message})

    async def stop(self, runner: web.AppRunner) -> None:
        """Stop listening and stop the run workers."""
        if self._listener is not None:
            self._listener.close()
        await runner.cleanup()
        await self.queue.close()
        self.bounded.flush()
        self.store.close()


class _HeapTrim:
    """Hands freed heap memory back to the OS after large bodies (glibc ``malloc_trim``).

    Without it glibc keeps the pages of freed request bodies (its mmap threshold grows
    with the largest block freed), so the gateway's memory would stay near its peak.
    At most once a second (a call within the second is deferred to its end); a no-op
    where the C library has no ``malloc_trim``.
    """

    def __init__(self) -> None:
        self._last = 0.0
        self._pending = False
        try:
            import ctypes

            self._trim: Any = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):
            self._trim = None

    def after_large_bodies(self) -> None:
        """Trim now, or at the end of the second since the last trim."""
        if self._trim is None or self._pending:
            return
        wait = self._last + 1.0 - time.monotonic()
        if wait <= 0:
            self._run()
        else:
            self._pending = True
            asyncio.get_running_loop().call_later(wait, self._run)

    def _run(self) -> None:
        self._pending = False
        self._last = time.monotonic()
        self._trim(0)


class _CappedListener:
    """Protocol factory: aiohttp's handler, or a 503-and-close while at the cap."""

    def __init__(self, server: web.Server, cap: int, gateway: Gateway) -> None:
        self.server = server
        self.cap = cap
        self.gateway = gateway

    def __call__(self) -> asyncio.BaseProtocol:
        if len(self.server.connections) >= self.cap:
            self.gateway.refused_connections += 1
            return _Busy(self.cap)
        return self.server()


class _Busy(asyncio.Protocol):
    """Answers 503 at once and closes: the gateway holds ``events.max_connections``."""

    def __init__(self, cap: int) -> None:
        reason = f"gateway busy: {cap} connections open (events.max_connections); retry later"
        body = json.dumps({"status": "rejected", "reason": reason}).encode()
        self.response = (
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            b"Retry-After: 5\r\nConnection: close\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        with contextlib.suppress(OSError):
            transport.write(self.response)
        transport.close()


def new_run_id(template: str) -> str:
    """A Kubernetes-style name: the trigger's WorkflowTemplate name, ``-`` and 8 random
    lowercase hex digits (as Argo names a Workflow submitted with ``generateName``)."""
    return f"{template}-{secrets.token_hex(4)}"


def _id_header(route: Route) -> str:
    return DELIVERY_HEADER if route.kind == "github" else IDEMPOTENCY_HEADER


def _delivery_id(route: Route, request: web.Request) -> str | None:
    value = request.headers.get(_id_header(route))
    if value is None:
        if route.kind == "github":
            return None
        return f"{route.event}-{uuid.uuid4()}"
    value = value.strip()
    if not value or len(value) > _MAX_ID or not value.isprintable() or argument_problem(value):
        return None
    return value if route.kind == "github" else f"{route.event}-{value}"


def _parse_json(body: bytes | bytearray, max_depth: int) -> tuple[dict[str, Any], str]:
    """The body as a JSON object and as text; RefusedError(400) naming the rule it breaks."""
    try:
        text = bytes(body).decode("utf-8")
        payload = json.loads(
            text, parse_constant=_no_constant, parse_int=_float64_int, parse_float=_float64
        )
    except _OutOfRangeError:
        raise RefusedError(400, "body has a number outside the float64 range") from None
    except RecursionError:
        raise RefusedError(
            400, f"body nested deeper than events.max_json_depth {max_depth}"
        ) from None
    except (UnicodeDecodeError, ValueError):
        raise RefusedError(400, "body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise RefusedError(400, "body must be a JSON object")
    if _depth_over(payload, max_depth):
        raise RefusedError(400, f"body nested deeper than events.max_json_depth {max_depth}")
    return payload, text


class _OutOfRangeError(ValueError):
    """A JSON number no float64 holds (Argo's GitHub EventSource cannot decode it, and a
    number filter would compare +Inf)."""


def _float64_int(text: str) -> int:
    if len(text.lstrip("-")) > 309 or math.isinf(float(text)):
        raise _OutOfRangeError(text[:20])
    return int(text)


def _float64(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _OutOfRangeError(text[:20])
    return value


def _no_constant(name: str) -> Any:
    """NaN and Infinity are not JSON (Go's decoder refuses them)."""
    raise ValueError(name)


def _depth_over(document: Any, limit: int) -> bool:
    """Whether ``document`` nests objects/arrays more than ``limit`` deep (iterative)."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values() if isinstance(v, (dict, list)))
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value if isinstance(v, (dict, list)))
    return False


def _storable(text: str) -> str:
    """``text`` with anything UTF-8 cannot hold (lone surrogates) escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _event_data(route: Route, request: web.Request, payload: dict[str, Any], body: str) -> str:
    """The event JSON text Argo Events' EventSource would publish for this delivery.

    Byte for byte what Go's ``json.Marshal`` gives there (see
    :mod:`cnai.argo.semantics.gojson`), so gjson paths read the same text as in Argo.
    """
    headers: dict[str, list[str]] = {}
    for name, value in request.headers.items():
        if name.lower() in ("authorization", "x-hub-signature-256", "x-hub-signature"):
            continue
        headers.setdefault(_canonical(name), []).append(value)
    if route.kind == "github":
        # The GitHub EventSource decodes the body, copies these two headers into it and
        # encodes it again.
        decoded = dict(payload)
        decoded["X-GitHub-Event"] = request.headers.get("X-GitHub-Event", "")
        decoded["X-GitHub-Delivery"] = request.headers.get(DELIVERY_HEADER, "")
        return f'{{"headers":{gojson.marshal(headers)},"body":{gojson.marshal(decoded)}}}'
    return f'{{"header":{gojson.marshal(headers)},"body":{gojson.compact(body)}}}'


def _canonical(name: str) -> str:
    """Go's canonical header form: ``x-github-event`` -> ``X-Github-Event``."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


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
