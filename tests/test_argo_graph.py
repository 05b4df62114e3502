"""Dependency cycles found with graphlib, in the order a user reads them."""

from __future__ import annotations

from itertools import pairwise

from cnai.argo.semantics.graph import find_cycle


def test_no_cycle() -> None:
    assert find_cycle({"a": [], "b": ["a"], "c": ["a", "b"]}) == []


def test_cycle_reads_as_depends_on_next() -> None:
    cycle = find_cycle({"ingest": ["register"], "tune": ["ingest"], "register": ["tune"]})
    assert cycle[0] == cycle[-1] and len(cycle) == 4
    deps = {"ingest": ["register"], "tune": ["ingest"], "register": ["tune"]}
    for name, dep in pairwise(cycle):
        assert dep in deps[name]


def test_self_dependency_is_a_cycle() -> None:
    assert find_cycle({"a": ["a"]}) == ["a", "a"]
