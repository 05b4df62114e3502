"""Run a validated Experiment's trials on Ray Tune, with Katib's semantics.

- each trial runs ``cnai.training.step.run_trial`` (single worker, in-process training
  through the train step's epoch loop) in a Ray actor holding one CPU;
- at most ``parallelTrialCount`` trials run at once, bounded by the CPUs Ray has
  free when the experiment starts;
- ``medianstop`` is :class:`~cnai.tuning.medianstop.MedianStopScheduler`; the
  cnai-only ``asha`` is :class:`~cnai.tuning.asha.AshaScheduler`;
- the experiment ends when a finished trial's objective reaches the goal (running
  trials are then killed), when ``maxTrialCount`` trials ran, or when more than
  ``maxFailedTrialCount`` trials failed;
- every trial ends as ``succeeded``, ``early_stopped``, ``failed`` or ``killed``.

Everything that observes trials (MLflow logging, progress) runs in this driver
process through :class:`TrialListener` callbacks, never in the trial workers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from cnai.resolve import resolve_callable
from cnai.tuning.spec import TRIAL_METRICS, Experiment, Objective

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

    from cnai.config import Settings
    from cnai.progress import Progress

OBJECTIVE_KEY = "cnai_objective"
"""Result key: the trial's objective so far, extracted by the metric strategy."""
STEP_KEY = "epoch"
"""Result key: the 1-based step (epoch) of a report."""
PLANNED_KEY = "cnai_steps_planned"
"""Result key: how many steps the trial runs unless stopped (its last step's number)."""
DEFAULT_TRIAL_FN = "cnai.training.step:run_trial"

SUCCEEDED, EARLY_STOPPED, FAILED, KILLED, RUNNING = (
    "succeeded",
    "early_stopped",
    "failed",
    "killed",
    "running",
)


@dataclass
class TrialRecord:
    """What one trial did."""

    trial_id: str
    """Ray Tune's trial id."""
    number: int
    """1-based order in which trials started."""
    params: dict[str, Any]
    """Train hyperparameters (name -> value) the trial ran with."""
    status: str = RUNNING
    """succeeded, early_stopped, failed, killed (or running while it runs)."""
    history: dict[str, list[float]] = field(default_factory=dict)
    """Metric name -> value per epoch."""
    objective: float | None = None
    """The objective extracted from the reports by the metric strategy."""
    error: str | None = None
    """Last line of the error, for failed trials."""
    started: float = field(default_factory=time.time)
    """Start time (epoch seconds)."""
    ended: float | None = None
    """End time (epoch seconds)."""

    @property
    def epochs(self) -> int:
        """Epochs the trial reported."""
        return max((len(v) for v in self.history.values()), default=0)


class TrialListener(Protocol):
    """Observer of trial events (called in the driver process)."""

    def trial_started(self, record: TrialRecord) -> None:
        """A trial started."""

    def trial_reported(self, record: TrialRecord, epoch: int, metrics: dict[str, float]) -> None:
        """A trial reported one epoch's metrics."""

    def trial_ended(self, record: TrialRecord) -> None:
        """A trial ended (``record.status`` says how)."""


@dataclass
class Outcome:
    """The end state of an experiment run."""

    trials: list[TrialRecord]
    """Every trial that started, in start order."""
    goal_reached: bool
    """True when a trial's objective reached the goal."""
    failed_budget_exceeded: bool
    """True when more than maxFailedTrialCount trials failed."""
    parallelism: dict[str, int]
    """``requested``, ``cpus_available`` and ``effective`` concurrent trials."""

    def count(self, status: str) -> int:
        """Trials that ended with ``status``."""
        return sum(1 for t in self.trials if t.status == status)

    @property
    def trial_epochs(self) -> int:
        """Epochs run by all trials together."""
        return sum(t.epochs for t in self.trials)

    def best(self, objective: Objective) -> TrialRecord | None:
        """The trial with the best objective (succeeded or early-stopped), or None."""
        best: TrialRecord | None = None
        for record in self.trials:
            if record.objective is None or record.status not in (SUCCEEDED, EARLY_STOPPED):
                continue
            if best is None or objective.better(record.objective, best.objective or 0.0):
                best = record
        return best


def _resolve(ref: str | Callable[..., Any]) -> Callable[..., Any]:
    if callable(ref):
        return ref
    return resolve_callable(ref, what="trial function")


