"""Run ``cnai lint`` over a fetched upstream example suite and print the counts.

Usage::

    python scripts/lint_upstream_suites.py GIT_DIR REF [PREFIX] [--show N]

``GIT_DIR`` is a bare git directory (e.g. the one the ``fetch`` tool gives for
``github:argoproj/argo-workflows``), ``REF`` a tag or commit (``v4.1.2``) and ``PREFIX``
the folder to lint (``examples/``). Every ``.yaml``/``.yml`` file under it whose
documents are Argo Workflows kinds is linted; files with other kinds only are skipped.
The last line is a JSON object: files, rejected, findings and the rejected paths.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from collections import Counter

import yaml

from cnai.lint import lint_text
from cnai.lint.derived import WORKFLOW_KINDS


def _git(git_dir: str, *args: str) -> str:
    return subprocess.run(
        ["git", f"--git-dir={git_dir}", *args], check=True, capture_output=True, text=True
    ).stdout


def main() -> None:
    """Lint every Argo Workflows YAML file of the suite; print counts and a JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("git_dir")
    parser.add_argument("ref")
    parser.add_argument("prefix", nargs="?", default="examples/")
    parser.add_argument("--show", type=int, default=0, help="print N findings")
    args = parser.parse_args()
    paths = [
        p
        for p in _git(args.git_dir, "ls-tree", "-r", "--name-only", args.ref, args.prefix).split()
        if p.endswith((".yaml", ".yml"))
    ]
    files = rejected = 0
    rejected_paths: list[str] = []
    messages: Counter[str] = Counter()
    shown = 0
    for path in paths:
        text = _git(args.git_dir, "show", f"{args.ref}:{path}")
        try:
            docs = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
        except yaml.YAMLError:
            continue
        if not docs or not all(d.get("kind") in WORKFLOW_KINDS for d in docs):
            continue
        files += 1
        found = lint_text(text, path)
        if found:
            rejected += 1
            rejected_paths.append(path)
            for problem in found:
                messages[problem.message.split("{{")[0][:60]] += 1
                if shown < args.show:
                    print(problem)
                    shown += 1
    for message, count in messages.most_common(15):
        print(f"{count:5d}  {message}")
    print(json.dumps({"files": files, "rejected": rejected, "rejected_paths": rejected_paths}))


if __name__ == "__main__":
    main()
