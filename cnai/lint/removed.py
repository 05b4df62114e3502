"""Fields Argo Workflows v4 removed, named as removed rather than as unknown.

Facts from argo-workflows v4.1.2 (``docs/upgrading.md`` and ``pkg/apis/workflow/v1alpha1``):
``synchronization.mutex``/``synchronization.semaphore`` became the lists ``mutexes``/
``semaphores``, a CronWorkflow's ``schedule`` became the list ``schedules``, and the
memoize cache's ConfigMap takes only ``name`` (``key`` is gone).
"""

from __future__ import annotations

REMOVED_IN_V4: dict[str, str] = {
    "synchronization.mutex": "synchronization.mutexes (a list)",
    "synchronization.semaphore": "synchronization.semaphores (a list)",
    "memoize.cache.configMap.key": "memoize.cache.configMap.name only",
}
"""Path suffix of a removed field -> what to use instead."""

CRON_SCHEDULE = ("spec.schedule", "spec.schedules (a list)")
"""A CronWorkflow's singular ``schedule`` and its replacement."""


def removed_message(path: str, kind: str) -> str | None:
    """The "removed in Argo v4" message for a field at ``path``, or None if not removed."""
    if kind == "CronWorkflow" and path.endswith(CRON_SCHEDULE[0]):
        return f"removed in Argo v4, use {CRON_SCHEDULE[1]}"
    for suffix, instead in REMOVED_IN_V4.items():
        if path.endswith(suffix):
            return f"removed in Argo v4, use {instead}"
    return None


def rename_removed(found: list[tuple[str, str]], kind: str) -> list[tuple[str, str]]:
    """Replace "unknown field" findings on removed v4 fields by "removed in Argo v4"."""
    out = []
    for path, message in found:
        removed = removed_message(path, kind) if message.startswith("unknown field") else None
        out.append((path, removed or message))
    return out
