"""A git post-receive hook that turns a real ``git push`` into a GitHub push delivery.

``cnai events install-hook --repo PATH`` writes ``hooks/post-receive`` into a git
repository (bare or not). On every push git runs it with one ``OLD NEW REF`` line per
updated ref; for each ref it builds a GitHub-shaped ``push`` payload (ref, before,
after, created, deleted, forced, commits with added/modified/removed paths,
head_commit, repository), signs it with ``$CNAI_GITHUB_WEBHOOK_SECRET`` (or the
``--secret-file`` given at install time; the secret itself is never written into the
hook) and posts it to the gateway, printing the gateway's answer to the pusher.

A delivery the gateway could not take (unreachable, timed out, 429 or 5xx) is saved in
the repository's ``cnai-events-spool/`` folder (the payload and its delivery id; never
the secret) and resent, oldest first and signed afresh, before the next push's
deliveries or by ``cnai events flush --repo PATH``. The gateway de-duplicates by
delivery id, so a resend of a delivery that did arrive is answered ``duplicate``. The
spool holds at most ``--spool-limit`` deliveries (default 100); past that a delivery is
lost and the hook says so. A post-receive hook cannot undo a push: whatever fails, the
hook prints one line per ref and exits 0.
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
from dataclasses import dataclass, replace
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
SPOOL_DIR = "cnai-events-spool"
"""Folder of the git directory holding deliveries to resend."""
SPOOL_LIMIT = 100
"""Default of ``--spool-limit``: deliveries kept for resending."""
POST_TIMEOUT = 30
"""Seconds the hook waits for the gateway's answer."""


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
            "--not", f"--exclude={ref}", "--exclude=HEAD", "--all",
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


def post_delivery(
    url: str, payload: dict[str, Any] | str, secret: str | None, delivery: str | None = None
) -> tuple[int, str]:
    """POST one signed push delivery; (HTTP status, response body).

    Raises OSError (URLError included) when the gateway cannot be reached.
    """
    body = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "cnai-git-hook",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
    }
    if secret:
        headers["X-Hub-Signature-256"] = github_signature(secret, body)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=POST_TIMEOUT) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def check_url(url: str) -> str:
    """``url`` when it is an http(s) URL with a host; UsageError naming the rule otherwise."""
    from urllib.parse import urlsplit

    if not url or any(c.isspace() or not c.isprintable() for c in url):
        raise UsageError(f"--url {url!r}: must not be empty or contain spaces")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"--url {url!r}: not a URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--url {url!r}: expected http://HOST[:PORT]/PATH or https://...")
    if port == 0:
        raise UsageError(f"--url {url!r}: port 0 is not a port to post to")
    return url


@dataclass(frozen=True)
class Delivery:
    """One push delivery to post: its ref, id and exact body."""

    ref: str
    """The updated ref."""
    delivery: str
    """``X-GitHub-Delivery``; kept across resends so the gateway de-duplicates."""
    body: str
    """The JSON payload, exactly as signed and sent."""
    url: str
    """Where it goes."""
    spooled: Path | None = None
    """Its file in the spool, when it came from there."""


class Spool:
    """Deliveries the gateway could not take, one JSON file each, oldest first."""

    def __init__(self, folder: Path, limit: int = SPOOL_LIMIT) -> None:
        self.folder = folder
        self.limit = limit

    def pending(self) -> list[Delivery]:
        """Spooled deliveries, oldest first (unreadable files are reported and kept)."""
        if not self.folder.is_dir():
            return []
        out = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                data = json.loads(path.read_text())
                out.append(
                    Delivery(
                        str(data["ref"]), str(data["delivery"]), str(data["body"]),
                        str(data["url"]), path,
                    )
                )  # fmt: skip
            except (OSError, ValueError, KeyError, TypeError) as exc:
                print(f"cnai hook: spool file {path} unreadable, skipped: {exc}", file=sys.stderr)
        return out

    def save(self, item: Delivery) -> bool:
        """Keep ``item`` for resending; False when the spool is full."""
        if item.spooled is not None:
            return True
        self.folder.mkdir(parents=True, exist_ok=True)
        if len(list(self.folder.glob("*.json"))) >= self.limit:
            return False
        name = f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}-{item.delivery}.json"
        temporary = self.folder / f".{name}.tmp"
        record = {"ref": item.ref, "delivery": item.delivery, "body": item.body, "url": item.url}
        temporary.write_text(json.dumps(record))
        temporary.replace(self.folder / name)
        return True

    def drop(self, item: Delivery) -> None:
        """Forget a delivery the gateway answered."""
        if item.spooled is not None:
            item.spooled.unlink(missing_ok=True)


