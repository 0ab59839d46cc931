"""List columns as arrays: fixed-length vectors and joint lists, null rows as NaN rows, across chunks."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from storage.arrays import as_joints, as_vectors


def test_vectors_keep_rows_in_place_and_nulls_as_nan():
    vec = pa.list_(pa.float32())
    column = pa.chunked_array([pa.array([[1.0, 2.0], None], vec), pa.array([[3.0, 4.0]], vec)])
    got = as_vectors(column, 2)
    assert got.dtype == np.float64 and got.shape == (3, 2)
    np.testing.assert_array_equal(got[[0, 2]], [[1, 2], [3, 4]])
    assert np.isnan(got[1]).all()
    assert as_vectors(column, 2, np.float32).dtype == np.float32


def test_joints_keep_their_count_and_all_null_is_none():
    rows = [np.arange(6.0).reshape(2, 3).tolist(), None]
    got = as_joints(pa.array(rows, pa.list_(pa.list_(pa.float32()))))
    assert got.shape == (2, 2, 3) and np.isnan(got[1]).all()
    np.testing.assert_array_equal(got[0], np.arange(6.0).reshape(2, 3))
    assert as_joints(pa.array([None, None], pa.list_(pa.list_(pa.float32())))) is None
