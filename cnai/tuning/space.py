"""Katib search space and algorithm -> Ray Tune search algorithm.

Which library implements each Katib ``algorithmName``:

==========================  ===============================================================
Katib algorithm             executed by
==========================  ===============================================================
``random``                  Ray Tune ``BasicVariantGenerator`` sampling ``tune.uniform`` /
                            ``loguniform`` / ``randint`` / ``lograndint`` / ``choice``
``grid``                    Ray Tune ``BasicVariantGenerator`` fed the Katib grid (every
                            combination, in order) as ``points_to_evaluate``
``tpe``                     Optuna ``TPESampler`` through ``ray.tune.search.optuna.OptunaSearch``
``bayesianoptimization``    Optuna ``GPSampler`` (Gaussian process, log expected improvement)
                            through ``OptunaSearch``
==========================  ===============================================================

Search-space keys are the train step's hyperparameter names, so a sampled config
is directly the ``hparams`` of ``cnai.training.step.run_trial``.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ray.tune.search import SearchAlgorithm, Searcher

    from cnai.tuning.spec import Experiment, Parameter

LIBRARIES = {
    "random": "Ray Tune BasicVariantGenerator (random sampling)",
    "grid": "Ray Tune BasicVariantGenerator (Katib grid as points_to_evaluate)",
    "tpe": "Optuna TPESampler via Ray Tune OptunaSearch",
    "bayesianoptimization": "Optuna GPSampler via Ray Tune OptunaSearch",
}
"""Katib algorithm name -> the library that executes it."""


def _ray_domain(parameter: Parameter) -> Any:
    from ray import tune

    values = parameter.grid() if parameter.type in ("categorical", "discrete") else None
    if values is not None:
        return tune.choice(list(values))
    assert parameter.min is not None and parameter.max is not None
    log = parameter.distribution == "logUniform"
    if parameter.type == "int":
        low, high = int(parameter.min), int(parameter.max)
        step = int(parameter.step or 1)
        if step != 1:
            return tune.choice(list(parameter.grid() or ()))
        domain = tune.lograndint(low, high + 1) if log else tune.randint(low, high + 1)
        return domain
    if parameter.step is not None:
        return tune.choice(list(parameter.grid() or ()))
    if log:
        return tune.loguniform(parameter.min, parameter.max)
    return tune.uniform(parameter.min, parameter.max)


def ray_space(experiment: Experiment) -> dict[str, Any]:
    """``param_space`` for Ray Tune: train hyperparameter name -> Ray Tune domain."""
    return {p.target: _ray_domain(p) for p in experiment.parameters}


def _optuna_distribution(parameter: Parameter) -> Any:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if parameter.values:
        return CategoricalDistribution(list(parameter.values))
    assert parameter.min is not None and parameter.max is not None
    log = parameter.distribution == "logUniform"
    if parameter.type == "int":
        step = int(parameter.step or 1)
        low, high = int(parameter.min), int(parameter.max)
        high = low + (high - low) // step * step
        return IntDistribution(low, high, log=log, step=step)
    if parameter.step is not None:
        count = parameter.count()
        assert count is not None
        return FloatDistribution(
            parameter.min, float(parameter.value_at(count - 1)), step=parameter.step
        )
    return FloatDistribution(parameter.min, parameter.max, log=log)


def optuna_space(experiment: Experiment) -> dict[str, Any]:
    """Search space for OptunaSearch: train hyperparameter name -> Optuna distribution."""
    return {p.target: _optuna_distribution(p) for p in experiment.parameters}


def grid_points(experiment: Experiment) -> list[dict[str, Any]]:
    """Every grid combination (first parameter slowest), cut to ``maxTrialCount``.

    Only the first ``maxTrialCount`` combinations are built (the parser already
    bounded the grid's size arithmetically).
    """
    axes = []
    for parameter in experiment.parameters:
        values = parameter.grid()
        if values is None:
            raise ValueError(f"{parameter.path}: continuous parameter has no grid")
        axes.append([(parameter.target, v) for v in values])
    combos = itertools.islice(itertools.product(*axes), experiment.max_trial_count)
    return [dict(combo) for combo in combos]


def build_search(
    experiment: Experiment, metric: str, max_concurrent: int
) -> tuple[Searcher | SearchAlgorithm, dict[str, Any], int]:
    """Ray Tune ``(search_alg, param_space, num_samples)`` for the experiment's algorithm.

    ``metric`` is the result key of each trial's objective so far; at most
    ``max_concurrent`` trials run at once.
    """
    from ray.tune.search.basic_variant import BasicVariantGenerator

    algorithm = experiment.algorithm
    if algorithm.name == "random":
        search = BasicVariantGenerator(
            random_state=algorithm.random_state, max_concurrent=max_concurrent
        )
        return search, ray_space(experiment), experiment.max_trial_count
    if algorithm.name == "grid":
        points = grid_points(experiment)
        search = BasicVariantGenerator(points_to_evaluate=points, max_concurrent=max_concurrent)
        return search, ray_space(experiment), len(points)

    import optuna
    from optuna.samplers import GPSampler, TPESampler
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seed = algorithm.random_state
    sampler: Any
    if algorithm.name == "tpe":
        sampler = TPESampler(
            seed=seed,
            n_startup_trials=algorithm.int_setting("n_startup_trials", 10),
            n_ei_candidates=algorithm.int_setting("n_ei_candidates", 24),
        )
    elif algorithm.name == "bayesianoptimization":
        sampler = GPSampler(
            seed=seed,
            n_startup_trials=algorithm.int_setting("n_initial_points", 10),
            warn_independent_sampling=False,
        )
    else:  # pragma: no cover - the spec parser only admits the names above
        raise ValueError(f"unsupported algorithm {algorithm.name}")
    mode = experiment.objective.mode
    searcher = OptunaSearch(
        space=optuna_space(experiment), metric=metric, mode=mode, sampler=sampler
    )
    return ConcurrencyLimiter(searcher, max_concurrent), {}, experiment.max_trial_count
