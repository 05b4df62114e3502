"""The ingest data contract, checked before anything is committed.

Rules, each reported as ``<file>: column <c>: <problem> (rule: <rule>)``:

- every declared column is present, exactly once;
- each column's type equals the declared one or casts to it without loss;
- no null, NaN or infinite value in features or label;
- every label is one of the declared classes;
- every file has at least one row.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cnai.catalog import arrow_schema, source_schema
from cnai.config import DatasetSpec
from cnai.errors import UsageError

# Source types that cast to each declared type without losing information.
_SAFE_SOURCES: dict[pa.DataType, tuple[pa.DataType, ...]] = {
    pa.float64(): (
        pa.int8(), pa.int16(), pa.int32(), pa.int64(),
        pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64(),
        pa.float16(), pa.float32(), pa.float64(),
    ),
    pa.float32(): (pa.int8(), pa.int16(), pa.uint8(), pa.uint16(), pa.float16(), pa.float32()),
    pa.int64(): (
        pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32(),
    ),
    pa.int32(): (pa.int8(), pa.int16(), pa.int32(), pa.uint8(), pa.uint16()),
    pa.string(): (
        pa.string(), pa.large_string(),
        pa.int8(), pa.int16(), pa.int32(), pa.int64(),
    ),
}  # fmt: skip


class ContractError(UsageError):
    """A source breaks the data contract; nothing was committed."""


def _violation(uri: str, column: str | None, problem: str, rule: str) -> ContractError:
    where = f"{uri}: column {column!r}: " if column else f"{uri}: "
    return ContractError(f"{where}{problem} (rule: {rule})")


def safely_castable(source: pa.DataType, target: pa.DataType) -> bool:
    """True when every value of ``source`` type is representable in ``target``."""
    if pa.types.is_dictionary(source):
        source = source.value_type
    return source == target or source in _SAFE_SOURCES.get(target, ())


def check_schema(uri: str, schema: pa.Schema, spec: DatasetSpec) -> None:
    """Required columns present with safely castable types."""
    for field in source_schema(spec):
        found = schema.get_all_field_indices(field.name)
        if len(found) > 1:
            raise _violation(
                uri, field.name, f"appears {len(found)} times", "each declared column once"
            )
        if not found:
            raise _violation(uri, field.name, "missing", "required columns present")
        index = found[0]
        have = schema.field(index).type
        if pa.types.is_null(have):
            raise _violation(uri, field.name, "every value is null", "no nulls")
        if not safely_castable(have, field.type):
            raise _violation(
                uri,
                field.name,
                f"type {have} does not cast safely to {field.type}",
                "types equal or safely castable",
            )


def check_batch(
    uri: str, batch: pa.RecordBatch, spec: DatasetSpec, row_offset: int = 0
) -> pa.RecordBatch:
    """Validate one batch and return it cast to the table's Arrow schema (row hash added)."""
    from cnai.splits import row_hashes

    target = source_schema(spec)
    columns = []
    for field in target:
        column = batch.column(batch.schema.get_field_index(field.name))
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        _check_values(uri, field.name, column, row_offset)
        columns.append(column.cast(field.type, safe=True))
    out = pa.RecordBatch.from_arrays(columns, schema=target)
    _check_classes(uri, out.column(target.get_field_index(spec.label)), spec, row_offset)
    hashes = pa.array(row_hashes(out, spec).view(np.int64), type=pa.int64())
    return pa.RecordBatch.from_arrays([*columns, hashes], schema=arrow_schema(spec))


def _first_row(mask: pa.Array, row_offset: int) -> int:
    index = pc.index(mask, True).as_py()
    return row_offset + int(index)


def _check_values(uri: str, name: str, column: pa.Array, row_offset: int) -> None:
    if column.null_count:
        mask = column.is_null()
        raise _violation(
            uri,
            name,
            f"{column.null_count} null value(s), first at row {_first_row(mask, row_offset)}",
            "no null/NaN/inf",
        )
    if pa.types.is_floating(column.type) and not _sum_is_finite(column):
        for label, mask in (("NaN", pc.is_nan(column)), ("infinite", pc.is_inf(column))):
            count = pc.sum(mask).as_py() or 0
            if count:
                raise _violation(
                    uri,
                    name,
                    f"{count} {label} value(s), first at row {_first_row(mask, row_offset)}",
                    "no null/NaN/inf",
                )


def _sum_is_finite(column: pa.Array) -> bool:
    """True when the column's sum is finite, which proves every value finite.

    A NaN or infinite value makes the sum NaN or infinite (IEEE arithmetic), so one
    summing pass clears the common case; a non-finite sum (that, or finite values
    whose sum overflows) sends the column to the exact NaN and infinity checks.
    """
    try:
        total = pc.sum(column).as_py()
    except pa.ArrowNotImplementedError:  # e.g. float16: no sum kernel
        return False
    return total is None or math.isfinite(total)


def _check_classes(uri: str, labels: pa.Array, spec: DatasetSpec, row_offset: int) -> None:
    allowed = pa.array(list(spec.classes), type=labels.type)
    outside = pc.invert(pc.is_in(labels, value_set=allowed))
    count = pc.sum(outside).as_py() or 0
    if count:
        examples = pc.unique(labels.filter(outside)).to_pylist()[:3]
        raise _violation(
            uri,
            spec.label,
            f"{count} label(s) outside the declared classes, e.g. {examples}, "
            f"first at row {_first_row(outside, row_offset)}",
            "label within the declared classes",
        )
