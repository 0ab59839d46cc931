"""Arrow list columns as numpy arrays: the fixed-length vectors (poses, betas, ``cam_to_world``, intrinsics) and the
joint lists of the dataset's tables and of the builds made from them, with null rows as NaN rows."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def _present(column: pa.Array) -> np.ndarray:
    return ~np.asarray(column.is_null().to_numpy(zero_copy_only=False), bool)


def as_vectors(column: pa.ChunkedArray | pa.Array, k: int, dtype=np.float64) -> np.ndarray:
    """A list<float> column of fixed length `k` -> (N, k) array of `dtype`; null rows become NaN."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    out = np.full((len(column), k), np.nan, dtype=dtype)
    present = _present(column)
    if present.any():
        out[present] = np.asarray(column.filter(pa.array(present)).flatten(), dtype).reshape(-1, k)
    return out


def as_joints(column: pa.ChunkedArray | pa.Array) -> np.ndarray | None:
    """A list<list<float>> joints column -> (N, J, 3) float64 with NaN rows where null; None when all are null."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    present = _present(column)
    if not present.any():
        return None
    flat = np.asarray(column.filter(pa.array(present)).flatten().flatten(), np.float64)
    n_joints = len(flat) // (3 * int(present.sum()))
    out = np.full((len(column), n_joints, 3), np.nan)
    out[present] = flat.reshape(-1, n_joints, 3)
    return out
