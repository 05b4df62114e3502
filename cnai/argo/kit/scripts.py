"""Runner-script templates: a typed Python function run by Hera's runner in the image.

``runner_script(platform, "ingest", tasks.ingest_and_plan)`` is a Hera ``Script``
(``python -m hera.workflows.runner -e module:function``) whose inputs are the
function's parameters and whose outputs are the fields of its ``Output`` return
type, with the platform's image, ``envFrom``, resources, container security and the
:func:`~cnai.argo.kit.retry.transient` retry strategy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cnai.argo.kit.pods import container_security, env_from, full_image, resources
from cnai.argo.kit.retry import transient
from cnai.argo.pipeline import Platform

DEFAULT_RESOURCES = ("250m", "512Mi", "1", "2Gi")
"""CPU request, memory request, CPU limit, memory limit of a runner script."""


def runner_script(
    platform: Platform,
    name: str,
    function: Callable[..., Any],
    *,
    retry: Any = None,
    cpu_memory: tuple[str, str, str, str] = DEFAULT_RESOURCES,
    **extra: Any,
) -> Any:
    """A Hera runner ``Script`` template named ``name`` calling ``function``.

    ``retry``: a Hera ``RetryStrategy`` (default :func:`~cnai.argo.kit.retry.transient`);
    ``extra``: further ``Script`` fields (``inputs``, ``memoize``, ...).
    """
    from hera.workflows import Script

    return Script(
        name=name,
        source=function,
        constructor="runner",
        image=full_image(platform),
        image_pull_policy="IfNotPresent",
        env_from=env_from(platform),
        resources=resources(*cpu_memory),
        security_context=container_security(),
        retry_strategy=retry if retry is not None else transient(),
        **extra,
    )
