"""Provenance of the code a local run executes: ``git_sha`` and ``git_branch`` defaults.

A dirty tree gets a ``-dirty-<hash>`` suffix (the hash covers the diff and the
untracked files, the home folder excepted) so uncommitted code changes count as
changes for the pipeline's work keys.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path


def _git(*args: str, cwd: Path) -> str | None:
    try:
        proc = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_defaults(cwd: Path, home: Path) -> dict[str, str]:
    """``git_sha`` and ``git_branch`` of the checkout at ``cwd`` (empty outside git)."""
    sha = _git("rev-parse", "HEAD", cwd=cwd)
    if not sha:
        return {}
    branch = _git("rev-parse", "--abbrev-ref", "HEAD", cwd=cwd) or ""
    status = _git("status", "--porcelain", "--untracked-files=all", cwd=cwd) or ""
    try:
        home_rel = str(home.resolve().relative_to(cwd.resolve()))
    except ValueError:
        home_rel = None
    changed = [
        line
        for line in status.splitlines()
        if not (home_rel and line[3:].startswith(home_rel.rstrip("/") + "/"))
    ]
    if changed:
        diff = _git("diff", "HEAD", "--binary", cwd=cwd) or ""
        untracked = sorted(line[3:] for line in changed if line.startswith("??"))
        digest = hashlib.sha256(diff.encode())
        for name in untracked:
            path = cwd / name
            digest.update(name.encode())
            if path.is_file():
                digest.update(path.read_bytes())
        sha = f"{sha}-dirty-{digest.hexdigest()[:12]}"
    return {"git_sha": sha, "git_branch": branch if branch != "HEAD" else ""}
