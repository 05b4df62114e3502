"""Export a validated Experiment as a Katib ``Experiment`` custom resource.

The exported resource describes the identical search (objective, algorithm and
settings, parameters, budget, medianstop), and its trial template is a
Kubernetes ``batch/v1`` Job running :mod:`cnai.tuning.trial` (the train step's
``run_trial`` code path) in the pipeline image. The trial prints one
``name=value`` line per metric and epoch, which Katib's StdOut metrics collector
reads with :data:`METRICS_FORMAT`.

:func:`check_trial_template` lets such an exported file be run locally again: the
trial template must still be a cnai trial (anything else would silently run
something different from what the cluster runs).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import yaml

from cnai.argo.kit.pods import env_from_dicts
from cnai.argo.pipeline import Platform
from cnai.errors import UsageError

if TYPE_CHECKING:
    from cnai.tuning.spec import Experiment, TrialArgs

DEFAULT_IMAGE = "ghcr.io/cnai-dev/cnai-pipeline:latest"
"""Pipeline image the trial Job runs (override with ``--image``)."""
DEFAULT_NAMESPACE = "cnai"
CONTAINER = "training-container"
TRIAL_COMMAND = ["python", "-m", "cnai.tuning.trial"]
"""The trial container's command (the hyperparameters follow as ``--hparam`` args)."""
METRICS_FORMAT = r"([\w|-]+)\s*=\s*((-?\d+)(\.\d+)?)"
"""Katib's default StdOut filter: ``name=value`` with a plain decimal value."""
SUCCESS_CONDITION = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
FAILURE_CONDITION = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
GENERATED_BY = "cnai.dev/generated-by"


def metrics_collector_spec() -> dict[str, Any]:
    """``spec.metricsCollectorSpec``: StdOut, with the filter the trial's output matches."""
    return {
        "collector": {"kind": "StdOut"},
        "source": {"filter": {"metricsFormat": [METRICS_FORMAT]}},
    }


def trial_args(targets: dict[str, str], table: str | None, snapshot_id: int | None) -> list[str]:
    """Container args: one ``--hparam NAME=${trialParameters.NAME}`` per search parameter."""
    args: list[str] = []
    for target in targets.values():
        args += ["--hparam", f"{target}=${{trialParameters.{target}}}"]
    if table:
        args += ["--table", table]
    if snapshot_id is not None:
        args += ["--snapshot-id", str(snapshot_id)]
    return args


