"""Where cnai keeps its state and how it reaches its stores.

All infrastructure choices live here, never in step code. Settings are resolved
from, in increasing priority:

1. built-in embedded defaults under the home folder (SQLite catalog, SQLite MLflow),
2. the project's configuration: ``$CNAI_PROJECT_CONFIG`` (the YAML text itself, as the
   pipeline chart's ConfigMap carries it into every pod) when set, else the file named
   by ``[tool.cnai] config`` of the project (see :mod:`cnai.project`),
3. a YAML config file: ``$CNAI_CONFIG`` or ``<home>/config.yaml`` when present,
4. environment variables (what a Kubernetes ConfigMap/Secret injects):

   - ``CNAI_HOME``: the home folder (default ``./.cnai``, or, when the current folder
     is not writable, ``~/.cnai``, else ``<temp dir>/cnai-<uid>``: see :func:`default_home`)
   - ``CNAI_CATALOG_NAME``: the PyIceberg catalog name
   - ``CNAI_CATALOG__<KEY>``: one PyIceberg catalog property; ``__`` becomes ``.``
     and ``_`` becomes ``-`` (``CNAI_CATALOG__S3__ACCESS_KEY_ID`` -> ``s3.access-key-id``)
   - ``CNAI_TABLE``: the default table, ``NS.NAME``
   - ``CNAI_MLFLOW_TRACKING_URI`` (else ``MLFLOW_TRACKING_URI``), ``CNAI_MLFLOW_REGISTRY_URI``,
     ``CNAI_MLFLOW_ARTIFACT_ROOT``
   - ``CNAI_CHECKPOINT_ROOT``: where training checkpoints go (folder or ``s3://`` URI)
   - ``CNAI_TUNE_STORAGE_PATH``: Ray Tune's storage (folder or ``s3://`` URI); default:
     ``<checkpoint root>/tune`` when the checkpoint root is a URI (shared by every Ray
     pod), else ``<home>/tune``
   - ``CNAI_MODEL_FACTORY``: ``module:function`` building the model
   - ``CNAI_MODEL_NAME``: the registered model name (``model.name``)
   - ``CNAI_TUNE_EXPERIMENT``: the default Katib Experiment spec (``tune.experiment``)
   - ``RAY_ADDRESS``: an existing Ray cluster to use instead of a local one
   - ``CNAI_CONFIG_MAX_BYTES``: the largest config file read (default 1 MiB)
   - ``CNAI_MAX_FEATURES``: the most feature columns a dataset may declare (default 100,000)

The two files (2 and 3) have the same schema and are layered *by section*: each
top-level section (``dataset``, ``train``, ``catalog``, ``pipeline``, ...) is taken
whole from the highest-priority file that has it, its absent keys from the built-in
defaults. A section is one unit on purpose: a home ``config.yaml`` whose ``dataset``
declares other features does not inherit the project's ``feature_shape`` or
``classes`` for the old ones. So a project's ``cnai.yaml`` declares its dataset
contract and model, a home ``config.yaml`` its stores (``catalog``, ``mlflow``), and
each wins where it speaks; a single value is overridden with an environment variable
(``CNAI_TABLE``, ...). Both files are bounded by ``CNAI_CONFIG_MAX_BYTES``.

Every value of the files is type-checked: a wrong type is a UsageError (exit 2)
naming the file the section came from, the field (``dataset.classes``) and the rule,
never a raw Python error.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from cnai.errors import UsageError

DEFAULT_HOME = ".cnai"
DEFAULT_TABLE = "cnai.dataset"
DEFAULT_CATALOG_NAME = "cnai"
DEFAULT_MODEL_FACTORY = "cnai.models:mlp"
DEFAULT_MODEL_NAME = "cnai-model"
"""Registered model name when the configuration names none (``model.name``)."""

TASKS = ("classification", "regression")
"""What ``model.task`` may be: class labels (cross-entropy, accuracy) or a number (MSE, rmse)."""

ROW_HASH_COLUMN = "_cnai_row_hash"
"""Column cnai adds to every table it creates: the stable hash of the row key (long),
computed at ingest so readers assign train/val/test splits without re-hashing."""

DEFAULT_CONFIG_MAX_BYTES = 1 << 20
"""Default bound on the config file's size (``CNAI_CONFIG_MAX_BYTES``)."""
DEFAULT_MAX_FEATURES = 100_000
"""Default bound on declared feature columns (``CNAI_MAX_FEATURES``)."""

