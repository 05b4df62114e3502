"""Reaching the Iceberg catalog and reading table lineage.

The catalog is whatever PyIceberg catalog the settings describe (SQL on SQLite by
default, SQL on Postgres or REST by configuration); nothing here knows which.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from cnai.config import ROW_HASH_COLUMN, DatasetSpec, Settings, parse_table_identifier
from cnai.errors import CnaiError, UsageError
from cnai.retrying import catalog_open_policy

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.schema import Schema
    from pyiceberg.table import Table
    from pyiceberg.table.snapshots import Snapshot

# Snapshot summary keys cnai writes on every commit it makes.
FINGERPRINTS_KEY = "cnai.source-fingerprints"
"""JSON list of ``sha256:<hex>`` content fingerprints of the source files in this snapshot."""
SOURCES_KEY = "cnai.source-files"
"""JSON list of the source file URIs, same order as the fingerprints."""
DATA_VERSION_KEY = "cnai.data-version"
"""The table's data_version once this snapshot is current."""

_ARROW_TYPES: dict[str, pa.DataType] = {
    "double": pa.float64(),
    "float": pa.float32(),
    "long": pa.int64(),
    "int": pa.int32(),
    "string": pa.string(),
}


def arrow_type(iceberg_type: str) -> pa.DataType:
    """The Arrow type a declared Iceberg primitive type is stored as."""
    return _ARROW_TYPES[iceberg_type]


def source_schema(spec: DatasetSpec) -> pa.Schema:
    """Arrow schema of the columns a source provides (features, label, key columns)."""
    fields = [pa.field(name, arrow_type(spec.feature_type)) for name in spec.features]
    fields.append(pa.field(spec.label, arrow_type(spec.label_type)))
    for key in spec.source_columns[len(spec.features) + 1 :]:
        fields.append(pa.field(key, pa.string()))
    return pa.schema(fields)


def arrow_schema(spec: DatasetSpec) -> pa.Schema:
    """Arrow schema of the table: the source columns, then the row-hash column."""
    return source_schema(spec).append(pa.field(ROW_HASH_COLUMN, pa.int64()))


def iceberg_schema(spec: DatasetSpec) -> Schema:
    """Iceberg schema for the declared columns (field ids 1..N in table order)."""
    from pyiceberg.schema import Schema
    from pyiceberg.types import (
        DoubleType,
        FloatType,
        IntegerType,
        LongType,
        NestedField,
        PrimitiveType,
        StringType,
    )

    types: dict[str, PrimitiveType] = {
        "double": DoubleType(),
        "float": FloatType(),
        "long": LongType(),
        "int": IntegerType(),
        "string": StringType(),
    }
    schema = arrow_schema(spec)
    fields = []
    for index, field in enumerate(schema, start=1):
        if field.name in spec.features:
            kind = spec.feature_type
        elif field.name == spec.label:
            kind = spec.label_type
        elif field.name == ROW_HASH_COLUMN:
            kind = "long"
        else:
            kind = "string"
        fields.append(
            NestedField(field_id=index, name=field.name, field_type=types[kind], required=False)
        )
    return Schema(*fields)


_OPEN: dict[tuple[object, ...], tuple[Catalog, str]] = {}
"""Open catalogs by (pid, name, properties), each with its SQLite file's identity."""
_OPEN_LOCK = threading.Lock()
_OPEN_MAX = 8


def open_catalog(settings: Settings) -> Catalog:
    """Load the configured catalog, creating the embedded SQLite one on first use.

    A catalog holds no table state (every load asks the store), so one is kept per
    process and configuration and reused: opening costs a connection pool and, for
    SQL catalogs, schema checks. The key holds the process id (a forked child opens
    its own) and, for SQLite, the database file's identity (a deleted and recreated
    home is a new catalog).
    """
    from pyiceberg.catalog import load_catalog

    props = dict(settings.catalog_properties)
    uri = props.get("uri", "")
    sqlite = props.get("type") == "sql" and uri.startswith("sqlite:///")
    if sqlite:
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    warehouse = props.get("warehouse", "")
    if warehouse.startswith("file://"):
        Path(warehouse[len("file://") :]).mkdir(parents=True, exist_ok=True)
    key = (os.getpid(), settings.catalog_name, tuple(sorted(props.items())))
    file_id = _file_id(uri) if sqlite else ""
    with _OPEN_LOCK:
        cached = _OPEN.get(key)
    if cached is not None and cached[1] == file_id:
        return cached[0]

    def cannot_open(exc: BaseException, _attempts: int = 0) -> CnaiError:
        return CnaiError(f"catalog {settings.catalog_name!r}: cannot open ({exc})")

    try:
        catalog = catalog_open_policy(_racing_creation, cannot_open)(
            load_catalog, settings.catalog_name, **props
        )
    except CnaiError:
        raise
    except Exception as exc:
        raise cannot_open(exc) from exc
    with _OPEN_LOCK:
        _OPEN[key] = (catalog, _file_id(uri) if sqlite else "")
        while len(_OPEN) > _OPEN_MAX:
            _OPEN.pop(next(iter(_OPEN)))
    return catalog


def _racing_creation(exc: BaseException) -> bool:
    """Another process is creating the catalog's SQLite tables: try again."""
    return "already exists" in str(exc) or "locked" in str(exc)


