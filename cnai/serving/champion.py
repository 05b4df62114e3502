"""Which version serves: the one alias ``champion`` names, followed as it moves.

The tracker resolves ``models:/NAME@champion`` to a version number, loads that
version (by number, so an alias moving mid-load cannot mix two versions), warms it
up and only then makes it current: one attribute assignment, atomic under the GIL.
A request takes the current model once, when it arrives, and is answered by that
model even if a swap happens meanwhile, so nothing in flight is dropped or mixed.
A version that fails to load is logged and never served; the old one keeps serving.

Polling (every ``poll_seconds``) is used rather than registry webhooks because MLflow's
open-source registry has no event stream; one ``get_model_version_by_alias`` call per
interval is cheap.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from cnai.errors import UsageError
from cnai.progress import Progress
from cnai.serving.model import ServedModel, load_version

Loader = Callable[[str, str], ServedModel]

_MISSING = ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE")


class ChampionTracker:
    """The model being served and the poller that swaps it when the alias moves."""

    def __init__(
        self,
        client: object,
        name: str,
        alias: str = "champion",
        poll_seconds: float = 5.0,
        pinned_version: str | None = None,
        progress: Progress | None = None,
        loader: Loader = load_version,
    ) -> None:
        self.client = client
        self.name = name
        self.alias = alias
        self.poll_seconds = poll_seconds
        self.pinned_version = pinned_version
        self.progress = progress or Progress()
        self.loader = loader
        self.current: ServedModel | None = None
        """The model new requests go to (None until the first load)."""
        self.swaps = 0
        """How many times the served version changed after the first load."""
        self._lock = threading.Lock()

    def resolve(self) -> str:
        """The version to serve now: the pinned one, or the alias's.

        UsageError when the model or the alias does not exist.
        """
        if self.pinned_version is not None:
            return self.pinned_version
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.get_model_version_by_alias(self.name, self.alias)  # type: ignore[attr-defined]
        except MlflowException as exc:
            if exc.error_code in _MISSING:
                raise UsageError(
                    f"--model {self.name}: no registered model with alias {self.alias!r} "
                    "(register one first: `cnai run` or `cnai register`)"
                ) from exc
            raise
        return str(found.version)

    def refresh(self) -> bool:
        """Load and switch to the version the alias names if it changed; True if switched."""
        with self._lock:
            version = self.resolve()
            current = self.current
            if current is not None and current.version == version:
                return False
            from mlflow.exceptions import MlflowException

            try:
                loaded = self.loader(self.name, version)
            except ValueError as exc:
                raise UsageError(f"{self.name} v{version}: cannot be served: {exc}") from exc
            except MlflowException as exc:
                if exc.error_code in _MISSING:
                    raise UsageError(
                        f"--model {self.name}: no version {version} (see `cnai models show "
                        f"{self.name}`)"
                    ) from exc
                raise
            self.current = loaded
            if current is not None:
                self.swaps += 1
                self.progress.info(f"{self.name}: now serving v{version} (was v{current.version})")
            return True

    async def follow(self) -> None:
        """Poll forever (until cancelled); a failed poll is logged and the old model kept."""
        if self.pinned_version is not None or self.poll_seconds <= 0:
            return
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                await asyncio.to_thread(self.refresh)
            except Exception as exc:  # noqa: BLE001 - keep serving the old model
                served = self.current.version if self.current else "none"
                self.progress.info(
                    f"{self.name}: could not follow alias {self.alias} ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0] if str(exc) else ''}); still serving v{served}"
                )
