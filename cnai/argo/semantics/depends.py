"""DAG ``depends``: Argo's rewrite of the expression, evaluated over task results.

What the Argo controller does (Argo Workflows v4.1.2):

1. ``workflow/common/ancestry.go`` finds task references with ``taskNameRegex``: a
   ``name.Result`` pair, or a bare ``name``. A bare name becomes
   ``(name.Succeeded || name.Skipped || name.Daemoned)``, plus ``|| name.Errored`` /
   ``|| name.Failed`` when that task has ``continueOn.error`` / ``continueOn.failed``
   (``expandDependency``); ``dependencies: [a, b]`` is the same with `` && ``.
   ``ValidateTaskResults`` refuses a result other than the eight below.
2. ``workflow/controller/dag.go`` ``evaluateDependsLogic`` gives every referenced task
   a record of eight booleans (``Succeeded`` .. ``Daemoned`` from the node phase,
   ``AnySucceeded``/``AllFailed`` from a task group's children) and evaluates the
   rewritten text with ``util/expr/argoexpr.EvalBool`` (expr-lang, not govaluate).

Here the rewritten text is evaluated by the one govaluate implementation
(:mod:`cnai.argo.semantics.govaluate`), each task record a Go struct reached with an
accessor. Only task results combined with ``&&``, ``||``, ``!`` and parentheses are
accepted: on those expr-lang and govaluate agree, and anything else is refused with
a UsageError instead of being evaluated by the other language's rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from cnai.argo.semantics.govaluate import GoStruct, GovaluateError, compile_expression
from cnai.errors import UsageError

TASK_RESULTS = ("Succeeded", "Failed", "Errored", "Skipped", "Omitted", "Daemoned")
"""Results of one task (from its node phase)."""
GROUP_RESULTS = ("AnySucceeded", "AllFailed")
"""Results over the children of an expanded task (withItems/withParam/withSequence)."""

_TASK_NAME = re.compile(r"([a-zA-Z0-9][-a-zA-Z0-9]*?\.[A-Z][a-zA-Z]+)|([a-zA-Z0-9][-a-zA-Z0-9]*)")
_ALLOWED = {"ACCESSOR", "LOGICALOP", "PREFIX", "CLAUSE", "CLAUSE_CLOSE"}
_DONE_OK = ("Succeeded", "Skipped", "Daemoned")


def depends_tasks(text: str, where: str) -> list[str]:
    """Task names a ``depends`` expression refers to, in order of appearance.

    Raises UsageError for a task result Argo does not know (``ValidateTaskResults``).
    """
    names: list[str] = []
    for match in _TASK_NAME.finditer(text):
        name, _, result = (match.group(1) or match.group(2)).partition(".")
        if result and result not in TASK_RESULTS + GROUP_RESULTS:
            raise UsageError(
                f"{where}: depends {text!r}: task result '{result}' for task '{name}' is invalid"
            )
        if name not in names:
            names.append(name)
    return names


def expand_depends(text: str, continue_on: Callable[[str], tuple[bool, bool]] | None = None) -> str:
    """Argo's rewrite: every bare task name replaced by the results it stands for.

    ``continue_on(name)`` gives that task's ``(continueOn.error, continueOn.failed)``.
    """

    def replace(match: re.Match[str]) -> str:
        if match.group(1):
            return match.group(1)
        name = match.group(2)
        results = list(_DONE_OK)
        error, failed = continue_on(name) if continue_on else (False, False)
        if error:
            results.append("Errored")
        if failed:
            results.append("Failed")
        return "(" + " || ".join(f"{name}.{r}" for r in results) + ")"

    return _TASK_NAME.sub(replace, text)


def _group_phase(phases: list[str]) -> str:
    """The phase of a task, or of its task group node over its children's phases.

    A group is Succeeded unless a child failed or errored; then it takes the phase of
    the last such child (dag.go, where the TaskGroup node's phase is set).
    """
    if len(phases) == 1:
        return phases[0]
    if not phases:
        return "Skipped"
    group = "Succeeded"
    for phase in phases:
        if phase in ("Failed", "Error"):
            group = phase
    return group


def _record(phases: list[str]) -> GoStruct:
    phase = _group_phase(phases)
    return GoStruct(
        {
            "Succeeded": phase == "Succeeded",
            "Failed": phase == "Failed",
            "Errored": phase == "Error",
            "Skipped": phase == "Skipped",
            "Omitted": phase == "Omitted",
            "Daemoned": phase == "Daemoned",
            "AnySucceeded": any(p == "Succeeded" for p in phases),
            "AllFailed": bool(phases) and all(p == "Failed" for p in phases),
        }
    )


def evaluate_depends(
    text: str,
    phases: Callable[[str], list[str]],
    where: str,
    continue_on: Callable[[str], tuple[bool, bool]] | None = None,
) -> bool:
    """Whether a task runs, once every task its ``depends`` names has completed.

    ``phases(name)`` gives the phase of the task, or of each of its expanded children.
    """
    names = depends_tasks(text, where)
    expanded = expand_depends(text, continue_on)
    alias = {name: f"t{i}" for i, name in enumerate(names)}

    def aliased(match: re.Match[str]) -> str:
        name, _, result = (match.group(1) or match.group(2)).partition(".")
        return f"{alias[name]}.{result}" if result else alias[name]

    rewritten = _TASK_NAME.sub(aliased, expanded)
    try:
        expression = compile_expression(rewritten)
    except GovaluateError as exc:
        raise UsageError(f"{where}: cannot parse depends {text!r}: {exc}") from None
    for token in expression.tokens:
        if token.kind not in _ALLOWED or (token.kind == "PREFIX" and token.value != "!"):
            raise UsageError(
                f"{where}: depends {text!r}: only task results combined with &&, || and ! "
                "are supported"
            )
    records = {alias[name]: _record(phases(name)) for name in names}
    try:
        result = expression.evaluate(records)
    except GovaluateError as exc:
        raise UsageError(f"{where}: cannot evaluate depends {text!r}: {exc}") from None
    if not isinstance(result, bool):  # pragma: no cover - the allowed tokens only make booleans
        raise UsageError(f"{where}: depends {text!r} is not a boolean expression")
    return result
