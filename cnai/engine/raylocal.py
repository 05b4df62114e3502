"""The one local Ray runtime a run's RayJob entrypoints share.

Started lazily, the first time a RayJob task actually runs (a run whose heavy tasks
are all memoized or skipped never starts Ray), and stopped when the run ends. When
the settings name a cluster (``RAY_ADDRESS``), that cluster is used instead.

The runtime is owned by a helper process (``python -m cnai.engine.raylocal``), not
by the engine: a Ray driver process is terminated by Ray when its cluster dies,
and the engine must outlive that to record the failure (and retry the task on a
fresh runtime). The helper dies with the engine (PDEATHSIG) and Ray's processes
share its fate.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from cnai.errors import CnaiError

AUTH_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


class LocalRay:
    """Gives out the address of the run's Ray runtime, starting it on first use."""

    def __init__(
        self,
        address: str | None,
        num_cpus: int | None = None,
        env: dict[str, str] | None = None,
        log: Path | None = None,
    ) -> None:
        self._given = address
        self._proc: subprocess.Popen[bytes] | None = None
        self._info: dict[str, object] | None = None
        self._lock = threading.Lock()
        self._num_cpus = num_cpus or os.cpu_count() or 1
        self._env = env
        self._log = log

    def _start(self) -> dict[str, object]:
        log = open(self._log, "ab") if self._log else subprocess.DEVNULL  # noqa: SIM115
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "cnai.engine.raylocal", str(self._num_cpus)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=self._env,
                start_new_session=True,
            )
        finally:
            if log is not subprocess.DEVNULL:
                log.close()  # type: ignore[union-attr]
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            code = self._proc.wait()
            raise CnaiError(f"the local Ray runtime did not start (exit {code}; see {self._log})")
        return dict(json.loads(line))

    def env(self) -> dict[str, str]:
        """``RAY_ADDRESS`` (plus Ray's token-auth settings) for a RayJob entrypoint."""
        if self._given:
            return {"RAY_ADDRESS": self._given}
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._info = self._start()  # first use, or the runtime died: a fresh one
            assert self._info is not None
            return {str(k): str(v) for k, v in dict(self._info["env"]).items()}  # type: ignore[call-overload]

    @property
    def started(self) -> bool:
        """True while this run's own Ray runtime is up."""
        return self._proc is not None and self._proc.poll() is None

    def shutdown(self) -> None:
        """Stop the runtime this run started (a given cluster is left alone)."""
        with self._lock:
            if self._proc is None:
                return
            with contextlib.suppress(OSError):
                if self._proc.stdin:
                    self._proc.stdin.close()
            try:
                self._proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None


def main() -> None:
    """Helper process: start Ray, print its address, hold it until stdin closes."""
    from cnai.engine.zygote import die_with_parent

    die_with_parent()
    import ray

    ray.init(
        num_cpus=int(sys.argv[1]) if len(sys.argv) > 1 else None,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    env = {"RAY_ADDRESS": str(ray.get_runtime_context().gcs_address)}
    env.update({k: os.environ[k] for k in AUTH_ENV if k in os.environ})
    print(json.dumps({"env": env}), flush=True)
    sys.stdin.read()
    ray.shutdown()


if __name__ == "__main__":
    main()
