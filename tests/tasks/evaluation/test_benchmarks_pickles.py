"""The restricted unpickler reads the benchmark pickles and refuses anything that could run code."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
from benchmark_fixtures import FORMATS

from tasks.errors import UsageError
from tasks.evaluation.benchmarks.errors import BenchmarkFileError, UnsafePickleError
from tasks.evaluation.benchmarks.pickles import load_pickle, load_torch_file


class _RunsCommand:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class _CallsEval:
    def __reduce__(self):
        return eval, ("1 + 1",)  # noqa: S307 -- the payload under test is never evaluated


def test_reads_the_pack_pickles_in_their_formats():
    """3DPW's sequence file is a Python-2 style pickle (latin1, _codecs.encode bytes), the annotation file a
    protocol-5 pickle (numpy._core _frombuffer), EMDB's a protocol-4 pickle (ndarray _reconstruct)."""
    seq = load_pickle(FORMATS / "3dpw/sequenceFiles/test/downtown_synthetic_00.pkl", encoding="latin1")
    assert seq["genders"] == ["m", "f"] and seq["poses"][0].shape == (7, 72) and seq["poses"][0].dtype == np.float64
    annots = load_pickle(FORMATS / "3dpw/3dpw_test.pkl")
    assert len(annots) == 6 and annots["downtown_synthetic_00/image_00000.jpg"]["cam_poses"].dtype == np.float32
    emdb = load_pickle(FORMATS / "emdb/P0/09_outdoor_walk/P0_09_outdoor_walk_data.pkl")
    assert emdb["name"] == "P0_09_outdoor_walk" and emdb["good_frames_mask"].dtype == bool


def test_numpy_scalars_sets_and_python2_strings(tmp_path):
    data = {"s": np.float64(2.5), "i": np.int32(3), "set": {1, 2}, "f": frozenset({3}), "a": np.arange(4)}
    for protocol in (0, 2, 5):
        path = tmp_path / f"p{protocol}.pkl"
        path.write_bytes(pickle.dumps(data, protocol=protocol))
        got = load_pickle(path)
        assert got["s"] == 2.5 and got["i"] == 3 and got["set"] == {1, 2} and got["f"] == {3}
        assert np.array_equal(got["a"], np.arange(4))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_refuses_a_pickle_that_would_run_a_command(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"poses": [_RunsCommand(f"touch {marker}")]}))
    with pytest.raises(UnsafePickleError) as err:
        load_pickle(path)
    assert not marker.exists()
    message = str(err.value)
    assert "\n" not in message and str(path) in message and "system" in message and "refused" in message
    assert isinstance(err.value, UsageError)
    # torch.load(weights_only=True) refuses it too (RICH's .pt files go through it)
    with pytest.raises(UnsafePickleError, match="weights_only"):
        load_torch_file(path)
    assert not marker.exists()


@pytest.mark.parametrize("payload", [_CallsEval(), np.dtype], ids=["builtins.eval", "a class as a value is fine"])
def test_refuses_globals_outside_the_allow_list(tmp_path, payload):
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps(payload, protocol=2))
    if payload is np.dtype:  # numpy.dtype is allowed (the arrays need it)
        assert load_pickle(path) is np.dtype
        return
    with pytest.raises(UnsafePickleError, match=r"builtins?__\.eval|builtins\.eval"):
        load_pickle(path)


def test_codecs_encode_only_for_latin1(tmp_path):
    import codecs

    class _Rot13:
        def __reduce__(self):
            return codecs.encode, ("text", "rot13")

    path = tmp_path / "codec.pkl"
    path.write_bytes(pickle.dumps(_Rot13(), protocol=2))
    with pytest.raises(BenchmarkFileError, match="rot13"):
        load_pickle(path)


def test_missing_truncated_and_garbage_files(tmp_path):
    with pytest.raises(BenchmarkFileError, match="not found"):
        load_pickle(tmp_path / "absent.pkl")
    good = (FORMATS / "3dpw/3dpw_test.pkl").read_bytes()
    (tmp_path / "cut.pkl").write_bytes(good[: len(good) // 2])
    (tmp_path / "junk.pkl").write_bytes(b"this is not a pickle")
    for name in ("cut.pkl", "junk.pkl"):
        with pytest.raises(BenchmarkFileError, match="not a readable pickle") as err:
            load_pickle(tmp_path / name)
        assert "\n" not in str(err.value)
    with pytest.raises(BenchmarkFileError, match="not a readable torch file"):
        load_torch_file(tmp_path / "junk.pkl")
