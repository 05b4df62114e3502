"""``when`` conditions, decided the way the Argo controller does.

Argo (``shouldExecute``, workflow/controller/steps.go at v4.1.2) substitutes the
``{{...}}`` references of a ``when`` as text first, then evaluates the result with
govaluate, every variable token turned into a string token so that bare words
(``foo != bar``) compare as strings. An empty ``when`` is true; a result that is not
a boolean is an error.
"""

from __future__ import annotations

from cnai.argo.semantics.govaluate import (
    GovaluateError,
    UnsupportedError,
    compile_expression,
    shown,
)
from cnai.errors import UsageError


class WhenNotSupportedError(UsageError):
    """A ``when`` Argo accepts but the local engine refuses rather than decide differently."""


_HINT = ' (hint: try wrapping the affected expression in quotes ("))'


def evaluate_when(text: str, where: str) -> bool:
    """Evaluate an already-substituted ``when`` expression; UsageError when Argo would fail."""
    if text == "":
        return True
    try:
        expression = compile_expression(text, variables_as_strings=True)
        result = expression.evaluate(None)
    except UnsupportedError as exc:
        raise WhenNotSupportedError(
            f"{where}: when expression {text!r}: {exc} is not supported by the local engine"
        ) from None
    except GovaluateError as exc:
        message = str(exc)
        hint = _HINT if "Invalid token" in message or "with the modifier" in message else ""
        raise UsageError(f"{where}: invalid when expression {text!r}: {message}{hint}") from None
    if not isinstance(result, bool):
        raise UsageError(f"{where}: expected boolean evaluation for {text!r}, got {shown(result)}")
    return result
