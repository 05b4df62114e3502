"""Starting ``cnai serve``: the tracker's first load, the socket, and uvicorn.

:class:`BackgroundServer` runs the same server in a thread of the calling process
(tests and benchmarks use it; ``cnai serve`` runs it in the foreground).
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

from cnai.config import Settings
from cnai.errors import CnaiError, UsageError
from cnai.progress import Progress
from cnai.serving.app import build_app
from cnai.serving.batcher import MicroBatcher
from cnai.serving.champion import ChampionTracker
from cnai.serving.inputs import Limits

DEFAULT_PORT = 8080
"""Port ``cnai serve`` listens on by default (KServe's predictor port)."""


@dataclass(frozen=True)
class ServeOptions:
    """Everything ``cnai serve`` takes besides the home."""

    model: str
    """Registered model name."""
    alias: str = "champion"
    """Alias followed."""
    version: str | None = None
    """Serve this version only (no following); None: follow the alias."""
    host: str = "127.0.0.1"
    """Interface to bind."""
    port: int = DEFAULT_PORT
    """Port to bind; 0 picks a free one."""
    poll_seconds: float = 5.0
    """How often the alias is checked; 0 never."""
    max_batch_rows: int = 256
    """Most rows in one batched predict call."""
    limits: Limits = field(default_factory=Limits)
    """Request-size limits."""
    threads: int = 1
    """PyTorch intra-op threads per predict call (see :func:`set_threads`)."""


def check_options(options: ServeOptions) -> None:
    """UsageError naming the first option that breaks its rule."""
    if not options.model.strip() or any(c in options.model for c in "'\"/@\\`"):
        raise UsageError(f"--model {options.model!r}: a registered model name, without / @ quotes")
    if options.version is not None and not options.version.isdigit():
        raise UsageError(f"--model-version {options.version!r}: must be a version number")
    if not 0 <= options.port <= 65535:
        raise UsageError(f"--port {options.port}: must be 0..65535")
    if not options.poll_seconds >= 0:
        raise UsageError(f"--poll-seconds {options.poll_seconds}: must be >= 0")
    for flag, value in (
        ("--max-batch-rows", options.max_batch_rows),
        ("--max-rows", options.limits.max_rows),
        ("--max-body-bytes", options.limits.max_body_bytes),
        ("--threads", options.threads),
    ):
        if value < 1:
            raise UsageError(f"{flag} {value}: must be >= 1")


def set_threads(threads: int) -> None:
    """Give PyTorch ``threads`` intra-op threads (process-wide).

    Batches here are small (tens of rows); splitting them across threads costs more in
    hand-offs than it gains, and on a busy machine OpenMP's spinning workers make a
    32-row batch of the digits CNN ~50x slower (measured: 0.4 ms with 1 thread, ~20 ms
    with 2 on 2 oversubscribed cores). One thread is the default; scale with replicas.
    """
    import torch

    torch.set_num_threads(threads)


def open_tracker(settings: Settings, options: ServeOptions, progress: Progress) -> ChampionTracker:
    """A tracker on the settings' registry with the first version loaded."""
    from mlflow import MlflowClient

    from cnai.tracking import configure

    configure(settings)
    client = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_registry_uri)
    tracker = ChampionTracker(
        client,
        options.model,
        alias=options.alias,
        poll_seconds=options.poll_seconds,
        pinned_version=options.version,
        progress=progress,
    )
    tracker.refresh()
    return tracker


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; UsageError when it cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"--host {host} --port {port}: cannot listen there ({exc})") from exc
    sock.listen(2048)
    return sock


class BackgroundServer:
    """uvicorn serving a tracker on an already bound socket, in a thread."""

    def __init__(
        self,
        tracker: ChampionTracker,
        sock: socket.socket,
        max_batch_rows: int = 256,
        limits: Limits | None = None,
    ) -> None:
        import uvicorn

        self.tracker = tracker
        self.sock = sock
        self.batcher = MicroBatcher(max_batch_rows)
        app = build_app(tracker, self.batcher, limits or Limits())
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="on", timeout_keep_alive=30
        )
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` of the socket."""
        host, port = self.sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    def run(self) -> None:
        """Serve in this thread until stopped (SIGINT/SIGTERM in the main thread)."""
        try:
            self.server.run(sockets=[self.sock])
        finally:
            self.batcher.close()

    def start(self, timeout: float = 30) -> BackgroundServer:
        """Serve in a daemon thread; returns once uvicorn has started."""
        self._thread = threading.Thread(target=self.run, name="cnai-serve", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise CnaiError(f"cnai serve at {self.url} did not start")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 30) -> None:
        """Finish in-flight requests and stop."""
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self.sock.close()
