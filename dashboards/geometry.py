"""Pure numpy geometry for the dashboard: what is drawn where (projected joints and heads, head speeds, thinning).

The dataset's conventions and the camera and skeleton maths are `storage.geometry`'s (shared with the label and scene
exports); this module adds only the dashboard's choices. Nothing here reads data: the callers pass arrays.
"""

from __future__ import annotations

import numpy as np

from storage.geometry import SMPLX_BODY_JOINTS, SMPLX_PARENTS, intrinsics_matrix, project, world_to_camera

# The body bones drawn (the first 22 skeleton joints; the joints column holds 127: body, jaw, eyes, hands, face).
BODY_PARENTS = SMPLX_PARENTS[:SMPLX_BODY_JOINTS]
MIN_DEPTH_M = 1e-2  # a point nearer the camera plane than this (or behind it) is not drawn on the frame


def project_world(points_world: np.ndarray, cam_to_world: list | np.ndarray, fx: float, fy: float, cx: float,
                  cy: float) -> tuple[np.ndarray, np.ndarray]:
    """World points (..., 3) -> pixel coordinates (..., 2) in the source video and a mask (...) of the points in
    front of the camera (z > MIN_DEPTH_M), for one frame's pose (16,) and ``*_src_px`` intrinsics."""
    cam = world_to_camera(points_world, cam_to_world)
    return project(cam, intrinsics_matrix(fx, fy, cx, cy)), cam[..., 2] > MIN_DEPTH_M


def step_speeds(track_id: np.ndarray, timestamp_s: np.ndarray, head_world_m: np.ndarray) -> np.ndarray:
    """Head speed (m/s) between consecutive observations of the same track; rows must be sorted by track, then frame.

    The same quantity as the catalog's ``track_steps()`` macro (``step_m / dt_s``); steps with ``dt_s <= 0`` are
    dropped."""
    track_id = np.asarray(track_id)
    if len(track_id) < 2:
        return np.zeros(0)
    same = track_id[1:] == track_id[:-1]
    step = np.linalg.norm(np.diff(np.asarray(head_world_m, dtype=np.float64), axis=0), axis=1)
    dt = np.diff(np.asarray(timestamp_s, dtype=np.float64))
    ok = same & (dt > 0)
    return step[ok] / dt[ok]


def decimation(n_rows: int, budget: int) -> int:
    """Keep every k-th frame so that about `budget` rows remain (k >= 1)."""
    return max(1, -(-n_rows // max(budget, 1)))
