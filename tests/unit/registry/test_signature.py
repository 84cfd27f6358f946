from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qflow.errors import SignatureMismatchError
from qflow.registry.signature import Signature, infer


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"x": [1.5, 2.0], "n": [1, 2], "flag": [True, False], "city": ["a", "b"]})


def test_infer_round_trip_and_records() -> None:
    signature = infer(_frame())
    assert signature is not None
    assert [c.kind for c in signature.columns] == ["float", "integer", "boolean", "string"]
    assert Signature.from_dict(signature.to_dict()) == signature
    frame = signature.from_records([{"x": 1, "n": 3.0, "flag": True, "city": "c", "extra": 1}])
    assert list(frame.columns) == ["x", "n", "flag", "city"]
    assert frame["x"].dtype == np.float64 and frame["n"].dtype == np.int64


@pytest.mark.parametrize(
    ("records", "code", "field"),
    [
        ([{"n": 1, "flag": True, "city": "a"}], "missing_column", "x"),
        ([{"x": "1.5", "n": 1, "flag": True, "city": "a"}], "wrong_type", "x"),
        ([{"x": 1.0, "n": 1.5, "flag": True, "city": "a"}], "wrong_type", "n"),
        ([{"x": 1.0, "n": 1, "flag": 1, "city": "a"}], "wrong_type", "flag"),
        ([{"x": None, "n": 1, "flag": True, "city": "a"}], "null_value", "x"),
        ([[1.0, 1, True, "a"]], "wrong_shape", "records[0]"),
        ([], "empty", "records"),
    ],
    ids=[
        "missing",
        "string-for-float",
        "fraction-for-int",
        "int-for-bool",
        "null",
        "row-list",
        "empty",
    ],
)
def test_bad_records_name_the_field(records: object, code: str, field: str) -> None:
    signature = infer(_frame())
    assert signature is not None
    with pytest.raises(SignatureMismatchError, match=r"\w") as info:
        signature.from_records(records)
    assert (info.value.code, info.value.field) == (code, field)


def test_tensor_signature_checks_shape() -> None:
    signature = infer(np.zeros((10, 3)))
    assert signature is not None and signature.shape == (-1, 3)
    assert signature.from_tensor([[1, 2, 3]]).shape == (1, 3)
    with pytest.raises(SignatureMismatchError, match=r"shape \[1, 2\]"):
        signature.from_tensor([[1, 2]])
    with pytest.raises(SignatureMismatchError, match="cannot be read"):
        signature.from_tensor([["a", "b", "c"]])


def test_frame_check_finds_bad_row() -> None:
    signature = infer(_frame())
    assert signature is not None
    frame = pd.DataFrame({"x": ["1.0", "oops"], "n": [1, 2], "flag": [True, True], "city": 1})
    with pytest.raises(SignatureMismatchError, match="'oops' in row 1"):
        signature.check_frame(frame)
