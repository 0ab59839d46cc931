"""Similarity fits between point sets (float64 numpy), as the reference's human metrics define them.

* :func:`procrustes_align`: per row of a batch, the similarity (s, R, t) minimising sum |s R x + t - y|^2 applied
  to x (PA-MPJPE, PA-PVE; the reference's ``batch_compute_similarity_transform_torch``, always (B, N, 3)).
* :func:`umeyama`: the same fit in Umeyama's form, returning (s, R, t) (the reference's ``align_pcl``), with
  ``fixed_scale`` for the rigid fit of RTE.

Camera trajectories are aligned by evo (:mod:`~tasks.evaluation.metrics.camera`), not here.
"""

from __future__ import annotations

import numpy as np


def procrustes_align(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x (B, N, 3) mapped onto y (B, N, 3) by each row's best similarity; returns (B, N, 3), y's units.

    1. centre both; 2. K = X^T Y (3x3) and its SVD U S V^T; 3. R = V diag(1, 1, sign det(U V^T)) U^T;
    4. s = tr(R K) / sum |x - mean x|^2; 5. t = mean y - s R mean x.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    mx, my = x.mean(1, keepdims=True), y.mean(1, keepdims=True)
    x0, y0 = x - mx, y - my
    var = (x0**2).sum((1, 2))
    k = np.einsum("bni,bnj->bij", x0, y0)
    u, _, vt = np.linalg.svd(k)
    v = np.swapaxes(vt, 1, 2)
    z = np.broadcast_to(np.eye(3), k.shape).copy()
    z[:, 2, 2] = np.sign(np.linalg.det(u @ vt))
    r = v @ z @ np.swapaxes(u, 1, 2)
    s = np.trace(r @ k, axis1=1, axis2=2) / var
    t = my - s[:, None, None] * np.einsum("bij,bnj->bni", r, mx)
    return s[:, None, None] * np.einsum("bij,bnj->bni", r, x) + t


def umeyama(y: np.ndarray, x: np.ndarray, fixed_scale: bool = False) -> tuple[float, np.ndarray, np.ndarray]:
    """(s, R (3, 3), t (3,)) with s R x + t ~ y, for x, y (N, 3) in metres.

    C = sum (y - mean y)(x - mean x)^T / N = U D V^T; S = I with S33 = -1 when det U det V < 0; R = U S V^T;
    s = tr(D S) / (sum |x - mean x|^2 / N) (1 when `fixed_scale`); t = mean y - s R mean x.
    """
    x = np.asarray(x, np.float64).reshape(-1, 3)
    y = np.asarray(y, np.float64).reshape(-1, 3)
    n = x.shape[0]
    mx, my = x.mean(0), y.mean(0)
    x0, y0 = x - mx, y - my
    c = y0.T @ x0 / n
    u, d, vt = np.linalg.svd(c)
    s_mat = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt.T) < 0:
        s_mat[2, 2] = -1.0
    r = u @ s_mat @ vt
    if fixed_scale:
        s = 1.0
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            s = float(np.sum(d * np.diag(s_mat)) / ((x0**2).sum() / n))
    t = my - s * r @ mx
    return s, r, t


def apply_similarity(s: float, r: np.ndarray, t: np.ndarray, points: np.ndarray) -> np.ndarray:
    """s R p + t for points (..., 3)."""
    return s * np.einsum("ij,...j->...i", r, np.asarray(points, np.float64)) + t
