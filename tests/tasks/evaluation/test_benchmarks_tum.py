"""TUM: text files, the TTT3R association, the subsets and the files the reference writes, byte for byte."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from benchmark_fixtures import PACK

from tasks.errors import UsageError
from tasks.evaluation.benchmarks import load_benchmark
from tasks.evaluation.benchmarks.errors import BenchmarkFileError, BenchmarkLayoutError
from tasks.evaluation.benchmarks.sequence import Trajectory
from tasks.evaluation.benchmarks.tum import (
    associate,
    prepare_sequence,
    read_file_list,
    read_pred_traj,
    read_tum_trajectory,
    subset,
    write_pred_traj,
)

CAMERA = PACK / "camera"
SEQS = {"seqA": 120, "seqB": 90}


@pytest.fixture(scope="module")
def camera_npz():
    with np.load(CAMERA / "camera.npz") as z:
        return {k: z[k] for k in z.files}


def _all_pairs_associate(first, second, offset=0.0, max_difference=0.02):
    """The association as TUM's associate.py states it (all candidate pairs, sorted, greedy): the oracle."""
    firsts, seconds = set(first), set(second)
    candidates = sorted((abs(a - (b + offset)), a, b) for a in firsts for b in seconds
                        if abs(a - (b + offset)) < max_difference)
    matches = []
    for _, a, b in candidates:
        if a in firsts and b in seconds:
            firsts.remove(a)
            seconds.remove(b)
            matches.append((a, b))
    return sorted(matches)


def test_raw_files_read_as_the_reference(parsed):
    from evo.tools import file_interface

    traj = read_tum_trajectory(CAMERA / "raw_seqA" / "groundtruth.txt")  # evo's reader: quaternion w first
    np.testing.assert_array_equal(traj.stamps, parsed["tum__raw_groundtruth__stamps"])
    np.testing.assert_array_equal(np.c_[traj.xyz, traj.quat_wxyz], parsed["tum__raw_groundtruth__traj_xyz_wxyz"])
    evo = file_interface.read_tum_trajectory_file(str(CAMERA / "seqB" / "groundtruth_90.txt"))
    mine = read_tum_trajectory(CAMERA / "seqB" / "groundtruth_90.txt")
    np.testing.assert_array_equal(mine.quat_wxyz, evo.orientations_quat_wxyz)
    np.testing.assert_array_equal(mine.stamps, evo.timestamps)
    rgb = read_file_list(CAMERA / "raw_seqA" / "rgb.txt")
    np.testing.assert_array_equal(np.array(sorted(rgb)), parsed["tum__rgb_txt__stamps"])
    assert rgb[1341846313.603851] == ["rgb/1341846313.603851.png"]


@pytest.mark.parametrize("seq", SEQS)
def test_association_and_written_files_are_byte_exact(seq, camera_npz, tmp_path):
    rgb = read_file_list(CAMERA / f"raw_{seq}" / "rgb.txt")
    gt = read_file_list(CAMERA / f"raw_{seq}" / "groundtruth.txt")
    matches = associate(rgb, gt)
    assert matches == _all_pairs_associate(rgb, gt)
    n = SEQS[seq]
    np.testing.assert_array_equal(np.array(subset(matches, n)), camera_npz[f"{seq}__assoc_pairs"])
    prepare_sequence(CAMERA / f"raw_{seq}", tmp_path, n, copy_images=False)
    for name in (f"groundtruth_{n}.txt", f"rgb_{n}.txt"):
        assert (tmp_path / name).read_bytes() == (CAMERA / seq / name).read_bytes()
    traj = read_tum_trajectory(tmp_path / f"groundtruth_{n}.txt")
    np.testing.assert_array_equal(traj.stamps, camera_npz[f"{seq}__gt_stamps"])
    np.testing.assert_array_equal(np.c_[traj.xyz, traj.quat_wxyz], camera_npz[f"{seq}__gt_tum"])


