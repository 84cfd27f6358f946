"""Floats as their IEEE-754 bit patterns (signed int64) and back: how the stores keep a value
exact to the bit (NaN payloads, -0.0, subnormals), in SQL and on the wire."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence


def float_bits(value: float) -> int:
    """The bit pattern of one float."""
    bits: int = struct.unpack("<q", struct.pack("<d", value))[0]
    return bits


def floats_bits(values: Sequence[float]) -> tuple[int, ...]:
    """The bit patterns of many floats, in one call."""
    n = len(values)
    return struct.unpack(f"<{n}q", struct.pack(f"<{n}d", *values))


def bits_float(bits: int) -> float:
    """The float a bit pattern stands for."""
    value: float = struct.unpack("<d", struct.pack("<q", bits))[0]
    return value


def finite(value: float | None) -> float | None:
    """A float as JSON can carry it: NaN and the infinities become None."""
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    return value
