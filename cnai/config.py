"""Where cnai keeps its state and how it reaches its stores.

All infrastructure choices live here, never in step code. Settings are resolved
from, in increasing priority:

1. built-in embedded defaults under the home folder (SQLite catalog, SQLite MLflow),
2. a YAML config file: ``$CNAI_CONFIG`` or ``<home>/config.yaml`` when present,
3. environment variables (what a Kubernetes ConfigMap/Secret injects):

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
   - ``RAY_ADDRESS``: an existing Ray cluster to use instead of a local one
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from cnai.errors import UsageError

DEFAULT_HOME = ".cnai"
DEFAULT_TABLE = "cnai.digits"
DEFAULT_CATALOG_NAME = "cnai"
DEFAULT_MODEL_FACTORY = "steps.models:digits_cnn"
DIGITS_FEATURES = tuple(f"pixel_{i}" for i in range(64))

ROW_HASH_COLUMN = "_cnai_row_hash"
"""Column cnai adds to every table it creates: the stable hash of the row key (long),
computed at ingest so readers assign train/val/test splits without re-hashing."""

# Iceberg primitive type names a dataset may declare.
FEATURE_TYPES = ("double", "float", "long", "int")
LABEL_TYPES = ("long", "int", "string")


@dataclass(frozen=True)
class DatasetSpec:
    """The declared schema of a training table: the data contract ingest enforces."""

    table: str = DEFAULT_TABLE
    """Iceberg identifier ``NAMESPACE.NAME``."""
    features: tuple[str, ...] = DIGITS_FEATURES
    """Feature column names, in the order the model sees them."""
    feature_type: str = "double"
    """Iceberg type of every feature column (one of FEATURE_TYPES)."""
    label: str = "label"
    """Name of the label column."""
    label_type: str = "long"
    """Iceberg type of the label column (one of LABEL_TYPES)."""
    classes: tuple[int | str, ...] = tuple(range(10))
    """Every allowed label value; the model's output index is the position here."""
    key: tuple[str, ...] = ()
    """Columns that identify a row for the train/val/test split; empty: the row's content."""
    feature_shape: tuple[int, ...] = (1, 8, 8)
    """Shape the model reshapes one row's features into (channels, height, width)."""
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    """Train, validation and test shares of the rows (by a stable hash of the row key)."""

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
    """``module:function`` returning the model (see steps/models.py)."""
    ray_address: str | None
    """Address of an existing Ray cluster; None starts (or reuses) a local one."""
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
        }
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


def load_settings(
    home: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve settings from defaults, the config file and the environment."""
    env = os.environ if environ is None else environ
    root = resolve_home(home if home is not None else env.get("CNAI_HOME"))
    config_path = Path(env["CNAI_CONFIG"]) if env.get("CNAI_CONFIG") else root / "config.yaml"
    raw = _read_config(config_path) if config_path.exists() else {}
    if env.get("CNAI_CONFIG") and not config_path.exists():
        raise UsageError(f"CNAI_CONFIG {config_path}: file not found")

    catalog = _section(raw, "catalog", {"name", "properties"}, config_path)
    catalog_name = str(env.get("CNAI_CATALOG_NAME") or catalog.get("name") or DEFAULT_CATALOG_NAME)
    props: dict[str, str] = {
        "type": "sql",
        "uri": f"sqlite:///{root / 'iceberg' / 'catalog.db'}",
        "warehouse": (root / "iceberg" / "warehouse").as_uri(),
    }
    file_props = catalog.get("properties") or {}
    if not isinstance(file_props, dict):
        raise UsageError(f"{config_path}: catalog.properties must be a mapping")
    if file_props:
        props = {str(k): str(v) for k, v in file_props.items()}
    for key, value in env.items():
        if key.startswith("CNAI_CATALOG__"):
            props[_env_to_property(key)] = value

    mlflow = _section(raw, "mlflow", {"tracking_uri", "registry_uri", "artifact_root"}, config_path)
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

    train = _section(raw, "train", {"model_factory", "checkpoint_root"}, config_path)
    tune = _section(raw, "tune", {"storage_path"}, config_path)
    checkpoint_root = str(
        env.get("CNAI_CHECKPOINT_ROOT") or train.get("checkpoint_root") or (root / "checkpoints")
    )
    ray = _section(raw, "ray", {"address"}, config_path)
    dataset = _dataset_spec(_section(raw, "dataset", _DATASET_KEYS, config_path), config_path)
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
}


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"{path}: cannot read config: {exc}") from exc
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


def _dataset_spec(raw: dict[str, Any], path: Path) -> DatasetSpec:
    spec = DatasetSpec()
    if not raw:
        return spec
    features_raw = raw.get("features", spec.features)
    if isinstance(features_raw, dict):
        # {prefix: pixel_, count: 64} is shorthand for pixel_0 .. pixel_63
        try:
            features = tuple(
                f"{features_raw['prefix']}{i}" for i in range(int(features_raw["count"]))
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"{path}: dataset.features needs prefix and count") from exc
    else:
        features = tuple(str(f) for f in features_raw)
    spec = DatasetSpec(
        table=str(raw.get("table", spec.table)),
        features=features,
        feature_type=str(raw.get("feature_type", spec.feature_type)),
        label=str(raw.get("label", spec.label)),
        label_type=str(raw.get("label_type", spec.label_type)),
        classes=tuple(raw.get("classes", spec.classes)),
        key=tuple(str(k) for k in raw.get("key", spec.key)),
        feature_shape=tuple(int(d) for d in raw.get("feature_shape", (1, len(features)))),
        split_fractions=tuple(raw.get("split_fractions", spec.split_fractions)),
    )
    parse_table_identifier(spec.table)
    if not spec.features:
        raise UsageError(f"{path}: dataset.features must name at least one column")
    if spec.feature_type not in FEATURE_TYPES:
        raise UsageError(f"{path}: dataset.feature_type must be one of {', '.join(FEATURE_TYPES)}")
    if spec.label_type not in LABEL_TYPES:
        raise UsageError(f"{path}: dataset.label_type must be one of {', '.join(LABEL_TYPES)}")
    if not spec.classes:
        raise UsageError(f"{path}: dataset.classes must list at least one class")
    size = 1
    for dim in spec.feature_shape:
        size *= dim
    if size != len(spec.features):
        raise UsageError(
            f"{path}: dataset.feature_shape {list(spec.feature_shape)} holds {size} values "
            f"but {len(spec.features)} features are declared"
        )
    fractions = spec.split_fractions
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise UsageError(f"{path}: dataset.split_fractions must be 3 shares summing to 1")
    return spec


def _env_to_property(key: str) -> str:
    name = key[len("CNAI_CATALOG__") :]
    return ".".join(part.lower().replace("_", "-") for part in name.split("__"))


def _property_to_env(prop: str) -> str:
    return "CNAI_CATALOG__" + "__".join(p.upper().replace("-", "_") for p in prop.split("."))
