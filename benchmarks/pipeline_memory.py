"""Benchmark: peak memory of the whole `cnai run` against the plain single-process script.

Runs the same work as ``benchmarks/pipeline.py`` (ingest the digits data, a 2-trial
tune, train one worker, register) twice on fresh homes: ``cnai run`` and the plain
script that calls the four step functions in one process. While each runs, a
sampler sums the resident set size (RSS) of the command's process and every
descendant (the engine, its task zygote and entrypoints, the local Ray runtime's
raylet/GCS/workers and Ray's own helpers) every ``--interval`` seconds; the peak of
that sum is reported. RSS counts shared pages (libraries, fork-shared memory) once
per process, so the sum over-states the true footprint of many similar processes;
both sides are measured the same way.

The last line printed is one JSON object: ``ratio`` = peak with ``cnai run`` / peak
of the plain script (lower is better; there is no target yet, this is to make
growth visible).

Usage: ``.venv/bin/python benchmarks/pipeline_memory.py [--interval S]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.pipeline import BASELINE, EXPERIMENT, _env  # noqa: E402

MIB = 1024 * 1024


@dataclass
class TreeUsage:
    """What one sampled command used."""

    seconds: float
    """Wall time of the command."""
    peak_rss: int
    """Highest sum of RSS over the process tree seen in one sample, bytes."""
    peak_processes: int
    """Number of processes in the tree at that sample."""
    samples: int
    """Samples taken."""


def tree_rss(root: psutil.Process) -> tuple[int, int]:
    """Sum of RSS of ``root`` and all its descendants, and how many there were."""
    total, count = 0, 0
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0, 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
            count += 1
        except psutil.Error:  # exited between listing and reading
            continue
    return total, count


def run_sampled(cmd: list[str], interval: float, cwd: Path = REPO) -> TreeUsage:
    """Run ``cmd``, sampling its process tree's summed RSS until it exits."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    root = psutil.Process(proc.pid)
    peak = [0, 0, 0]  # bytes, processes, samples
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            rss, count = tree_rss(root)
            peak[2] += 1
            if rss > peak[0]:
                peak[0], peak[1] = rss, count
            done.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    if proc.returncode != 0:
        sys.stderr.write(out[-2000:] + err[-4000:])
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}")
    return TreeUsage(elapsed, peak[0], peak[1], peak[2])


def cnai_run(home: Path, experiment: Path) -> list[str]:
    """The ``cnai run`` command of the pipeline benchmarks."""
    return [
        sys.executable, "-m", "cnai", "--home", str(home), "run",
        "-p", "workers=1", "-p", f"experiment={experiment}", "-p", "git_sha=bench",
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run both, print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between samples")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cnai-bench-mem-") as tmp:
        root = Path(tmp)
        experiment = root / "bench.yaml"
        experiment.write_text(EXPERIMENT)
        ours = run_sampled(cnai_run(root / "ours", experiment), args.interval)
        print(
            f"cnai run: peak {ours.peak_rss / MIB:.0f} MiB over {ours.peak_processes} "
            f"processes, {ours.seconds:.1f}s",
            file=sys.stderr,
        )
        script = root / "baseline.py"
        script.write_text(BASELINE)
        base = run_sampled(
            [sys.executable, str(script), str(root / "base"), str(experiment)], args.interval
        )
        print(
            f"plain script: peak {base.peak_rss / MIB:.0f} MiB over {base.peak_processes} "
            f"processes, {base.seconds:.1f}s",
            file=sys.stderr,
        )
    print(
        json.dumps(
            {
                "benchmark": "pipeline_memory",
                "ratio": round(ours.peak_rss / base.peak_rss, 3),
                "ours": round(ours.peak_rss / MIB, 1),
                "baseline": round(base.peak_rss / MIB, 1),
                "unit": "MiB (peak of summed RSS over the process tree)",
                "ours_processes_at_peak": ours.peak_processes,
                "baseline_processes_at_peak": base.peak_processes,
                "ours_seconds": round(ours.seconds, 2),
                "baseline_seconds": round(base.seconds, 2),
                "sample_interval_s": args.interval,
                "cpus": os.cpu_count(),
                "load_average_1m": round(os.getloadavg()[0], 2),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
