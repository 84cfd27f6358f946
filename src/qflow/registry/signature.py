"""What a model takes: named, typed columns or a tensor shape; inferred, stored, enforced.

A signature is inferred from the data a model was trained on (a DataFrame, Series, Arrow table
or numpy array) and checked against every input before the model sees it, so a bad request
gets an error naming the field instead of a stack trace from deep inside the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from qflow.errors import SignatureMismatchError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

_KINDS = {"f": "float", "i": "integer", "u": "integer", "b": "boolean", "M": "datetime"}
_NUMBER = (int, float)


@dataclass(frozen=True)
class Column:
    """One input column: its name, kind (float, integer, boolean, string, datetime) and dtype."""

    name: str
    kind: str
    dtype: str
    nullable: bool = False


@dataclass(frozen=True)
class Signature:
    """Either ``columns`` (tabular input) or a tensor ``dtype`` and ``shape`` (-1 = any)."""

    columns: tuple[Column, ...] = ()
    dtype: str | None = None
    shape: tuple[int, ...] | None = None
    names: tuple[str, ...] = field(init=False, repr=False, compare=False, default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(c.name for c in self.columns))

    @property
    def is_tensor(self) -> bool:
        return self.shape is not None

    # -- JSON ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        if self.is_tensor:
            return {"kind": "tensor", "dtype": self.dtype, "shape": list(self.shape or ())}
        return {
            "kind": "columns",
            "columns": [
                {"name": c.name, "type": c.kind, "dtype": c.dtype, "nullable": c.nullable}
                for c in self.columns
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Signature:
        if data.get("kind") == "tensor":
            return cls(dtype=str(data["dtype"]), shape=tuple(int(n) for n in data["shape"]))
        return cls(
            columns=tuple(
                Column(str(c["name"]), str(c["type"]), str(c["dtype"]), bool(c.get("nullable")))
                for c in data["columns"]
            )
        )

    def describe(self) -> str:
        """One line for people: ``mean radius: float, …`` or ``tensor float64 [-1, 30]``."""
        if self.is_tensor:
            return f"tensor {self.dtype} {list(self.shape or ())}"
        return ", ".join(f"{c.name}: {c.kind}" for c in self.columns)

    # -- checking input --------------------------------------------------------------------

    def from_records(self, records: object) -> Any:
        """JSON records (a list of objects) → model input, or ``SignatureMismatchError``."""
        if self.is_tensor:
            return self.from_tensor(records)
        if not isinstance(records, list) or not records:
            raise _mismatch(
                "The input has no records. Send a non-empty JSON list of objects, one per row.",
                "records",
                "empty",
            )
        columns: dict[str, list[Any]] = {c.name: [] for c in self.columns}
        for row, record in enumerate(records):
            if not isinstance(record, dict):
                raise _mismatch(
                    f"Record {row} is a {_json_type(record)}, not an object of column values.",
                    f"records[{row}]",
                    "wrong_shape",
                )
            for column in self.columns:
                if column.name not in record:
                    raise _missing(column, row)
                value = record[column.name]
                _check_value(column, value, row)
                columns[column.name].append(value)
        return self._frame(columns)

    def from_split(self, names: object, rows: object) -> Any:
        """``{"columns": [...], "data": [[...], ...]}`` → model input."""
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise _mismatch("'columns' must be a list of column names.", "columns", "wrong_shape")
        if not isinstance(rows, list) or not rows:
            raise _mismatch("'data' has no rows.", "data", "empty")
        records = []
        for index, row in enumerate(rows):
            if not isinstance(row, list) or len(row) != len(names):
                raise _mismatch(
                    f"Row {index} of 'data' must be a list of {len(names)} values, one per "
                    f"column; it is {_json_type(row)}"
                    + (f" of {len(row)}." if isinstance(row, list) else "."),
                    f"data[{index}]",
                    "wrong_shape",
                )
            records.append(dict(zip(names, row, strict=True)))
        return self.from_records(records)

    def from_tensor(self, values: object) -> np.ndarray:
        """Nested lists → an array of the signature's dtype and shape."""
        import numpy as np

        if not isinstance(values, list) or not values:
            raise _mismatch("The input tensor is empty.", "inputs", "empty")
        try:
            array = np.asarray(values, dtype=self.dtype)
        except (TypeError, ValueError) as exc:
            raise _mismatch(
                f"'inputs' cannot be read as a {self.dtype} tensor: {exc}.", "inputs", "wrong_type"
            ) from exc
        return self.check_array(array)

    def check_array(self, array: np.ndarray) -> np.ndarray:
        expected = self.shape or ()
        ok = array.ndim == len(expected) and all(
            want in (-1, got) for want, got in zip(expected, array.shape, strict=True)
        )
        if not ok:
            raise _mismatch(
                f"'inputs' has shape {list(array.shape)}; the model takes {list(expected)} "
                "(-1 = any size).",
                "inputs",
                "wrong_shape",
            )
        return array

    def check_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """A DataFrame (from CSV or Parquet) → the signature's columns, in order, typed."""
        import pandas as pd

        if self.is_tensor:
            return self.check_array(frame.to_numpy(dtype=self.dtype))
        if frame.empty:
            raise _mismatch("The input has no rows.", "records", "empty")
        out: dict[str, Any] = {}
        for column in self.columns:
            if column.name not in frame.columns:
                raise _missing(column, None)
            values = frame[column.name]
            nulls = values.isna()
            if not column.nullable and bool(nulls.any()):
                raise _null(column, int(nulls.to_numpy().argmax()))
            if column.kind in ("float", "integer"):
                numbers = pd.to_numeric(values, errors="coerce")
                bad = numbers.isna() & ~nulls
                if column.kind == "integer":
                    bad |= ~nulls & (numbers % 1 != 0)
                if bool(bad.any()):
                    row = int(bad.to_numpy().argmax())
                    raise _wrong_type(column, values.iloc[row], row)
                values = numbers
            elif column.kind == "boolean" and values.dtype.kind != "b":
                raise _wrong_type(column, values.iloc[0], 0)
            out[column.name] = values.to_numpy()
        return self._frame(out)

    def _frame(self, columns: dict[str, Any]) -> pd.DataFrame:
        import numpy as np
        import pandas as pd

        typed = {}
        for column in self.columns:
            values = columns[column.name]
            dtype = column.dtype
            if column.kind == "integer" and column.nullable:
                dtype = "float64"
            if column.kind in ("string", "datetime"):
                typed[column.name] = pd.Series(values, dtype=object if dtype == "object" else None)
            else:
                typed[column.name] = np.asarray(
                    [math.nan if v is None else v for v in values], dtype=dtype
                )
        return pd.DataFrame(typed, copy=False)


