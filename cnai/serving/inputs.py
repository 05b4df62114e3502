"""Request bodies checked against a model's signature, turned into one float32 matrix.

Two request forms are accepted:

- Open Inference Protocol v2 (KServe): ``{"inputs": [{"name", "shape": [rows, width],
  "datatype", "data"}]}`` with exactly one numeric tensor, ``data`` flat (row-major)
  or nested by rows;
- ``/predict``: ``{"instances": [[...], ...]}`` (rows in the signature's column order)
  or MLflow's ``{"dataframe_split": {"columns": [...], "data": [[...], ...]}}``.

Every rule broken raises :class:`BadInputError` naming the field and the rule; the server
answers it with a 4xx. JSON has no NaN or infinity; Python's parser accepts the
``NaN``/``Infinity`` literals and turns ``1e400`` into infinity, so both are refused
explicitly, as are values outside float32's range (the model computes in float32).
pydantic could describe the envelope, but not the signature-driven rules (width,
column names, per-datatype value types), and a model per request costs more than
these checks; they are written here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

FLOAT32_MAX = float(np.finfo(np.float32).max)

INT_DATATYPES = frozenset(
    {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
)
FLOAT_DATATYPES = frozenset({"FP16", "FP32", "FP64"})
NUMERIC_DATATYPES = INT_DATATYPES | FLOAT_DATATYPES

_NUMERIC_COLUMN_TYPES = frozenset({"double", "float", "long", "integer"})


class BadInputError(Exception):
    """A request that breaks a rule: answered with ``status`` and ``{"error": message}``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
        """HTTP status: 400 for a malformed or invalid body, 413 for one too large."""


@dataclass(frozen=True)
class InputSpec:
    """The feature columns a model takes, in order (from its MLflow signature)."""

    features: tuple[str, ...]
    """Column names, in the order rows must list them."""

    @property
    def width(self) -> int:
        """Number of features per row."""
        return len(self.features)

    @classmethod
    def from_signature(cls, signature: Any) -> InputSpec:
        """The spec of an MLflow ``ModelSignature`` with named numeric columns.

        Raises ValueError for a signature it cannot serve (none, tensor-based, or
        with non-numeric columns).
        """
        if signature is None or signature.inputs is None:
            raise ValueError("the model has no signature; cnai serve validates against it")
        schema = signature.inputs
        if schema.is_tensor_spec() or not schema.has_input_names():
            raise ValueError("the model's signature is not a list of named columns")
        names: list[str] = []
        for column in schema.inputs:
            kind = str(getattr(column.type, "name", column.type))
            if kind not in _NUMERIC_COLUMN_TYPES:
                raise ValueError(f"signature column {column.name!r} has type {kind}, not numeric")
            names.append(str(column.name))
        return cls(tuple(names))


@dataclass(frozen=True)
class Limits:
    """Request-size limits (documented settings of ``cnai serve``)."""

    max_body_bytes: int = 4 * 1024 * 1024
    """Largest request body accepted (413 above)."""
    max_rows: int = 1024
    """Most rows one request may carry."""


def _refuse_constant(name: str) -> float:
    raise BadInputError(f"body: {name} is not a number JSON allows (features must be finite)")


def parse_json(body: bytes) -> Any:
    """The JSON document in ``body``; BadInputError when it is not JSON."""
    if not body:
        raise BadInputError("body: empty; expected a JSON object")
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except BadInputError:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInputError(f"body: not valid JSON ({exc})") from exc
    except RecursionError as exc:
        raise BadInputError("body: JSON nested too deeply") from exc


def _check_values(rows: list[Any], width: int, where: str, integers: bool = False) -> None:
    """Every row a list of ``width`` numbers (bools, strings and nulls refused)."""
    allowed: tuple[type, ...] = (int,) if integers else (int, float)
    for i, row in enumerate(rows):
        if not isinstance(row, list):
            raise BadInputError(
                f"{where}[{i}]: expected a list of {width} numbers, got {_kind(row)}"
            )
        if len(row) != width:
            raise BadInputError(f"{where}[{i}]: has {len(row)} values, the model takes {width}")
        for j, value in enumerate(row):
            if type(value) not in allowed:
                expected = "an integer" if integers else "a number"
                raise BadInputError(f"{where}[{i}][{j}]: {value!r} is not {expected}")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _finite_matrix(rows: list[list[Any]], where: str) -> np.ndarray:
    try:
        matrix = np.array(rows, dtype=np.float64)
    except OverflowError as exc:  # an integer beyond float64, e.g. 10**400
        raise BadInputError(f"{where}: a value is outside the float32 range") from exc
    if not np.isfinite(matrix).all():
        i, j = (int(k) for k in np.argwhere(~np.isfinite(matrix))[0])
        raise BadInputError(f"{where}[{i}][{j}]: not a finite number")
    if matrix.size and float(np.abs(matrix).max()) > FLOAT32_MAX:
        i, j = (int(k) for k in np.argwhere(np.abs(matrix) > FLOAT32_MAX)[0])
        raise BadInputError(f"{where}[{i}][{j}]: {matrix[i, j]:g} is outside the float32 range")
    return matrix.astype(np.float32)


