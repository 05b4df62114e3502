"""The HTTP routes of ``cnai serve`` (Starlette, run by uvicorn).

Open Inference Protocol v2 (the KServe data plane):

==========================================  ===========================================
``GET  /v2/health/live``                     200 while the process runs
``GET  /v2/health/ready``                    200 once a model is loaded, else 503
``GET  /v2``                                 server metadata
``GET  /v2/models/{name}``                   model metadata (version, input, output)
``GET  /v2/models/{name}/ready``             200 when ``name`` is served and loaded
``POST /v2/models/{name}/infer``             predictions (one numeric tensor in)
==========================================  ===========================================

plus ``POST /predict`` taking ``{"instances": [[...], ...]}`` or MLflow's
``dataframe_split`` and answering ``{"predictions": [...], "model_version": "N"}``.
Every answer names the version that produced it (``model_version``, and the
``X-Model-Version`` header). Bad input is a 4xx with ``{"error": message}``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cnai import __version__
from cnai.serving.batcher import MicroBatcher
from cnai.serving.champion import ChampionTracker
from cnai.serving.inputs import BadInputError, Limits, parse_json, rows_from_predict, rows_from_v2
from cnai.serving.model import ServedModel

INPUT_NAME = "features"
OUTPUT_NAME = "predictions"


def _json(data: dict[str, Any], status: int = 200, version: str | None = None) -> Response:
    headers = {"X-Model-Version": version} if version else None
    body = json.dumps(data, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _error(message: str, status: int) -> Response:
    return _json({"error": message}, status)


async def read_body(request: Request, limits: Limits) -> bytes:
    """The request body; BadInputError(413) as soon as it exceeds ``limits.max_body_bytes``."""
    declared = request.headers.get("content-length")
    too_big = f"body: larger than the limit of {limits.max_body_bytes} bytes"
    if declared is not None:
        if not declared.isdigit():
            raise BadInputError(f"Content-Length {declared!r}: not a byte count")
        if int(declared) > limits.max_body_bytes:
            raise BadInputError(too_big, status=413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limits.max_body_bytes:
            raise BadInputError(too_big, status=413)
        chunks.append(chunk)
    return b"".join(chunks)


def _metadata(served: ServedModel) -> dict[str, Any]:
    return {
        "name": served.name,
        "versions": [served.version],
        "platform": "mlflow-pyfunc",
        "inputs": [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, served.spec.width]}],
        "outputs": [{"name": OUTPUT_NAME, "datatype": "INT64", "shape": [-1]}],
        "parameters": {"features": list(served.spec.features)},
    }


def build_app(tracker: ChampionTracker, batcher: MicroBatcher, limits: Limits) -> Starlette:
    """The application serving ``tracker``'s current model through ``batcher``."""

    def current_or_unavailable() -> ServedModel:
        served = tracker.current
        if served is None:
            raise BadInputError(f"model {tracker.name}: not loaded yet", status=503)
        return served

    def served_named(request: Request) -> ServedModel:
        name = request.path_params["name"]
        if name != tracker.name:
            raise BadInputError(
                f"model {name!r}: not served here (this server serves {tracker.name!r})", 404
            )
        return current_or_unavailable()

    async def document_of(request: Request) -> Any:
        return parse_json(await read_body(request, limits))

    async def live(request: Request) -> Response:
        return _json({"live": True})

    async def ready(request: Request) -> Response:
        served = tracker.current
        if served is None:
            return _json({"ready": False}, 503)
        return _json({"ready": True}, version=served.version)

    async def server_metadata(request: Request) -> Response:
        return _json({"name": "cnai", "version": __version__, "extensions": []})

    async def model_metadata(request: Request) -> Response:
        served = served_named(request)
        return _json(_metadata(served), version=served.version)

    async def model_ready(request: Request) -> Response:
        served = served_named(request)
        return _json({"name": served.name, "ready": True}, version=served.version)

    async def infer(request: Request) -> Response:
        served = served_named(request)
        document = await document_of(request)
        rows = rows_from_v2(document, served.spec, limits)
        predictions = await batcher.predict(served, rows)
        out: dict[str, Any] = {
            "model_name": served.name,
            "model_version": served.version,
            "outputs": [
                {
                    "name": OUTPUT_NAME,
                    "shape": [len(predictions)],
                    "datatype": served.output_datatype(predictions),
                    "data": predictions.tolist(),
                }
            ],
        }
        if isinstance(document.get("id"), str):
            out["id"] = document["id"]
        return _json(out, version=served.version)

    async def predict_simple(request: Request) -> Response:
        served = current_or_unavailable()
        rows = rows_from_predict(await document_of(request), served.spec, limits)
        predictions = await batcher.predict(served, rows)
        return _json(
            {"predictions": predictions.tolist(), "model_version": served.version},
            version=served.version,
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        import asyncio

        follower = asyncio.get_running_loop().create_task(tracker.follow())
        try:
            yield
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower

    async def bad_input(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BadInputError)
        return _error(str(exc), exc.status)

    async def failure(request: Request, exc: Exception) -> Response:
        # The model or the server failed on valid input: a 500 in the same JSON shape.
        return _error(f"prediction failed: {type(exc).__name__}: {exc}", 500)

    routes = [
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2", server_metadata, methods=["GET"]),
        Route("/v2/models/{name}", model_metadata, methods=["GET"]),
        Route("/v2/models/{name}/ready", model_ready, methods=["GET"]),
        Route("/v2/models/{name}/infer", infer, methods=["POST"]),
        Route("/predict", predict_simple, methods=["POST"]),
    ]
    handlers = {BadInputError: bad_input, Exception: failure}
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers)
