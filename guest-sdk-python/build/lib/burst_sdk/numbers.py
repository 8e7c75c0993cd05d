"""Numbers for the host-native reductions: Python arrays to the WIT
``dtype``'s little-endian bytes and back.

``wasm32`` is little-endian, so an ``array.array``'s own bytes are already
what the host reduces; nothing is converted element by element unless the
values come as a plain sequence.
"""

from __future__ import annotations

import array
import enum
from typing import Optional, Sequence, Union

from wit_world.imports import types

__all__ = ["DTYPES", "Numbers", "ReduceOp"]

#: What a reduction takes: an array or a memoryview of numbers, or a
#: sequence of numbers together with a dtype name.
Numbers = Union[array.array, memoryview, Sequence[Union[int, float]]]

#: dtype name → (WIT dtype, array typecode, item size in bytes).
DTYPES: dict[str, tuple[types.Dtype, str, int]] = {
    "u8": (types.Dtype.U8, "B", 1),
    "i32": (types.Dtype.I32, "i", 4),
    "u32": (types.Dtype.U32, "I", 4),
    "i64": (types.Dtype.I64, "q", 8),
    "u64": (types.Dtype.U64, "Q", 8),
    "f32": (types.Dtype.F32, "f", 4),
    "f64": (types.Dtype.F64, "d", 8),
}

_SIGNED, _UNSIGNED, _FLOAT = "bhilq", "BHILQ", "fd"


class ReduceOp(enum.Enum):
    """Element-wise operation of a numeric reduction."""

    SUM = "sum"
    PROD = "prod"
    MIN = "min"
    MAX = "max"

    def wit(self) -> types.ReduceOp:
        """The WIT ``reduce-op`` of this operation."""
        return types.ReduceOp[self.name]


def _dtype_of(format: str, itemsize: int) -> str:
    """The dtype name of a buffer's struct format (``"<d"``, ``"i"``, ...)."""
    code = format.lstrip("@=<")
    kind = "i" if code in _SIGNED else "u" if code in _UNSIGNED else "f" if code in _FLOAT else None
    name = f"{kind}{itemsize * 8}"
    if len(code) != 1 or kind is None or name not in DTYPES:
        raise TypeError(f"numbers of format {format!r} ({itemsize} bytes) are not a reduction dtype; use one of {sorted(DTYPES)}")
    return name


def wit_dtype(dtype: str) -> types.Dtype:
    """The WIT dtype of a dtype name (``"f64"``, ...)."""
    if dtype not in DTYPES:
        raise TypeError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype][0]


def encode_numbers(values: Numbers, dtype: Optional[str]) -> tuple[bytes, types.Dtype]:
    """The little-endian bytes and WIT dtype of ``values``."""
    if isinstance(values, (array.array, memoryview)):
        view = memoryview(values)
        name = _dtype_of(view.format, view.itemsize)
        if dtype is not None and dtype != name:
            raise TypeError(f"the numbers are {name} but dtype {dtype!r} was given")
        return view.tobytes(), DTYPES[name][0]
    if dtype is None:
        raise TypeError(f"a sequence of numbers needs dtype= one of {sorted(DTYPES)}")
    ty = wit_dtype(dtype)
    return array.array(DTYPES[dtype][1], values).tobytes(), ty


def decode_numbers(data: bytes, ty: types.Dtype) -> array.array:
    """An ``array.array`` of the numbers of ``ty`` in ``data``."""
    code = next(code for wit, code, _ in DTYPES.values() if wit == ty)
    numbers = array.array(code)
    numbers.frombytes(data)
    return numbers