def _trainable(
    config: dict[str, Any],
    trial_fn: str | Callable[..., Any],
    settings: Settings,
    table: str | None,
    snapshot_id: int | None,
    objective: Objective,
) -> None:
    """Ray Tune function trainable: one trial through the train step's code path."""
    from ray import tune

    run = _resolve(trial_fn)
    values: list[float] = []

    def report(epoch: int, metrics: dict[str, float], epochs: int) -> None:
        # Steps are counted here (1-based), whatever numbering the train step uses.
        values.append(float(metrics[objective.metric]))
        result = {k: float(v) for k, v in metrics.items()}
        result[STEP_KEY] = len(values)
        result[PLANNED_KEY] = epochs
        result[OBJECTIVE_KEY] = objective.extract(objective.metric, values)
        tune.report(result)

    run(dict(config), settings=settings, table=table, snapshot_id=snapshot_id, report=report)


class _State:
    """Shared between the callback and the stopper (both live in the driver)."""

    def __init__(self, experiment: Experiment, listeners: Sequence[TrialListener]) -> None:
        self.experiment = experiment
        self.listeners = list(listeners)
        self.records: dict[str, TrialRecord] = {}
        self.early_stopped: set[str] = set()
        self.goal_reached = False
        self.failed = 0

    def __getstate__(self) -> dict[str, Any]:
        # Ray Tune pickles its run config (callbacks, stopper) to save the experiment;
        # listeners hold streams and clients and only matter in this live process.
        return {**self.__dict__, "listeners": []}

    @property
    def failed_budget_exceeded(self) -> bool:
        limit = self.experiment.max_failed_trial_count
        return limit is not None and self.failed > limit


def _callback_class() -> type:
    from ray.tune import Callback

    class _Recorder(Callback):
        """Turns Ray Tune trial events into TrialRecords and listener calls."""

        def __init__(self, state: _State) -> None:
            self.state = state

        def on_trial_start(
            self, iteration: int, trials: list[Trial], trial: Trial, **_: Any
        ) -> None:
            record = TrialRecord(
                trial.trial_id, len(self.state.records) + 1, dict(trial.config or {})
            )
            self.state.records[trial.trial_id] = record
            for listener in self.state.listeners:
                listener.trial_started(record)

        def on_trial_result(
            self,
            iteration: int,
            trials: list[Trial],
            trial: Trial,
            result: dict[str, Any],
            **_: Any,
        ) -> None:
            record = self.state.records.get(trial.trial_id)
            if record is None or STEP_KEY not in result:
                return
            metrics = {k: float(result[k]) for k in TRIAL_METRICS if k in result}
            for name, value in metrics.items():
                record.history.setdefault(name, []).append(value)
            if OBJECTIVE_KEY in result:
                record.objective = float(result[OBJECTIVE_KEY])
            for listener in self.state.listeners:
                listener.trial_reported(record, int(result[STEP_KEY]), metrics)

        def on_trial_complete(
            self, iteration: int, trials: list[Trial], trial: Trial, **_: Any
        ) -> None:
            record = self.state.records.get(trial.trial_id)
            if record is None or record.status != RUNNING:
                return
            stopped = trial.trial_id in self.state.early_stopped
            record.status = EARLY_STOPPED if stopped else SUCCEEDED
            if record.objective is None:  # ended without reporting: nothing was learned
                record.status, record.error = FAILED, "the trial reported no metrics"
                self.state.failed += 1
            elif self.state.experiment.objective.reached(record.objective):
                self.state.goal_reached = True
            self._end(record)

        def on_trial_error(
            self, iteration: int, trials: list[Trial], trial: Trial, **_: Any
        ) -> None:
            record = self.state.records.get(trial.trial_id)
            if record is None:
                record = TrialRecord(trial.trial_id, len(self.state.records) + 1, {})
                self.state.records[trial.trial_id] = record
            if record.status != RUNNING:
                return
            record.status = FAILED
            record.error = _error_line(trial)
            self.state.failed += 1
            self._end(record)

        def _end(self, record: TrialRecord) -> None:
            record.ended = time.time()
            for listener in self.state.listeners:
                listener.trial_ended(record)

    return _Recorder


def _stopper_class() -> type:
    from ray.tune.stopper import Stopper

    class _ExperimentStopper(Stopper):
        """Ends the whole experiment on goal reached or failed-trial budget exceeded."""

        def __init__(self, state: _State) -> None:
            self.state = state

        def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
            return False

        def stop_all(self) -> bool:
            return self.state.goal_reached or self.state.failed_budget_exceeded

    return _ExperimentStopper


def _error_line(trial: Trial) -> str:
    """The trial's exception as one line: the original error, not Ray's wrapper."""
    import pickle

    try:
        with open(trial.pickled_error_file, "rb") as handle:
            error = pickle.load(handle)
        cause = getattr(error, "cause", None) or error
        text = f"{type(cause).__name__}: {cause}"
    except Exception:  # noqa: BLE001 - no (readable) pickled error: fall back to the text
        try:
            with open(trial.error_file) as handle:
                text = handle.read()
        except (OSError, TypeError):
            text = ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "trial failed"