# Iceberg primitive type names a dataset may declare.
FEATURE_TYPES = ("double", "float", "long", "int")
LABEL_TYPES = ("long", "int", "string", "double", "float")
CLASS_LABEL_TYPES = ("long", "int", "string")
"""Label types a classification task accepts (a regression label is double or float)."""
REGRESSION_LABEL_TYPES = ("double", "float")
"""Label types a regression task accepts."""


@dataclass(frozen=True)
class DatasetSpec:
    """The declared schema of a training table: the data contract ingest enforces."""

    table: str = DEFAULT_TABLE
    """Iceberg identifier ``NAMESPACE.NAME``."""
    features: tuple[str, ...] = ()
    """Feature column names, in the order the model sees them (none built in: a project
    declares them; see :meth:`require`)."""
    feature_type: str = "double"
    """Iceberg type of every feature column (one of FEATURE_TYPES)."""
    label: str = "label"
    """Name of the label column."""
    label_type: str = "long"
    """Iceberg type of the label column (one of LABEL_TYPES)."""
    classes: tuple[int | str, ...] = ()
    """Every allowed label value; the model's output index is the position here. Empty:
    inferred at train time from the labels of the snapshot (sorted; see
    :func:`cnai.training.classes.resolve_classes`); always empty for regression."""
    key: tuple[str, ...] = ()
    """Columns that identify a row for the train/val/test split; empty: the row's content."""
    feature_shape: tuple[int, ...] = ()
    """Shape the model reshapes one row's features into, e.g. (channels, height, width);
    declared: its product is the feature count; default ``(1, len(features))``."""
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    """Train, validation and test shares of the rows (by a stable hash of the row key)."""
    sample: str | None = None
    """``module:function`` that writes sample data into an empty landing folder
    (``function(landing: Path) -> Path``); None: an empty landing folder is an error."""
    task: str = "classification"
    """``model.task``: ``classification`` or ``regression`` (copied here from the
    ``model`` section so every step holding the contract knows it)."""

    @property
    def is_regression(self) -> bool:
        """True when the label is a number to predict (``model.task: regression``)."""
        return self.task == "regression"

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one row as the model sees it: ``feature_shape`` or ``(1, d)``."""
        return self.feature_shape or (1, len(self.features))

    def require(self) -> DatasetSpec:
        """This spec; UsageError when no feature columns are declared (no built-in contract)."""
        if not self.features:
            raise UsageError(
                "dataset.features: none declared (rule: the project's configuration declares "
                "its data contract, e.g. dataset.features in cnai.yaml; see docs/configuration.md)"
            )
        return self

    @property
    def source_columns(self) -> tuple[str, ...]:
        """Columns a source file must have: features, label, then key columns not among them."""
        extra = tuple(k for k in self.key if k not in self.features and k != self.label)
        return (*self.features, self.label, *extra)

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column of the table: the source columns, then the row-hash column."""
        return (*self.source_columns, ROW_HASH_COLUMN)


