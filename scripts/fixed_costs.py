"""Measure the pipeline's fixed costs one at a time (for docs/performance.md).

Each cost is timed in a fresh interpreter, so one does not warm the next (the OS
file cache is warm after the first run either way):

- interpreter start (``python -c pass``) and the import of each heavy library;
- starting and stopping a local Ray runtime (``ray.init`` with 2 CPUs);
- MLflow's first and second ``pyfunc.log_model`` in one process (SQLite tracking in
  a temporary folder), which shows what the first call pays once;
- Iceberg metadata: open the home's catalog, load the table, read its current
  snapshot (``--home`` must hold an ingested ``cnai.digits``).

Prints one JSON object of seconds. Usage:
``.venv/bin/python scripts/fixed_costs.py --home <ingested home>``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

IMPORTS = (
    "pyarrow",
    "pyiceberg.catalog.sql",
    "hera.workflows",
    "mlflow",
    "torch",
    "ray",
    "ray.tune",
    "ray.train.torch",
    "cnai.cli",
)

RAY_START = """
import time, ray
t = time.perf_counter()
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
up = time.perf_counter() - t
t = time.perf_counter()
ray.shutdown()
print(up, time.perf_counter() - t)
"""

MLFLOW_LOG = """
import sys, tempfile, time
import mlflow
from mlflow.pyfunc import PythonModel

class Echo(PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input

with tempfile.TemporaryDirectory() as tmp:
    mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
    t = time.perf_counter()
    mlflow.set_experiment("fixed-costs")
    setup = time.perf_counter() - t
    times = []
    for _ in range(2):
        with mlflow.start_run():
            t = time.perf_counter()
            mlflow.pyfunc.log_model(name="model", python_model=Echo(), pip_requirements=["x"])
            times.append(time.perf_counter() - t)
print(setup, *times)
"""

ICEBERG = """
import sys, time
from cnai.config import load_settings
from cnai.catalog import open_catalog
settings = load_settings(sys.argv[1], environ={})
t = time.perf_counter()
catalog = open_catalog(settings)
opened = time.perf_counter() - t
t = time.perf_counter()
table = catalog.load_table("cnai.digits")
snapshot = table.current_snapshot()
print(opened, time.perf_counter() - t)
"""


def timed(code: str, *args: str) -> tuple[float, str]:
    """Run ``code`` in a fresh interpreter; return its wall time and stdout."""
    with tempfile.TemporaryDirectory(prefix="cnai-fixed-costs-") as cwd:
        # a scratch working directory: MLflow writes artifacts under ./mlruns by default
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", code, *args],
            capture_output=True,
            text=True,
            check=False,
            cwd=cwd,
        )
        elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"failed: {code[:60]!r}: {proc.stderr[-2000:]}")
    return elapsed, proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""


def main(argv: list[str] | None = None) -> int:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True, help="a cnai home with cnai.digits ingested")
    args = parser.parse_args(argv)
    out: dict[str, float] = {}
    base, _ = timed("pass")
    out["interpreter_start"] = base
    for module in IMPORTS:
        out[f"import {module}"] = timed(f"import {module}")[0] - base
    _, line = timed(RAY_START)
    up, down = (float(x) for x in line.split())
    out["ray.init"], out["ray.shutdown"] = up, down
    _, line = timed(MLFLOW_LOG)
    setup, first, second = (float(x) for x in line.split())
    out["mlflow set_experiment (new SQLite store)"] = setup
    out["mlflow first log_model"], out["mlflow second log_model"] = first, second
    _, line = timed(ICEBERG, args.home)
    opened, loaded = (float(x) for x in line.split())
    out["iceberg open catalog"], out["iceberg load table + snapshot"] = opened, loaded
    print(json.dumps({k: round(v, 3) for k, v in out.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