def send_all(
    deliveries: list[Delivery],
    spool: Spool,
    secret: str | None,
    out: Any = None,
    url: str | None = None,
) -> tuple[int, int]:
    """Post spooled then new deliveries in order; (answered, left in the spool).

    Once the gateway is found unreachable (or answers 429/5xx) the rest are spooled
    without being tried, so their order is kept. ``url`` (the hook's current one)
    replaces the URL saved with spooled deliveries.
    """
    out = out or sys.stdout
    answered, down = 0, None
    spooled = spool.pending()
    if url is not None:
        spooled = [replace(item, url=url) for item in spooled]
    for item in [*spooled, *deliveries]:
        retry_reason = down
        if retry_reason is None:
            try:
                status, answer = post_delivery(item.url, item.body, secret, item.delivery)
            except (OSError, ValueError) as exc:
                retry_reason = f"gateway {item.url} unreachable: {exc}"
            else:
                if status == 429 or status >= 500:
                    retry_reason = f"gateway {item.url} answered {status} {answer.strip()[:300]}"
                else:
                    answered += 1
                    spool.drop(item)
                    resent = " (resent)" if item.spooled is not None else ""
                    print(f"cnai hook: {item.ref}{resent} -> {status} {answer.strip()}", file=out)
                    continue
            down = retry_reason
        if item.spooled is not None:
            continue
        if spool.save(item):
            print(
                f"cnai hook: {item.ref}: {retry_reason}; delivery saved in {spool.folder}, "
                "resent on the next push or by `cnai events flush`",
                file=sys.stderr,
            )
        else:
            print(
                f"cnai hook: {item.ref}: {retry_reason}; spool full ({spool.limit} deliveries): "
                "THIS PUSH IS NOT DELIVERED (run `cnai events flush`, then push again)",
                file=sys.stderr,
            )
    return answered, len(spool.pending())


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
    """Entry point of the installed hook: reads ``OLD NEW REF`` lines from stdin.

    Always returns 0: the push has happened; every failure is one line per ref.
    """
    try:
        parser = argparse.ArgumentParser(prog="cnai-post-receive")
        parser.add_argument("--url", required=True)
        parser.add_argument("--repository", required=True)
        parser.add_argument("--secret-file")
        parser.add_argument("--spool-limit", type=int, default=SPOOL_LIMIT)
        args = parser.parse_args(argv)
        repo = Path(os.environ.get("GIT_DIR", ".")).resolve()
        os.environ["GIT_DIR"] = str(repo)  # git runs below from inside the git dir
        secret = _read_secret(args.secret_file)
        if not secret:
            print(f"cnai hook: {SECRET_ENV} not set; posting unsigned", file=sys.stderr)
        lines = sys.stdin.read().splitlines()
    except SystemExit:
        print("cnai hook: bad hook command line; reinstall with `cnai events install-hook`")
        return 0
    except Exception as exc:  # noqa: BLE001 - a hook must not fail the push
        print(f"cnai hook: cannot start: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 0
    deliveries = []
    for line in lines:
        parts = line.split()
        if len(parts) != 3:
            continue
        old, new, ref = parts
        try:
            payload = build_push_payload(repo, old, new, ref, args.repository)
            body = json.dumps(payload)
        except Exception as exc:  # noqa: BLE001 - report this ref, carry on with the others
            print(f"cnai hook: {ref}: cannot build the push payload: {exc}", file=sys.stderr)
            continue
        deliveries.append(Delivery(ref, str(uuid.uuid4()), body, args.url))
    try:
        send_all(deliveries, Spool(repo / SPOOL_DIR, args.spool_limit), secret, url=args.url)
    except Exception as exc:  # noqa: BLE001 - a hook must not fail the push
        print(f"cnai hook: delivery failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    return 0


def flush_spool(repo: Path, secret: str | None) -> dict[str, Any]:
    """Resend the deliveries spooled in ``repo``; what was answered and what is left."""
    try:
        git_dir = Path(_git(repo, "rev-parse", "--absolute-git-dir").strip())
    except (RuntimeError, OSError) as exc:
        raise UsageError(f"--repo {repo}: not a git repository") from exc
    spool = Spool(git_dir / SPOOL_DIR)
    before = len(spool.pending())
    answered, left = send_all([], spool, secret, out=sys.stderr)
    return {"spool": str(spool.folder), "pending_before": before, "sent": answered, "left": left}


def install_hook(
    repo: Path,
    url: str,
    repository: str,
    secret_file: Path | None = None,
    force: bool = False,
    python: str | None = None,
    spool_limit: int = SPOOL_LIMIT,
) -> Path:
    """Write ``post-receive`` into ``repo``'s hooks folder; the hook's path."""
    check_url(url)
    if spool_limit <= 0:
        raise UsageError(f"--spool-limit {spool_limit}: must be positive")
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
    command += ["--repository", repository, "--spool-limit", str(spool_limit)]
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