@dataclass(frozen=True)
class Settings:
    """Everything a step needs to find its stores. Build with :func:`load_settings`."""

    home: Path
    """Folder holding all local state (runs, embedded stores, landing data)."""
    catalog_name: str
    """Name passed to ``pyiceberg.catalog.load_catalog``."""
    catalog_properties: dict[str, str]
    """PyIceberg catalog properties (type, uri, warehouse, s3.*)."""
    dataset: DatasetSpec
    """The training table and its declared schema."""
    mlflow_tracking_uri: str
    """MLflow tracking URI (SQLite file, ``http://`` server, ...)."""
    mlflow_registry_uri: str | None
    """MLflow model registry URI; None: same as tracking."""
    mlflow_artifact_root: str
    """Artifact location for experiments cnai creates."""
    checkpoint_root: str
    """Folder or ``s3://`` URI for training checkpoints."""
    tune_storage_path: str
    """Folder or ``s3://`` URI where Ray Tune keeps experiment state (every trial's
    node must reach it: on a multi-node cluster a URI, never a pod-local folder)."""
    model_factory: str
    """``module:function`` returning the model (default: :func:`cnai.models.mlp`)."""
    ray_address: str | None
    """Address of an existing Ray cluster; None starts (or reuses) a local one."""
    model_name: str = DEFAULT_MODEL_NAME
    """Registered model name (``model.name``): what register, serve and score use."""
    tune_experiment: str | None = None
    """The Katib Experiment spec ``cnai tune`` and the pipeline use by default
    (``tune.experiment``; a relative path in a config file is relative to that file's
    folder, the project root for a project's ``cnai.yaml``); None: none configured."""
    sections: dict[str, Any] = field(default_factory=dict)
    """Raw config-file sections owned by other modules (``events``, ``pipeline``, ``tune``,
    ``engine``)."""

    @property
    def landing_dir(self) -> Path:
        """Default ingest source folder."""
        return self.home / "landing"

    @property
    def runs_dir(self) -> Path:
        """Where the local engine records runs."""
        return self.home / "runs"

    def with_table(self, table: str | None) -> Settings:
        """A copy whose dataset points at ``table`` (same declared schema)."""
        if not table:
            return self
        parse_table_identifier(table)
        return replace(self, dataset=replace(self.dataset, table=table))

    def env(self) -> dict[str, str]:
        """Environment variables that reproduce these settings in a child process."""
        out = {
            "CNAI_HOME": str(self.home),
            "CNAI_CATALOG_NAME": self.catalog_name,
            "CNAI_TABLE": self.dataset.table,
            "CNAI_MLFLOW_TRACKING_URI": self.mlflow_tracking_uri,
            "CNAI_MLFLOW_ARTIFACT_ROOT": self.mlflow_artifact_root,
            "CNAI_CHECKPOINT_ROOT": self.checkpoint_root,
            "CNAI_TUNE_STORAGE_PATH": self.tune_storage_path,
            "CNAI_MODEL_FACTORY": self.model_factory,
            "CNAI_MODEL_NAME": self.model_name,
        }
        if self.tune_experiment:
            out["CNAI_TUNE_EXPERIMENT"] = self.tune_experiment
        for key, value in self.catalog_properties.items():
            out[_property_to_env(key)] = value
        if self.mlflow_registry_uri:
            out["CNAI_MLFLOW_REGISTRY_URI"] = self.mlflow_registry_uri
        if self.ray_address:
            out["RAY_ADDRESS"] = self.ray_address
        return out


KNOWN_SECTIONS = {
    "catalog",
    "mlflow",
    "dataset",
    "train",
    "ray",
    "events",
    "pipeline",
    "tune",
    "engine",
    "model",
}


def parse_table_identifier(table: str) -> tuple[str, str]:
    """Split ``NS.NAME``; raise UsageError naming the value when malformed."""
    parts = table.split(".")
    if len(parts) != 2 or not all(p and p.replace("_", "").isalnum() for p in parts):
        raise UsageError(
            f"--table {table!r}: expected NAMESPACE.NAME of letters, digits and underscores"
        )
    return parts[0], parts[1]


def resolve_home(home: str | os.PathLike[str] | None = None) -> Path:
    """The home folder: the argument, else ``$CNAI_HOME``, else :func:`default_home`."""
    raw = home if home is not None else os.environ.get("CNAI_HOME")
    if not raw:
        return default_home()
    return Path(raw).expanduser().resolve()


