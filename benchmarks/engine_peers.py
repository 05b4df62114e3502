"""Benchmark: the local engine's tax on a trivial DAG vs Metaflow and KFP's local runner.

Each side runs a linear 6-task DAG whose tasks do nothing, end to end, as a user would
start it (wall time of one command, interpreter start included):

- ours: ``cnai run --file noop.yaml`` (an Argo Workflow of 6 container tasks running
  ``python -c pass``) on a fresh home;
- Metaflow: ``python noop_flow.py run`` of a 6-step no-op flow (local datastore and
  metadata in a scratch folder);
- KFP: a script that runs a 6-component no-op pipeline with ``kfp.local``'s
  ``SubprocessRunner`` (no per-task virtual environment).

The peers are not dependencies of the project: they are installed, at the versions
pinned below, into a throwaway virtual environment under ``$CNAI_BENCH_CACHE``
(default ``~/.cache/cnai-bench``), created on first use and reused while it has the
pinned versions. Each side runs ``--repeat`` times (default 3), interleaved; medians
are compared. ratio = ours / best peer (lower is better); target: ours <= 0.4x
Metaflow's time. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PEERS = {"metaflow": "2.19.39", "kfp": "2.17.3"}
"""Pinned peer versions (Metaflow 2.19, KFP 2.x)."""
TASKS = 6
TARGET_VS_METAFLOW = 0.4

WORKFLOW = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: noop-}
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
"""

METAFLOW_FLOW = """
from metaflow import FlowSpec, step


class NoopFlow(FlowSpec):
{steps}


if __name__ == "__main__":
    NoopFlow()
"""

KFP_PIPELINE = """
import sys

from kfp import dsl, local


@dsl.component
def noop():
    pass


@dsl.pipeline
def noop_pipeline():
    previous = None
    for _ in range({tasks}):
        task = noop()
        if previous is not None:
            task.after(previous)
        previous = task


local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=sys.argv[1])
noop_pipeline()
"""


def noop_workflow(tasks: int = TASKS) -> str:
    """An Argo Workflow: a chain of ``tasks`` container tasks running ``python -c pass``."""
    lines = [WORKFLOW.rstrip("\n")]
    for index in range(tasks):
        lines.append(f"      - name: t{index}")
        lines.append("        template: noop")
        if index:
            lines.append(f"        dependencies: [t{index - 1}]")
    lines += [
        "  - name: noop",
        "    container: {image: python:3.11, command: [python, -c, pass]}",
    ]
    return "\n".join(lines) + "\n"


def metaflow_flow(tasks: int = TASKS) -> str:
    """A Metaflow flow of ``tasks`` linear no-op steps (``start`` ... ``end``)."""
    names = ["start", *[f"s{i}" for i in range(1, tasks - 1)], "end"]
    steps = []
    for name, following in zip(names, [*names[1:], None], strict=True):
        body = f"self.next(self.{following})" if following else "pass"
        steps.append(f"    @step\n    def {name}(self):\n        {body}\n")
    return METAFLOW_FLOW.format(steps="\n".join(steps))


def peer_python(cache: Path) -> Path:
    """The peer venv's interpreter, (re)created when it lacks the pinned versions."""
    folder = cache / ("peers-" + "-".join(f"{k}{v}" for k, v in sorted(PEERS.items())))
    python = folder / "bin" / "python"
    marker = folder / ".installed"
    if marker.exists() and python.exists():
        return python
    print(f"installing {PEERS} into {folder} (first run only)", file=sys.stderr)
    venv.EnvBuilder(with_pip=True, clear=True).create(folder)
    pins = [f"{name}=={version}" for name, version in sorted(PEERS.items())]
    install = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    if subprocess.run([*install, *pins], check=False).returncode != 0:
        raise SystemExit(
            f"engine_peers: cannot install {' '.join(pins)} into {folder} (pip failed)"
        )
    marker.write_text(json.dumps(PEERS))
    return python


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CNAI_", "RAY_", "METAFLOW_", "VIRTUAL_ENV"))
    }
    env.update(extra)
    return env


def _timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-4000:])
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}")
    return elapsed


def main(argv: list[str] | None = None) -> dict[str, object]:
    """Run every side ``--repeat`` times, interleaved; print and return the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    cache = Path(os.environ.get("CNAI_BENCH_CACHE") or Path.home() / ".cache" / "cnai-bench")
    peer = peer_python(cache)
    times: dict[str, list[float]] = {"ours": [], "metaflow": [], "kfp": []}
    with tempfile.TemporaryDirectory(prefix="cnai-peers-") as tmp:
        root = Path(tmp)
        (root / "noop.yaml").write_text(noop_workflow())
        (root / "noop_flow.py").write_text(metaflow_flow())
        (root / "noop_kfp.py").write_text(KFP_PIPELINE.format(tasks=TASKS))
        for index in range(args.repeat):
            home = root / f"home{index}"
            ours = [sys.executable, "-m", "cnai", "--home", str(home), "run"]
            ours += ["--file", str(root / "noop.yaml")]
            times["ours"].append(_timed(ours, REPO, _clean_env()))
            mf = root / f"mf{index}"
            mf.mkdir()
            mf_env = _clean_env(
                USERNAME="bench",
                METAFLOW_HOME=str(mf),
                METAFLOW_DEFAULT_DATASTORE="local",
                METAFLOW_DEFAULT_METADATA="local",
                METAFLOW_DATASTORE_SYSROOT_LOCAL=str(mf),
            )
            flow = [str(peer), str(root / "noop_flow.py"), "--quiet", "--no-pylint", "run"]
            times["metaflow"].append(_timed(flow, mf, mf_env))
            kfp_root = root / f"kfp{index}"
            kfp = [str(peer), str(root / "noop_kfp.py"), str(kfp_root)]
            times["kfp"].append(_timed(kfp, root, _clean_env()))
            print(
                " ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()),
                file=sys.stderr,
            )
    medians = {k: statistics.median(v) for k, v in times.items()}
    best_peer = min(("metaflow", "kfp"), key=lambda k: medians[k])
    summary: dict[str, object] = {
        "benchmark": "engine_peers",
        "ratio": round(medians["ours"] / medians[best_peer], 3),
        "ours": round(medians["ours"], 3),
        "baseline": round(medians[best_peer], 3),
        "unit": "s (median wall time of a 6-task no-op DAG)",
        "best_peer": best_peer,
        "ratio_vs_metaflow": round(medians["ours"] / medians["metaflow"], 3),
        "ratio_vs_kfp": round(medians["ours"] / medians["kfp"], 3),
        "metaflow_seconds": round(medians["metaflow"], 3),
        "kfp_seconds": round(medians["kfp"], 3),
        "runs": {k: [round(x, 3) for x in v] for k, v in times.items()},
        "versions": PEERS,
        "target_ratio_vs_metaflow": TARGET_VS_METAFLOW,
        "tasks": TASKS,
        "repeat": args.repeat,
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
