"""Arrow arrays from numpy and from strings, without `pa.array`.

`pa.array` asks pandas whether its argument is array-like, which imports pandas (0.2-0.3 s)
wherever pandas is installed, on the first call of the process: more than the rest of a small
ingest. These build the same arrays from buffers (zero-copy for contiguous numpy data) and
strings through polars, and never touch pandas.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

# The primitive Arrow types ingest builds, by name, and their numpy element types.
_NUMPY_TYPES = {"int32": "int32", "int64": "int64", "double": "float64"}


def numeric(values: Any, dtype: pa.DataType, null: Any = None) -> pa.Array:
    """A primitive Arrow array of `dtype` holding `values` (numpy); `null`: a boolean mask,
    True where the value is missing."""
    import numpy as np
    import pyarrow as pa

    data = np.ascontiguousarray(values, dtype=_NUMPY_TYPES[str(dtype)])
    validity = None
    null_count = 0
    if null is not None:
        missing = np.asarray(null, dtype=bool)
        null_count = int(missing.sum())
        if null_count:
            validity = pa.py_buffer(np.packbits(~missing, bitorder="little"))
    return pa.Array.from_buffers(dtype, len(data), [validity, pa.py_buffer(data)],
                                 null_count=null_count)


def strings(values: Sequence[str]) -> pa.Array:
    """An Arrow `string` array of `values`."""
    import polars as pl
    import pyarrow as pa

    return pl.Series(values=list(values), dtype=pl.String).to_arrow().cast(pa.string())


def values_of(array: pa.Array) -> Any:
    """A read-only numpy view of a primitive Arrow array without nulls (`Array.to_numpy`
    imports pandas too)."""
    import numpy as np

    width = _NUMPY_TYPES[str(array.type)]
    data = array.buffers()[1]
    if data is None:  # an empty array may have no buffer
        return np.empty(0, dtype=width)
    return np.frombuffer(data, dtype=width, count=len(array),
                         offset=array.offset * np.dtype(width).itemsize)
