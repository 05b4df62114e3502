"""A Ray worker group running one function per rank under ``torch.distributed``.

This is the small part of Ray Train cnai needs, without its per-``fit`` start-up
cost (see docs/training.md):

- **placement**: one placement-group bundle per rank (1 CPU, plus 1 GPU with
  ``use_gpu``), PACK strategy, one actor per bundle;
- **rendezvous**: rank 0's actor picks a free port on its node; every rank joins
  the process group at ``tcp://<rank-0 node ip>:<port>`` (gloo or NCCL);
- **failure detection**: each rank's function is a streaming generator; the driver
  waits on all of them at once, so a dead actor (``RayActorError``) or a collective
  broken by a dead peer surfaces within moments;
- **bounded restarts**: on such a failure every actor and the placement group are
  torn down and a fresh group starts (``attempt`` + 1), up to ``max_restarts``;
  resuming from a checkpoint is the rank function's job.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cnai.errors import CnaiError, UsageError

if TYPE_CHECKING:
    from cnai.config import Settings
    from cnai.progress import Progress

RankFunction = Callable[["RankContext", Any], Iterator[Any]]
"""A generator run on every rank: (context, payload) -> items streamed to the driver."""

PLACEMENT_TIMEOUT_S = float(os.environ.get("CNAI_PLACEMENT_TIMEOUT", "120"))
"""How long to wait for the cluster to place every worker before failing."""

COLLECTIVE_TIMEOUT_S = 600
"""torch.distributed timeout: the longest a rank waits for its peers in a collective."""


@dataclass(frozen=True)
class RankContext:
    """What a rank function knows about its place in the group."""

    rank: int
    """This worker's rank, 0..world_size-1."""
    world_size: int
    """Number of ranks."""
    backend: str
    """torch.distributed backend: ``gloo`` or ``nccl``."""
    use_gpu: bool
    """True when this rank owns a GPU (``cuda:0`` of its visible devices)."""
    attempt: int
    """0 for the first start, +1 after each restart."""
    node_ip: str
    """IP address of the node running this rank."""


@dataclass(frozen=True)
class GroupResult:
    """Outcome of :func:`run_group`."""

    restarts: int
    """Times the group was restarted after a worker failure."""
    backend: str
    """The torch.distributed backend used."""


def ensure_ray(settings: Settings) -> bool:
    """Make sure this process is connected to Ray; True when this call connected it.

    Reuses an initialised Ray; else connects to ``settings.ray_address`` (or
    ``RAY_ADDRESS``); else starts a local Ray sized to this machine.
    """
    import ray

    if ray.is_initialized():
        return False
    options: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "configure_logging": True,
        "logging_level": logging.WARNING,
    }
    address = settings.ray_address or os.environ.get("RAY_ADDRESS")
    try:
        if address:
            ray.init(address=address, **options, **_project_runtime_env())
        else:
            ray.init(num_cpus=os.cpu_count() or 1, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"RAY_ADDRESS {address}" if address else "local Ray"
        raise CnaiError(f"{where}: cannot start or connect to Ray ({exc})") from exc
    return True


def _project_runtime_env() -> dict[str, Any]:
    """``runtime_env`` giving the workers of an existing cluster the project on their path.

    A cluster this process did not start has workers with the cluster's environment,
    not this process's ``PYTHONPATH``: without this, a model factory or step of the
    project (``steps.models:digits_cnn``) would not import there. Nothing without a
    project (a pod's image puts the project on ``PYTHONPATH`` itself).
    """
    from cnai.project import find_project

    project = find_project()
    if project is None:
        return {}
    rest = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    path = os.pathsep.join(dict.fromkeys([str(project.root), *rest]))
    return {"runtime_env": {"env_vars": {"PYTHONPATH": path}}}


def cluster_gpus() -> float:
    """GPUs the connected Ray cluster has in total."""
    import ray

    return float(ray.cluster_resources().get("GPU", 0))


def _worker_class() -> Any:
    """The actor class (defined lazily so importing this module does not import Ray)."""
    import ray

    @ray.remote(max_restarts=0)
    class TrainWorker:
        """One rank: joins the process group, then streams what the rank function yields."""

        def rendezvous(self) -> tuple[str, int]:
            """This node's IP and a free TCP port on it (called on rank 0)."""
            ip = ray.util.get_node_ip_address()
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("", 0))
                port = int(sock.getsockname()[1])
            return ip, port

        def pid(self) -> int:
            """This worker's process id."""
            return os.getpid()

        def run(
            self,
            function: RankFunction,
            payload: Any,
            rank: int,
            world_size: int,
            master: tuple[str, int],
            backend: str,
            use_gpu: bool,
            attempt: int,
        ) -> Iterator[Any]:
            """Join the group, run ``function`` and stream its items to the driver."""
            from datetime import timedelta

            import torch.distributed as dist

            dist.init_process_group(
                backend=backend,
                init_method=f"tcp://{master[0]}:{master[1]}",
                rank=rank,
                world_size=world_size,
                timeout=timedelta(seconds=COLLECTIVE_TIMEOUT_S),
            )
            context = RankContext(
                rank, world_size, backend, use_gpu, attempt, ray.util.get_node_ip_address()
            )
            try:
                yield from function(context, payload)
            finally:
                dist.destroy_process_group()

    return TrainWorker


