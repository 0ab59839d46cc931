"""EMDB-1/2: data files vs the reference's load_pkl / load_view_emdb; selection, errors, the mini benchmark."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from benchmark_fixtures import FORMATS, emdb_tree

from tasks.evaluation.benchmarks import load_benchmark
from tasks.evaluation.benchmarks.emdb import EMDB1_LIST, EMDB2_LIST, read_emdb_pkl
from tasks.evaluation.benchmarks.errors import BenchmarkFileError, BenchmarkLayoutError
from tasks.evaluation.benchmarks.synthetic import MINI_SEQUENCES, write_mini_emdb
from tasks.evaluation.benchmarks.views import frame_targets
from tasks.evaluation.metrics.protocol import Protocol

DATA = FORMATS / "emdb" / "P0" / "09_outdoor_walk" / "P0_09_outdoor_walk_data.pkl"


def _rewrite(path, **changes):
    data = pickle.loads(path.read_bytes())
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        target = data
        for p in parents:
            target = target[p]
        if value is None:
            del target[last]
        else:
            target[last] = value
    path.write_bytes(pickle.dumps(data, protocol=4))


def test_load_pkl_equals_the_reference(parsed, formats_info):
    data = read_emdb_pkl(DATA)
    assert data["name"] == formats_info["emdb"]["name"] and data["gender"] == formats_info["emdb"]["gender"]
    for key in ("K_fullimg", "T_w2c", "mask"):
        assert data[key].dtype == parsed[f"emdb__load_pkl__{key}"].dtype
        np.testing.assert_array_equal(data[key], parsed[f"emdb__load_pkl__{key}"])
    for key, value in data["smpl_params"].items():
        np.testing.assert_array_equal(value, parsed[f"emdb__load_pkl__smpl_params__{key}"])
    assert (data["emdb1"], data["emdb2"], data["image_wh"]) == (False, True, (1440, 1920))


def test_views_equal_the_reference_load_view_emdb(tmp_path, parsed, formats_info):
    bench = load_benchmark("emdb2", emdb_tree(tmp_path / "EMDB"))
    assert bench.name == "emdb2" and len(bench.missing) == len(EMDB2_LIST) - 1
    (seq,) = bench.sequences
    assert seq.name == "P0/09_outdoor_walk"
    assert [p.name for p in seq.images] == formats_info["emdb"]["images_kept"]  # frames 0, 5, 6 masked out
    assert list(seq.frame_ids) == [1, 2, 3, 4, 7, 8, 9, 10, 11] and seq.meta["emdb2"] is True
    t = frame_targets(seq)  # 1440x1920 -> 384x512
    np.testing.assert_array_equal(t.T_w2c, parsed["emdb__view__T_w2c"])
    np.testing.assert_array_equal(t.intrinsics, parsed["emdb__view__intrinsics"])
    # inv in float64 then float32; numpy versions may differ in the last float64 bit before the cast
    np.testing.assert_allclose(t.camera_pose, parsed["emdb__view__camera_pose"], rtol=0, atol=1e-7)
    np.testing.assert_array_equal(t.smpl_mask, parsed["emdb__view__smpl_mask"])
    for key in ("smpl_root_pose_w", "smpl_body_pose", "smpl_shape", "smpl_transl_w"):
        assert t.params[key].dtype == np.float32
        np.testing.assert_array_equal(t.params[key], parsed[f"emdb__view__{key}"])
    assert t.gender_id.dtype == np.int64
    np.testing.assert_array_equal(t.gender_id, parsed["emdb__view__smpl_gender_id"])


def test_reference_lists():
    assert len(EMDB1_LIST) == 17 and len(EMDB2_LIST) == 25
    assert EMDB2_LIST[19] == "P0/09_outdoor_walk" and EMDB1_LIST[0] == "P8/69_outdoor_cartwheel"
    assert set(EMDB1_LIST) & set(EMDB2_LIST) == {"P6/49_outdoor_big_stairs_down", "P7/57_outdoor_rock_chair",
                                                 "P8/64_outdoor_skateboard"}


def test_selection_by_list_or_by_flag(tmp_path):
    """reference: the hard-coded lists; corrected: the emdb1/emdb2 flags of the files."""
    root = emdb_tree(tmp_path / "EMDB")
    _rewrite(root / "P0/09_outdoor_walk/P0_09_outdoor_walk_data.pkl", emdb1=True)  # flag disagrees with the list
    with pytest.raises(BenchmarkLayoutError, match="no EMDB-1 sequence"):
        load_benchmark("emdb1", root)
    assert [s.name for s in load_benchmark("emdb1", root, protocol="corrected").sequences] == ["P0/09_outdoor_walk"]


def test_neutral_gender_raises_under_reference_and_is_neutral_when_corrected(tmp_path):
    root = emdb_tree(tmp_path / "EMDB")
    _rewrite(root / "P0/09_outdoor_walk/P0_09_outdoor_walk_data.pkl", gender="neutral")
    with pytest.raises(BenchmarkFileError, match="gender 'neutral'.*KeyError"):
        load_benchmark("emdb2", root)
    seq = load_benchmark("emdb2", root, protocol="corrected").sequences[0]
    assert (seq.bodies.gender == 0).all() and (frame_targets(seq).gender_id == 0).all()


def test_errors_name_the_file_and_field(tmp_path):
    with pytest.raises(BenchmarkLayoutError, match="no P\\*/<sequence>/\\*_data.pkl"):
        load_benchmark("emdb2", tmp_path)
    root = emdb_tree(tmp_path / "short", n_images=11)
    with pytest.raises(BenchmarkFileError, match="has 11 images but P0_09_outdoor_walk_data.pkl describes 12"):
        load_benchmark("emdb2", root)
    root = emdb_tree(tmp_path / "field")
    pkl = root / "P0/09_outdoor_walk/P0_09_outdoor_walk_data.pkl"
    _rewrite(pkl, smpl__poses_body=None)
    with pytest.raises(BenchmarkFileError, match="no field 'smpl.poses_body'") as err:
        load_benchmark("emdb2", root)
    assert str(pkl) in str(err.value) and "\n" not in str(err.value)
    _rewrite(pkl, smpl__poses_body=np.zeros((12, 66)))
    with pytest.raises(BenchmarkFileError, match=r"smpl.poses_body has shape \(12, 66\), expected \(12, 69\)"):
        load_benchmark("emdb2", root)
    root = emdb_tree(tmp_path / "noimages")
    for p in (root / "P0/09_outdoor_walk/images").iterdir():
        p.unlink()
    (root / "P0/09_outdoor_walk/images").rmdir()
    with pytest.raises(BenchmarkLayoutError, match="image folder .* is missing"):
        load_benchmark("emdb2", root)


def test_mini_benchmark_round_trip(tmp_path):
    names = write_mini_emdb(tmp_path, n_frames=6, dropped=(2,))
    assert names == [s.name for s in MINI_SEQUENCES]
    emdb1 = load_benchmark("emdb1", tmp_path)
    emdb2 = load_benchmark("emdb2", tmp_path, protocol=Protocol.CORRECTED)  # the metrics' enum works too
    assert emdb2.protocol == "corrected" and emdb1.protocol == "reference"
    assert [s.name for s in emdb1.sequences] == ["P7/57_outdoor_rock_chair"]
    assert [s.name for s in emdb2.sequences] == ["P7/57_outdoor_rock_chair", "P0/09_outdoor_walk"]
    seq = emdb2.sequences[1]
    assert len(seq) == 5 and list(seq.frame_ids) == [0, 1, 3, 4, 5] and seq.images[0].stat().st_size > 0
    assert seq.camera.image_wh == (192, 256) and seq.bodies.gender[0, 0] == 2
    # the person is in front of every camera, and projects inside the image
    cam = np.einsum("fij,fj->fi", seq.camera.T_w2c[:, :3, :3], seq.bodies.transl[:, 0]) + seq.camera.T_w2c[:, :3, 3]
    assert (cam[:, 2] > 1).all()
    uv = np.einsum("fij,fj->fi", seq.camera.K, cam)[:, :2] / cam[:, 2:]
    assert ((uv > 0) & (uv < [192, 256])).all()
    t = frame_targets(seq)
    assert t.intrinsics.shape == (5, 3, 3) and t.params["smpl_body_pose"].shape == (5, 1, 23, 3)
