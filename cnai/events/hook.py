"""A git post-receive hook that turns a real ``git push`` into a GitHub push delivery.

``cnai events install-hook --repo PATH`` writes ``hooks/post-receive`` into a git
repository (bare or not). On every push git runs it with one ``OLD NEW REF`` line per
updated ref; for each ref it builds a GitHub-shaped ``push`` payload (ref, before,
after, created, deleted, forced, commits with added/modified/removed paths,
head_commit, repository), signs it with ``$CNAI_GITHUB_WEBHOOK_SECRET`` (or the
``--secret-file`` given at install time; the secret itself is never written into the
hook) and posts it to the gateway, printing the gateway's answer to the pusher.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cnai.errors import UsageError
from cnai.events.signature import github_signature

HOOK_MARKER = "# cnai-events-hook"
SECRET_ENV = "CNAI_GITHUB_WEBHOOK_SECRET"
ZERO_SHA = "0" * 40
MAX_COMMITS = 2048
"""GitHub lists at most this many commits in one push payload."""


def _git(repo: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def _is_zero(sha: str) -> bool:
    return set(sha) == {"0"}


def _commit(repo: Path, sha: str) -> dict[str, Any]:
    fields = _git(
        repo, "show", "-s", "--format=%H%x00%T%x00%P%x00%an%x00%ae%x00%cn%x00%ce%x00%cI%x00%B", sha
    ).split("\x00")
    commit_id, tree, parents, an, ae, cn, ce, when, message = fields[:9]
    parent_list = parents.split()
    if parent_list:
        diff = _git(repo, "diff-tree", "-r", "--no-renames", "--name-status", parent_list[0], sha)
    else:
        diff = _git(repo, "diff-tree", "-r", "--root", "--no-renames", "--name-status", sha)
    added, modified, removed = [], [], []
    for line in diff.splitlines():
        if "\t" not in line:
            continue
        status, path = line.split("\t", 1)
        if status.startswith("A"):
            added.append(path)
        elif status.startswith("D"):
            removed.append(path)
        else:
            modified.append(path)
    return {
        "id": commit_id,
        "tree_id": tree,
        "distinct": True,
        "message": message.rstrip("\n"),
        "timestamp": when,
        "author": {"name": an, "email": ae},
        "committer": {"name": cn, "email": ce},
        "added": added,
        "removed": removed,
        "modified": modified,
    }


def build_push_payload(repo: Path, old: str, new: str, ref: str, repository: str) -> dict[str, Any]:
    """The GitHub ``push`` payload for one ref update of the repository at ``repo``."""
    created, deleted = _is_zero(old), _is_zero(new)
    if deleted:
        shas: list[str] = []
    elif created:
        # Commits this push brought in: reachable from the new ref, from no other ref.
        listing = _git(
            repo, "rev-list", "--reverse", f"--max-count={MAX_COMMITS}", new,
            "--not", f"--exclude={ref}", "--all",
        )  # fmt: skip
        shas = listing.split()
    else:
        listing = _git(repo, "rev-list", "--reverse", f"--max-count={MAX_COMMITS}", f"{old}..{new}")
        shas = listing.split()
    forced = False
    if not created and not deleted:
        ancestor = subprocess.run(
            ["git", "merge-base", "--is-ancestor", old, new], cwd=repo, check=False
        )
        forced = ancestor.returncode != 0
    head = _git(repo, "symbolic-ref", "-q", "HEAD").strip() if not deleted else ""
    default_branch = head.removeprefix("refs/heads/") or "main"
    owner, _, name = repository.partition("/")
    commits = [_commit(repo, sha) for sha in shas]
    user = {"name": os.environ.get("USER", "git"), "email": ""}
    return {
        "ref": ref,
        "before": old,
        "after": new,
        "created": created,
        "deleted": deleted,
        "forced": forced,
        "base_ref": None,
        "compare": "",
        "commits": commits,
        "head_commit": commits[-1] if commits else None,
        "repository": {
            "name": name or owner,
            "full_name": repository,
            "owner": {"name": owner, "login": owner},
            "default_branch": default_branch,
            "master_branch": default_branch,
            "clone_url": str(repo.resolve()),
        },
        "pusher": user,
        "sender": {"login": user["name"]},
    }


def post_delivery(url: str, payload: dict[str, Any], secret: str | None) -> tuple[int, str]:
    """POST one signed push delivery; (HTTP status, response body)."""
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "cnai-git-hook",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()),
    }
    if secret:
        headers["X-Hub-Signature-256"] = github_signature(secret, body)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def _read_secret(secret_file: str | None) -> str | None:
    if os.environ.get(SECRET_ENV):
        return os.environ[SECRET_ENV]
    if secret_file:
        try:
            return Path(secret_file).read_text().strip()
        except OSError as exc:
            print(f"cnai hook: cannot read secret file {secret_file}: {exc}", file=sys.stderr)
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the installed hook: reads ``OLD NEW REF`` lines from stdin."""
    parser = argparse.ArgumentParser(prog="cnai-post-receive")
    parser.add_argument("--url", required=True)
    parser.add_argument("--repository", required=True)
    parser.add_argument("--secret-file")
    args = parser.parse_args(argv)
    repo = Path(os.environ.get("GIT_DIR", ".")).resolve()
    os.environ["GIT_DIR"] = str(repo)  # git runs below from inside the git dir
    secret = _read_secret(args.secret_file)
    if not secret:
        print(f"cnai hook: {SECRET_ENV} not set; posting unsigned", file=sys.stderr)
    for line in sys.stdin:
        parts = line.split()
        if len(parts) != 3:
            continue
        old, new, ref = parts
        try:
            payload = build_push_payload(repo, old, new, ref, args.repository)
            status, answer = post_delivery(args.url, payload, secret)
        except (OSError, RuntimeError, urllib.error.URLError) as exc:
            # A post-receive hook cannot undo the push: report and carry on.
            print(f"cnai hook: {ref}: gateway {args.url} unreachable: {exc}", file=sys.stderr)
            continue
        print(f"cnai hook: {ref} -> {status} {answer.strip()}")
    return 0


def install_hook(
    repo: Path,
    url: str,
    repository: str,
    secret_file: Path | None = None,
    force: bool = False,
    python: str | None = None,
) -> Path:
    """Write ``post-receive`` into ``repo``'s hooks folder; the hook's path."""
    if not repo.exists():
        raise UsageError(f"--repo {repo}: no such folder")
    try:
        hooks = _git(repo, "rev-parse", "--path-format=absolute", "--git-path", "hooks").strip()
    except RuntimeError as exc:
        raise UsageError(f"--repo {repo}: not a git repository") from exc
    hook = Path(hooks) / "post-receive"
    if hook.exists() and HOOK_MARKER not in hook.read_text(errors="replace") and not force:
        raise UsageError(f"--repo {repo}: {hook} exists and is not cnai's (use --force)")
    command = [python or sys.executable, "-m", "cnai.events.hook", "--url", url]
    command += ["--repository", repository]
    if secret_file is not None:
        command += ["--secret-file", str(secret_file.resolve())]
    hook.parent.mkdir(parents=True, exist_ok=True)
    hook.write_text(
        "#!/bin/sh\n"
        f"{HOOK_MARKER}: installed by `cnai events install-hook` on "
        f"{datetime.now(UTC).isoformat(timespec='seconds')}\n"
        "# Posts each pushed ref to the cnai events gateway as a signed GitHub push delivery.\n"
        f"exec {shlex.join(command)}\n"
    )
    hook.chmod(0o755)
    return hook


if __name__ == "__main__":
    sys.exit(main())
