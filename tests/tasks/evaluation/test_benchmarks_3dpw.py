"""3DPW: the annotation file and its builder against the reference's outputs on the pack's sample."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from benchmark_fixtures import FORMATS, threedpw_tree

from tasks.evaluation.benchmarks import load_benchmark
from tasks.evaluation.benchmarks.errors import BenchmarkFileError, BenchmarkLayoutError
from tasks.evaluation.benchmarks.threedpw import build_annotations, read_annotations, write_annotations
from tasks.evaluation.benchmarks.views import frame_targets

VIEW_KEYS = ("smpl_root_pose", "smpl_body_pose", "smpl_shape", "smpl_transl")


@pytest.fixture
def release(tmp_path):
    return threedpw_tree(tmp_path / "3DPW")


def test_views_equal_the_reference_load_view_3dpw(release, parsed, formats_info):
    """Frames, cameras, intrinsics at 512x288 (per axis), people sorted by depth in 2 slots, gender ids."""
    bench = load_benchmark("3dpw", release)
    (seq,) = bench.sequences
    assert seq.name == "downtown_synthetic_00" and len(seq) == 6
    assert [f"{seq.name}/{p.name}" for p in seq.images] == formats_info["3dpw"]["image_keys"]
    assert seq.images[0] == release / "imageFiles" / "downtown_synthetic_00" / "image_00000.jpg"
    assert list(seq.frame_ids) == [0, 1, 2, 3, 5, 6]  # image 4 has no valid actor
    assert seq.camera.image_wh == (1080, 1920) and seq.bodies.frame == "camera" and seq.bodies.model == "smpl"
    t = frame_targets(seq)  # working size 512 -> 288x512, as view_true_shape_hw
    for key in ("camera_pose", "T_w2c", "intrinsics"):
        np.testing.assert_array_equal(getattr(t, key), parsed[f"3dpw__view__{key}"])
    np.testing.assert_array_equal(t.smpl_mask, parsed["3dpw__view__smpl_mask"])
    for key in VIEW_KEYS:
        assert t.params[key].dtype == np.float32
        np.testing.assert_array_equal(t.params[key], parsed[f"3dpw__view__{key}"])
    assert t.gender_id.dtype == np.float32
    np.testing.assert_array_equal(t.gender_id, parsed["3dpw__view__smpl_gender_id"])
    assert [n for n in formats_info["3dpw"]["humans_per_image"].values()] == list(seq.bodies.mask.sum(1))


def test_builder_writes_the_reference_annotation_file(release, parsed, formats_info, tmp_path):
    """prepare_3dpw.py's dict from sequenceFiles/test + image sizes, given the pack's stub J0 per gender."""
    j0 = {g: np.array(v) for g, v in formats_info["3dpw"]["stub_pelvis_J0"].items()}
    built = build_annotations(release, lambda gender, betas: j0[gender])
    reference = read_annotations(FORMATS / "3dpw" / "3dpw_test.pkl")
    assert sorted(built) == sorted(reference) == formats_info["3dpw"]["image_keys"]
    for key, ref in reference.items():
        for field in ("focal", "princpt", "size", "cam_poses"):
            assert built[key][field].dtype == ref[field].dtype
            np.testing.assert_array_equal(built[key][field], ref[field])
        assert [h["smpl_gender"] for h in built[key]["humans"]] == [h["smpl_gender"] for h in ref["humans"]]
        for mine, theirs in zip(built[key]["humans"], ref["humans"]):
            for field in VIEW_KEYS:
                # transl: the formula vs the reference's float32 mesh route (pack: 2.1e-7)
                tol = formats_info["3dpw"]["transl_formula_max_abs_err"] * 5 if field == "smpl_transl" else 0
                np.testing.assert_allclose(mine[field], theirs[field], rtol=0, atol=tol)
                assert mine[field].dtype == np.float32
    out = write_annotations(built, tmp_path / "annots" / "3dpw_test.pkl")
    assert pickle.loads(out.read_bytes()).keys() == built.keys()
    # the loader finds <root>/annots/3dpw_test.pkl and builds in memory when only sequenceFiles exist
    (release / "3dpw_test.pkl").unlink()
    with pytest.raises(BenchmarkFileError, match="build it from"):
        load_benchmark("3dpw", release)
    in_memory = load_benchmark("3dpw", release, pelvis_rest=lambda gender, betas: j0[gender])
    np.testing.assert_allclose(in_memory.sequences[0].bodies.transl, parsed["3dpw__view__smpl_transl"], atol=1e-6)


def test_image_sizes_are_read_from_the_images(release):
    with pytest.raises(BenchmarkFileError, match="cannot read 3DPW image"):
        (release / "imageFiles" / "downtown_synthetic_00" / "image_00003.jpg").write_bytes(b"")
        build_annotations(release, lambda g, b: np.zeros(3))
    built = build_annotations(release, lambda g, b: np.zeros(3), image_size=(1080, 1920))
    assert all(tuple(e["size"]) == (1080, 1920) for e in built.values())


def test_more_than_two_people_reference_refuses_corrected_keeps_all(release, tmp_path):
    annots = read_annotations(release / "3dpw_test.pkl")
    key = "downtown_synthetic_00/image_00003.jpg"
    third = {k: (v.copy() if hasattr(v, "copy") else v) for k, v in annots[key]["humans"][0].items()}
    third["smpl_transl"] = np.array([0.5, 0.2, 3.0], np.float32)  # the nearest: first slot
    annots[key]["humans"].append(third)
    path = write_annotations(annots, tmp_path / "crowded.pkl")
    with pytest.raises(BenchmarkFileError, match="3 people"):
        load_benchmark("3dpw", release, annotations=path)
    seq = load_benchmark("3dpw", release, annotations=path, protocol="corrected").sequences[0]
    assert seq.bodies.max_people == 3 and seq.bodies.mask.sum() == 11
    frame = [p.name for p in seq.images].index("image_00003.jpg")
    np.testing.assert_array_equal(seq.bodies.transl[frame, 0], third["smpl_transl"])
    assert list(seq.bodies.transl[frame, :, 2]) == sorted(seq.bodies.transl[frame, :, 2])


def test_layout_and_field_errors(release, tmp_path):
    bare = threedpw_tree(tmp_path / "no_images", with_images=False)
    with pytest.raises(BenchmarkLayoutError, match="imageFiles/downtown_synthetic_00 is missing") as err:
        load_benchmark("3dpw", bare)
    assert "\n" not in str(err.value)
    assert len(load_benchmark("3dpw", bare, check_images=False).sequences) == 1
    with pytest.raises(BenchmarkLayoutError, match="sequenceFiles"):
        build_annotations(tmp_path, lambda g, b: np.zeros(3))
    annots = read_annotations(release / "3dpw_test.pkl")
    del annots["downtown_synthetic_00/image_00001.jpg"]["humans"][0]["smpl_shape"]
    annots["downtown_synthetic_00/image_00002.jpg"]["cam_poses"] = np.eye(3, dtype=np.float32)
    broken = write_annotations(annots, tmp_path / "broken.pkl")
    with pytest.raises(BenchmarkFileError) as err:
        load_benchmark("3dpw", release, annotations=broken)
    assert "humans[0].smpl_shape" in str(err.value) and "image_00002.jpg: cam_poses" in str(err.value)
    seq_file = release / "sequenceFiles" / "test" / "downtown_synthetic_00.pkl"
    data = pickle.loads(seq_file.read_bytes(), encoding="latin1")
    del data["campose_valid"]
    seq_file.write_bytes(pickle.dumps(data, protocol=2))
    with pytest.raises(BenchmarkFileError, match="no field 'campose_valid'"):
        build_annotations(release, lambda g, b: np.zeros(3), image_size=(1080, 1920))
