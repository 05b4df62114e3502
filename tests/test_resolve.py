"""The three module:function resolvers all go through cnai.resolve (pkgutil.resolve_name)."""

from __future__ import annotations

import pytest

from cnai.engine.entrypoint import resolve as resolve_entrypoint
from cnai.errors import UsageError
from cnai.resolve import resolve_callable, resolve_object
from cnai.training.loop import resolve_factory
from cnai.tuning.runner import _resolve as resolve_trial


@pytest.mark.parametrize(
    ("resolver", "what"),
    [
        (resolve_factory, "model factory"),
        (resolve_trial, "trial function"),
        (resolve_entrypoint, "step entrypoint"),
    ],
)
def test_every_resolver_names_the_reference_and_its_purpose(resolver: object, what: str) -> None:
    assert callable(resolver)
    assert resolver("os.path:join") is __import__("os").path.join
    assert resolver("json.decoder:JSONDecoder.decode") is __import__("json").JSONDecoder.decode
    for ref, problem in (
        ("os.path.join", "expected module:name"),
        ("no_such_module_xyz:f", "cannot be resolved"),
        ("os.path:no_such_function", "has no attribute 'no_such_function'"),
        ("os:sep", "str is not callable"),
    ):
        with pytest.raises(UsageError, match=f"^{what} '{ref}': .*{problem}"):
            resolver(ref)


def test_resolve_object_returns_non_callables() -> None:
    assert resolve_object("os:sep", what="thing") == __import__("os").sep
    with pytest.raises(UsageError, match="is not callable"):
        resolve_callable("os:sep", what="thing")
