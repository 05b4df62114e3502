"""Finding and reading ingest sources: Parquet or CSV files, or folders of them.

A source is a local path, a ``file://`` URI or any URI PyArrow's filesystems
understand (``s3://``, ``gs://``, ``hdfs://`` with their usual credentials).
Files are read as streams of record batches so memory stays bounded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from cnai.errors import UsageError

PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
CSV_SUFFIXES = (".csv",)
BATCH_ROWS = 131_072
_READ_CHUNK = 8 << 20


@dataclass(frozen=True)
class SourceFile:
    """One file to ingest."""

    uri: str
    """How the user and the snapshot summary name it."""
    path: str
    """Path inside ``filesystem``."""
    filesystem: pafs.FileSystem
    """The PyArrow filesystem that reads it."""
    format: str
    """``parquet`` or ``csv``."""

    def fingerprint(self) -> str:
        """``sha256:<hex>`` of the file's bytes (streamed)."""
        digest = hashlib.sha256()
        try:
            with self.filesystem.open_input_stream(self.path) as stream:
                while chunk := stream.read(_READ_CHUNK):
                    digest.update(chunk)
        except (OSError, pa.ArrowException) as exc:
            raise UsageError(f"{self.uri}: file not readable ({exc})") from exc
        return f"sha256:{digest.hexdigest()}"


def _format_of(path: str) -> str | None:
    lower = path.lower()
    if lower.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if lower.endswith(CSV_SUFFIXES):
        return "csv"
    return None


def resolve_source(source: str) -> list[SourceFile]:
    """The files a source names, sorted by path; UsageError when there are none."""
    if "://" in source:
        try:
            filesystem, root = pafs.FileSystem.from_uri(source)
        except (pa.ArrowException, ValueError, OSError) as exc:
            raise UsageError(f"--source {source}: cannot open ({exc})") from exc
        prefix = source[: len(source) - len(root)] if source.endswith(root) else ""
    else:
        filesystem, root, prefix = pafs.LocalFileSystem(), str(Path(source).resolve()), ""
    try:
        info = filesystem.get_file_info(root)
    except (pa.ArrowException, OSError) as exc:
        raise UsageError(f"--source {source}: cannot open ({exc})") from exc
    if info.type == pafs.FileType.NotFound:
        raise UsageError(f"--source {source}: no such file or folder")
    if info.type == pafs.FileType.File:
        kind = _format_of(root)
        if kind is None:
            raise UsageError(f"--source {source}: not a .parquet or .csv file")
        return [SourceFile(_uri(prefix, root), root, filesystem, kind)]
    selector = pafs.FileSelector(root, recursive=True)
    files = []
    for entry in filesystem.get_file_info(selector):
        name = entry.base_name
        if entry.type != pafs.FileType.File or name.startswith((".", "_")):
            continue
        kind = _format_of(entry.path)
        if kind is not None:
            files.append(SourceFile(_uri(prefix, entry.path), entry.path, filesystem, kind))
    return sorted(files, key=lambda f: f.path)


def _uri(prefix: str, path: str) -> str:
    return f"{prefix}{path}" if prefix else path


def read_schema(source: SourceFile, columns: dict[str, pa.DataType]) -> pa.Schema:
    """The file's Arrow schema (for CSV: the header, declared columns typed as declared)."""
    try:
        if source.format == "parquet":
            with source.filesystem.open_input_file(source.path) as handle:
                return pq.read_schema(handle)
        with _csv_reader(source, columns) as reader:
            return reader.schema
    except (pa.ArrowException, OSError) as exc:
        raise UsageError(f"{source.uri}: not a readable {source.format} file ({exc})") from exc


def iter_batches(source: SourceFile, columns: dict[str, pa.DataType]) -> Iterator[pa.RecordBatch]:
    """Stream the declared columns of one file as record batches.

    For CSV, declared columns are parsed straight into their declared type; a value
    that does not parse raises UsageError naming the file and the column.
    """
    try:
        if source.format == "parquet":
            with source.filesystem.open_input_file(source.path) as handle:
                parquet = pq.ParquetFile(handle)
                present = [c for c in columns if c in parquet.schema_arrow.names]
                yield from parquet.iter_batches(batch_size=BATCH_ROWS, columns=present)
            return
        with _csv_reader(source, columns) as reader:
            for batch in reader:
                yield batch.select([c for c in columns if c in batch.schema.names])
    except pa.ArrowInvalid as exc:
        raise UsageError(f"{source.uri}: not a readable {source.format} file ({exc})") from exc
    except (pa.ArrowException, OSError) as exc:
        raise UsageError(f"{source.uri}: read failed ({exc})") from exc


class _csv_reader:  # noqa: N801 - used as a context manager
    def __init__(self, source: SourceFile, columns: dict[str, pa.DataType]) -> None:
        self.stream = source.filesystem.open_input_stream(source.path)
        self.reader = pacsv.open_csv(
            self.stream,
            read_options=pacsv.ReadOptions(block_size=16 << 20),
            convert_options=pacsv.ConvertOptions(column_types=columns, strings_can_be_null=True),
        )

    def __enter__(self) -> pacsv.CSVStreamingReader:
        return self.reader

    def __exit__(self, *exc: object) -> None:
        self.stream.close()
