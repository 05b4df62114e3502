"""The WorkflowTemplate defaults, memoization and checked references between tasks.

References go through Hera's own lookups rather than formatted strings:
:func:`output` is ``task.get_parameter(name)``, which builds the task's template and
raises ``KeyError`` when it has no such output parameter (Hera 7,
``hera/workflows/_mixins.py`` ``TemplateInvocatorSubNodeMixin._get_parameter``), and
:func:`workflow_args` is ``template.get_parameter(name)``, which raises when the
workflow declares no such parameter. A typo is a compile-time error, not a run whose
``{{tasks.x.outputs.parameters.y}}`` never resolves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from cnai.argo.kit.pods import PART_OF, pod_security
from cnai.argo.pipeline import Platform

MEMO_MAX_AGE = "720h"
"""How long a memoized step result is reused (Argo ``memoize.maxAge``)."""


def pipeline_template(
    platform: Platform,
    name: str,
    *,
    entrypoint: str,
    parameters: Iterable[Mapping[str, Any]] = (),
    on_exit: str | None = None,
    deadline: int = 12 * 3600,
    mutex: str | None = None,
    **extra: Any,
) -> Any:
    """A Hera ``WorkflowTemplate`` (use it as a context manager) with the platform defaults.

    Service account, non-root pod security, the ``part-of`` label, a TTL (1 day after
    success, 7 after failure), pod GC and an ``activeDeadlineSeconds``; ``parameters``
    are ``{name, value, description[, enum]}`` dicts (what the Argo UI's submit form
    shows); ``mutex``: a synchronization mutex name (e.g. per branch).
    """
    from hera.workflows import Parameter, WorkflowTemplate
    from hera.workflows import models as m

    if mutex:
        extra["synchronization"] = m.Synchronization(mutexes=[m.Mutex(name=mutex)])
    return WorkflowTemplate(
        name=name,
        entrypoint=entrypoint,
        on_exit=on_exit,
        service_account_name=platform.service_account,
        active_deadline_seconds=deadline,
        arguments=[Parameter(**p) for p in parameters],
        ttl_strategy=m.TTLStrategy(seconds_after_success=86400, seconds_after_failure=604800),
        pod_gc=m.PodGC(strategy="OnPodSuccess", delete_delay_duration="10m"),
        security_context=pod_security(platform),
        labels=dict(PART_OF),
        **extra,
    )


def memoize(cache: str, key: str = "{{inputs.parameters.result_key}}") -> Any:
    """Hera ``Memoize``: reuse a step's result for ``key`` (default: its ``result_key``
    input) from ConfigMap ``cache`` for :data:`MEMO_MAX_AGE`."""
    from hera.workflows import models as m

    return m.Memoize(
        key=key,
        max_age=MEMO_MAX_AGE,
        cache=m.Cache(config_map=m.LocalObjectReference(name=cache)),
    )


def output(task: Any, name: str) -> Any:
    """The checked reference to output parameter ``name`` of ``task`` (a Hera Parameter)."""
    return task.get_parameter(name)


def is_true(task: Any, name: str) -> str:
    """A ``when`` expression: output ``name`` of ``task`` is ``true``."""
    return f"{output(task, name).value} == true"


def workflow_args(template: Any, *names: str) -> dict[str, Any]:
    """``{name: {{workflow.parameters.name}}}`` for task arguments, each name checked."""
    return {name: template.get_parameter(name) for name in names}
