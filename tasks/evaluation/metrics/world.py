"""World-frame human metrics (the reference's ``eval_global``): W-MPJPE100, WA-MPJPE100, RTE, jitter, foot sliding.

Inputs are one person's matched frames, world frame, metres: predicted joints are the predicted camera pose applied
to the predicted camera-frame joints. Under the ``reference`` protocol the matched frames are simply concatenated
(missed frames removed, so chunks, jitter and foot sliding run across the gaps); under ``corrected``, `frame_ids`
(the frames' numbers in the sequence) decide the chunks, and jitter and foot sliding use consecutive frames only.
Without gaps both protocols give the same numbers.
"""

from __future__ import annotations

import numpy as np

from tasks.evaluation.metrics.alignment import apply_similarity, umeyama
from tasks.evaluation.metrics.camcoord import M_TO_MM
from tasks.evaluation.metrics.protocol import Protocol, as_protocol

SMPL_FOOT_VERTEX_IDS = (3216, 3387, 6617, 6787)  # left heel/toe, right heel/toe of SMPL's 6890 vertices
SMPL_VERTICES = 6890
CONTACT_THRESHOLD_M = 0.01  # GT foot displacement per frame below which the foot is in contact
CHUNK_FRAMES = 100  # W-/WA-MPJPE "100": chunks of int(100 / subsample) frames
FPS = 30


def _jpe_mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a - b, axis=-1).mean(-1) * M_TO_MM


def chunk_mpjpe_mm(pred_j: np.ndarray, gt_j: np.ndarray, first_two: bool) -> np.ndarray:
    """(F,) joint error of one chunk after one Sim3 fit, mm: on the first two frames' joints (W-MPJPE) or on all."""
    fit = slice(0, 2) if first_two else slice(None)
    s, r, t = umeyama(gt_j[fit].reshape(-1, 3), pred_j[fit].reshape(-1, 3))
    return _jpe_mm(gt_j, apply_similarity(s, r, t, pred_j))


def _chunks(frame_ids: np.ndarray, chunk: int) -> list[np.ndarray]:
    keys = frame_ids // chunk
    return [np.flatnonzero(keys == k) for k in np.unique(keys)]


def w_mpjpe100_mm(pred_j: np.ndarray, gt_j: np.ndarray, frame_ids: np.ndarray, chunk: int,
                  first_two: bool) -> np.ndarray:
    """(F,) W-MPJPE100 (`first_two`) or WA-MPJPE100, chunked by `frame_ids // chunk`; pred_j, gt_j (F, J, 3) m."""
    out = np.empty(len(pred_j))
    for idx in _chunks(frame_ids, chunk):
        out[idx] = chunk_mpjpe_mm(pred_j[idx], gt_j[idx], first_two)
    return out


def rte_pct(pred_root: np.ndarray, gt_root: np.ndarray, fixed_scale: bool = True) -> np.ndarray:
    """(F,) root translation error in % of the *total* GT root path length, after one rigid (or Sim3) fit.

    pred_root, gt_root (F, 3) in metres (SMPL joint 0). A GT root that never moves (0 path length) gives inf
    everywhere, as the reference's float32 arithmetic does (its errors are never exactly 0 then).
    """
    s, r, t = umeyama(gt_root, pred_root, fixed_scale=fixed_scale)
    err = np.linalg.norm(gt_root - apply_similarity(s, r, t, pred_root), axis=-1)
    path = np.linalg.norm(np.diff(gt_root, axis=0), axis=-1).sum()
    if path == 0:
        return np.full(len(err), np.inf)
    return err / path * 100.0


def jitter_10m_s3(pred_j: np.ndarray, windows: np.ndarray, fps: float = FPS) -> np.ndarray:
    """(W,) mean joint jerk |x3 - 3 x2 + 3 x1 - x0| fps^3 / 10 for each window start in `windows`."""
    x = np.asarray(pred_j, np.float64)
    w = np.asarray(windows, np.int64)
    jerk = x[w + 3] - 3 * x[w + 2] + 3 * x[w + 1] - x[w]
    return np.linalg.norm(jerk * fps**3, axis=-1).mean(-1) / 10.0