def _check_value(column: Column, value: object, row: int) -> None:
    if value is None:
        if not column.nullable:
            raise _null(column, row)
        return
    kind = column.kind
    if kind == "float":
        ok = type(value) in _NUMBER
    elif kind == "integer":
        ok = type(value) is int or (type(value) is float and value.is_integer())
    elif kind == "boolean":
        ok = type(value) is bool
    else:
        ok = isinstance(value, str) or (kind == "string" and type(value) in _NUMBER)
    if not ok:
        raise _wrong_type(column, value, row)


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")


def _mismatch(message: str, name: str, code: str) -> SignatureMismatchError:
    return SignatureMismatchError(message, field=name, code=code)


def _missing(column: Column, row: int | None) -> SignatureMismatchError:
    where = f" in record {row}" if row is not None else ""
    return _mismatch(
        f"Column {column.name!r} is missing{where}; the model needs it ({column.kind}).",
        column.name,
        "missing_column",
    )


def _null(column: Column, row: int) -> SignatureMismatchError:
    return _mismatch(
        f"Column {column.name!r} is empty (null) in row {row}; the model was trained without "
        f"missing values there. Send a {column.kind}.",
        column.name,
        "null_value",
    )


def _wrong_type(column: Column, value: object, row: int) -> SignatureMismatchError:
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:40] + "…"
    return _mismatch(
        f"Column {column.name!r} has {shown} in row {row}; the model expects a {column.kind}.",
        column.name,
        "wrong_type",
    )


def infer(value: object) -> Signature | None:
    """The signature of training input ``value``, or None for types it cannot describe."""
    module = type(value).__module__.split(".")[0]
    kind = type(value).__name__
    if module == "pyarrow" and kind == "Table":
        value = value.to_pandas()  # type: ignore[attr-defined]
        module, kind = "pandas", "DataFrame"
    if module == "pandas" and kind == "Series":
        value = value.to_frame()  # type: ignore[attr-defined]
        kind = "DataFrame"
    if module == "pandas" and kind == "DataFrame":
        frame: Any = value
        return Signature(
            columns=tuple(
                Column(
                    str(name),
                    _KINDS.get(frame[name].dtype.kind, "string"),
                    str(frame[name].dtype),
                    bool(frame[name].isna().any()),
                )
                for name in frame.columns
            )
        )
    if module == "numpy" and kind in ("ndarray", "memmap"):
        array: Any = value
        return Signature(dtype=str(array.dtype), shape=(-1, *array.shape[1:]))
    return None