def _value(value: Any) -> str:
    """Katib stores every feasibleSpace value as a string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _parameter(parameter: Any) -> dict[str, Any]:
    space: dict[str, Any]
    if parameter.values:
        space = {"list": [_value(v) for v in parameter.values]}
    else:
        space = {"min": _value(parameter.min), "max": _value(parameter.max)}
        if parameter.step is not None:
            space["step"] = _value(parameter.step)
        if parameter.distribution != "uniform":
            space["distribution"] = parameter.distribution
    return {"name": parameter.name, "parameterType": parameter.type, "feasibleSpace": space}


def trial_job(image: str, args: list[str], platform: Platform | None = None) -> dict[str, Any]:
    """The ``batch/v1`` Job one trial runs: non-root, bounded resources, settings from env.

    Its ServiceAccount, uid and ``envFrom`` ConfigMap/Secret are the ``platform``'s
    (the configuration's ``pipeline`` section; None: the defaults).
    """
    platform = platform or Platform()
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {
                    "labels": {"app.kubernetes.io/part-of": "cnai", "cnai.dev/role": "trial"},
                    "annotations": {"sidecar.istio.io/inject": "false"},
                },
                "spec": {
                    "serviceAccountName": platform.service_account,
                    "restartPolicy": "Never",
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": platform.run_as,
                        "runAsGroup": platform.run_as,
                        "fsGroup": platform.run_as,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": CONTAINER,
                            "image": image,
                            "command": list(TRIAL_COMMAND),
                            "args": args,
                            "envFrom": env_from_dicts(platform),
                            "env": [
                                {"name": "CNAI_HOME", "value": "/tmp/cnai"},
                                {"name": "HOME", "value": "/tmp"},
                            ],
                            "resources": {
                                "requests": {"cpu": "1", "memory": "1Gi"},
                                "limits": {"cpu": "1", "memory": "2Gi"},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                        }
                    ],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}],
                },
            },
        },
    }


def export_katib(
    experiment: Experiment,
    image: str = DEFAULT_IMAGE,
    namespace: str | None = None,
    table: str | None = None,
    snapshot_id: int | None = None,
    platform: Platform | None = None,
) -> dict[str, Any]:
    """The Katib Experiment custom resource running the same search on a cluster.

    ``platform``: whose ServiceAccount, uid and ConfigMap/Secret the trial Job uses.
    """
    objective: dict[str, Any] = {
        "type": experiment.objective.type,
        "objectiveMetricName": experiment.objective.metric,
    }
    if experiment.objective.goal is not None:
        objective["goal"] = experiment.objective.goal
    if experiment.objective.additional_metrics:
        objective["additionalMetricNames"] = list(experiment.objective.additional_metrics)
    objective["metricStrategies"] = [
        {"name": name, "value": value} for name, value in experiment.objective.strategies.items()
    ]
    algorithm: dict[str, Any] = {"algorithmName": experiment.algorithm.name}
    if experiment.algorithm.settings:
        algorithm["algorithmSettings"] = [
            {"name": k, "value": v} for k, v in experiment.algorithm.settings.items()
        ]
    spec: dict[str, Any] = {
        "objective": objective,
        "algorithm": algorithm,
    }
    early = experiment.early_stopping
    if early is not None and early.algorithm != "medianstop":
        raise UsageError(
            f"experiment {experiment.name}: spec.earlyStopping.algorithmName "
            f"{early.algorithm!r} is a cnai extension that Katib v1beta1 "
            "does not define (it has only medianstop): use medianstop or drop earlyStopping "
            "to export"
        )
    if experiment.early_stopping is not None:
        spec["earlyStopping"] = {
            "algorithmName": "medianstop",
            "algorithmSettings": [
                {
                    "name": "min_trials_required",
                    "value": str(experiment.early_stopping.min_trials_required),
                },
                {"name": "start_step", "value": str(experiment.early_stopping.start_step)},
            ],
        }
    spec["parallelTrialCount"] = experiment.parallel_trial_count
    spec["maxTrialCount"] = experiment.max_trial_count
    if experiment.max_failed_trial_count is not None:
        spec["maxFailedTrialCount"] = experiment.max_failed_trial_count
    if experiment.resume_policy is not None:
        spec["resumePolicy"] = experiment.resume_policy
    spec["parameters"] = [_parameter(p) for p in experiment.parameters]
    spec["metricsCollectorSpec"] = metrics_collector_spec()
    targets = experiment.targets
    spec["trialTemplate"] = {
        "primaryContainerName": CONTAINER,
        "successCondition": SUCCESS_CONDITION,
        "failureCondition": FAILURE_CONDITION,
        "trialParameters": [
            {
                "name": target,
                "reference": name,
                "description": f"train step hyperparameter {target}",
            }
            for name, target in targets.items()
        ],
        "trialSpec": trial_job(image, trial_args(targets, table, snapshot_id), platform),
    }
    metadata_in = experiment.raw.get("metadata") or {}
    metadata: dict[str, Any] = {
        "name": experiment.name,
        "namespace": namespace or experiment.namespace or DEFAULT_NAMESPACE,
        "labels": {**(metadata_in.get("labels") or {}), "app.kubernetes.io/part-of": "cnai"},
        "annotations": {
            **(metadata_in.get("annotations") or {}),
            GENERATED_BY: "cnai tune --export-katib",
        },
    }
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": metadata,
        "spec": spec,
    }


def dump(resource: dict[str, Any]) -> str:
    """YAML text of ``resource`` (key order kept)."""
    return yaml.safe_dump(resource, sort_keys=False, default_flow_style=False, width=100)


def check_trial_template(
    template: dict[str, Any],
    targets: dict[str, str],
    fail: Callable[[str, str], UsageError],
) -> TrialArgs:
    """Accept a trial template only when it is the cnai trial for these parameters.

    Returns the fixed arguments (table, snapshot, image) it carries. ``fail(path,
    problem)`` builds the UsageError to raise.
    """
    from cnai.tuning.spec import TrialArgs

    path = "spec.trialTemplate"
    if template.get("primaryContainerName") not in (None, CONTAINER):
        raise fail(f"{path}.primaryContainerName", f"must be {CONTAINER}")
    for key, expected in (
        ("successCondition", SUCCESS_CONDITION),
        ("failureCondition", FAILURE_CONDITION),
    ):
        if template.get(key) not in (None, expected):
            raise fail(f"{path}.{key}", f"must be {expected}")
    job = template.get("trialSpec")
    if job is None:
        raise fail(f"{path}.trialSpec", "required with the other cluster-only template fields")
    try:
        containers = job["spec"]["template"]["spec"]["containers"]
        container = next(c for c in containers if c.get("name") == CONTAINER)
    except (KeyError, TypeError, StopIteration):
        raise fail(
            f"{path}.trialSpec",
            f"not a cnai trial Job (no container {CONTAINER}); cnai runs only its train step",
        ) from None
    container_path = f"{path}.trialSpec.spec.template.spec.containers[{CONTAINER}]"
    if container.get("command") != TRIAL_COMMAND:
        raise fail(
            f"{container_path}.command",
            f"must be {shlex.join(TRIAL_COMMAND)}: locally cnai runs only its train step",
        )
    args = [str(a) for a in container.get("args") or []]
    hparams: list[str] = []
    table: str | None = None
    snapshot: int | None = None
    index = 0
    while index < len(args):
        flag = args[index]
        value = args[index + 1] if index + 1 < len(args) else None
        if value is None or flag not in ("--hparam", "--table", "--snapshot-id"):
            raise fail(f"{container_path}.args", f"unexpected argument {flag!r}")
        if flag == "--hparam":
            hparams.append(value)
        elif flag == "--table":
            table = value
        else:
            try:
                snapshot = int(value)
            except ValueError:
                raise fail(f"{container_path}.args", f"--snapshot-id {value!r}") from None
        index += 2
    expected_hparams = [f"{t}=${{trialParameters.{t}}}" for t in targets.values()]
    if sorted(hparams) != sorted(expected_hparams):
        raise fail(
            f"{container_path}.args",
            "--hparam arguments must set exactly the trialParameters "
            f"({' '.join(expected_hparams)})",
        )
    image = container.get("image")
    return TrialArgs(table=table, snapshot_id=snapshot, image=str(image) if image else None)