def test_association_ties_and_offset():
    first = {0.0: ["a"], 0.01: ["b"], 1.0: ["c"]}
    second = {0.005: ["x"], 0.015: ["y"], 0.5: ["z"]}
    assert associate(first, second) == _all_pairs_associate(first, second) == [(0.0, 0.005), (0.01, 0.015)]
    assert associate(first, second, offset=0.49) == _all_pairs_associate(first, second, offset=0.49)
    rng = np.random.default_rng(3)
    for _ in range(5):
        a = {round(float(x), 3): ["i"] for x in np.cumsum(rng.uniform(0.0, 0.05, 60))}
        b = {round(float(x), 3): ["g"] for x in np.cumsum(rng.uniform(0.0, 0.02, 150))}
        assert associate(a, b) == _all_pairs_associate(a, b)
    assert associate({}, second) == []


@pytest.mark.parametrize("seq", SEQS)
def test_pred_traj_is_w_first_and_written_as_the_reference(seq, camera_npz, tmp_path):
    pred = read_pred_traj(CAMERA / seq / "pred_traj.txt")
    np.testing.assert_array_equal(pred.stamps, camera_npz[f"{seq}__pred_stamps"])
    np.testing.assert_array_equal(np.c_[pred.xyz, pred.quat_wxyz], camera_npz[f"{seq}__pred_tum"])
    assert pred.quat_wxyz[0, 0] == 1.0  # identity first pose: w first
    write_pred_traj(tmp_path / "pred_traj.txt", pred)
    assert (tmp_path / "pred_traj.txt").read_bytes() == (CAMERA / seq / "pred_traj.txt").read_bytes()


def _raw_tree(root):
    for seq in SEQS:
        shutil.copytree(CAMERA / f"raw_{seq}", root / seq)
        (root / seq / "rgb").mkdir()
        for name in read_file_list(root / seq / "rgb.txt").values():
            (root / seq / name[0]).write_bytes(b"png")
    return root


def test_loader_raw_and_prepared_give_the_same_sequences(tmp_path):
    raw = _raw_tree(tmp_path / "tum")
    bench = load_benchmark("tum_50", raw)
    assert [s.name for s in bench.sequences] == ["seqA", "seqB"] and len(bench.sequences[0]) == 50
    prepared = tmp_path / "long_tum"
    for seq in SEQS:
        prepare_sequence(raw / seq, prepared / seq, 50)
    again = load_benchmark("tum_50", prepared)
    for a, b in zip(bench.sequences, again.sequences):
        assert [p.name for p in a.images] == [p.name for p in b.images]
        np.testing.assert_array_equal(a.trajectory.stamps, b.trajectory.stamps)
        np.testing.assert_array_equal(a.trajectory.quat_wxyz, b.trajectory.quat_wxyz)
        np.testing.assert_array_equal(a.trajectory.xyz, b.trajectory.xyz)
    # "tum": every 3rd associated frame, up to 90 (MonST3R's subset): seqA has 130 matches -> 44 frames
    tum = load_benchmark("tum", raw).sequences[0]
    assert len(tum) == 44 and list(tum.frame_ids[:3]) == [0, 3, 6]


def test_errors(tmp_path):
    with pytest.raises(BenchmarkLayoutError, match="holds no TUM sequence"):
        load_benchmark("tum", tmp_path)
    (tmp_path / "bad.txt").write_text("# c\n1.0 2 3 4\n")
    with pytest.raises(BenchmarkFileError, match="must have 8 columns"):
        read_tum_trajectory(tmp_path / "bad.txt")
    (tmp_path / "worse.txt").write_text("stamp x\n")
    with pytest.raises(BenchmarkFileError, match="does not start with a time stamp"):
        read_file_list(tmp_path / "worse.txt")
    with pytest.raises(UsageError, match="cannot read the predicted trajectory"):
        read_pred_traj(tmp_path / "absent.txt")
    with pytest.raises(ValueError, match=r"Trajectory.xyz has shape \(2, 3\), expected \(3, 3\)"):
        Trajectory(np.zeros(3), np.zeros((2, 3)), np.zeros((3, 4)))