def foot_sliding_mm(pred_feet: np.ndarray, gt_feet: np.ndarray, pairs: np.ndarray,
                    threshold_m: float = CONTACT_THRESHOLD_M) -> np.ndarray:
    """Predicted foot-vertex displacement (mm) on the (pair, vertex) entries where the GT foot is in contact.

    pred_feet, gt_feet (F, 4, 3) metres; `pairs` are the first frames of the frame pairs (t, t+1) looked at.
    Contact: GT displacement < `threshold_m`. Entries in (pair, vertex) order; empty when nothing is in contact.
    """
    p = np.asarray(pairs, np.int64)
    gt = np.asarray(gt_feet, np.float64)
    pr = np.asarray(pred_feet, np.float64)
    contact = np.linalg.norm(gt[p + 1] - gt[p], axis=-1) < threshold_m
    return np.linalg.norm(pr[p + 1] - pr[p], axis=-1)[contact] * M_TO_MM


def feet_of(vertices: np.ndarray) -> np.ndarray:
    """(F, 4, 3) SMPL foot vertices of (F, 6890, 3) vertices (the reference asserts V = 6890)."""
    from tasks.evaluation.metrics.errors import MetricInputError

    if vertices.shape[-2] != SMPL_VERTICES:
        raise MetricInputError(f"foot sliding needs SMPL vertices (F, {SMPL_VERTICES}, 3), got {vertices.shape}")
    return vertices[:, list(SMPL_FOOT_VERTEX_IDS)]


def eval_global(pred_j: np.ndarray, gt_j: np.ndarray, pred_feet: np.ndarray, gt_feet: np.ndarray,
                frame_ids: np.ndarray | None = None, subsample: int = 1,
                protocol: Protocol | str = Protocol.REFERENCE) -> dict[str, np.ndarray]:
    """Every world-frame metric of one person's matched frames, keyed as the reference.

    pred_j, gt_j (F, J, 3) world joints and pred_feet, gt_feet (F, 4, 3) foot vertices (:func:`feet_of`), metres.
    `frame_ids` (F,) are the frames' numbers (default 0..F-1); only the corrected protocol reads them.
    Returns wa2_mpjpe (W-MPJPE100, (F,), mm), waa_mpjpe (WA-MPJPE100, (F,), mm), rte and rte_scaled ((F,), %),
    jitter ((F-3,) without gaps, 10 m/s^3) and fs (contact entries, mm).
    """
    protocol = as_protocol(protocol)
    pred_j, gt_j = np.asarray(pred_j, np.float64), np.asarray(gt_j, np.float64)
    n = len(pred_j)
    compact = np.arange(n)
    ids = compact if frame_ids is None or protocol is Protocol.REFERENCE else np.asarray(frame_ids, np.int64)
    chunk = int(CHUNK_FRAMES / subsample)
    windows = np.flatnonzero(ids[3:] - ids[:-3] == 3) if n > 3 else np.zeros(0, np.int64)
    pairs = np.flatnonzero(ids[1:] - ids[:-1] == 1) if n > 1 else np.zeros(0, np.int64)
    return {
        "wa2_mpjpe": w_mpjpe100_mm(pred_j, gt_j, ids, chunk, first_two=True),
        "waa_mpjpe": w_mpjpe100_mm(pred_j, gt_j, ids, chunk, first_two=False),
        "rte": rte_pct(pred_j[:, 0], gt_j[:, 0], fixed_scale=True),
        "rte_scaled": rte_pct(pred_j[:, 0], gt_j[:, 0], fixed_scale=False),
        "jitter": jitter_10m_s3(pred_j, windows, FPS),
        "fs": foot_sliding_mm(pred_feet, gt_feet, pairs),
    }
