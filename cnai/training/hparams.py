"""Hyperparameters a model factory declares, plus the training loop's own.

A model factory (``module:function``, configured by ``train.model_factory``) declares
its tunable hyperparameters in its signature: every keyword parameter that has a
default and an ``int``, ``float``, ``bool`` or ``str`` annotation is one, named as the
parameter, typed by the annotation, defaulting to the default. The parameters the
library passes itself (:data:`LIBRARY_ARGUMENTS`: the data shape and the class count)
are not hyperparameters. A factory may instead set an explicit
``hyperparameters`` attribute (``{name: type}`` or ``{name: (type, default)}``), for
example when it takes ``**kwargs``; it overrides what the signature says.

:func:`hyperparameters` adds the loop's (``epochs``, ``lr``, ``batch_size``,
``weight_decay``) to the factory's: that mapping is what a Katib spec may search,
what ``cnai train --hparam`` and the Katib trial command accept, and what the train
step passes on, each value converted to its declared type.
"""

from __future__ import annotations

import inspect
import math
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cnai.errors import UsageError

if TYPE_CHECKING:
    from cnai.config import Settings

SCALAR_TYPES: tuple[type, ...] = (int, float, bool, str)
"""Annotations a declared hyperparameter may have."""

LIBRARY_ARGUMENTS = frozenset({"input_shape", "num_classes"})
"""Factory parameters the library fills from the data (see
:func:`cnai.training.loop.build_model`), never hyperparameters. A data-statistics
argument the library passes must be listed here too unless its annotation is not a
scalar (then it is excluded anyway)."""

OVERRIDE_ATTRIBUTE = "hyperparameters"
"""Attribute of a factory that declares its hyperparameters explicitly."""

DEFAULT_EPOCHS = 15
DEFAULT_LR = 0.003
DEFAULT_BATCH_SIZE = 64
DEFAULT_WEIGHT_DECAY = 0.0

LOOP_HYPERPARAMETERS: dict[str, tuple[type, Any]] = {
    "epochs": (int, DEFAULT_EPOCHS),
    "lr": (float, DEFAULT_LR),
    "batch_size": (int, DEFAULT_BATCH_SIZE),
    "weight_decay": (float, DEFAULT_WEIGHT_DECAY),
}
"""The training loop's hyperparameters: name -> (type, default)."""

RESERVED_NAMES = frozenset(
    {
        "table",
        "snapshot_id",
        "workers",
        "use_gpu",
        "model_params",
        "seed",
        "max_restarts",
        "git_sha",
        "git_branch",
        "trigger",
        "settings",
        "progress",
    }
)
"""Arguments of the train step itself: a factory hyperparameter may not be named so."""

Declared = dict[str, tuple[type, Any]]
"""Hyperparameter name -> (Python type, default)."""


def _factory_name(factory: str | Callable[..., Any]) -> str:
    if isinstance(factory, str):
        return factory
    return f"{getattr(factory, '__module__', '?')}:{getattr(factory, '__qualname__', factory)}"


def _resolve(factory: str | Callable[..., Any]) -> Callable[..., Any]:
    if callable(factory):
        return factory
    from cnai.resolve import resolve_callable

    return resolve_callable(factory, what="model factory")


def _override(name: str, raw: Any) -> Declared:
    """The explicit ``hyperparameters`` attribute, checked."""
    if not isinstance(raw, Mapping):
        raise UsageError(f"model factory {name}: {OVERRIDE_ATTRIBUTE} must be a mapping")
    out: Declared = {}
    for key, value in raw.items():
        kind, default = value if isinstance(value, tuple) else (value, None)
        if not isinstance(key, str) or kind not in SCALAR_TYPES:
            raise UsageError(
                f"model factory {name}: {OVERRIDE_ATTRIBUTE}[{key!r}] must map a name to "
                "int, float, bool or str (or a (type, default) pair)"
            )
        out[key] = (kind, default)
    return out


