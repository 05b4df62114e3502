"""A per-model mutex kept in the MLflow registry itself.

Creating a registered model is atomic and fails when the name exists, on every
MLflow backend (SQL unique key, server included), so a placeholder registered model
``cnai-lock--<model>`` serves as the lock: whoever creates it holds it, deleting it
releases it. The holder writes a lease expiry into a tag; a lock whose lease ran out
(its holder crashed) is broken by the next caller, and so is one whose holder ran on
this host and has exited. Lock models carry the tag
``cnai.lock`` and are hidden by ``cnai models``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from cnai.errors import CnaiError
from cnai.registry import retry

if TYPE_CHECKING:
    from mlflow import MlflowClient

LOCK_PREFIX = "cnai-lock--"
LOCK_TAG = "cnai.lock"
"""Tag marking a registered model as a lock (value: the holder's token)."""
EXPIRES_TAG = "cnai.lock.expires_at"
"""Epoch seconds after which the lock may be broken."""
HOLDER_TAG = "cnai.lock.holder"
"""``host:pid`` of the holder, for error messages."""


def lock_name(model_name: str) -> str:
    """Name of the lock's placeholder registered model."""
    return f"{LOCK_PREFIX}{model_name}"


def is_lock(name: str, tags: dict[str, str] | None = None) -> bool:
    """True for a lock placeholder (by name prefix and tag)."""
    return name.startswith(LOCK_PREFIX) and (tags is None or LOCK_TAG in tags)


class RegistryLock:
    """Holds the lock on one registered model name; see :func:`registry_lock`."""

    def __init__(self, client: MlflowClient, model_name: str, store: str, lease_s: float) -> None:
        self.client = client
        self.name = lock_name(model_name)
        self.store = store
        self.lease_s = lease_s
        self.token = uuid.uuid4().hex
        self.holder = f"{socket.gethostname()}:{os.getpid()}"

    def _tags(self) -> dict[str, str]:
        return {
            LOCK_TAG: self.token,
            HOLDER_TAG: self.holder,
            EXPIRES_TAG: f"{time.time() + self.lease_s:.3f}",
        }

    def try_acquire(self) -> bool:
        """One attempt: True when this call created (or already holds) the lock."""
        from mlflow.exceptions import MlflowException

        def create() -> bool:
            self.client.create_registered_model(self.name, tags=self._tags())
            return True

        try:
            # A retry after a lost response finds the lock already ours.
            return retry.call(
                "take the registry lock", create, store=self.store, before_retry=self._held_by_me
            )
        except MlflowException as exc:
            # RESOURCE_DOES_NOT_EXIST: the SQL store saw the name taken, then re-read it
            # after its holder released it; the next attempt will likely succeed.
            if exc.error_code not in (
                "RESOURCE_ALREADY_EXISTS",
                "ALREADY_EXISTS",
                "RESOURCE_DOES_NOT_EXIST",
            ):
                raise
        return bool(self._held_by_me())

    def _held_by_me(self) -> bool | None:
        tags = self._current_tags()
        return True if tags is not None and tags.get(LOCK_TAG) == self.token else None

    def _current_tags(self) -> dict[str, str] | None:
        from mlflow.exceptions import MlflowException

        try:
            model = retry.call(
                "read the registry lock",
                lambda: self.client.get_registered_model(self.name),
                store=self.store,
            )
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
        tags = dict(model.tags or {})
        # A lock without an expiry tag is at most one lease old from its creation.
        created_s = (model.creation_timestamp or 0) / 1000
        tags.setdefault(EXPIRES_TAG, f"{created_s + self.lease_s:.3f}")
        return tags

    def break_if_stale(self) -> str | None:
        """Delete the lock when its lease ran out; else describe its holder."""
        from mlflow.exceptions import MlflowException

        tags = self._current_tags()
        if tags is None:
            return None
        try:
            expires = float(tags.get(EXPIRES_TAG, "0"))
        except ValueError:
            expires = 0.0
        holder = tags.get(HOLDER_TAG, "unknown holder")
        if time.time() < expires and not holder_is_gone(holder):
            return holder
        # Re-read right before deleting so a lock just re-taken by another waiter survives.
        again = self._current_tags()
        if again is not None and again.get(LOCK_TAG) == tags.get(LOCK_TAG):
            with contextlib.suppress(MlflowException):
                self.client.delete_registered_model(self.name)
        return None

    def refresh(self) -> None:
        """Extend the lease (call between long phases)."""
        expires = f"{time.time() + self.lease_s:.3f}"
        retry.call(
            "extend the registry lock",
            lambda: self.client.set_registered_model_tag(self.name, EXPIRES_TAG, expires),
            store=self.store,
        )

    def release(self) -> None:
        """Delete the lock if this holder still owns it (best effort)."""
        from mlflow.exceptions import MlflowException

        with contextlib.suppress(MlflowException, CnaiError):
            if self._held_by_me():
                self.client.delete_registered_model(self.name)


def holder_is_gone(holder: str) -> bool:
    """True when ``holder`` (``host:pid``) ran on this host and that process has exited:
    its lock need not wait out the lease (a registration that died with its MLflow
    server could not release it). Holders on other hosts are never judged."""
    import psutil

    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        return psutil.Process(int(pid)).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


@contextmanager
def registry_lock(
    client: MlflowClient,
    model_name: str,
    *,
    store: str,
    lease_s: float = 120.0,
    wait_s: float | None = None,
) -> Iterator[RegistryLock]:
    """Hold the lock on ``model_name`` for the block, waiting for other holders.

    Waits up to ``wait_s`` (default: one lease plus 30 s, so a crashed holder's lock
    expires and is broken within the wait) and then raises CnaiError naming the holder.
    """
    lock = RegistryLock(client, model_name, store, lease_s)
    deadline = time.monotonic() + (lease_s + 30.0 if wait_s is None else wait_s)
    pause = 0.05
    holder: str | None = None
    while not lock.try_acquire():
        holder = lock.break_if_stale()
        if time.monotonic() > deadline:
            raise CnaiError(
                f"MLflow at {store}: registered model {model_name!r} is locked by "
                f"{holder or 'another registration'}; try again later"
            )
        time.sleep(pause)
        pause = min(pause * 2, 1.0)
    try:
        yield lock
    finally:
        lock.release()