_WORKER: Any = None


def worker_class() -> Any:
    """The (cached) Ray actor class of one rank."""
    global _WORKER
    if _WORKER is None:
        _WORKER = _worker_class()
    return _WORKER


def _is_restartable(exc: BaseException) -> bool:
    """True for a dead worker, or a collective broken because a peer died."""
    from ray.exceptions import ActorDiedError, RayActorError, RayTaskError, WorkerCrashedError

    if isinstance(exc, (RayActorError, ActorDiedError, WorkerCrashedError)):
        return True
    if isinstance(exc, RayTaskError):
        cause = exc.cause
        text = f"{type(cause).__name__}: {cause}"
        markers = (
            "DistBackendError",
            "Connection closed by peer",
            "Connection reset",
            "gloo",
            "NCCL",
            "Broken pipe",
            "Timed out",
            "timed out",
        )
        return any(marker in text for marker in markers)
    return False


def run_group(
    function: RankFunction,
    payload: Any,
    world_size: int,
    *,
    use_gpu: bool = False,
    max_restarts: int = 2,
    on_item: Callable[[int, Any], None] | None = None,
    on_restart: Callable[[int, BaseException], None] | None = None,
    progress: Progress | None = None,
) -> GroupResult:
    """Run ``function`` on ``world_size`` DDP ranks; restart the group on worker failure.

    Each item a rank yields goes to ``on_item(rank, item)`` as soon as it arrives.
    Raises CnaiError when the group cannot be placed, fails for a reason a restart
    cannot fix, or fails more than ``max_restarts`` times.
    """
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    if world_size < 1:
        raise UsageError(f"--workers {world_size}: must be at least 1")
    backend = "nccl" if use_gpu else "gloo"
    bundle = {"CPU": 1.0, **({"GPU": 1.0} if use_gpu else {})}
    worker = worker_class()
    attempt = 0
    while True:
        group = placement_group([dict(bundle) for _ in range(world_size)], strategy="PACK")
        actors: list[Any] = []
        try:
            ready, _ = ray.wait([group.ready()], timeout=PLACEMENT_TIMEOUT_S)
            if not ready:
                raise CnaiError(
                    f"--workers {world_size}: the Ray cluster could not place {world_size} "
                    f"worker(s) of {bundle} within {PLACEMENT_TIMEOUT_S:.0f}s "
                    f"(available: {ray.available_resources()})"
                )
            for index in range(world_size):
                strategy = PlacementGroupSchedulingStrategy(
                    placement_group=group, placement_group_bundle_index=index
                )
                actors.append(
                    worker.options(
                        num_cpus=1, num_gpus=1 if use_gpu else 0, scheduling_strategy=strategy
                    ).remote()
                )
            master = ray.get(actors[0].rendezvous.remote())
            streams = {
                actor.run.remote(
                    function, payload, rank, world_size, master, backend, use_gpu, attempt
                ): rank
                for rank, actor in enumerate(actors)
            }
            _drain(streams, on_item)
            return GroupResult(restarts=attempt, backend=backend)
        except Exception as exc:
            if not _is_restartable(exc):
                unwrapped = _unwrap(exc)
                if unwrapped is exc:
                    raise
                raise unwrapped from exc
            if attempt >= max_restarts:
                raise CnaiError(
                    f"training failed after {attempt} restart(s) (max_restarts {max_restarts}): "
                    f"{_describe(exc)}"
                ) from exc
            attempt += 1
            if progress is not None:
                progress.info(f"worker failure ({_describe(exc)}); restart {attempt}")
            if on_restart is not None:
                on_restart(attempt, exc)
        finally:
            for actor in actors:
                ray.kill(actor, no_restart=True)
            remove_placement_group(group)


def _drain(streams: dict[Any, int], on_item: Callable[[int, Any], None] | None) -> None:
    """Deliver every rank's items until all streams end; raise the first failure."""
    import ray

    pending: list[Any] = list(streams)
    while pending:
        ready: list[Any] = ray.wait(pending, num_returns=1)[0]
        for stream in ready:
            try:
                ref = next(stream)
            except StopIteration:
                pending.remove(stream)
                continue
            item = ray.get(ref)
            if on_item is not None:
                on_item(streams[stream], item)


def _unwrap(exc: Exception) -> Exception:
    """A worker's own CnaiError as is; any other worker exception as a one-line CnaiError."""
    from ray.exceptions import RayTaskError

    if isinstance(exc, RayTaskError):
        if isinstance(exc.cause, CnaiError):
            return exc.cause
        return CnaiError(f"training worker failed: {_describe(exc)}")
    return exc


def _describe(exc: BaseException) -> str:
    """One line naming what failed."""
    from ray.exceptions import RayActorError, RayTaskError

    if isinstance(exc, RayActorError):
        return "a worker process died"
    if isinstance(exc, RayTaskError):
        cause = exc.cause
        return f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}"
    return f"{type(exc).__name__}: {exc}"