def default_home(cwd: Path | None = None) -> Path:
    """``./.cnai``, unless the current folder cannot hold it (absolute path).

    A container image's code folder is read-only to the user it runs as, so when
    ``./.cnai`` neither exists nor can be created there, the home is ``~/.cnai``
    (when the user's home folder is writable), else ``<temp dir>/cnai-<uid>``.
    """
    here = (cwd or Path.cwd()).resolve()
    local = here / DEFAULT_HOME
    if local.is_dir() or os.access(here, os.W_OK | os.X_OK):
        return local
    user_home = Path(os.path.expanduser("~"))
    if user_home.is_absolute() and os.access(user_home, os.W_OK | os.X_OK):
        return (user_home / DEFAULT_HOME).resolve()
    return Path(tempfile.gettempdir()).resolve() / f"cnai-{os.getuid()}"


def check_home(home: Path, name: str = "home") -> Path:
    """``home`` itself; UsageError naming ``name`` when it exists but is not a folder."""
    if home.exists() and not home.is_dir():
        raise UsageError(f"{name} {home}: is not a folder (rule: the home is a folder)")
    return home


def env_int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    """Integer setting ``name`` from ``env`` (default when unset); UsageError when invalid."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise UsageError(f"{name} {raw!r}: must be an integer >= {minimum}")
    return value


def load_settings(
    home: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve settings from defaults, the config file and the environment."""
    env = os.environ if environ is None else environ
    root = check_home(resolve_home(home if home is not None else env.get("CNAI_HOME")))
    config_path = Path(env["CNAI_CONFIG"]) if env.get("CNAI_CONFIG") else root / "config.yaml"
    if env.get("CNAI_CONFIG") and not config_path.exists():
        raise UsageError(f"CNAI_CONFIG {config_path}: file not found")
    limit = env_int(env, "CNAI_CONFIG_MAX_BYTES", DEFAULT_CONFIG_MAX_BYTES)
    layers = [_project_layer(env, limit)]
    if config_path.exists():
        layers.append((config_path, _read_config(config_path, limit)))
    raw, where = _merge_layers(layers, config_path)

    catalog = _section(raw, "catalog", {"name", "properties"}, where("catalog"))
    catalog_name = str(env.get("CNAI_CATALOG_NAME") or catalog.get("name") or DEFAULT_CATALOG_NAME)
    props: dict[str, str] = {
        "type": "sql",
        "uri": f"sqlite:///{root / 'iceberg' / 'catalog.db'}",
        "warehouse": (root / "iceberg" / "warehouse").as_uri(),
    }
    file_props = catalog.get("properties") or {}
    if not isinstance(file_props, dict):
        raise UsageError(f"{where('catalog')}: catalog.properties must be a mapping")
    if file_props:
        props = {str(k): str(v) for k, v in file_props.items()}
    for key, value in env.items():
        if key.startswith("CNAI_CATALOG__"):
            props[_env_to_property(key)] = value

    mlflow_keys = {"tracking_uri", "registry_uri", "artifact_root"}
    mlflow = _section(raw, "mlflow", mlflow_keys, where("mlflow"))
    tracking = (
        env.get("CNAI_MLFLOW_TRACKING_URI")
        or mlflow.get("tracking_uri")
        or env.get("MLFLOW_TRACKING_URI")
        or f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"
    )
    registry = env.get("CNAI_MLFLOW_REGISTRY_URI") or mlflow.get("registry_uri")
    artifacts = (
        env.get("CNAI_MLFLOW_ARTIFACT_ROOT")
        or mlflow.get("artifact_root")
        or (root / "mlflow" / "artifacts").as_uri()
    )

    train = _section(raw, "train", {"model_factory", "checkpoint_root"}, where("train"))
    tune = _section(raw, "tune", {"storage_path", "experiment"}, where("tune"))
    checkpoint_root = str(
        env.get("CNAI_CHECKPOINT_ROOT") or train.get("checkpoint_root") or (root / "checkpoints")
    )
    ray = _section(raw, "ray", {"address"}, where("ray"))
    dataset = _dataset_spec(
        _section(raw, "dataset", _DATASET_KEYS, where("dataset")),
        where("dataset"),
        env_int(env, "CNAI_MAX_FEATURES", DEFAULT_MAX_FEATURES),
    )
    model = _model_section(_section(raw, "model", {"name", "task"}, where("model")), where("model"))
    dataset = _with_task(dataset, model["task"], where("dataset"))
    _check_events(raw.get("events"), where("events"))
    if env.get("CNAI_TABLE"):
        parse_table_identifier(env["CNAI_TABLE"])
        dataset = replace(dataset, table=env["CNAI_TABLE"])

    return Settings(
        home=root,
        catalog_name=catalog_name,
        catalog_properties=props,
        dataset=dataset,
        mlflow_tracking_uri=str(tracking),
        mlflow_registry_uri=str(registry) if registry else None,
        mlflow_artifact_root=str(artifacts),
        checkpoint_root=checkpoint_root,
        tune_storage_path=str(
            env.get("CNAI_TUNE_STORAGE_PATH")
            or tune.get("storage_path")
            or (
                f"{checkpoint_root.rstrip('/')}/tune" if "://" in checkpoint_root else root / "tune"
            )
        ),
        model_factory=str(
            env.get("CNAI_MODEL_FACTORY") or train.get("model_factory") or DEFAULT_MODEL_FACTORY
        ),
        ray_address=env.get("RAY_ADDRESS") or ray.get("address") or None,
        model_name=str(env.get("CNAI_MODEL_NAME") or model["name"]),
        tune_experiment=env.get("CNAI_TUNE_EXPERIMENT")
        or _relative_path(tune.get("experiment"), where("tune"), "tune.experiment", env),
        sections={k: v for k, v in raw.items() if k in {"events", "pipeline", "tune", "engine"}},
    )


