"""``cnai serve``: answer predictions from the registry's champion over HTTP."""

from __future__ import annotations

import argparse
import json
import os
import signal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cnai.cli.main import Context

VERSION_ENV = "CNAI_SERVE_VERSION"
"""Environment variable pinning the version (set from a pod annotation in the cluster)."""


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``serve`` command."""
    from cnai.serving.inputs import Limits
    from cnai.serving.server import DEFAULT_PORT

    limits = Limits()
    parser = subparsers.add_parser(
        "serve",
        parents=[common],
        help="serve models:/NAME@champion over HTTP (Open Inference Protocol v2 + /predict)",
        description="Serve the registered model's champion on 127.0.0.1: KServe's v2 "
        "protocol (/v2/health/ready, /v2/models/NAME, /v2/models/NAME/infer) and POST "
        "/predict. Inputs are checked against the model's signature; when alias champion "
        "moves, the new version is loaded and takes over without dropping a request.",
    )
    parser.add_argument(
        "--model", default=None, help="registered model (default: the configuration's model.name)"
    )
    parser.add_argument(
        "--alias", default="champion", help="alias to follow (default: %(default)s)"
    )
    parser.add_argument(
        "--model-version",
        default=os.environ.get(VERSION_ENV) or None,
        help=f"serve this version and do not follow the alias (env {VERSION_ENV})",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default: %(default)s)")
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="port, 0 for a free one (default: %(default)s)",
    )
    parser.add_argument(
        "--poll-seconds",
        type=float,
        default=5.0,
        help="how often the alias is checked; 0 never (default: %(default)s)",
    )
    parser.add_argument(
        "--max-batch-rows",
        type=int,
        default=256,
        help="most rows predicted in one batched call (default: %(default)s)",
    )
    parser.add_argument(
        "--max-rows",
        type=int,
        default=limits.max_rows,
        help="most rows one request may carry (default: %(default)s)",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=limits.max_body_bytes,
        help="largest request body, larger ones get 413 (default: %(default)s)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="PyTorch threads per predict call (default: %(default)s)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: Context) -> dict[str, Any] | None:
    """Handler: load the champion, print where it is served, serve until interrupted.

    With ``--json`` the one JSON object (url, model, version, alias followed) is printed
    as soon as the server listens, not at exit. SIGINT/SIGTERM finish the requests in
    flight, then exit 0.
    """
    from cnai.errors import CnaiError
    from cnai.registry.retry import mlflow_http_policy
    from cnai.serving.inputs import Limits
    from cnai.serving.server import (
        BackgroundServer,
        ServeOptions,
        bind,
        check_options,
        open_tracker,
        set_threads,
    )

    options = ServeOptions(
        model=args.model or ctx.settings.model_name,
        alias=args.alias,
        version=args.model_version,
        host=args.host,
        port=args.port,
        poll_seconds=args.poll_seconds,
        max_batch_rows=args.max_batch_rows,
        limits=Limits(max_body_bytes=args.max_body_bytes, max_rows=args.max_rows),
        threads=args.threads,
    )
    try:
        check_options(options)
        set_threads(options.threads)
        with mlflow_http_policy():
            tracker = open_tracker(ctx.settings, options, ctx.progress)
        sock = bind(options.host, options.port)
    except CnaiError as exc:
        if exc.data is None:  # --json prints an object on failure too
            exc.data = {"error": str(exc), "model": options.model, "url": None}
        raise
    server = BackgroundServer(tracker, sock, options.max_batch_rows, options.limits)
    served = tracker.current
    assert served is not None
    ready = {
        "url": server.url,
        "model": served.name,
        "version": int(served.version),
        "following": None if options.version else options.alias,
    }
    if ctx.json:
        print(json.dumps(ready), flush=True)
    following = f"following @{options.alias}" if not options.version else "pinned"
    ctx.progress.info(f"serving {served.name} v{served.version} ({following}) on {server.url}")

    def stop(signum: int, frame: object) -> None:
        # uvicorn handles the signal itself while it runs and re-raises it once it has
        # finished the in-flight requests; ending here makes that a clean exit 0.
        server.server.should_exit = True

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
    server.run()
    ctx.progress.info(f"stopped serving {served.name}")
    return None
