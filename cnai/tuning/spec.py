"""The supported subset of a Katib ``kubeflow.org/v1beta1`` ``Experiment``.

:func:`parse_experiment` turns the YAML mapping into an :class:`Experiment` or
raises :class:`~cnai.errors.UsageError` naming the field path (for example
``spec.parameters[2].feasibleSpace.min``) of the first field that is unsupported
or invalid. Nothing that would change behaviour is ignored.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cnai.errors import UsageError

API_VERSION = "kubeflow.org/v1beta1"
KIND = "Experiment"

TRIAL_METRICS = ("val_accuracy", "val_loss", "train_loss", "val_rmse")
"""Metrics every trial reports once per epoch (the train step's ``run_trial`` contract)."""

ALGORITHM_SETTINGS: dict[str, tuple[str, ...]] = {
    "random": ("random_state",),
    "grid": (),
    "tpe": ("random_state", "n_startup_trials", "n_ei_candidates"),
    "bayesianoptimization": ("random_state", "n_initial_points", "base_estimator"),
}
"""Supported ``algorithm.algorithmName`` values and the ``algorithmSettings`` each accepts."""

PARAMETER_TYPES = ("double", "int", "categorical", "discrete")
DISTRIBUTIONS = ("uniform", "logUniform")
METRIC_STRATEGIES = ("min", "max", "latest")
DEFAULT_PARALLEL_TRIAL_COUNT = 3  # Katib's default
MEDIANSTOP_DEFAULTS = {"min_trials_required": 3, "start_step": 4}  # Katib's defaults
ASHA_DEFAULTS = {"grace_period": 1, "reduction_factor": 3, "max_t": 100}
"""Defaults of the cnai-only ``asha`` early-stopping algorithm (not in Katib v1beta1)."""
EARLY_STOPPING_SETTINGS = {"medianstop": MEDIANSTOP_DEFAULTS, "asha": ASHA_DEFAULTS}
"""Supported ``earlyStopping.algorithmName`` values and their settings' defaults."""
CNAI_ONLY_EARLY_STOPPING = ("asha",)
"""Early-stopping algorithms that are cnai extensions: Katib v1beta1 defines only medianstop."""
DEFAULT_MAX_GRID_POINTS = 100_000
"""Default bound on a grid's size and on the values of any one enumerated parameter."""
MAX_GRID_ENV = "CNAI_TUNE_MAX_GRID_POINTS"
"""Environment variable overriding :data:`DEFAULT_MAX_GRID_POINTS`."""


def max_grid_points(environ: Mapping[str, str] | None = None) -> int:
    """The bound set by ``CNAI_TUNE_MAX_GRID_POINTS`` (an integer >= 1)."""
    from cnai.config import env_int

    env = os.environ if environ is None else environ
    return env_int(env, MAX_GRID_ENV, DEFAULT_MAX_GRID_POINTS)


PyType = type
"""Alias of ``type`` usable where a dataclass field is itself named ``type``."""

_NAME_RULE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_TOP_KEYS = ("apiVersion", "kind", "metadata", "spec")
_METADATA_KEYS = ("name", "namespace", "labels", "annotations")
_SPEC_KEYS = (
    "objective",
    "algorithm",
    "earlyStopping",
    "parameters",
    "parallelTrialCount",
    "maxTrialCount",
    "maxFailedTrialCount",
    "trialTemplate",
    "metricsCollectorSpec",
    "resumePolicy",
)
_RESUME_POLICIES = ("Never", "LongRunning", "FromVolume")
_TRIAL_TEMPLATE_KEYS = (
    "trialParameters",
    "trialSpec",
    "primaryContainerName",
    "successCondition",
    "failureCondition",
)


@dataclass(frozen=True)
class Objective:
    """What the experiment optimises (``spec.objective``)."""

    type: str
    """``maximize`` or ``minimize``."""
    metric: str
    """``objectiveMetricName``: one of :data:`TRIAL_METRICS`."""
    goal: float | None = None
    """Stop the experiment once a trial's objective reaches this value."""
    additional_metrics: tuple[str, ...] = ()
    """``additionalMetricNames``: further metrics recorded per trial."""
    strategies: dict[str, str] = field(default_factory=dict)
    """Metric name -> how a trial's value is extracted from its reports (min|max|latest)."""

    @property
    def mode(self) -> str:
        """Ray Tune's name for the direction: ``max`` or ``min``."""
        return "max" if self.type == "maximize" else "min"

    def better(self, a: float, b: float) -> bool:
        """True when objective value ``a`` is strictly better than ``b``."""
        return a > b if self.type == "maximize" else a < b

    def reached(self, value: float) -> bool:
        """True when ``value`` meets the goal (never when there is no goal)."""
        if self.goal is None:
            return False
        return value >= self.goal if self.type == "maximize" else value <= self.goal

    def extract(self, metric: str, values: list[float]) -> float:
        """A trial's value of ``metric`` from its per-step reports, per its strategy."""
        strategy = self.strategies.get(metric, "latest")
        if strategy == "max":
            return max(values)
        if strategy == "min":
            return min(values)
        return values[-1]


@dataclass(frozen=True)
class Parameter:
    """One search-space dimension (``spec.parameters[index]``)."""

    name: str
    """The Katib parameter name."""
    type: str
    """``double``, ``int``, ``categorical`` or ``discrete``."""
    target: str
    """The train step hyperparameter it sets (via ``trialTemplate.trialParameters``)."""
    target_type: PyType
    """Python type of that hyperparameter."""
    index: int
    """Position in ``spec.parameters`` (for error paths and plots)."""
    min: float | None = None
    """Lower bound (double, int)."""
    max: float | None = None
    """Upper bound, inclusive (double, int)."""
    step: float | None = None
    """Spacing of the allowed values from ``min`` (double, int); None: continuous / 1."""
    distribution: str = "uniform"
    """``uniform`` or ``logUniform`` (double, int)."""
    values: tuple[Any, ...] = ()
    """Allowed values, converted to the hyperparameter's type (categorical, discrete)."""

    @property
    def path(self) -> str:
        """Field path of this parameter in the spec."""
        return f"spec.parameters[{self.index}]"

    def count(self) -> int | None:
        """Number of allowed values, computed without listing them; None when continuous."""
        if self.values:
            return len(self.values)
        assert self.min is not None and self.max is not None
        if self.type == "int":
            step = int(self.step or 1)
            return (int(self.max) - int(self.min)) // step + 1
        if self.step is None:
            return None
        return math.floor((self.max - self.min) / self.step + 1e-9) + 1

    def value_at(self, k: int) -> Any:
        """The ``k``-th allowed value (0-based) of a finite space."""
        if self.values:
            return self.values[k]
        assert self.min is not None
        if self.type == "int":
            return self.convert(int(self.min) + k * int(self.step or 1))
        assert self.step is not None
        return self.convert(round(self.min + k * self.step, 12))

    def grid(self) -> tuple[Any, ...] | None:
        """Every allowed value when the space is finite, else None (continuous double).

        The parser refuses spaces that would list more than ``CNAI_TUNE_MAX_GRID_POINTS``
        values, so the tuple stays bounded.
        """
        if self.values:
            return self.values
        count = self.count()
        if count is None:
            return None
        return tuple(self.value_at(k) for k in range(count))

    def convert(self, value: Any) -> Any:
        """``value`` as the hyperparameter's Python type."""
        return self.target_type(value)


@dataclass(frozen=True)
class Algorithm:
    """The search algorithm (``spec.algorithm``)."""

    name: str
    """One of :data:`ALGORITHM_SETTINGS`."""
    settings: dict[str, str] = field(default_factory=dict)
    """``algorithmSettings`` as given (name -> string value)."""

    @property
    def random_state(self) -> int | None:
        """The ``random_state`` setting, when given."""
        value = self.settings.get("random_state")
        return int(value) if value is not None else None

    def int_setting(self, name: str, default: int) -> int:
        """An integer setting, else ``default``."""
        value = self.settings.get(name)
        return int(value) if value is not None else default


@dataclass(frozen=True)
class EarlyStopping:
    """Early-stopping settings (``spec.earlyStopping``): Katib ``medianstop`` or cnai ``asha``."""

    min_trials_required: int = MEDIANSTOP_DEFAULTS["min_trials_required"]
    """medianstop: completed trials needed before any trial is stopped."""
    start_step: int = MEDIANSTOP_DEFAULTS["start_step"]
    """medianstop: first step (epoch, 1-based) at which a trial may be stopped."""
    algorithm: str = "medianstop"
    """``algorithmName``: ``medianstop`` (Katib) or ``asha`` (a cnai extension)."""
    grace_period: int = ASHA_DEFAULTS["grace_period"]
    """asha: steps every trial runs before its first promotion decision (the first rung)."""
    reduction_factor: int = ASHA_DEFAULTS["reduction_factor"]
    """asha: only the top 1/reduction_factor of trials at a rung go on to the next."""
    max_t: int = ASHA_DEFAULTS["max_t"]
    """asha: rungs are grace_period * reduction_factor**k below this many steps."""


@dataclass(frozen=True)
class TrialArgs:
    """Fixed train-step arguments a round-tripped (exported) trial template carries."""

    table: str | None = None
    """``--table`` of the exported trial command."""
    snapshot_id: int | None = None
    """``--snapshot-id`` of the exported trial command."""
    image: str | None = None
    """Image of the exported trial container."""


@dataclass(frozen=True)
class Experiment:
    """A validated Katib Experiment, in the terms cnai executes it."""

    name: str
    """``metadata.name``."""
    objective: Objective
    """``spec.objective``."""
    algorithm: Algorithm
    """``spec.algorithm``."""
    parameters: tuple[Parameter, ...]
    """``spec.parameters`` with their train-step targets."""
    max_trial_count: int
    """``spec.maxTrialCount`` (for grid: at most the grid size)."""
    parallel_trial_count: int = DEFAULT_PARALLEL_TRIAL_COUNT
    """``spec.parallelTrialCount`` as requested (the runner bounds it by free CPUs)."""
    max_failed_trial_count: int | None = None
    """``spec.maxFailedTrialCount``; None: failed trials never fail the experiment."""
    early_stopping: EarlyStopping | None = None
    """``spec.earlyStopping`` (medianstop, or the cnai-only asha), or None."""
    namespace: str | None = None
    """``metadata.namespace``."""
    resume_policy: str | None = None
    """``spec.resumePolicy``: only meaningful to a Katib cluster; exported as given."""
    trial_args: TrialArgs = field(default_factory=TrialArgs)
    """Fixed arguments found in a round-tripped trial template."""
    source: str = "<experiment>"
    """Where the spec came from (used in error messages)."""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    """The mapping as given."""

    @property
    def targets(self) -> dict[str, str]:
        """Katib parameter name -> train hyperparameter name."""
        return {p.name: p.target for p in self.parameters}

    def grid_size(self) -> int | None:
        """Number of grid points (computed, not listed), or None when a dimension is continuous."""
        total = 1
        for parameter in self.parameters:
            count = parameter.count()
            if count is None:
                return None
            total *= count
        return total


class _Fields:
    """Error helper: raises UsageError as ``<source>: <path>: <problem>``."""

    def __init__(self, source: str, owner: str = "the train step") -> None:
        self.source = source
        self.owner = owner

    def fail(self, path: str, problem: str) -> UsageError:
        return UsageError(f"{self.source}: {path}: {problem}")

    def mapping(self, value: Any, path: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(path, f"must be a mapping, got {type(value).__name__}")
        for key in value:
            if key not in allowed:
                where = f"{path}.{key}" if path else str(key)
                raise self.fail(
                    where, f"not supported by cnai tune (supported here: {', '.join(allowed)})"
                )
        return dict(value)

    def sequence(self, value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(path, f"must be a list, got {type(value).__name__}")
        return value

    def string(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(path, "must be a non-empty string")
        return value

    def integer(self, value: Any, path: str, minimum: int | None = None) -> int:
        if isinstance(value, bool):
            raise self.fail(path, f"{value!r} is not an integer")
        try:
            number = int(value) if isinstance(value, (int, str)) else None
        except ValueError:
            number = None
        if number is None:
            raise self.fail(path, f"{value!r} is not an integer")
        if minimum is not None and number < minimum:
            raise self.fail(path, f"{number} must be at least {minimum}")
        return number

    def number(self, value: Any, path: str) -> float:
        if isinstance(value, bool):
            raise self.fail(path, f"{value!r} is not a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise self.fail(path, f"{value!r} is not a number") from None
        if not math.isfinite(number):
            raise self.fail(path, f"{value!r} is not a finite number")
        return number


def load_experiment(
    path: str | os.PathLike[str], hyperparameters: Mapping[str, type], owner: str | None = None
) -> Experiment:
    """Read and validate the Experiment YAML at ``path`` (see :func:`parse_experiment`)."""
    source = str(path)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise UsageError(f"--experiment {source}: cannot read: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = str(exc).replace("\n", " ")
        raise UsageError(f"{source}: not valid YAML: {problem}") from exc
    return parse_experiment(data, hyperparameters, source=source, owner=owner)


def parse_experiment(
    data: Any,
    hyperparameters: Mapping[str, type],
    source: str = "<experiment>",
    max_grid: int | None = None,
    owner: str | None = None,
) -> Experiment:
    """Validate a Katib Experiment mapping against the supported subset.

    ``hyperparameters`` maps each train step hyperparameter name to its Python type
    (the loop's and the model factory's, :func:`cnai.training.hparams.hyperparameters`);
    every search parameter must set one, or the spec is refused naming ``owner`` (who
    declares them, e.g. ``the training loop or model factory mymodels:mlp``).
    ``max_grid`` bounds the grid size and the values of any parameter cnai lists
    (default: ``CNAI_TUNE_MAX_GRID_POINTS``, else :data:`DEFAULT_MAX_GRID_POINTS`).
    """
    limit = max_grid_points() if max_grid is None else max_grid
    f = _Fields(source, owner or "the train step")
    top = f.mapping(data, "", _TOP_KEYS)
    if top.get("apiVersion") != API_VERSION:
        raise f.fail("apiVersion", f"must be {API_VERSION}, got {top.get('apiVersion')!r}")
    if top.get("kind") != KIND:
        raise f.fail("kind", f"must be {KIND}, got {top.get('kind')!r}")
    metadata = f.mapping(top.get("metadata"), "metadata", _METADATA_KEYS)
    name = f.string(metadata.get("name"), "metadata.name")
    if not _NAME_RULE.match(name) or len(name) > 63:
        raise f.fail(
            "metadata.name",
            f"{name!r} must be lower-case letters, digits and '-', starting with a letter",
        )
    namespace = metadata.get("namespace")
    if namespace is not None:
        f.string(namespace, "metadata.namespace")
    spec = f.mapping(top.get("spec"), "spec", _SPEC_KEYS)

    objective = _objective(f, spec.get("objective"))
    algorithm = _algorithm(f, spec.get("algorithm"))
    early_stopping = _early_stopping(f, spec.get("earlyStopping"))
    targets, trial_args = _trial_template(f, spec, hyperparameters)
    parameters = _parameters(f, spec.get("parameters"), targets, hyperparameters, algorithm)

    resume = spec.get("resumePolicy")
    if resume is not None and resume not in _RESUME_POLICIES:
        raise f.fail("spec.resumePolicy", f"must be one of {', '.join(_RESUME_POLICIES)}")
    _metrics_collector(f, spec.get("metricsCollectorSpec"))

    parallel = spec.get("parallelTrialCount")
    parallel_count = (
        DEFAULT_PARALLEL_TRIAL_COUNT
        if parallel is None
        else f.integer(parallel, "spec.parallelTrialCount", 1)
    )
    grid_size = _check_sizes(f, parameters, algorithm, limit)
    max_trials_raw = spec.get("maxTrialCount")
    if max_trials_raw is None:
        if grid_size is None:
            raise f.fail(
                "spec.maxTrialCount",
                f"required for algorithm {algorithm.name} (cnai runs no open-ended search)",
            )
        max_trials = grid_size
    else:
        max_trials = f.integer(max_trials_raw, "spec.maxTrialCount", 1)
        if grid_size is not None:
            max_trials = min(max_trials, grid_size)
    if parallel is not None and max_trials_raw is not None and parallel_count > max_trials:
        raise f.fail(
            "spec.parallelTrialCount",
            f"{parallel_count} must not exceed spec.maxTrialCount ({max_trials})",
        )
    parallel_count = min(parallel_count, max_trials)
    max_failed = None
    if spec.get("maxFailedTrialCount") is not None:
        max_failed = f.integer(spec["maxFailedTrialCount"], "spec.maxFailedTrialCount", 0)
        if max_trials_raw is not None and max_failed > max_trials:
            raise f.fail(
                "spec.maxFailedTrialCount",
                f"{max_failed} must not exceed spec.maxTrialCount ({max_trials})",
            )
    return Experiment(
        name=name,
        objective=objective,
        algorithm=algorithm,
        parameters=parameters,
        max_trial_count=max_trials,
        parallel_trial_count=parallel_count,
        max_failed_trial_count=max_failed,
        early_stopping=early_stopping,
        namespace=namespace,
        resume_policy=resume,
        trial_args=trial_args,
        source=source,
        raw=dict(top),
    )


def _enumerated(parameter: Parameter, algorithm: Algorithm) -> bool:
    """True when cnai would list a range's values (grid, or a stepped range Ray samples)."""
    if algorithm.name == "grid":
        return True
    if parameter.values or algorithm.name != "random":
        return False  # a list is already in memory; Optuna samples stepped ranges itself
    if parameter.type == "int":
        return int(parameter.step or 1) != 1
    return parameter.step is not None


def _check_sizes(
    f: _Fields, parameters: tuple[Parameter, ...], algorithm: Algorithm, limit: int
) -> int | None:
    """The grid size (grid algorithm only); UsageError over ``limit`` naming the field."""
    hint = f"the limit of {limit:,} (set by {MAX_GRID_ENV})"
    for parameter in parameters:
        count = parameter.count()
        if count is not None and count > limit and _enumerated(parameter, algorithm):
            raise f.fail(
                f"{parameter.path}.feasibleSpace",
                f"holds {count:,} values, more than {hint} cnai lists; "
                "narrow min/max or widen step",
            )
    if algorithm.name != "grid":
        return None
    size = 1
    for parameter in parameters:
        count = parameter.count()
        assert count is not None  # checked in _parameters
        size *= count
        if size > limit:
            total = 1
            for p in parameters:
                total *= p.count() or 1
            raise f.fail(
                "spec.parameters",
                f"the grid has {total:,} points, more than {hint}; "
                "use fewer values or algorithm random",
            )
    return size


def _objective(f: _Fields, raw: Any) -> Objective:
    path = "spec.objective"
    if raw is None:
        raise f.fail(path, "required")
    obj = f.mapping(
        raw,
        path,
        ("type", "goal", "objectiveMetricName", "additionalMetricNames", "metricStrategies"),
    )
    kind = obj.get("type")
    if kind not in ("maximize", "minimize"):
        raise f.fail(f"{path}.type", f"must be maximize or minimize, got {kind!r}")
    metric = f.string(obj.get("objectiveMetricName"), f"{path}.objectiveMetricName")
    if metric not in TRIAL_METRICS:
        raise f.fail(
            f"{path}.objectiveMetricName",
            f"{metric!r} is not a metric trials report (one of {', '.join(TRIAL_METRICS)})",
        )
    goal = None if obj.get("goal") is None else f.number(obj["goal"], f"{path}.goal")
    additional: list[str] = []
    for i, name in enumerate(f.sequence(obj.get("additionalMetricNames") or [], path)):
        item = f"{path}.additionalMetricNames[{i}]"
        f.string(name, item)
        if name not in TRIAL_METRICS:
            raise f.fail(item, f"{name!r} is not a metric trials report")
        if name == metric or name in additional:
            raise f.fail(item, f"{name!r} is listed twice (or is the objective metric)")
        additional.append(name)
    # Katib's defaults: the objective by the objective's direction, the others likewise.
    direction = "max" if kind == "maximize" else "min"
    strategies = {name: direction for name in (metric, *additional)}
    for i, item in enumerate(f.sequence(obj.get("metricStrategies") or [], path)):
        item_path = f"{path}.metricStrategies[{i}]"
        entry = f.mapping(item, item_path, ("name", "value"))
        name = f.string(entry.get("name"), f"{item_path}.name")
        if name not in strategies:
            raise f.fail(f"{item_path}.name", f"{name!r} is not an objective or additional metric")
        if entry.get("value") not in METRIC_STRATEGIES:
            raise f.fail(f"{item_path}.value", f"must be one of {', '.join(METRIC_STRATEGIES)}")
        strategies[name] = str(entry["value"])
    return Objective(kind, metric, goal, tuple(additional), strategies)


def _algorithm(f: _Fields, raw: Any) -> Algorithm:
    path = "spec.algorithm"
    if raw is None:
        raise f.fail(path, "required")
    alg = f.mapping(raw, path, ("algorithmName", "algorithmSettings"))
    name = alg.get("algorithmName")
    if name not in ALGORITHM_SETTINGS:
        raise f.fail(
            f"{path}.algorithmName",
            f"{name!r} is not supported (supported: {', '.join(ALGORITHM_SETTINGS)})",
        )
    settings: dict[str, str] = {}
    for i, item in enumerate(f.sequence(alg.get("algorithmSettings") or [], path)):
        item_path = f"{path}.algorithmSettings[{i}]"
        entry = f.mapping(item, item_path, ("name", "value"))
        key = f.string(entry.get("name"), f"{item_path}.name")
        if key not in ALGORITHM_SETTINGS[name]:
            allowed = ", ".join(ALGORITHM_SETTINGS[name]) or "none"
            raise f.fail(
                f"{item_path}.name", f"{key!r} is not a setting of {name} (supported: {allowed})"
            )
        value = entry.get("value")
        if key == "base_estimator":
            if value != "GP":
                raise f.fail(
                    f"{item_path}.value", "only GP is supported (Optuna's GPSampler is a GP)"
                )
        else:
            minimum = 1 if key == "n_ei_candidates" else 0
            f.integer(value, f"{item_path}.value", minimum)
        settings[key] = str(value)
    return Algorithm(str(name), settings)


def _early_stopping(f: _Fields, raw: Any) -> EarlyStopping | None:
    path = "spec.earlyStopping"
    if raw is None:
        return None
    es = f.mapping(raw, path, ("algorithmName", "algorithmSettings"))
    name = es.get("algorithmName")
    if name not in EARLY_STOPPING_SETTINGS:
        raise f.fail(
            f"{path}.algorithmName",
            f"{name!r} is not supported (supported: {', '.join(EARLY_STOPPING_SETTINGS)})",
        )
    defaults = EARLY_STOPPING_SETTINGS[name]
    values = dict(defaults)
    for i, item in enumerate(f.sequence(es.get("algorithmSettings") or [], path)):
        item_path = f"{path}.algorithmSettings[{i}]"
        entry = f.mapping(item, item_path, ("name", "value"))
        key = f.string(entry.get("name"), f"{item_path}.name")
        if key not in defaults:
            raise f.fail(
                f"{item_path}.name",
                f"{key!r} is not a {name} setting ({', '.join(defaults)})",
            )
        minimum = 2 if key == "reduction_factor" else 1
        values[key] = f.integer(entry.get("value"), f"{item_path}.value", minimum)
    if name == "asha":
        if values["max_t"] <= values["grace_period"]:
            raise f.fail(f"{path}.algorithmSettings", "asha needs max_t > grace_period")
        return EarlyStopping(
            algorithm="asha",
            grace_period=values["grace_period"],
            reduction_factor=values["reduction_factor"],
            max_t=values["max_t"],
        )
    return EarlyStopping(values["min_trials_required"], values["start_step"])


def _trial_template(
    f: _Fields, spec: dict[str, Any], hyperparameters: Mapping[str, type]
) -> tuple[dict[str, str] | None, TrialArgs]:
    """Katib parameter name -> train hyperparameter, or None for the identity mapping."""
    path = "spec.trialTemplate"
    raw = spec.get("trialTemplate")
    if raw is None:
        return None, TrialArgs()
    template = f.mapping(raw, path, _TRIAL_TEMPLATE_KEYS)
    items = template.get("trialParameters")
    if items is None:
        raise f.fail(f"{path}.trialParameters", "required when trialTemplate is given")
    targets: dict[str, str] = {}
    for i, item in enumerate(f.sequence(items, f"{path}.trialParameters")):
        item_path = f"{path}.trialParameters[{i}]"
        entry = f.mapping(item, item_path, ("name", "reference", "description"))
        name = f.string(entry.get("name"), f"{item_path}.name")
        reference = f.string(entry.get("reference"), f"{item_path}.reference")
        if name not in hyperparameters:
            raise f.fail(
                f"{item_path}.name",
                f"{name!r} is not a hyperparameter of {f.owner} "
                f"(known: {', '.join(sorted(hyperparameters))})",
            )
        if name in targets.values():
            raise f.fail(f"{item_path}.name", f"{name!r} is set twice")
        if reference in targets:
            raise f.fail(f"{item_path}.reference", f"{reference!r} is referenced twice")
        targets[reference] = name
    trial_args = TrialArgs()
    if any(key in template for key in _TRIAL_TEMPLATE_KEYS[1:]):
        from cnai.tuning.katib import check_trial_template

        trial_args = check_trial_template(template, targets, f.fail)
    return targets, trial_args


def _metrics_collector(f: _Fields, raw: Any) -> None:
    """Only Katib's StdOut collector (what the exported trial prints to) is accepted."""
    if raw is None:
        return
    from cnai.tuning.katib import metrics_collector_spec

    if raw != metrics_collector_spec():
        raise f.fail(
            "spec.metricsCollectorSpec",
            "only the StdOut collector cnai exports is supported (remove the field)",
        )


def _parameters(
    f: _Fields,
    raw: Any,
    targets: dict[str, str] | None,
    hyperparameters: Mapping[str, type],
    algorithm: Algorithm,
) -> tuple[Parameter, ...]:
    path = "spec.parameters"
    if raw is None:
        raise f.fail(path, "required")
    items = f.sequence(raw, path)
    if not items:
        raise f.fail(path, "must list at least one parameter")
    out: list[Parameter] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        parameter = _parameter(f, i, item, targets, hyperparameters, algorithm)
        if parameter.name in seen:
            raise f.fail(f"{path}[{i}].name", f"{parameter.name!r} is defined twice")
        seen.add(parameter.name)
        out.append(parameter)
    if targets is not None:
        for reference in targets:
            if reference not in seen:
                index = list(targets).index(reference)
                raise f.fail(
                    f"spec.trialTemplate.trialParameters[{index}].reference",
                    f"{reference!r} is not a parameter in spec.parameters",
                )
    return tuple(out)


def _parameter(
    f: _Fields,
    i: int,
    raw: Any,
    targets: dict[str, str] | None,
    hyperparameters: Mapping[str, type],
    algorithm: Algorithm,
) -> Parameter:
    path = f"spec.parameters[{i}]"
    entry = f.mapping(raw, path, ("name", "parameterType", "feasibleSpace"))
    name = f.string(entry.get("name"), f"{path}.name")
    kind = entry.get("parameterType")
    if kind not in PARAMETER_TYPES:
        raise f.fail(
            f"{path}.parameterType", f"{kind!r} is not one of {', '.join(PARAMETER_TYPES)}"
        )
    if targets is None:
        if name not in hyperparameters:
            raise f.fail(
                f"{path}.name",
                f"{name!r} is not a hyperparameter of {f.owner} "
                f"(known: {', '.join(sorted(hyperparameters))}); "
                "map it with spec.trialTemplate.trialParameters",
            )
        target = name
    else:
        if name not in targets:
            raise f.fail(
                f"{path}.name", f"{name!r} is not referenced by spec.trialTemplate.trialParameters"
            )
        target = targets[name]
    target_type = hyperparameters[target]
    space_path = f"{path}.feasibleSpace"
    if entry.get("feasibleSpace") is None:
        raise f.fail(space_path, "required")
    space = f.mapping(
        entry["feasibleSpace"], space_path, ("min", "max", "step", "list", "distribution")
    )
    if kind in ("double", "int"):
        return _range_parameter(
            f, i, name, str(kind), target, target_type, space, space_path, algorithm
        )
    for key in ("min", "max", "step", "distribution"):
        if key in space:
            raise f.fail(f"{space_path}.{key}", f"not allowed for parameterType {kind}")
    items = f.sequence(space.get("list"), f"{space_path}.list")
    if not items:
        raise f.fail(f"{space_path}.list", "must hold at least one value")
    values: list[Any] = []
    seen: set[Any] = set()  # converted values are hashable scalars: linear-time check
    for j, item in enumerate(items):
        item_path = f"{space_path}.list[{j}]"
        value = _convert_listed(f, str(kind), item, target, target_type, item_path)
        if value in seen:
            raise f.fail(item_path, f"{item!r} is listed twice")
        seen.add(value)
        values.append(value)
    return Parameter(name, str(kind), target, target_type, i, values=tuple(values))


def _range_parameter(
    f: _Fields,
    i: int,
    name: str,
    kind: str,
    target: str,
    target_type: type,
    space: dict[str, Any],
    path: str,
    algorithm: Algorithm,
) -> Parameter:
    if "list" in space:
        raise f.fail(f"{path}.list", f"not allowed for parameterType {kind} (use min/max)")
    if kind == "double" and target_type is not float:
        raise f.fail(
            f"spec.parameters[{i}].parameterType",
            f"double, but train hyperparameter {target!r} is {target_type.__name__}",
        )
    if kind == "int" and target_type not in (int, float):
        raise f.fail(
            f"spec.parameters[{i}].parameterType",
            f"int, but train hyperparameter {target!r} is {target_type.__name__}",
        )
    read = f.integer if kind == "int" else f.number
    for key in ("min", "max"):
        if space.get(key) is None:
            raise f.fail(f"{path}.{key}", f"required for parameterType {kind}")
    low, high = float(read(space["min"], f"{path}.min")), float(read(space["max"], f"{path}.max"))
    if low > high:
        raise f.fail(f"{path}.min", f"{space['min']} is greater than max {space['max']}")
    step = None
    if space.get("step") is not None:
        step = float(read(space["step"], f"{path}.step"))
        if step <= 0:
            raise f.fail(f"{path}.step", f"{space['step']} must be greater than 0")
        if kind == "double" and step > high - low and high > low:
            raise f.fail(f"{path}.step", f"{space['step']} is wider than max - min")
    distribution = space.get("distribution", "uniform")
    if distribution not in DISTRIBUTIONS:
        raise f.fail(
            f"{path}.distribution",
            f"{distribution!r} is not supported (supported: {', '.join(DISTRIBUTIONS)})",
        )
    if distribution == "logUniform":
        if low <= 0:
            raise f.fail(f"{path}.min", f"{space['min']} must be greater than 0 for logUniform")
        if step is not None and (kind == "double" or step != 1):
            raise f.fail(f"{path}.step", "cannot be combined with distribution logUniform")
        if algorithm.name == "grid":
            raise f.fail(f"{path}.distribution", "logUniform has no meaning for algorithm grid")
    if algorithm.name == "grid" and kind == "double" and step is None:
        raise f.fail(f"{path}.step", "required for double parameters with algorithm grid")
    return Parameter(name, kind, target, target_type, i, low, high, step, str(distribution))


def _convert_listed(
    f: _Fields, kind: str, item: Any, target: str, target_type: type, path: str
) -> Any:
    if isinstance(item, (dict, list)) or item is None:
        raise f.fail(path, "must be a scalar value")
    if kind == "discrete":
        number = f.number(item, path)
        if target_type is int:
            if not number.is_integer():
                raise f.fail(path, f"{item!r}: train hyperparameter {target!r} takes integers")
            return int(number)
        if target_type is not float:
            raise f.fail(path, f"discrete values are numbers; {target!r} is {target_type.__name__}")
        return number
    text = str(item).lower() if isinstance(item, bool) else str(item)
    try:
        if target_type is bool:
            if text.lower() not in ("true", "false"):
                raise ValueError(text)
            return text.lower() == "true"
        return target_type(text)
    except (TypeError, ValueError):
        raise f.fail(
            path, f"{item!r} is not a valid {target_type.__name__} for {target!r}"
        ) from None