_DATASET_KEYS = {
    "table",
    "features",
    "feature_type",
    "label",
    "label_type",
    "classes",
    "key",
    "feature_shape",
    "split_fractions",
    "sample",
}


def _relative_path(value: Any, path: Path, field_name: str, env: Mapping[str, str]) -> str | None:
    """A path field of the config file at ``path``: relative ones are relative to its
    folder (the project root for a project's ``cnai.yaml``; for ``$CNAI_PROJECT_CONFIG``,
    the project found from the current folder, else the current folder); None when unset.
    """
    if value is None:
        return None
    text = _text(value, path, field_name)
    if Path(text).is_absolute():
        return text
    if str(path) == f"${PROJECT_CONFIG_ENV}":
        from cnai.project import find_project

        project = find_project(environ=env)
        return str((project.root if project else Path.cwd()) / text)
    return str(path.parent / text)


PROJECT_CONFIG_ENV = "CNAI_PROJECT_CONFIG"
"""Environment variable holding the project configuration's YAML text (set in pods)."""


def _project_layer(env: Mapping[str, str], limit: int) -> tuple[Path, dict[str, Any]]:
    """``(where, mapping)`` of the project configuration; an empty mapping when none."""
    text = env.get(PROJECT_CONFIG_ENV)
    if text:
        where = Path(f"${PROJECT_CONFIG_ENV}")
        return where, _parse_config(text.encode("utf-8"), where, limit)
    from cnai.project import activate, find_project

    project = find_project(environ=env)
    # The configuration names the project's modules (model factory, dataset sample):
    # a library caller gets them importable, as the CLI and every task do.
    activate(project)
    if project is None or project.config is None:
        return Path("(no project config)"), {}
    return project.config, _read_config(project.config, limit)


def _merge_layers(
    layers: list[tuple[Path, dict[str, Any]]], fallback: Path
) -> tuple[dict[str, Any], Callable[[str], Path]]:
    """The layered mapping (each section from the last layer that has it) and, per
    section, the file errors name (``fallback``, the home config path, when none has it).
    """
    merged: dict[str, Any] = {}
    owner: dict[str, Path] = {}
    for path, data in layers:
        for section, value in data.items():
            merged[section], owner[section] = value, path
    return merged, lambda section: owner.get(section, fallback)


