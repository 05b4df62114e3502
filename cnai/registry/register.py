"""Register step: a training run's model becomes a traceable, gated model version.

For run R and registered model M:

1. read R (UsageError when it does not exist or logged no ``model``) and its
   lineage tags (Iceberg table, snapshot, data_version, git sha/branch, trigger);
2. score R's model on the held-out test split of the snapshot it was trained on;
3. under M's registry lock (:mod:`cnai.registry.lock`): reuse the version already
   registered for R, or create one carrying every lineage and metric tag, score
   the current champion on the same rows, apply the gate (:mod:`cnai.registry.gate`),
   log the model card, set alias ``challenger`` (and ``champion`` when promoted), and
   finally mark the version ``cnai.registration=complete``.

A failure after the version was created restores the aliases it moved and deletes
the version; when even that fails (MLflow down), the version stays ``pending`` and
the next ``cnai register`` of the same run completes it. Every MLflow call is
retried with backoff (:mod:`cnai.registry.retry`); persistent failure is exit 1.
"""

from __future__ import annotations

import uuid
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cnai.config import Settings, load_settings
from cnai.errors import CnaiError, UsageError
from cnai.progress import Progress
from cnai.registry import lineage as lin
from cnai.registry import retry
from cnai.registry.card import CardInput, card_path, render
from cnai.registry.evaluate import TestSplit, load_model, read_test_split, score
from cnai.registry.gate import Decision, decide, objective_for
from cnai.registry.lock import LOCK_PREFIX, RegistryLock, registry_lock
from cnai.registry.tags import (
    CARD_TAG,
    INCUMBENT_TAG,
    METRIC_PREFIX,
    MIN_DELTA_TAG,
    OBJECTIVE_TAG,
    PROMOTED_TAG,
    REASON_TAG,
    STATUS_TAG,
    TOKEN_TAG,
    metrics_from_tags,
)
from cnai.training.classes import resolve_classes

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run
    from mlflow.entities.model_registry import ModelVersion

CHAMPION = "champion"
"""Alias of the version that serves."""
CHALLENGER = "challenger"
"""Alias of the most recently registered version."""


@dataclass
class _Candidate:
    """What is known about the run before touching the registry."""

    run: Run
    lineage: lin.Lineage
    source: str
    metrics: dict[str, float]
    split: TestSplit


