"""Camera-frame human metrics (the reference's ``eval_camcoord``): MPJPE, PA-MPJPE, PVE, PA-PVE, Metric-*, RootError.

Inputs are matched (prediction, GT) people in the camera frame, metres; every output is one value per person, mm.
The pelvis is the mean of two **hip** joints, not joint 0: :data:`PELVIS_SMPL24` for SMPL's 24 joints (EMDB, RICH,
BEDLAM), :data:`PELVIS_LSP14` for 3DPW's 14 LSP joints. Vertices are centred on the joint pelvis.
"""

from __future__ import annotations

import numpy as np

from tasks.evaluation.metrics.alignment import procrustes_align

PELVIS_SMPL24 = (1, 2)  # left and right hip of SMPL's 24 joints
PELVIS_LSP14 = (2, 3)  # R-hip, L-hip of the 14 LSP joints (H36M regressor rows 6,5,4,1,2,3,16,15,14,11,12,13,8,10)
M_TO_MM = 1000.0


def pelvis_m(joints: np.ndarray, pelvis_idxs: tuple[int, ...]) -> np.ndarray:
    """(B, 1, 3) mean of the pelvis joints of joints (B, J, 3), metres."""
    return np.asarray(joints, np.float64)[:, list(pelvis_idxs)].mean(1, keepdims=True)


def mean_point_error_mm(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(B,) mean over points of |pred - gt| for (B, N, 3) in metres, in mm."""
    return np.linalg.norm(np.asarray(pred, np.float64) - np.asarray(gt, np.float64), axis=-1).mean(-1) * M_TO_MM


def mpjpe_mm(pred_j: np.ndarray, gt_j: np.ndarray, pelvis_idxs: tuple[int, ...]) -> np.ndarray:
    """(B,) MPJPE: joint error after subtracting each side's pelvis, mm."""
    return mean_point_error_mm(pred_j - pelvis_m(pred_j, pelvis_idxs), gt_j - pelvis_m(gt_j, pelvis_idxs))


def pa_mpjpe_mm(pred_j: np.ndarray, gt_j: np.ndarray, pelvis_idxs: tuple[int, ...]) -> np.ndarray:
    """(B,) PA-MPJPE: joint error after each row's best similarity (on the pelvis-centred joints), mm."""
    p, g = pred_j - pelvis_m(pred_j, pelvis_idxs), gt_j - pelvis_m(gt_j, pelvis_idxs)
    return mean_point_error_mm(procrustes_align(p, g), g)


def eval_camcoord(pred_j: np.ndarray, gt_j: np.ndarray, pred_v: np.ndarray, gt_v: np.ndarray,
                  pelvis_idxs: tuple[int, ...] = PELVIS_SMPL24) -> dict[str, np.ndarray]:
    """Every camera-frame metric of B matched people, keyed as the reference (values (B,), mm).

    pred_j, gt_j (B, J, 3) joints and pred_v, gt_v (B, V, 3) vertices in the camera frame, metres. Returns
    me_mpjpe/me_pve (no centring, no alignment), ca_mpjpe/ca_pve (pelvis-centred: MPJPE, PVE), pa_mpjpe/pa_pve
    (each with its own similarity fit) and rt_error (|pred pelvis - GT pelvis|).
    """
    pred_j, gt_j = np.asarray(pred_j, np.float64), np.asarray(gt_j, np.float64)
    pred_v, gt_v = np.asarray(pred_v, np.float64), np.asarray(gt_v, np.float64)
    pp, gp = pelvis_m(pred_j, pelvis_idxs), pelvis_m(gt_j, pelvis_idxs)
    ca_pj, ca_gj, ca_pv, ca_gv = pred_j - pp, gt_j - gp, pred_v - pp, gt_v - gp
    return {
        "me_mpjpe": mean_point_error_mm(pred_j, gt_j),
        "ca_mpjpe": mean_point_error_mm(ca_pj, ca_gj),
        "pa_mpjpe": mean_point_error_mm(procrustes_align(ca_pj, ca_gj), ca_gj),
        "me_pve": mean_point_error_mm(pred_v, gt_v),
        "ca_pve": mean_point_error_mm(ca_pv, ca_gv),
        "pa_pve": mean_point_error_mm(procrustes_align(ca_pv, ca_gv), ca_gv),
        "rt_error": mean_point_error_mm(pp, gp),
    }
