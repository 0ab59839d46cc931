"""RICH: GVHMR's labels + cam2params through torch.load(weights_only=True), frame_id positional, intrinsics."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from benchmark_fixtures import FORMATS, jpeg_bytes, rich_tree

from tasks.evaluation.benchmarks import load_benchmark
from tasks.evaluation.benchmarks.errors import BenchmarkFileError, BenchmarkLayoutError
from tasks.evaluation.benchmarks.rich import camera_key
from tasks.evaluation.benchmarks.views import frame_targets, working_intrinsics


@pytest.fixture(scope="module")
def images(tmp_path_factory, formats_info):
    return rich_tree(tmp_path_factory.mktemp("RICH"), formats_info["rich"]["vids"])


def _key(vid: str) -> str:
    return "rich__" + vid.replace("/", "__") + "__view__"


def test_views_equal_the_reference_load_view_rich(images, parsed, formats_info):
    bench = load_benchmark("rich", images, labels=FORMATS / "rich")
    assert [s.name for s in bench.sequences] == formats_info["rich"]["seq_list"]
    for seq in bench.sequences:
        assert [p.name for p in seq.images] == formats_info["rich"]["images_kept"][seq.name]
        assert seq.camera.image_wh == (4112, 3008) and seq.bodies.model == "smplx" and seq.bodies.frame == "world"
        # the pack's views were made with working images of 512x384 (true_shape), from 4112x3008
        t = frame_targets(seq, target_wh=(512, 384))
        for key in ("camera_pose", "T_w2c", "intrinsics"):
            np.testing.assert_array_equal(getattr(t, key), parsed[_key(seq.name) + key])
        np.testing.assert_array_equal(t.smpl_mask, parsed[_key(seq.name) + "smpl_mask"])
        for key in ("smplx_global_orient", "smplx_body_pose", "smplx_betas", "smplx_transl"):
            np.testing.assert_array_equal(t.params[key], parsed[_key(seq.name) + key])
        assert t.gender_key == "smplx_gender_id" and t.gender_id.dtype == np.int64
        np.testing.assert_array_equal(t.gender_id, parsed[_key(seq.name) + "smplx_gender_id"])


def test_camera_key():
    assert camera_key("test/Gym_013_burpee4/cam_06") == "Gym_6"
    assert camera_key("test/ParkingLot2_009_overfence1/cam_04") == "ParkingLot2_4"
    with pytest.raises(BenchmarkFileError, match="split/<sequence>/cam_NN"):
        camera_key("Gym_013_burpee4")


def test_frame_id_indexes_the_listing_by_position(tmp_path, formats_info):
    """Image numbers starting at 00140 (as ParkingLot2_009 does): frame_id 2 is the third file, 00142."""
    vids = formats_info["rich"]["vids"]
    root = rich_tree(tmp_path / "RICH", vids, n_images=20, first=140)
    seq = load_benchmark("rich", root, labels=FORMATS / "rich").sequences[1]
    assert [p.name for p in seq.images][:2] == ["00142_04.jpeg", "00144_04.jpeg"]
    shutil.rmtree(root / vids[0])
    rich_tree(root, vids[:1], n_images=10)
    with pytest.raises(BenchmarkFileError, match="frame_id goes up to 18 but .* lists 10 files"):
        load_benchmark("rich", root, labels=FORMATS / "rich")


def test_downsampled_images_are_refused(tmp_path, formats_info):
    """cam2params' K is for 4112x3008: with GVHMR's images_ds4 (1028x752) every intrinsic would be 4x off."""
    root = tmp_path / "RICH"
    for vid in formats_info["rich"]["vids"]:
        (root / vid).mkdir(parents=True)
        data = jpeg_bytes(1028, 752)
        for i in range(20):
            (root / vid / f"{i:05d}_{vid[-2:]}.jpeg").write_bytes(data)
    with pytest.raises(BenchmarkFileError, match="principal point .* outside the 1028x752 images"):
        load_benchmark("rich", root, labels=FORMATS / "rich")


def test_corrected_intrinsics_follow_the_crop():
    """4112x3008 -> resized 512x375, cropped to 512x368: the reference's per-axis K makes fy 2% too small."""
    K = np.array([[4250.0, 0, 2056], [0, 4250, 1504], [0, 0, 1]])
    ref = working_intrinsics(K, (4112, 3008), 512)
    fixed = working_intrinsics(K, (4112, 3008), 512, protocol="corrected")
    assert ref[1, 1] == pytest.approx(4250 * 368 / 3008) and fixed[1, 1] == pytest.approx(4250 * 375 / 3008)
    assert fixed[1, 2] == pytest.approx((1504 + 0.5) * 375 / 3008 - 0.5 - 3)  # crop top: 375 // 2 - 184
    # nothing cropped (3DPW 1080x1920): the two agree up to the half-pixel convention
    K2 = np.array([[1961.9, 0, 540], [0, 1969.2, 960], [0, 0, 1]])
    a, b = working_intrinsics(K2, (1080, 1920)), working_intrinsics(K2, (1080, 1920), protocol="corrected")
    np.testing.assert_allclose(a[:2, :2], b[:2, :2], rtol=1e-6)
    np.testing.assert_allclose(a[:2, 2] - b[:2, 2], 0.5 * (1 - 512 / 1920), rtol=1e-4)


def test_missing_and_malformed_labels(tmp_path, images):
    with pytest.raises(BenchmarkFileError, match="rich_test_labels.pt not found; download GVHMR"):
        load_benchmark("rich", images, labels=tmp_path)
    labels = tmp_path / "labels"
    shutil.copytree(FORMATS / "rich", labels)
    table = torch.load(labels / "hmr4d_support" / "rich_test_labels.pt", weights_only=True)
    vid = "test/Gym_013_burpee4/cam_06"
    table[vid]["gt_smplx_params"]["body_pose"] = torch.zeros(9, 69)
    table["test/ParkingLot2_009_overfence1/cam_04"]["frame_id"] = torch.tensor([2, 4, 6, 10, 8, 12])
    cams = torch.load(labels / "resource" / "cam2params.pt", weights_only=True)
    del cams["ParkingLot2_4"]
    torch.save(table, labels / "hmr4d_support" / "rich_test_labels.pt")
    torch.save(cams, labels / "resource" / "cam2params.pt")
    with pytest.raises(BenchmarkFileError) as err:
        load_benchmark("rich", images, labels=labels)
    message = str(err.value)
    assert "gt_smplx_params.body_pose is not a (9, 63) tensor" in message and "camera 'ParkingLot2_4'" in message
    cams["ParkingLot2_4"] = cams["Gym_6"]
    table[vid]["gt_smplx_params"]["body_pose"] = torch.zeros(9, 63)
    torch.save(table, labels / "hmr4d_support" / "rich_test_labels.pt")
    torch.save(cams, labels / "resource" / "cam2params.pt")
    with pytest.raises(BenchmarkFileError, match="frame_id is not strictly increasing"):
        load_benchmark("rich", images, labels=labels)
    with pytest.raises(BenchmarkLayoutError, match="does not exist"):
        load_benchmark("rich", tmp_path / "absent", labels=FORMATS / "rich")
    with pytest.raises(BenchmarkLayoutError, match="image folder .* is missing"):
        load_benchmark("rich", tmp_path, labels=FORMATS / "rich")