def register(
    run_id: str,
    model_name: str | None = None,
    min_delta: float = 0.0,
    *,
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Register run ``run_id``'s model as a version of ``model_name`` and apply the gate.

    Args:
        run_id: MLflow run that logged the model (the train step's run).
        model_name: registered model name; default: the configured ``model.name``.
        min_delta: how much the candidate's test accuracy must exceed the champion's to
            take alias ``champion`` (ties always keep the incumbent).
        settings: where the stores are; default: resolved from the environment.
        progress: where to report progress; default: plain lines on stderr.

    Returns:
        ``{model_name, version, created, aliases, promoted, reason, champion_version,
        metrics}`` as documented for ``cnai register --json``.
    """
    settings = settings or load_settings()
    model_name = model_name or settings.model_name
    _check_inputs(run_id, model_name, min_delta)
    progress = progress or Progress()
    from mlflow import MlflowClient

    from cnai.tracking import configure

    with retry.mlflow_http_policy(), warnings.catch_warnings():
        # Loading a pyfunc model re-checks its predict() type hints; the noise would break
        # the one-line error convention on stderr (see cnai.model_io.TorchClassifier).
        warnings.filterwarnings("ignore", message=".*[Tt]ype hint", category=UserWarning)
        configure(settings)
        client = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_registry_uri)
        store = settings.mlflow_registry_uri or settings.mlflow_tracking_uri
        registrar = _Registrar(client, store, model_name, min_delta, settings, progress)
        return registrar.run(run_id)


def _check_inputs(run_id: str, model_name: str, min_delta: float) -> None:
    if not run_id or not run_id.replace("-", "").isalnum():
        raise UsageError(f"--run-id {run_id!r}: expected an MLflow run id (letters and digits)")
    bad = [c for c in "'\"/@\\`" if c in model_name]
    if not model_name.strip() or bad or model_name.startswith(LOCK_PREFIX):
        raise UsageError(
            f"--model-name {model_name!r}: must be non-empty, without quotes, '/', '@' or "
            f"a leading {LOCK_PREFIX!r}"
        )
    if not min_delta >= 0:  # also rejects NaN
        raise UsageError(f"--min-delta {min_delta}: must be a number >= 0")


class _Registrar:
    """One registration; holds the client and the retry context."""

    def __init__(
        self,
        client: MlflowClient,
        store: str,
        model_name: str,
        min_delta: float,
        settings: Settings,
        progress: Progress,
    ) -> None:
        self.client = client
        self.store = store
        self.name = model_name
        self.min_delta = min_delta
        self.settings = settings
        self.progress = progress
        self.objective = objective_for(settings.dataset.task)

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        return retry.call(what, fn, store=self.store, **kwargs)

    # -- the flow ---------------------------------------------------------------------

    def run(self, run_id: str) -> dict[str, Any]:
        """Register ``run_id`` (see :func:`register`)."""
        run = self._get_run(run_id)
        source, model_id = self._find_model(run)
        existing = self._version_for_run(run_id)
        if existing is not None and existing.tags.get(STATUS_TAG) == "complete":
            self.progress.info(
                f"run {run_id}: already registered as {self.name} v{existing.version}"
            )
            return self._result(existing, created=False)
        candidate = self._evaluate(run, source, model_id)
        self._ensure_registered_model()
        with registry_lock(self.client, self.name, store=self.store) as lock:
            return self._register_locked(candidate, lock)

    def _register_locked(self, cand: _Candidate, lock: RegistryLock) -> dict[str, Any]:
        run_id = cand.lineage.run_id
        existing = self._version_for_run(run_id)
        if existing is not None and existing.tags.get(STATUS_TAG) == "complete":
            return self._result(existing, created=False)
        aliases_before = self._aliases()
        champion = aliases_before.get(CHAMPION)
        objective = self.objective.metric
        own = existing.version if existing is not None else None
        if existing is not None and champion is not None and str(champion) == str(own):
            # Completing an interrupted registration that had already moved champion.
            decision = Decision(True, existing.tags.get(REASON_TAG, "already champion"))
            champion_metrics: dict[str, float] = {}
            incumbent = existing.tags.get(INCUMBENT_TAG)
        else:
            champion_metrics = self._score_champion(champion, cand.split) if champion else {}
            incumbent = str(champion) if champion else None
            decision = decide(
                cand.metrics[objective],
                champion_metrics.get(objective),
                self.min_delta,
                incumbent,
                self.objective,
            )
        metrics = dict(cand.metrics)
        if objective in champion_metrics:
            metrics[f"champion_{objective}"] = champion_metrics[objective]
        tags = {
            **cand.lineage.tags(),
            **{METRIC_PREFIX + k: repr(v) for k, v in metrics.items()},
            PROMOTED_TAG: "true" if decision.promoted else "false",
            REASON_TAG: decision.reason,
            MIN_DELTA_TAG: repr(self.min_delta),
            OBJECTIVE_TAG: objective,
            STATUS_TAG: "pending",
        }
        if incumbent:
            tags[INCUMBENT_TAG] = incumbent
        created = existing is None
        version = existing if existing is not None else self._create_version(cand, tags)
        if not created:
            self._set_tags(version.version, tags)
        elif str(version.version) != str(self._deduplicate(run_id, version).version):
            # A racing registration (whose lock we broke as stale) won; report its version.
            return self._result(self._version_for_run(run_id) or version, created=False)
        try:
            lock.refresh()
            self._finish(version.version, cand, decision, metrics, aliases_before)
        except BaseException as exc:
            outcome = "left pending; run `cnai register` again to complete it"
            if created and self._roll_back(version.version, aliases_before):
                outcome = "rolled back"
            if not isinstance(exc, Exception):
                raise
            raise CnaiError(
                f"{self.name} v{version.version}: registration of run {run_id} failed and was "
                f"{outcome}: {type(exc).__name__}: {retry.first_line(exc)}"
            ) from exc
        final = self._get_version(version.version)
        verdict = "champion" if decision.promoted else "challenger"
        self.progress.info(f"{self.name} v{final.version}: {verdict} ({decision.reason})")
        return self._result(final, created=created)

    def _finish(
        self,
        version: str,
        cand: _Candidate,
        decision: Decision,
        metrics: dict[str, float],
        aliases_before: dict[str, str],
    ) -> None:
        """Card, aliases, then the completion mark (in that order)."""
        champion_after = version if decision.promoted else aliases_before.get(CHAMPION)
        card = CardInput(
            model_name=self.name,
            version=str(version),
            lineage=cand.lineage,
            metrics=metrics,
            # Final values of the run's own metrics (system/* utilisation left out).
            run_metrics={k: v for k, v in cand.run.data.metrics.items() if "/" not in k},
            params=dict(cand.run.data.params),
            decision=decision,
            champion_version=str(champion_after) if champion_after else None,
            classes=self.settings.dataset.classes,
            features=len(self.settings.dataset.features),
            task=self.settings.dataset.task,
            objective=self.objective.metric,
        )
        path = card_path(self.name, str(version))
        self._call(
            "log the model card",
            lambda: self.client.log_text(cand.lineage.run_id, render(card), path),
        )
        self._set_tags(version, {CARD_TAG: path})
        self._set_alias(CHALLENGER, version)
        if decision.promoted:
            self._set_alias(CHAMPION, version)
        self._set_tags(version, {STATUS_TAG: "complete"})

    # -- reading the run ----------------------------------------------------------------

    def _get_run(self, run_id: str) -> Run:
        from mlflow.exceptions import MlflowException

        try:
            run: Run = self._call("read the run", lambda: self.client.get_run(run_id))
        except MlflowException as exc:
            if exc.error_code in (
                "RESOURCE_DOES_NOT_EXIST",
                "INVALID_PARAMETER_VALUE",
                "NOT_FOUND",
            ):
                raise UsageError(
                    f"--run-id {run_id}: no such run in MLflow at {self.store}"
                ) from exc
            raise CnaiError(
                f"MLflow at {self.store}: cannot read run {run_id}: {retry.first_line(exc)}"
            ) from exc
        return run

    def _find_model(self, run: Run) -> tuple[str, str | None]:
        """(model URI to register, logged model id) of the run's ``model``."""
        from cnai.model_io import MODEL_ARTIFACT

        run_id = run.info.run_id
        models = self._call(
            "find the run's logged model",
            lambda: self.client.search_logged_models(
                experiment_ids=[run.info.experiment_id],
                filter_string=f"source_run_id = '{run_id}' AND name = '{MODEL_ARTIFACT}'",
            ),
        )
        ready = [m for m in models if str(m.status) == "READY"]
        if ready:
            newest = max(ready, key=lambda m: m.creation_timestamp or 0)
            return f"models:/{newest.model_id}", str(newest.model_id)
        # Models logged as plain run artifacts (MLflow 2 style).
        files = self._call(
            "list the run's artifacts",
            lambda: self.client.list_artifacts(run_id, MODEL_ARTIFACT),
        )
        if any(f.path.endswith("MLmodel") for f in files):
            return f"runs:/{run_id}/{MODEL_ARTIFACT}", None
        state = f" ({len(models)} not finished uploading)" if models else ""
        raise UsageError(
            f"--run-id {run_id}: run has no logged model {MODEL_ARTIFACT!r}{state}; "
            "register a run of the train step"
        )

    def _lineage(self, run: Run, model_id: str | None) -> lin.Lineage:
        tags = run.data.tags
        run_id = run.info.run_id
        raw_snapshot = tags.get(lin.RUN_SNAPSHOT)
        if not raw_snapshot:
            raise UsageError(
                f"--run-id {run_id}: run has no {lin.RUN_SNAPSHOT} tag, so the data it was "
                "trained on is unknown; register a run of the train step"
            )
        try:
            snapshot_id = int(raw_snapshot)
        except ValueError as exc:
            raise UsageError(
                f"--run-id {run_id}: tag {lin.RUN_SNAPSHOT}={raw_snapshot!r} is not a snapshot id"
            ) from exc
        table = tags.get(lin.RUN_TABLE) or self.settings.dataset.table
        data_version = tags.get(lin.RUN_DATA_VERSION)
        if not data_version:
            from cnai.catalog import data_version as table_data_version
            from cnai.catalog import load_table

            data_version = table_data_version(load_table(self.settings, table), snapshot_id)
        workflow_name, workflow_uid = lin.argo_context()
        return lin.Lineage(
            run_id=run_id,
            model_id=model_id,
            table=table,
            snapshot_id=snapshot_id,
            data_version=data_version,
            git_sha=tags.get(lin.RUN_GIT_SHA),
            git_branch=tags.get(lin.RUN_GIT_BRANCH),
            trigger=tags.get(lin.RUN_TRIGGER),
            argo_workflow_name=workflow_name,
            argo_workflow_uid=workflow_uid,
        )

    def _evaluate(self, run: Run, source: str, model_id: str | None) -> _Candidate:
        lineage = self._lineage(run, model_id)
        where = f"{lineage.table} snapshot {lineage.snapshot_id}"
        # Undeclared classes: the list the train step inferred from the same snapshot.
        self.settings = resolve_classes(self.settings, lineage.table, lineage.snapshot_id)
        with self.progress.status(f"run {lineage.run_id}: evaluating on the test split of {where}"):
            split = read_test_split(self.settings, lineage.table, lineage.snapshot_id)
            model = self._load(source, f"--run-id {lineage.run_id}: the run's model", True)
            metrics = score(model, split, self.settings)
        self.progress.info(
            f"run {lineage.run_id}: {self.objective.metric} {metrics[self.objective.metric]:.4f} "
            f"on {split.rows} test rows"
        )
        return _Candidate(run, lineage, source, metrics, split)

    def _load(self, uri: str, what: str, bad_input: bool = False) -> Any:
        return load_model(uri, what, self.store, bad_input=bad_input)

    def _score_champion(self, version: str, split: TestSplit) -> dict[str, float]:
        model = self._load(
            f"models:/{self.name}/{version}",
            f"{self.name} champion v{version} (move alias champion or restore its files)",
        )
        try:
            metrics = score(model, split, self.settings)
        except Exception as exc:
            raise CnaiError(
                f"{self.name} champion v{version}: cannot be evaluated on the test split of "
                f"{split.table} snapshot {split.snapshot_id}: {retry.first_line(exc)}"
            ) from exc
        metric = self.objective.metric
        self.progress.info(f"champion v{version}: {metric} {metrics[metric]:.4f}")
        return metrics

    # -- registry operations --------------------------------------------------------------

    def _ensure_registered_model(self) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self._call(
                "create the registered model",
                lambda: self.client.create_registered_model(
                    self.name, description="Registered by cnai's register step."
                ),
            )
        except MlflowException as exc:
            if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                raise

    def _versions_for_run(self, run_id: str) -> list[ModelVersion]:
        found = self._call(
            "search versions of the run",
            lambda: self.client.search_model_versions(
                f"name = '{self.name}' and run_id = '{run_id}'"
            ),
        )
        return sorted(found, key=lambda v: int(v.version))

    def _version_for_run(self, run_id: str) -> ModelVersion | None:
        versions = self._versions_for_run(run_id)
        return versions[0] if versions else None

    def _create_version(self, cand: _Candidate, tags: dict[str, str]) -> ModelVersion:
        token = uuid.uuid4().hex
        run_id = cand.lineage.run_id

        def find_mine() -> ModelVersion | None:
            for version in self._versions_for_run(run_id):
                if version.tags.get(TOKEN_TAG) == token:
                    return version
            return None

        with self.progress.status(f"registering run {run_id} as a version of {self.name}"):
            created: ModelVersion = self._call(
                "create the model version",
                lambda: self.client.create_model_version(
                    self.name,
                    source=cand.source,
                    run_id=run_id,
                    tags={**tags, TOKEN_TAG: token},
                    model_id=cand.lineage.model_id,
                    await_creation_for=0,
                ),
                before_retry=find_mine,
            )
        return created

    def _deduplicate(self, run_id: str, mine: ModelVersion) -> ModelVersion:
        """Keep the lowest version of the run; delete ``mine`` when it is not that one."""
        keep = self._version_for_run(run_id) or mine
        if str(keep.version) != str(mine.version):
            self._delete_version(mine.version)
        return keep

    def _aliases(self) -> dict[str, str]:
        model = self._call(
            "read the registered model", lambda: self.client.get_registered_model(self.name)
        )
        return {alias: str(version) for alias, version in (model.aliases or {}).items()}

    def _set_alias(self, alias: str, version: str) -> None:
        self._call(
            f"set alias {alias}",
            lambda: self.client.set_registered_model_alias(self.name, alias, str(version)),
        )

    def _set_tags(self, version: str, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self._call(
                f"tag version {version}",
                lambda k=key, v=value: self.client.set_model_version_tag(
                    self.name, str(version), k, v
                ),
            )

    def _get_version(self, version: str) -> ModelVersion:
        found: ModelVersion = self._call(
            "read the model version",
            lambda: self.client.get_model_version(self.name, str(version)),
        )
        return found

    def _delete_version(self, version: str) -> None:
        self._call(
            f"delete version {version}",
            lambda: self.client.delete_model_version(self.name, str(version)),
        )

    def _roll_back(self, version: str, aliases_before: dict[str, str]) -> bool:
        """Put moved aliases back and delete ``version``; False when that failed too."""
        from mlflow.exceptions import MlflowException

        try:
            for alias in (CHAMPION, CHALLENGER):
                previous = aliases_before.get(alias)
                if previous is not None:
                    self._set_alias(alias, previous)
            self._delete_version(version)
        except (MlflowException, CnaiError):
            return False
        self.progress.info(f"{self.name} v{version}: rolled back")
        return True

    # -- output -----------------------------------------------------------------------------

    def _result(self, version: ModelVersion, created: bool) -> dict[str, Any]:
        aliases = self._aliases()
        mine = sorted(a for a, v in aliases.items() if str(v) == str(version.version))
        champion = aliases.get(CHAMPION)
        return {
            "model_name": self.name,
            "version": int(version.version),
            "created": created,
            "aliases": mine,
            "promoted": version.tags.get(PROMOTED_TAG) == "true",
            "reason": version.tags.get(REASON_TAG, ""),
            "champion_version": int(champion) if champion is not None else None,
            "metrics": metrics_from_tags(version.tags),
        }
