"""Benchmark: `cnai serve` vs `mlflow models serve --env-manager local`, same model, one run.

Set-up (fresh home under a temp folder): ingest the digits data, train the pipeline's
own model (``steps.models:digits_cnn``) for a few epochs in this process with plain
PyTorch, log it exactly as the train step does (:func:`cnai.model_io.log_classifier`)
and register it with the real register step, so ``digits-classifier@champion`` exists.

Both servers are separate processes with one uvicorn worker each, on 127.0.0.1, and
use one PyTorch thread each (``cnai serve``'s default ``--threads 1``; MLflow's via
``OMP_NUM_THREADS=1``, so the comparison is of the serving stacks, not thread settings),
and receive the identical request body (MLflow's ``dataframe_split`` form, which both
accept): ours on ``POST /predict``, MLflow's on ``POST /invocations``. The load is a
fixed number of concurrent keep-alive aiohttp clients for a fixed time after a warm-up:

- single: one row per request (online traffic; where batching concurrent requests helps);
- batched: 32 rows per request.

Target (issue 17): ours >= 2x the baseline's requests/s at equal or lower p99, single.
The last line is one JSON object (ratio: ours/baseline requests/s, higher is better).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MODEL = "digits-classifier"


def prepare(home: Path, env: dict[str, str]) -> np.ndarray:
    """Ingest, train, log and register the model; the test rows to send."""
    import mlflow
    import torch

    from cnai.catalog import data_version, load_table
    from cnai.config import load_settings
    from cnai.ingest import ingest
    from cnai.model_io import log_classifier
    from cnai.progress import Progress
    from cnai.registry.register import register
    from cnai.tracking import configure, ensure_experiment
    from cnai.training.data import read_split
    from steps.models import digits_cnn

    settings = load_settings(home, environ=env)
    quiet = Progress(quiet=True)
    snapshot_id = int(ingest(settings=settings, progress=quiet)["snapshot_id"])
    train_x, train_y = read_split(settings, "train", snapshot_id)
    test_x, _ = read_split(settings, "test", snapshot_id)
    torch.manual_seed(0)
    spec = settings.dataset
    model = digits_cnn(input_shape=spec.feature_shape, num_classes=len(spec.classes))
    optimiser = torch.optim.Adam(model.parameters(), lr=0.003)
    x = torch.from_numpy(train_x).reshape(-1, *spec.feature_shape)
    y = torch.from_numpy(train_y)
    for _ in range(5):
        for start in range(0, len(x), 64):
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(
                model(x[start : start + 64]), y[start : start + 64]
            )
            loss.backward()
            optimiser.step()
    model.eval()
    experiment = ensure_experiment(settings)
    configure(settings)
    table = load_table(settings)
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.set_tags(
            {
                "cnai.table": spec.table,
                "cnai.snapshot_id": str(snapshot_id),
                "cnai.data_version": data_version(table, snapshot_id),
            }
        )
        log_classifier(model, spec, train_x[:5])
    result = register(run.info.run_id, MODEL, settings=settings, progress=quiet)
    print(f"registered {MODEL} v{result['version']}: {result['metrics']}", file=sys.stderr)
    return test_x


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(
    url: str, proc: subprocess.Popen[bytes], timeout: float = 300, log: Path | None = None
) -> None:
    """Block until ``url`` answers 200 (RuntimeError with the log's tail if it exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log else ""
            raise RuntimeError(f"server for {url} exited with {proc.returncode}\n{tail}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{url} not ready after {timeout} s")


async def _load(
    url: str, bodies: list[bytes], concurrency: int, seconds: float
) -> tuple[list[float], int]:
    """Latencies (s) of the requests completed in ``seconds``, and the failures."""
    latencies: list[float] = []
    failures = 0
    stop_at = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client(offset: int) -> None:
            nonlocal failures
            i = offset
            while time.perf_counter() < stop_at:
                body = bodies[i % len(bodies)]
                i += concurrency
                start = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as reply:
                    await reply.read()
                    if reply.status != 200:
                        failures += 1
                        continue
                latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(client(k) for k in range(concurrency)))
    return latencies, failures


def measure(
    url: str, bodies: list[bytes], concurrency: int, seconds: float, warmup: float
) -> dict[str, float]:
    """Requests/s and latency percentiles (ms) of one server under one load."""
    asyncio.run(_load(url, bodies, concurrency, warmup))
    latencies, failures = asyncio.run(_load(url, bodies, concurrency, seconds))
    if failures:
        raise RuntimeError(f"{url}: {failures} failed requests")
    ordered = sorted(latencies)
    return {
        "requests_per_s": round(len(ordered) / seconds, 1),
        "p50_ms": round(1000 * statistics.median(ordered), 2),
        "p99_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 2),
        "requests": len(ordered),
    }