def _read_config(path: Path, limit: int) -> dict[str, Any]:
    """The config mapping; at most ``limit`` bytes are read (``/dev/zero`` ends too)."""
    try:
        with open(path, "rb") as handle:
            blob = handle.read(limit + 1)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read config: {exc.strerror or exc}") from exc
    return _parse_config(blob, path, limit)


def _parse_config(blob: bytes, path: Path, limit: int) -> dict[str, Any]:
    """The config mapping of ``blob`` (read from ``path``), its sections checked."""
    if len(blob) > limit:
        raise UsageError(
            f"{path}: config is larger than {limit:,} bytes (limit set by CNAI_CONFIG_MAX_BYTES)"
        )
    try:
        data = yaml.safe_load(blob.decode("utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: cannot read config: not UTF-8 text ({exc.reason})") from exc
    except yaml.YAMLError as exc:
        problem = str(exc).replace("\n", " ")
        raise UsageError(f"{path}: cannot read config: {problem}") from exc
    if not isinstance(data, dict):
        raise UsageError(f"{path}: config must be a mapping of sections")
    unknown = sorted(set(data) - KNOWN_SECTIONS)
    if unknown:
        raise UsageError(
            f"{path}: unknown section {unknown[0]!r} (known: {', '.join(sorted(KNOWN_SECTIONS))})"
        )
    return data


def _section(raw: dict[str, Any], name: str, keys: set[str], path: Path) -> dict[str, Any]:
    value = raw.get(name) or {}
    if not isinstance(value, dict):
        raise UsageError(f"{path}: {name} must be a mapping")
    unknown = sorted(set(value) - keys)
    if unknown:
        raise UsageError(f"{path}: unknown field {name}.{unknown[0]}")
    return value


def _fail(path: Path, field_name: str, rule: str) -> UsageError:
    return UsageError(f"{path}: {field_name} {rule}")


def _text(value: Any, path: Path, field_name: str) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(path, field_name, f"must be a non-empty string, got {value!r}")
    return value


def _texts(value: Any, path: Path, field_name: str) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)):
        raise _fail(path, field_name, f"must be a list of names, got {type(value).__name__}")
    names = tuple(_text(v, path, f"{field_name}[{i}]") for i, v in enumerate(value))
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise _fail(path, field_name, f"must not list {twice!r} twice")
    return names