def declared_hyperparameters(factory: str | Callable[..., Any]) -> Declared:
    """The factory's tunable hyperparameters: ``{name: (type, default)}``.

    From its explicit ``hyperparameters`` attribute when it has one, else from its
    signature (keyword parameters with a default and a scalar annotation, except
    :data:`LIBRARY_ARGUMENTS`). UsageError when the factory does not import.
    """
    name = _factory_name(factory)
    function = _resolve(factory)
    explicit = getattr(function, OVERRIDE_ATTRIBUTE, None)
    if explicit is not None:
        return _override(name, explicit)
    try:
        signature = inspect.signature(function)
        hints = typing.get_type_hints(function)
    except (TypeError, ValueError, NameError) as exc:
        raise UsageError(f"model factory {name}: cannot read its signature ({exc})") from exc
    out: Declared = {}
    for param in signature.parameters.values():
        if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            continue
        if param.default is param.empty or param.name in LIBRARY_ARGUMENTS:
            continue
        kind = hints.get(param.name)
        if kind in SCALAR_TYPES:
            out[param.name] = (kind, param.default)
    return out


def hyperparameters(settings: Settings | None = None, factory: str | None = None) -> Declared:
    """The loop's hyperparameters plus those of ``factory`` (default: the configured one).

    A factory hyperparameter named like a loop one or an argument of the train step
    (:data:`RESERVED_NAMES`) is refused (UsageError): the factory would never see it.
    """
    if factory is None:
        if settings is None:
            from cnai.config import load_settings

            settings = load_settings()
        factory = settings.model_factory
    model = declared_hyperparameters(factory)
    clash = sorted(set(model) & (set(LOOP_HYPERPARAMETERS) | RESERVED_NAMES))
    if clash:
        raise UsageError(
            f"model factory {factory}: hyperparameter {clash[0]!r} clashes with an argument "
            "of the train step (rename it in the factory)"
        )
    return {**LOOP_HYPERPARAMETERS, **model}


def types_of(declared: Declared) -> dict[str, type]:
    """``{name: type}`` of a declaration (what Katib spec parsing takes)."""
    return {name: kind for name, (kind, _default) in declared.items()}


def convert(name: str, value: Any, kind: type, where: str = "--hparam") -> Any:
    """``value`` (text or JSON value) as ``kind``; UsageError naming ``name`` otherwise."""
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).lower()
            if text not in ("true", "false"):
                raise ValueError(value)
            return text == "true"
        if isinstance(value, bool):
            raise ValueError(value)
        if kind is int:
            number = float(value)
            if not number.is_integer():
                raise ValueError(value)
            return int(number)
        if kind is float:
            number = float(value)
            if not math.isfinite(number):
                raise ValueError(value)
            return number
        if not isinstance(value, str):
            raise ValueError(value)
        return value
    except (TypeError, ValueError, OverflowError):
        raise UsageError(f"{where} {name}={value!r}: not a valid {kind.__name__}") from None


def check(
    values: Mapping[str, Any], declared: Mapping[str, type], factory: str, where: str = "--hparam"
) -> dict[str, Any]:
    """``values`` converted to the declared types; None values are dropped (defaults).

    UsageError for an undeclared name, naming the factory and the declared names.
    """
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name not in declared:
            raise UsageError(
                f"{where} {name}: the training loop and model factory {factory} have no "
                f"hyperparameter {name!r} (declared: {', '.join(sorted(declared))})"
            )
        if value is not None:
            out[name] = convert(name, value, declared[name], where)
    return out


def parse_assignments(
    items: Sequence[str], declared: Mapping[str, type], factory: str, where: str = "--hparam"
) -> dict[str, Any]:
    """``NAME=VALUE`` strings -> hyperparameters of the declared types (UsageError otherwise)."""
    values: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise UsageError(f"{where} {item!r}: expected NAME=VALUE")
        values[name] = text
    return check(values, declared, factory, where)
