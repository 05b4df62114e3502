"""Finding and reading ingest sources: Parquet or CSV files, or folders of them.

A source is a local path, a ``file://`` URI or any URI PyArrow's filesystems
understand (``s3://``, ``gs://``, ``hdfs://`` with their usual credentials).
Files are read as streams of record batches so memory stays bounded.

:func:`pinned` opens one file once, fingerprints the bytes through that handle and
hands the same handle to the readers, so the fingerprint always describes the bytes
that were read: a local file replaced (renamed over) meanwhile is still read from
the open inode, and a change in place (or of a remote object) is detected by
comparing the file's size and modification time before and after
(:meth:`PinnedSource.check_unchanged`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from cnai.errors import CnaiError, UsageError

PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
CSV_SUFFIXES = (".csv",)
BATCH_ROWS = 65_536
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


class SourceChangedError(CnaiError):
    """A source file changed while it was being ingested (runtime failure, exit 1)."""


@dataclass
class PinnedSource:
    """One source file opened once: fingerprint and rows come from the same handle."""

    source: SourceFile
    """The file."""
    handle: pa.NativeFile
    """Random-access handle every read goes through."""
    identity: tuple[int, int]
    """(size, modification time in ns) when opened."""
    local_fd: int | None = None
    """File descriptor of a local file (fstat sees in-place changes of the open inode)."""

    def rewind(self) -> pa.NativeFile:
        """The handle, positioned at the start."""
        self.handle.seek(0)
        return self.handle

    def fingerprint(self) -> str:
        """``sha256:<hex>`` of the bytes behind the handle (streamed)."""
        digest = hashlib.sha256()
        handle = self.rewind()
        try:
            while chunk := handle.read(_READ_CHUNK):
                digest.update(chunk)
        except (OSError, pa.ArrowException) as exc:
            raise UsageError(f"{self.source.uri}: file not readable ({exc})") from exc
        return f"sha256:{digest.hexdigest()}"

    def current_identity(self) -> tuple[int, int]:
        """(size, modification time in ns) now."""
        if self.local_fd is not None:
            stat = os.fstat(self.local_fd)
            return stat.st_size, stat.st_mtime_ns
        info = self.source.filesystem.get_file_info(self.source.path)
        mtime = info.mtime_ns if info.mtime_ns is not None else -1
        return int(info.size or 0), int(mtime)

    def check_unchanged(self) -> None:
        """Raise SourceChangedError when the file changed since it was opened."""
        try:
            now = self.current_identity()
        except (OSError, pa.ArrowException) as exc:
            raise SourceChangedError(
                f"{self.source.uri}: file changed or vanished while being ingested ({exc}); "
                "nothing was committed, run ingest again"
            ) from exc
        if now != self.identity:
            raise SourceChangedError(
                f"{self.source.uri}: file changed while being ingested "
                f"(size/mtime {self.identity} -> {now}); nothing was committed, run ingest again"
            )


@contextmanager
def pinned(source: SourceFile) -> Iterator[PinnedSource]:
    """Open ``source`` once for fingerprinting and reading (see the module docstring)."""
    try:
        if isinstance(source.filesystem, pafs.LocalFileSystem):
            # Arrow's own file (not a Python file object): its reads release the GIL,
            # so the background Parquet writer runs while the next batch is read.
            handle: pa.NativeFile = pa.OSFile(source.path, "r")
            stat = os.fstat(handle.fileno())
            found = PinnedSource(source, handle, (stat.st_size, stat.st_mtime_ns), handle.fileno())
        else:
            handle = source.filesystem.open_input_file(source.path)
            found = PinnedSource(source, handle, (0, 0))
            found.identity = found.current_identity()
    except (OSError, pa.ArrowException) as exc:
        raise UsageError(f"{source.uri}: file not readable ({exc})") from exc
    try:
        yield found
    finally:
        handle.close()


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


def read_schema(
    source: SourceFile, columns: dict[str, pa.DataType], pin: PinnedSource | None = None
) -> pa.Schema:
    """The file's Arrow schema (for CSV: the header, declared columns typed as declared).

    With ``pin``, read through its handle instead of opening the file again.
    """
    try:
        if source.format == "parquet":
            if pin is not None:
                return pq.read_schema(pin.rewind())
            with source.filesystem.open_input_file(source.path) as handle:
                return pq.read_schema(handle)
        with _csv_reader(source, columns, pin) as reader:
            return reader.schema
    except pa.ArrowInvalid as exc:
        raise _csv_value_error(source, exc, pin) or UsageError(
            f"{source.uri}: not a readable {source.format} file ({exc})"
        ) from exc
    except (pa.ArrowException, OSError) as exc:
        raise UsageError(f"{source.uri}: not a readable {source.format} file ({exc})") from exc


def iter_batches(
    source: SourceFile, columns: dict[str, pa.DataType], pin: PinnedSource | None = None
) -> Iterator[pa.RecordBatch]:
    """Stream the declared columns of one file as record batches.

    For CSV, declared columns are parsed straight into their declared type; a value
    that does not parse raises UsageError naming the file and the column. With
    ``pin``, read through its handle instead of opening the file again.
    """
    try:
        if source.format == "parquet":
            if pin is not None:
                yield from _parquet_batches(pin.rewind(), columns)
                return
            with source.filesystem.open_input_file(source.path) as handle:
                yield from _parquet_batches(handle, columns)
            return
        with _csv_reader(source, columns, pin) as reader:
            for batch in reader:
                yield batch.select([c for c in columns if c in batch.schema.names])
    except pa.ArrowInvalid as exc:
        raise _csv_value_error(source, exc, pin) or UsageError(
            f"{source.uri}: not a readable {source.format} file ({exc})"
        ) from exc
    except (pa.ArrowException, OSError) as exc:
        raise UsageError(f"{source.uri}: read failed ({exc})") from exc


def _parquet_batches(
    handle: pa.NativeFile, columns: dict[str, pa.DataType]
) -> Iterator[pa.RecordBatch]:
    parquet = pq.ParquetFile(handle)
    present = [c for c in columns if c in parquet.schema_arrow.names]
    yield from parquet.iter_batches(batch_size=BATCH_ROWS, columns=present)


class ValueTypeError(UsageError):
    """A CSV value does not parse as its column's declared type."""

    def __init__(self, uri: str, column: str, value: str, type_name: str) -> None:
        super().__init__(
            f"{uri}: column {column!r}: value {value!r} is not {type_name} "
            "(rule: values of the declared type)"
        )
        self.uri = uri
        """The file."""
        self.column = column
        """The column whose value does not parse."""
        self.value = value
        """The offending value, as written."""
        self.type_name = type_name
        """The Arrow type it should have parsed as."""