def _integer(value: Any, path: Path, field_name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(path, field_name, f"must be an integer, got {value!r}")
    if value < minimum:
        raise _fail(path, field_name, f"must be at least {minimum}, got {value}")
    return value


def _features(raw: Any, path: Path, max_features: int) -> tuple[str, ...]:
    if isinstance(raw, dict):
        # {prefix: pixel_, count: 64} is shorthand for pixel_0 .. pixel_63
        unknown = sorted(set(raw) - {"prefix", "count"})
        if unknown or "prefix" not in raw or "count" not in raw:
            raise _fail(path, "dataset.features", "the shorthand needs exactly prefix and count")
        prefix = _text(raw["prefix"], path, "dataset.features.prefix")
        count = _integer(raw["count"], path, "dataset.features.count", 1)
        if count > max_features:
            raise _fail(
                path,
                "dataset.features.count",
                f"must be at most {max_features:,} (limit set by CNAI_MAX_FEATURES), got {count:,}",
            )
        return tuple(f"{prefix}{i}" for i in range(count))
    features = _texts(raw, path, "dataset.features")
    if len(features) > max_features:
        raise _fail(
            path,
            "dataset.features",
            f"must name at most {max_features:,} columns (limit set by CNAI_MAX_FEATURES), "
            f"got {len(features):,}",
        )
    return features


def _classes(raw: Any, path: Path, label_type: str) -> tuple[int | str, ...]:
    if not isinstance(raw, (list, tuple)):
        raise _fail(path, "dataset.classes", f"must be a list of labels, got {raw!r}")
    if raw and label_type in REGRESSION_LABEL_TYPES:
        raise _fail(
            path, "dataset.classes", f"must be left out for a {label_type} label (regression)"
        )
    want: type = str if label_type == "string" else int
    classes: list[int | str] = []
    for i, value in enumerate(raw):
        if isinstance(value, bool) or not isinstance(value, want):
            raise _fail(
                path,
                f"dataset.classes[{i}]",
                f"must be {'a string' if want is str else 'an integer'} "
                f"(label_type is {label_type}), got {value!r}",
            )
        classes.append(value)  # type: ignore[arg-type]  # checked just above
    if len(set(classes)) != len(classes):
        twice = next(c for c in classes if classes.count(c) > 1)
        raise _fail(path, "dataset.classes", f"must not list {twice!r} twice")
    return tuple(classes)


def _fractions(raw: Any, path: Path) -> tuple[float, float, float]:
    rule = "must be 3 shares (numbers >= 0) summing to 1"
    if not isinstance(raw, (list, tuple)) or len(raw) != 3:
        raise _fail(path, "dataset.split_fractions", f"{rule}, got {raw!r}")
    values = []
    for i, value in enumerate(raw):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(path, f"dataset.split_fractions[{i}]", f"must be a number, got {value!r}")
        if not math.isfinite(value) or value < 0:
            raise _fail(path, "dataset.split_fractions", f"{rule}, got {raw!r}")
        values.append(float(value))
    if abs(sum(values) - 1) > 1e-9:
        raise _fail(path, "dataset.split_fractions", f"{rule}, got {raw!r}")
    return values[0], values[1], values[2]


def _dataset_spec(raw: dict[str, Any], path: Path, max_features: int) -> DatasetSpec:
    spec = DatasetSpec()
    if not raw:
        return spec
    features = _features(raw.get("features", list(spec.features)), path, max_features)
    feature_type = _text(raw.get("feature_type", spec.feature_type), path, "dataset.feature_type")
    if feature_type not in FEATURE_TYPES:
        raise _fail(path, "dataset.feature_type", f"must be one of {', '.join(FEATURE_TYPES)}")
    label_type = _text(raw.get("label_type", spec.label_type), path, "dataset.label_type")
    if label_type not in LABEL_TYPES:
        raise _fail(path, "dataset.label_type", f"must be one of {', '.join(LABEL_TYPES)}")
    label = _text(raw.get("label", spec.label), path, "dataset.label")
    if label in features:
        raise _fail(path, "dataset.label", f"must not also be a feature, got {label!r}")
    classes = _classes(raw.get("classes", list(spec.classes)), path, label_type)
    if "classes" in raw and not classes:
        raise _fail(path, "dataset.classes", "must list at least one class (or be left out)")
    table = _text(raw.get("table", spec.table), path, "dataset.table")
    parse_table_identifier(table)
    if "features" in raw and not features:
        raise _fail(path, "dataset.features", "must name at least one column")
    # No features declared (a section naming only, say, the table): no shape either;
    # the steps that need the contract refuse it (DatasetSpec.require).
    shape = _shape(raw, features, path) if features or "feature_shape" in raw else ()
    return DatasetSpec(
        table=table,
        features=features,
        feature_type=feature_type,
        label=label,
        label_type=label_type,
        classes=classes,
        key=_texts(raw.get("key", list(spec.key)), path, "dataset.key"),
        feature_shape=shape,
        split_fractions=_fractions(raw.get("split_fractions", list(spec.split_fractions)), path),
        sample=_reference(raw.get("sample"), path, "dataset.sample"),
    )


def _shape(raw: dict[str, Any], features: tuple[str, ...], path: Path) -> tuple[int, ...]:
    """``dataset.feature_shape`` (default ``[1, len(features)]``), checked against the features."""
    raw_shape = raw.get("feature_shape", [1, len(features)])
    if not isinstance(raw_shape, (list, tuple)) or not raw_shape:
        raise _fail(path, "dataset.feature_shape", f"must be a list of integers, got {raw_shape!r}")
    shape = tuple(
        _integer(d, path, f"dataset.feature_shape[{i}]", 1) for i, d in enumerate(raw_shape)
    )
    size = math.prod(shape)
    if size != len(features):
        raise _fail(
            path,
            "dataset.feature_shape",
            f"{list(shape)} holds {size} values but {len(features)} features are declared",
        )
    return shape


def _reference(value: Any, path: Path, field_name: str) -> str | None:
    """An optional ``module:function`` reference (resolved only when used)."""
    if value is None:
        return None
    text = _text(value, path, field_name)
    module, sep, name = text.partition(":")
    if not sep or not module or not name:
        raise _fail(path, field_name, f"must be module:function, got {text!r}")
    return text


def _model_section(raw: dict[str, Any], path: Path) -> dict[str, str]:
    """``{"name", "task"}`` of the ``model`` section, checked, defaults filled in."""
    name = _text(raw.get("name", DEFAULT_MODEL_NAME), path, "model.name")
    bad = [c for c in "'\"/@\\`" if c in name]
    if bad or name != name.strip():
        raise _fail(
            path, "model.name", f"must not contain quotes, '/', '@' or edge spaces, got {name!r}"
        )
    task = _text(raw.get("task", "classification"), path, "model.task")
    if task not in TASKS:
        raise _fail(path, "model.task", f"must be one of {', '.join(TASKS)}, got {task!r}")
    return {"name": name, "task": task}


def _with_task(spec: DatasetSpec, task: str, path: Path) -> DatasetSpec:
    """``spec`` for ``task``; UsageError when its label cannot serve that task."""
    if task == "regression":
        if spec.label_type not in REGRESSION_LABEL_TYPES:
            raise _fail(
                path,
                "dataset.label_type",
                f"{spec.label_type} cannot be a regression label "
                f"(rule: model.task regression needs {' or '.join(REGRESSION_LABEL_TYPES)})",
            )
        if spec.classes:
            raise _fail(path, "dataset.classes", "must be left out for model.task regression")
    elif spec.label_type not in CLASS_LABEL_TYPES:
        raise _fail(
            path,
            "dataset.label_type",
            f"{spec.label_type} is not a class label (rule: model.task classification needs "
            f"{', '.join(CLASS_LABEL_TYPES)}; a numeric target needs model.task regression)",
        )
    return replace(spec, task=task)


def _check_events(raw: Any, path: Path) -> None:
    """Types of the ``events`` fields read as values here (port, params)."""
    if raw is None:
        return
    if not isinstance(raw, dict):
        raise _fail(path, "events", f"must be a mapping, got {type(raw).__name__}")
    port = raw.get("port")
    number = int(port) if isinstance(port, str) and port.isdecimal() and len(port) < 6 else port
    if port is not None and (
        isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 65535
    ):
        raise _fail(path, "events.port", f"must be an integer 1-65535, got {port!r}")
    params = raw.get("params")
    if params is not None:
        if not isinstance(params, dict):
            raise _fail(path, "events.params", f"must be a mapping of NAME: VALUE, got {params!r}")
        for name, value in params.items():
            if not isinstance(name, str) or not name:
                raise _fail(path, "events.params", f"names must be strings, got {name!r}")
            if isinstance(value, (dict, list)) or value is None:
                raise _fail(path, f"events.params.{name}", f"must be a scalar, got {value!r}")


def _env_to_property(key: str) -> str:
    name = key[len("CNAI_CATALOG__") :]
    return ".".join(part.lower().replace("_", "-") for part in name.split("__"))


def _property_to_env(prop: str) -> str:
    return "CNAI_CATALOG__" + "__".join(p.upper().replace("-", "_") for p in prop.split("."))