def _check_row_count(count: int, where: str, limits: Limits) -> None:
    if count == 0:
        raise BadInputError(f"{where}: no rows; send at least one")
    if count > limits.max_rows:
        raise BadInputError(f"{where}: {count} rows, more than the limit of {limits.max_rows}")


def _object(document: Any) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise BadInputError(f"body: expected a JSON object, got {_kind(document)}")
    return document


def rows_from_predict(document: Any, spec: InputSpec, limits: Limits) -> np.ndarray:
    """The matrix of a ``/predict`` body (``instances`` or ``dataframe_split``)."""
    body = _object(document)
    if "instances" in body:
        rows = body["instances"]
        if not isinstance(rows, list):
            raise BadInputError(f"instances: expected a list of rows, got {_kind(rows)}")
        _check_row_count(len(rows), "instances", limits)
        _check_values(rows, spec.width, "instances")
        return _finite_matrix(rows, "instances")
    if "dataframe_split" in body:
        return _rows_from_split(body["dataframe_split"], spec, limits)
    raise BadInputError('body: expected "instances" (a list of rows) or "dataframe_split"')


def _rows_from_split(split: Any, spec: InputSpec, limits: Limits) -> np.ndarray:
    where = "dataframe_split"
    if not isinstance(split, dict):
        raise BadInputError(f"{where}: expected an object with columns and data")
    columns, rows = split.get("columns"), split.get("data")
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise BadInputError(f"{where}.columns: expected a list of column names")
    missing = [c for c in spec.features if c not in columns]
    unknown = [c for c in columns if c not in spec.features]
    if missing or unknown or len(columns) != spec.width:
        raise BadInputError(
            f"{where}.columns: must name each of the model's {spec.width} features once "
            f"(missing {missing[:5]}, unknown {unknown[:5]})"
        )
    if not isinstance(rows, list):
        raise BadInputError(f"{where}.data: expected a list of rows, got {_kind(rows)}")
    _check_row_count(len(rows), f"{where}.data", limits)
    _check_values(rows, spec.width, f"{where}.data")
    matrix = _finite_matrix(rows, f"{where}.data")
    if list(columns) != list(spec.features):
        matrix = matrix[:, [columns.index(c) for c in spec.features]]
    return matrix


def rows_from_v2(document: Any, spec: InputSpec, limits: Limits) -> np.ndarray:
    """The matrix of an Open Inference Protocol v2 ``infer`` body."""
    body = _object(document)
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise BadInputError(
            f"inputs: expected a list holding one tensor of shape [rows, {spec.width}]"
        )
    tensor = inputs[0]
    datatype = tensor.get("datatype")
    if datatype not in NUMERIC_DATATYPES:
        raise BadInputError(
            f"inputs[0].datatype: {datatype!r}; the model takes numeric features "
            f"({', '.join(sorted(NUMERIC_DATATYPES))})"
        )
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(type(d) is int and d >= 0 for d in shape)
    ):
        raise BadInputError(f"inputs[0].shape: {shape!r}; expected [rows, {spec.width}]")
    count, width = shape
    if width != spec.width:
        raise BadInputError(
            f"inputs[0].shape: {shape}; the model takes {spec.width} features per row"
        )
    _check_row_count(count, "inputs[0].shape", limits)
    data = tensor.get("data")
    if not isinstance(data, list):
        raise BadInputError(f"inputs[0].data: expected a list, got {_kind(data)}")
    if data and isinstance(data[0], list):
        rows = data
        if len(rows) != count:
            raise BadInputError(f"inputs[0].data: {len(rows)} rows, shape says {count}")
    else:
        if len(data) != count * width:
            raise BadInputError(
                f"inputs[0].data: {len(data)} values, shape {shape} needs {count * width}"
            )
        rows = [data[i * width : (i + 1) * width] for i in range(count)]
    _check_values(rows, width, "inputs[0].data", integers=datatype in INT_DATATYPES)
    return _finite_matrix(rows, "inputs[0].data")