_CSV_CONVERSION = re.compile(
    r"CSV column #(\d+): CSV conversion error to (\w+): invalid value '(.*?)'"
)


def _csv_value_error(
    source: SourceFile, exc: pa.ArrowInvalid, pin: PinnedSource | None
) -> ValueTypeError | None:
    """The conversion failure ``exc`` reports, naming its column; None when it is not one."""
    found = _CSV_CONVERSION.search(str(exc))
    if source.format != "csv" or not found:
        return None
    position, type_name, value = int(found.group(1)), found.group(2), found.group(3)
    try:
        stream = source.filesystem.open_input_stream(source.path) if pin is None else pin.rewind()
        head = stream.read(1 << 20).decode("utf-8", errors="replace")
        if pin is None:
            stream.close()
        names = next(csv.reader(io.StringIO(head)), [])
    except (pa.ArrowException, OSError):
        names = []
    column = names[position] if position < len(names) else f"#{position}"
    return ValueTypeError(source.uri, column, value, type_name)


class _csv_reader:  # noqa: N801 - used as a context manager
    def __init__(
        self, source: SourceFile, columns: dict[str, pa.DataType], pin: PinnedSource | None
    ) -> None:
        self.owned = pin is None
        self.stream = (
            source.filesystem.open_input_stream(source.path) if pin is None else pin.rewind()
        )
        self.reader = pacsv.open_csv(
            self.stream,
            read_options=pacsv.ReadOptions(block_size=16 << 20),
            convert_options=pacsv.ConvertOptions(column_types=columns, strings_can_be_null=True),
        )

    def __enter__(self) -> pacsv.CSVStreamingReader:
        return self.reader

    def __exit__(self, *exc: object) -> None:
        if self.owned:
            self.stream.close()
