"""Step containers: a step function run in one pod of the pipeline image.

``step_container(platform, "score", "steps.score:score", ("table",), outputs=("rows",))``
is an Argo ``container`` template running the same entrypoint as a RayJob step
(``python -m cnai.engine.entrypoint steps.score:score --param table=...``), whose
``--param`` words and input parameters are derived from the step's signature
(:func:`cnai.argo.kit.rayjob.step_parameters`); the entrypoint writes the result's
``outputs`` keys to files the template's output parameters read. For steps that need
no Ray cluster: one process, the platform's image, ``envFrom``, resources, container
security and the :func:`~cnai.argo.kit.retry.transient` retry (bad input exits 2 and
is never retried).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from cnai.argo.kit.pods import container_security, env_from, full_image, resources
from cnai.argo.kit.rayjob import step_inputs, step_parameters, target_ref
from cnai.argo.kit.retry import transient
from cnai.argo.kit.scripts import DEFAULT_RESOURCES
from cnai.argo.pipeline import Platform

OUTPUTS_DIR = "/tmp/cnai-outputs"
"""Where the entrypoint writes the result values the output parameters read."""


def step_container(
    platform: Platform,
    name: str,
    step: str | Callable[..., Any],
    params: Sequence[str] | None = None,
    *,
    outputs: Sequence[str] = (),
    retry: Any = None,
    cpu_memory: tuple[str, str, str, str] = DEFAULT_RESOURCES,
    **extra: Any,
) -> Any:
    """A Hera ``Container`` template ``name`` calling ``step`` with its ``params``.

    ``outputs``: keys of the step's result dict exposed as output parameters (reference
    them with :func:`cnai.argo.kit.workflow.output`). ``extra``: further ``Container``
    fields (``memoize``, ``active_deadline_seconds``, ...).
    """
    from hera.workflows import Container, Parameter
    from hera.workflows import models as m

    declared = step_parameters(step, params)
    args = ["-m", "cnai.engine.entrypoint", target_ref(step)]
    for p in declared:
        args += ["--param", f"{p.name}={{{{inputs.parameters.{p.name}}}}}"]
    if outputs:
        args += ["--outputs-dir", OUTPUTS_DIR]
    for key in outputs:
        if not key.isidentifier():
            raise TypeError(f"step container {name}: output {key!r} is not an identifier")
    return Container(
        name=name,
        image=full_image(platform),
        image_pull_policy="IfNotPresent",
        command=["python"],
        args=args,
        env_from=env_from(platform),
        resources=resources(*cpu_memory),
        security_context=container_security(),
        retry_strategy=retry if retry is not None else transient(),
        inputs=step_inputs(declared),
        outputs=[
            Parameter(name=key, value_from=m.ValueFrom(path=f"{OUTPUTS_DIR}/{key}"))
            for key in outputs
        ]
        or None,
        **extra,
    )