def free_cpus() -> int:
    """Whole CPUs Ray can give to trials right now."""
    import ray

    return int(ray.available_resources().get("CPU", 0.0))


def tune_storage(location: str, settings: Settings) -> tuple[str, Any]:
    """Ray Tune's ``(storage_path, storage_filesystem)`` for a folder or URI.

    A folder is created and passed as an absolute path (Ray's own local
    filesystem). A URI (``s3://bucket/prefix``: what a multi-pod Ray cluster needs,
    since a pod's folder is not shared) gets the pyarrow filesystem the training
    checkpoints use, built from the catalog's ``s3.*`` properties (endpoint, keys),
    and the path inside it, as Ray expects when a filesystem is given.
    """
    if "://" not in location:
        path = Path(location).expanduser().resolve()
        path.mkdir(parents=True, exist_ok=True)
        return str(path), None
    from cnai.training.checkpoint import filesystem, s3_options

    fs, inner = filesystem(location, s3_options(settings))
    return inner, fs


def run_experiment(
    experiment: Experiment,
    settings: Settings,
    *,
    table: str | None = None,
    snapshot_id: int | None = None,
    listeners: Sequence[TrialListener] = (),
    progress: Progress | None = None,
    trial_fn: str | Callable[..., Any] = DEFAULT_TRIAL_FN,
    storage_dir: str | None = None,
) -> Outcome:
    """Run every trial of ``experiment`` on the connected Ray cluster.

    ``trial_fn`` is ``module:function`` (or a picklable callable) with
    ``run_trial``'s signature; Ray must already be initialised
    (:func:`cnai.training.group.ensure_ray`).
    """
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    from ray import tune

    from cnai.tuning.medianstop import MedianStopRule, MedianStopScheduler
    from cnai.tuning.space import build_search

    cpus = free_cpus()
    parallel = max(1, min(experiment.parallel_trial_count, cpus))
    parallelism = {
        "requested": experiment.parallel_trial_count,
        "cpus_available": cpus,
        "effective": parallel,
    }
    if progress is not None:
        progress.info(
            f"tuning {experiment.name}: {experiment.algorithm.name}, up to "
            f"{experiment.max_trial_count} trials, {parallel} at once "
            f"(parallelTrialCount {experiment.parallel_trial_count}, {cpus} CPU(s) free)"
        )

    state = _State(experiment, listeners)
    search, space, samples = build_search(experiment, OBJECTIVE_KEY, parallel)
    scheduler: Any
    if experiment.early_stopping is not None and experiment.early_stopping.algorithm == "asha":
        from cnai.tuning.asha import AshaScheduler

        es = experiment.early_stopping
        scheduler = AshaScheduler(
            es.grace_period, es.reduction_factor, es.max_t, STEP_KEY, PLANNED_KEY
        )
        state.early_stopped = scheduler.early_stopped
    elif experiment.early_stopping is not None:
        rule = MedianStopRule(
            experiment.early_stopping.min_trials_required,
            experiment.early_stopping.start_step,
            experiment.objective.mode,
        )
        scheduler = MedianStopScheduler(rule, experiment.objective.metric, STEP_KEY, PLANNED_KEY)
        state.early_stopped = scheduler.early_stopped
    else:
        from ray.tune.schedulers import FIFOScheduler

        scheduler = FIFOScheduler()

    trainable = tune.with_resources(
        tune.with_parameters(
            _trainable,
            trial_fn=trial_fn,
            settings=settings,
            table=table,
            snapshot_id=snapshot_id,
            objective=experiment.objective,
        ),
        {"cpu": 1},
    )
    storage, storage_fs = tune_storage(storage_dir or settings.tune_storage_path, settings)
    tuner = tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(
            metric=OBJECTIVE_KEY,
            mode=experiment.objective.mode,
            search_alg=search,
            scheduler=scheduler,
            num_samples=samples,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=f"{experiment.name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}",
            storage_path=storage,
            storage_filesystem=storage_fs,
            stop=_stopper_class()(state),
            callbacks=[_callback_class()(state)],
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )
    tuner.fit()
    for record in state.records.values():
        if record.status == RUNNING:  # stopped because the experiment ended
            record.status = KILLED
            record.ended = time.time()
            for listener in state.listeners:
                listener.trial_ended(record)
    return Outcome(
        trials=sorted(state.records.values(), key=lambda r: r.number),
        goal_reached=state.goal_reached,
        failed_budget_exceeded=state.failed_budget_exceeded,
        parallelism=parallelism,
    )