def bodies_for(rows: np.ndarray, columns: list[str], per_request: int) -> list[bytes]:
    """Request bodies of ``per_request`` rows each (MLflow's dataframe_split form)."""
    out = []
    for start in range(0, len(rows) - per_request + 1, per_request):
        chunk = rows[start : start + per_request].astype(np.float64)
        split = {"columns": columns, "data": chunk.tolist()}
        out.append(json.dumps({"dataframe_split": split}).encode())
    return out


def main() -> None:
    """Run the benchmark; print the summary JSON last."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="measured seconds per phase")
    parser.add_argument("--warmup", type=float, default=1.5, help="warm-up seconds per phase")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cnai-bench-serve-") as tmp:
        home = Path(tmp) / "home"
        mlflow_env = {
            "CNAI_MLFLOW_TRACKING_URI": f"sqlite:///{Path(tmp) / 'mlflow.db'}",
            "CNAI_MLFLOW_ARTIFACT_ROOT": (Path(tmp) / "artifacts").as_uri(),
        }
        rows = prepare(home, mlflow_env)
        base_env = {k: v for k, v in os.environ.items() if not k.startswith(("CNAI_", "MLFLOW_"))}
        ours_port, theirs_port = free_port(), free_port()
        ours = subprocess.Popen(
            [sys.executable, "-m", "cnai", "--home", str(home), "serve", "--port", str(ours_port)],
            env={**base_env, **mlflow_env},
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
        theirs = subprocess.Popen(
            [mlflow_bin, "models", "serve", "-m", f"models:/{MODEL}@champion",
             "--env-manager", "local", "-h", "127.0.0.1", "-p", str(theirs_port)],
            env={
                **base_env,
                "MLFLOW_TRACKING_URI": mlflow_env["CNAI_MLFLOW_TRACKING_URI"],
                # The same PyTorch thread count as ours (cnai serve --threads 1).
                "OMP_NUM_THREADS": "1",
                # It launches `uvicorn` by name: the venv's, as with an activated venv.
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{base_env.get('PATH', '')}",
            },
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            stderr=(Path(tmp) / "mlflow-serve.log").open("wb"),
        )  # fmt: skip
        try:
            ours_url, theirs_url = (
                f"http://127.0.0.1:{ours_port}",
                f"http://127.0.0.1:{theirs_port}",
            )
            wait_ready(f"{ours_url}/v2/health/ready", ours)
            wait_ready(f"{theirs_url}/ping", theirs, log=Path(tmp) / "mlflow-serve.log")
            results: dict[str, dict[str, Any]] = {}
            for label, per_request in (("single", 1), ("batched", 32)):
                bodies = bodies_for(rows, [f"pixel_{i}" for i in range(64)], per_request)
                for side, url in (
                    ("baseline", f"{theirs_url}/invocations"),
                    ("ours", f"{ours_url}/predict"),
                ):
                    results[f"{label}_{side}"] = measure(
                        url, bodies, args.concurrency, args.seconds, args.warmup
                    )
                    print(f"{label} {side}: {results[f'{label}_{side}']}", file=sys.stderr)
        finally:
            for proc in (ours, theirs):
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()

    single_ours, single_base = results["single_ours"], results["single_baseline"]
    summary = {
        "benchmark": "serve",
        "metric": "requests/s, one row per request, "
        f"{args.concurrency} concurrent clients (higher is better)",
        "ratio": round(single_ours["requests_per_s"] / single_base["requests_per_s"], 2),
        "higher_is_better": True,
        "ours": single_ours["requests_per_s"],
        "baseline": single_base["requests_per_s"],
        "unit": "requests/s",
        "p50_ms": {"ours": single_ours["p50_ms"], "baseline": single_base["p50_ms"]},
        "p99_ms": {"ours": single_ours["p99_ms"], "baseline": single_base["p99_ms"]},
        "batched_32_rows": {
            "ratio": round(
                results["batched_ours"]["requests_per_s"]
                / results["batched_baseline"]["requests_per_s"],
                2,
            ),
            "ours": results["batched_ours"],
            "baseline": results["batched_baseline"],
        },
        "target": "ratio >= 2 with ours p99 <= baseline p99",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
