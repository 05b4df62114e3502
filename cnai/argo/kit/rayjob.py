"""KubeRay ``RayJob`` steps whose command line is derived from a step function's signature.

``rayjob_step(platform, "train", "steps.train:train", params=("table", "workers"))``
is an Argo ``resource`` template that creates a RayJob (a fresh Ray cluster with the
platform's image, service account, ``envFrom`` and security) running::

    python -m cnai.engine.entrypoint steps.train:train \
        --param table={{inputs.parameters.table}} --param workers={{inputs.parameters.workers}} \
        --result-key {{inputs.parameters.result_key}}

The ``--param`` names and the template's input parameters (with the function's
defaults) both come from :func:`inspect.signature`, so a renamed or removed argument
fails at compile time instead of in the cluster, and the entrypoint converts each
value back with the same type hints (:mod:`cnai.engine.entrypoint`).
"""

from __future__ import annotations

import inspect
import os
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from cnai.argo.kit.pods import PART_OF, pod_template_dict
from cnai.argo.kit.retry import ray_retry
from cnai.argo.pipeline import Platform

RAYJOB_SUCCESS = "status.jobDeploymentStatus == Complete, status.jobStatus == SUCCEEDED"
"""Argo successCondition of the RayJob steps (ALL requirements must hold)."""
RAYJOB_FAILURE = (
    "status.jobDeploymentStatus in (Failed, ValidationFailed), status.jobStatus == STOPPED"
)
"""Argo failureCondition of the RayJob steps (ANY requirement fails the step; Argo v4.1.2
workflow/executor/resource.go lines 282-289). KubeRay v1.7.0 (rayjob_controller.go) marks
infrastructure failures (SubmissionFailed, DeadlineExceeded, PreRunningDeadlineExceeded,
JobStatusCheckTimeoutExceeded) on ``jobDeploymentStatus`` while ``jobStatus`` stays
empty/PENDING/RUNNING, and a STOPPED Ray job ends as a *Complete* deployment: a stopped
job produced no model, so it fails the step (see docs/pipeline.md)."""
PRE_RUNNING_DEADLINE_SECONDS = 30 * 60
"""A RayJob whose Ray job is not running 30 min after it was created (pods unschedulable,
image not pullable) is Failed by KubeRay (reason PreRunningDeadlineExceeded)."""
RAY_VERSION = "2.60.0"
"""``rayClusterSpec.rayVersion`` (the Ray the pipeline image ships)."""
ENTRYPOINT = "python -m cnai.engine.entrypoint"
"""The command every RayJob runs (see :mod:`cnai.engine.entrypoint`)."""
RESULT_KEY = "result_key"
"""Input parameter naming where the entrypoint stores the step's summary."""

_SCALARS = (str, int, float, bool)


@dataclass(frozen=True)
class StepParameter:
    """One argument of a step function passed on the RayJob's command line."""

    name: str
    """The function's parameter name (also the template's input parameter)."""
    default: str | None
    """The function's default as the text the entrypoint converts back (None: required)."""


def _target(step: str | Callable[..., Any]) -> tuple[str, Callable[..., Any]]:
    if isinstance(step, str):
        from cnai.resolve import resolve_callable

        return step, resolve_callable(step, what="RayJob step")
    if "<locals>" in step.__qualname__:
        raise TypeError(f"{step.__qualname__}: a step must be a module-level function")
    return f"{step.__module__}:{step.__qualname__}", step


def target_ref(step: str | Callable[..., Any]) -> str:
    """The ``module:function`` text the entrypoint resolves for ``step``."""
    return _target(step)[0]


def _command_line_type(hint: Any) -> bool:
    """True for hints the entrypoint converts from one shell word (optionals included)."""
    if hint in _SCALARS:
        return True
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(hint) if a is not type(None)]
        return bool(members) and all(
            m in _SCALARS
            or typing.get_origin(m) is os.PathLike
            or (isinstance(m, type) and issubclass(m, os.PathLike))
            for m in members
        )
    return False


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def step_parameters(
    step: str | Callable[..., Any], names: Sequence[str] | None = None
) -> list[StepParameter]:
    """The ``names`` arguments of ``step`` (default: every positional-or-keyword one).

    TypeError when a name is not a parameter, is keyword-only (``settings``,
    ``progress``: resolved in the pod) or has a type one shell word cannot carry.
    """
    ref, function = _target(step)
    signature = inspect.signature(function)
    try:
        hints = typing.get_type_hints(function)
    except (NameError, TypeError) as exc:
        # The entrypoint converts values with the same hints: it could not either.
        raise TypeError(f"{ref}: its type hints do not resolve ({exc})") from exc
    if names is None:
        names = [
            p.name
            for p in signature.parameters.values()
            if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        ]
    found: list[StepParameter] = []
    for name in names:
        param = signature.parameters.get(name)
        if param is None or param.kind not in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.POSITIONAL_ONLY,
        ):
            raise TypeError(f"{ref}: has no positional-or-keyword parameter {name!r}")
        hint = hints.get(name, str)
        if not _command_line_type(hint):
            raise TypeError(
                f"{ref}: parameter {name!r} ({hint}) cannot travel as one --param word; "
                "pass it in params_b64"
            )
        default = None if param.default is inspect.Parameter.empty else _text(param.default)
        found.append(StepParameter(name, default))
    return found


