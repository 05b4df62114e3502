"""Dependency cycles in DAG tasks and templates, found with the standard library's graphlib."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from graphlib import CycleError, TopologicalSorter


def find_cycle(deps: Mapping[str, Iterable[str]]) -> list[str]:
    """One dependency cycle in ``deps`` (name -> the names it depends on), or ``[]``.

    The cycle reads ``a -> b -> ... -> a`` where each name depends on the next one.
    """
    try:
        TopologicalSorter({name: list(on) for name, on in deps.items()}).prepare()
    except CycleError as exc:
        # graphlib lists each node before the node that depends on it: reverse it.
        return list(reversed(exc.args[1]))
    return []
