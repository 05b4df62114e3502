"""The entrypoint RayJob templates run: one step function, its summary stored by key.

``python -m cnai.engine.entrypoint MODULE:FUNCTION [--param NAME=VALUE]...
[--params-b64 B64JSON] [--result-key KEY] [--outputs-dir DIR]``

String values are converted with the function's type hints (int, float, bool, optional
types); ``--params-b64`` adds keyword arguments from URL-safe base64 of a JSON object
(values that are unsafe in a shell command or YAML stay encoded on the way; any name
when the function takes ``**kwargs``). Settings come from the environment (the
ConfigMap/Secret in the cluster, the home's settings locally). The result dict is
printed as JSON on stdout and, with ``--result-key``, stored in MLflow
(:mod:`cnai.engine.results`); with ``--outputs-dir``, each top-level value is also
written to ``DIR/<key>`` (the files an Argo container template's output parameters read,
see :func:`cnai.argo.kit.container.step_container`).
"""

from __future__ import annotations

import argparse
import base64
import inspect
import json
import os
import sys
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

from cnai.engine.badinput import report_bad_input
from cnai.errors import CnaiError, UsageError
from cnai.resolve import resolve_callable


def encode_params(params: dict[str, Any]) -> str:
    """URL-safe base64 of a JSON object (safe in shell words and YAML scalars)."""
    return base64.urlsafe_b64encode(json.dumps(params, sort_keys=True).encode()).decode()


def decode_params(text: str) -> dict[str, Any]:
    """The inverse of :func:`encode_params`; UsageError when it does not decode."""
    try:
        value = json.loads(base64.urlsafe_b64decode(text.encode()))
    except ValueError as exc:
        raise UsageError(f"--params-b64: not base64 of a JSON object ({exc})") from exc
    if not isinstance(value, dict):
        raise UsageError("--params-b64: must encode a JSON object")
    return value


def _convert(text: str, hint: Any, name: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if text in ("", "None", "null") and len(options) < len(typing.get_args(hint)):
            return None
        hint = options[0] if len(options) == 1 else str
    try:
        if hint is bool:
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return text.lower() in ("true", "1")
        if hint in (int, float):
            return hint(text)
        if hint in (dict, list) or typing.get_origin(hint) in (dict, list):
            return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"--param {name}={text!r}: not a valid {hint}") from exc
    return text


def resolve(target: str) -> Callable[..., Any]:
    """``module:function`` as the function; UsageError when it cannot be imported."""
    return resolve_callable(target, what="step entrypoint")


def call(target: str, raw: Sequence[str], encoded: str | None) -> dict[str, Any]:
    """Call ``target`` with typed ``NAME=VALUE`` strings plus the decoded extras."""
    function = resolve(target)
    hints = typing.get_type_hints(function)
    signature = inspect.signature(function)
    # A step taking **kwargs (the train step's declared hyperparameters) gets any
    # further name from --params-b64; it checks them itself.
    open_ended = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    kwargs: dict[str, Any] = {}
    for pair in raw:
        name, sep, text = pair.partition("=")
        if not sep or name not in signature.parameters:
            raise UsageError(f"--param {pair!r}: {target} has no parameter {name!r}")
        kwargs[name] = _convert(text, hints.get(name, str), name)
    for name, value in (decode_params(encoded) if encoded else {}).items():
        if name not in signature.parameters and not open_ended:
            raise UsageError(f"--params-b64: {target} has no parameter {name!r}")
        kwargs[name] = value
    result = function(**kwargs)
    if not isinstance(result, dict):
        raise CnaiError(f"{target} returned {type(result).__name__}, expected a dict")
    return result


def output_text(value: Any) -> str:
    """A result value as an Argo output parameter: text as is, booleans as ``true``/``false``
    (what ``when`` compares), None as empty, anything else as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, str | int | float):
        return str(value)
    return json.dumps(value, sort_keys=True, default=str)


def write_outputs(result: dict[str, Any], folder: str) -> None:
    """Write each top-level value of ``result`` to ``folder/<key>`` (see :func:`output_text`)."""
    from pathlib import Path

    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    for key, value in result.items():
        if "/" not in str(key) and str(key) not in ("", ".", ".."):
            (target / str(key)).write_text(output_text(value))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the entrypoint; exit 0, 1 (runtime failure) or 2 (bad input)."""
    if os.environ.get("CNAI_ENGINE_PID") == str(os.getppid()):
        from cnai.engine.zygote import die_with_parent

        die_with_parent()  # a local run killed with SIGKILL takes its steps with it
    parser = argparse.ArgumentParser(prog="python -m cnai.engine.entrypoint")
    parser.add_argument("target", help="MODULE:FUNCTION")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--params-b64", default=None)
    parser.add_argument("--result-key", default=None)
    parser.add_argument("--outputs-dir", default=None, metavar="DIR")
    args = parser.parse_args(argv)
    try:
        result = call(args.target, args.param, args.params_b64)
        if args.result_key:
            from cnai.config import load_settings
            from cnai.engine.results import save_result

            save_result(load_settings(), args.result_key, result)
        if args.outputs_dir:
            write_outputs(result, args.outputs_dir)
    except UsageError as exc:
        return report_bad_input(exc)
    except CnaiError as exc:
        print(f"cnai: error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