def step_inputs(declared: Sequence[StepParameter]) -> list[Any]:
    """Hera input ``Parameter``s of ``declared`` (with the function's defaults)."""
    from hera.workflows import Parameter

    return [
        Parameter(name=p.name) if p.default is None else Parameter(name=p.name, default=p.default)
        for p in declared
    ]


def entrypoint(
    step: str | Callable[..., Any],
    names: Sequence[str] | None = None,
    *,
    params_b64: str | None = None,
    result_key: bool = True,
) -> str:
    """The RayJob command line calling ``step`` with its ``names`` arguments from the
    template's inputs (``params_b64``: an input carrying more keyword arguments, base64)."""
    ref, _ = _target(step)
    words = [ENTRYPOINT, ref]
    for param in step_parameters(step, names):
        words.append(f"--param {param.name}={{{{inputs.parameters.{param.name}}}}}")
    if params_b64:
        words.append(f"--params-b64 {{{{inputs.parameters.{params_b64}}}}}")
    if result_key:
        words.append(f"--result-key {{{{inputs.parameters.{RESULT_KEY}}}}}")
    return " ".join(words)


def rayjob_manifest(
    platform: Platform, step: str, command: str, workers: str, deadline: int
) -> str:
    """A RayJob (YAML) running ``command`` on a fresh Ray cluster (head + ``workers`` pods).

    ``workers`` may be a ``{{...}}`` reference: it is written unquoted so that the
    substituted value is an integer.
    """
    marker = "__CNAI_WORKERS__"
    manifest = {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {
            "generateName": f"cnai-{step}-",
            "labels": {
                **PART_OF,
                "cnai.dev/step": step,
                "cnai.dev/workflow": "{{workflow.name}}",
            },
        },
        "spec": {
            "entrypoint": command,
            "activeDeadlineSeconds": deadline,
            "preRunningDeadlineSeconds": PRE_RUNNING_DEADLINE_SECONDS,
            "shutdownAfterJobFinishes": True,
            "ttlSecondsAfterFinished": 600,
            "submissionMode": "K8sJobMode",
            "rayClusterSpec": {
                "rayVersion": RAY_VERSION,
                "headGroupSpec": {
                    # The head only coordinates; the work runs on the worker pods.
                    "rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0"},
                    "template": pod_template_dict(platform, "ray-head"),
                },
                "workerGroupSpecs": [
                    {
                        "groupName": "workers",
                        "replicas": marker,
                        "minReplicas": 1,
                        "maxReplicas": 64,
                        "rayStartParams": {},
                        "template": pod_template_dict(platform, "ray-worker"),
                    }
                ],
            },
        },
    }
    text = yaml.safe_dump(manifest, sort_keys=False, width=1000)
    return text.replace(marker, workers)


def rayjob_step(
    platform: Platform,
    name: str,
    step: str | Callable[..., Any],
    params: Sequence[str] | None = None,
    *,
    params_b64: str | None = None,
    workers: int | str = 2,
    deadline: int = 4 * 3600,
    memoize: Any = None,
    retry: Any = None,
) -> Any:
    """A Hera ``Resource`` template ``name`` creating a RayJob that runs ``step``.

    Inputs: the ``params`` of the step's signature (with its defaults), then
    ``params_b64`` when given, then ``result_key``. ``workers``: a count, or the name of
    one of those inputs. ``memoize``: a Hera ``Memoize`` (see
    :func:`cnai.argo.kit.workflow.memoize`); ``retry`` default :func:`ray_retry`.
    """
    from hera.workflows import Parameter, Resource

    declared = step_parameters(step, params)
    inputs = step_inputs(declared)
    extra = [params_b64] if params_b64 else []
    inputs += [Parameter(name=n) for n in [*extra, RESULT_KEY]]
    names = {p.name for p in inputs}
    if isinstance(workers, str):
        if workers not in names:
            raise TypeError(f"RayJob step {name}: workers={workers!r} is not one of its inputs")
        replicas = f"{{{{inputs.parameters.{workers}}}}}"
    else:
        replicas = str(int(workers))
    command = entrypoint(step, [p.name for p in declared], params_b64=params_b64)
    return Resource(
        name=name,
        action="create",
        set_owner_reference=True,
        manifest=rayjob_manifest(platform, name, command, replicas, deadline),
        success_condition=RAYJOB_SUCCESS,
        failure_condition=RAYJOB_FAILURE,
        active_deadline_seconds=deadline,
        retry_strategy=retry if retry is not None else ray_retry(),
        memoize=memoize,
        inputs=inputs,
    )
