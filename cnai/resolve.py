"""Resolve a ``module:object`` reference (a model factory, a trial function, a step
entrypoint, a pipeline) with :func:`pkgutil.resolve_name`.

``pkgutil.resolve_name`` is the standard library's implementation of the entry-point
syntax (``package.module:attr.attr``); this module only turns its failures into one
:class:`~cnai.errors.UsageError` naming the reference and what it was meant to be.
"""

from __future__ import annotations

import pkgutil
from collections.abc import Callable
from typing import Any

from cnai.errors import UsageError


def resolve_object(ref: str, *, what: str) -> Any:
    """The object ``ref`` (``module:attr``) names; UsageError (exit 2) when it cannot.

    ``what`` says what the reference is for ("model factory", "pipeline", ...) and
    starts the error message.
    """
    module, sep, attr = ref.partition(":")
    if not sep or not module or not attr:
        raise UsageError(f"{what} {ref!r}: expected module:name (e.g. mypkg.models:build)")
    try:
        return pkgutil.resolve_name(ref)
    except (ImportError, AttributeError, ValueError) as exc:
        raise UsageError(f"{what} {ref!r}: cannot be resolved ({exc})") from exc


def resolve_callable(ref: str, *, what: str) -> Callable[..., Any]:
    """Like :func:`resolve_object`, and the object must be callable."""
    found = resolve_object(ref, what=what)
    if not callable(found):
        raise UsageError(f"{what} {ref!r}: {type(found).__name__} is not callable")
    return found