def _file_id(sqlite_uri: str) -> str:
    """Device and inode of a ``sqlite:///`` URI's database file ("" when absent)."""
    try:
        stat = os.stat(sqlite_uri[len("sqlite:///") :])
    except OSError:
        return ""
    return f"{stat.st_dev}:{stat.st_ino}"


def ensure_table(catalog: Catalog, spec: DatasetSpec) -> Table:
    """The table for ``spec``, created with the declared schema if it does not exist.

    An existing table costs one catalog look-up and one metadata read. (PyIceberg's
    ``create_table_if_not_exists`` on a SQL catalog writes a new metadata file before it
    finds the table exists, leaving one orphan file per call; it is only used when the
    table is missing.)
    """
    from pyiceberg.exceptions import (
        NamespaceAlreadyExistsError,
        NoSuchTableError,
        TableAlreadyExistsError,
    )

    namespace, _ = parse_table_identifier(spec.table)
    try:
        table = catalog.load_table(spec.table)
    except NoSuchTableError:
        pass
    else:
        check_table_schema(table, spec)
        return table
    with contextlib.suppress(NamespaceAlreadyExistsError):
        catalog.create_namespace_if_not_exists(namespace)
    schema = iceberg_schema(spec)
    try:
        table = catalog.create_table_if_not_exists(
            spec.table,
            schema=schema,
            properties={"schema.name-mapping.default": schema.name_mapping.model_dump_json()},
        )
    except TableAlreadyExistsError:
        table = catalog.load_table(spec.table)
    check_table_schema(table, spec)
    return table


def check_table_schema(table: Table, spec: DatasetSpec) -> None:
    """Fail when an existing table's columns differ from the declared ones."""
    have = {f.name: str(f.field_type) for f in table.schema().fields}
    want = {f.name: str(f.field_type) for f in iceberg_schema(spec).fields}
    for name, kind in want.items():
        if name not in have:
            raise UsageError(
                f"table {spec.table}: has no column {name!r} that the dataset declares"
            )
        if have[name] != kind:
            raise UsageError(
                f"table {spec.table}: column {name!r} is {have[name]}, the dataset declares {kind}"
            )


def load_table(settings: Settings, table: str | None = None) -> Table:
    """Load an existing table; UsageError naming it when it does not exist."""
    from pyiceberg.exceptions import NoSuchTableError

    name = table or settings.dataset.table
    parse_table_identifier(name)
    try:
        return open_catalog(settings).load_table(name)
    except NoSuchTableError as exc:
        raise UsageError(f"--table {name}: no such table (run `cnai ingest` first)") from exc


def snapshot_at(table: Table, snapshot_id: int | None = None) -> Snapshot:
    """The given snapshot (default: current); UsageError when it does not exist."""
    name = ".".join(table.name())
    if snapshot_id is None:
        snapshot = table.current_snapshot()
        if snapshot is None:
            raise UsageError(f"table {name}: is empty (no snapshot yet; run `cnai ingest`)")
        return snapshot
    snapshot = table.snapshot_by_id(snapshot_id)
    if snapshot is None:
        raise UsageError(f"--snapshot-id {snapshot_id}: no such snapshot in table {name}")
    return snapshot


def lineage(table: Table, snapshot_id: int | None = None) -> list[Snapshot]:
    """Snapshots from the first ancestor up to ``snapshot_id`` (default: current)."""
    from pyiceberg.table.snapshots import ancestors_of

    start = table.current_snapshot() if snapshot_id is None else table.snapshot_by_id(snapshot_id)
    if start is None:
        return []
    return list(reversed(list(ancestors_of(start, table.metadata))))


def snapshot_fingerprints(snapshot: Snapshot) -> list[str]:
    """Source fingerprints cnai recorded in one snapshot's summary."""
    raw = snapshot.summary[FINGERPRINTS_KEY] if snapshot.summary else None
    return list(json.loads(raw)) if raw else []


def ingested_fingerprints(table: Table, snapshot_id: int | None = None) -> set[str]:
    """Every source fingerprint in the lineage of ``snapshot_id`` (default: current)."""
    found: set[str] = set()
    for snapshot in lineage(table, snapshot_id):
        found.update(snapshot_fingerprints(snapshot))
    return found


def data_version_of(snapshots: list[Snapshot], extra: list[str] | None = None) -> str:
    """A short, stable hash of a table state given its lineage.

    Built from source content fingerprints, so the same data ingested into a fresh
    home gives the same version; snapshots written by other tools (no fingerprints)
    contribute their id and record counts instead.
    """
    parts: list[str] = []
    for snapshot in snapshots:
        prints = snapshot_fingerprints(snapshot)
        if prints:
            parts.extend(prints)
        else:
            summary = snapshot.summary
            added = summary["added-records"] if summary else None
            deleted = summary["deleted-records"] if summary else None
            parts.append(f"snapshot:{snapshot.snapshot_id}:{added}:{deleted}")
    parts.extend(extra or [])
    if not parts:
        return "empty"
    digest = hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest()
    return digest[:16]


def data_version(table: Table, snapshot_id: int | None = None) -> str:
    """The data_version of the table at ``snapshot_id`` (default: current)."""
    return data_version_of(lineage(table, snapshot_id))


def total_rows(snapshot: Snapshot | None) -> int:
    """Total records in the table at a snapshot (0 for none)."""
    if snapshot is None or snapshot.summary is None:
        return 0
    return int(snapshot.summary["total-records"] or 0)
