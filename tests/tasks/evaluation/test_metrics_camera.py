"""Camera metrics with evo against the pack, against an independent Umeyama, and the two protocols' stamps rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
from evo.core.geometry import GeometryException
from evo.core.sync import SyncException
from evo.core.trajectory import PoseTrajectory3D

from tasks.evaluation.metrics.camera import (
    c2w_to_tum_wxyz,
    evaluate_trajectory,
    parse_report,
    read_gt_tum,
    read_pred_traj,
    summarize_trajectories,
    write_pred_traj,
)


@pytest.fixture(scope="module")
def seq_a(pack):
    stamps, rows = read_pred_traj(pack / "camera/seqA/pred_traj.txt")
    return stamps, rows, read_gt_tum(pack / "camera/seqA/groundtruth_120.txt")


@pytest.fixture(scope="module")
def ref_a(seq_a):
    stamps, rows, gt = seq_a
    return evaluate_trajectory(rows, stamps, gt, "seqA")


def _umeyama_sim3(x: np.ndarray, y: np.ndarray):
    """Independent Sim3 fit y ~ s R x + t (numpy SVD), for the test only."""
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    u, d, vt = np.linalg.svd(yc.T @ xc / len(x))
    s = np.eye(3)
    s[2, 2] = np.sign(np.linalg.det(u) * np.linalg.det(vt))
    r = u @ s @ vt
    c = np.trace(np.diag(d) @ s) / (xc**2).sum(1).mean()
    return c, r, my - c * r @ mx


def test_reference_numbers_and_report(pack, ref_a):
    res = ref_a
    assert res.ate_m == pytest.approx(0.018558191232455716, rel=1e-9)
    assert res.rpe_trans_m == pytest.approx(0.015576472398255716, rel=1e-9)
    assert res.rpe_rot_deg == pytest.approx(0.32366103422638104, rel=1e-9)
    assert res.report == (pack / "camera/seqA_eval_metric.txt").read_text()
    assert parse_report(res.report) == {"ate_m": 0.018558, "rpe_trans_m": 0.015576, "rpe_rot_deg": 0.323661}


def test_evo_ate_equals_an_independent_umeyama(seq_a, ref_a):
    stamps, rows, gt = seq_a
    res = ref_a
    x, y = rows[:, :3], gt.positions_xyz  # same count: the prediction takes the GT's stamps, 1:1
    s, r, t = _umeyama_sim3(x, y)
    ate = math.sqrt(np.mean(np.sum((s * x @ r.T + t - y) ** 2, axis=1)))
    assert res.ate_m == pytest.approx(ate, rel=1e-12)


def test_pred_traj_is_written_as_the_reference_writes_it(pack, tmp_path):
    z = np.load(pack / "camera/camera.npz")
    path = tmp_path / "pred_traj.txt"
    write_pred_traj(path, z["seqA__pred_tum"])
    assert path.read_text() == (pack / "camera/seqA/pred_traj.txt").read_text()
    assert np.abs(c2w_to_tum_wxyz(z["seqA__pred_c2w_float32"]) - z["seqA__pred_tum"]).max() < 1e-14


def test_a_missing_pose_voids_the_reference_but_not_the_corrected(seq_a, ref_a):
    stamps, rows, gt = seq_a
    drop = 37
    keep = np.arange(len(rows)) != drop
    with pytest.raises(SyncException):
        evaluate_trajectory(rows[keep], np.arange(keep.sum()), gt)
    cor = evaluate_trajectory(rows[keep], stamps[keep], gt, protocol="corrected")
    assert cor.pairs == len(rows) - 1
    # the same as evaluating the N-1 poses against the GT without that pose
    gt_less = PoseTrajectory3D(positions_xyz=gt.positions_xyz[keep], orientations_quat_wxyz=gt.orientations_quat_wxyz[
        keep], timestamps=gt.timestamps[keep])
    same = evaluate_trajectory(rows[keep], np.arange(keep.sum()), gt_less)
    assert cor.ate_m == pytest.approx(same.ate_m, rel=1e-12)
    # with every pose, the protocols agree
    full = evaluate_trajectory(rows, stamps, gt, protocol="corrected")
    assert (full.ate_m, full.rpe_trans_m, full.rpe_rot_deg) == (ref_a.ate_m, ref_a.rpe_trans_m, ref_a.rpe_rot_deg)


def test_a_static_camera_is_dropped_by_the_reference_and_reported_by_the_corrected(seq_a, ref_a):
    stamps, rows, gt = seq_a
    static = rows.copy()
    static[:, :3] = 0.0
    with pytest.raises(GeometryException, match="Degenerate covariance rank"):
        evaluate_trajectory(static, stamps, gt)
    good = ref_a
    results = {"seqA": good, "static": GeometryException("Degenerate covariance rank")}
    ref = summarize_trajectories("tum", results)
    assert ref.value("ate_m") == 0.018558  # the mean over the remaining sequence's 6-decimal value
    assert [r.sequence for r in ref.rows if r.sequence] == ["seqA"] * 3  # no row for the static sequence
    cor = summarize_trajectories("tum", results, "corrected")
    assert cor.value("ate_m") == good.ate_m
    assert math.isnan(cor.value("ate_m", "static"))
    assert [(e.sequence, e.reason.split(":")[0]) for e in cor.exclusions] == [("static", "GeometryException")]
