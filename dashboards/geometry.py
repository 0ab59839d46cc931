"""Pure numpy geometry for the dashboard: camera centres, projection into the source frame, head speeds.

Conventions are the dataset's (`storage.schema`): world and camera frames are OpenCV-style (x right, y down,
z forward), metres; ``cam_to_world`` is a flattened row-major 4x4; intrinsics ``*_src_px`` are in source-video pixels
after display rotation. Nothing here reads data: the callers pass arrays.
"""

from __future__ import annotations

import numpy as np

# The SMPL-X body skeleton (first 22 joints, smplx order): parent of each joint, -1 for the pelvis. The joints column
# holds 127 joints (body, jaw, eyes, hands, face landmarks); only these 22 are drawn as bones.
BODY_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)


def as_matrices(cam_to_world: list | np.ndarray) -> np.ndarray:
    """(N, 16) or (16,) flattened row-major poses -> (N, 4, 4) float64 (or (4, 4))."""
    arr = np.asarray(cam_to_world, dtype=np.float64)
    return arr.reshape(*arr.shape[:-1], 4, 4)


def camera_centres(cam_to_world: list | np.ndarray) -> np.ndarray:
    """(N, 16) poses -> (N, 3) camera centres in the world frame, metres (the translation column)."""
    return as_matrices(cam_to_world)[..., :3, 3]


def project(points_world: np.ndarray, cam_to_world: list | np.ndarray, fx: float, fy: float, cx: float,
            cy: float) -> tuple[np.ndarray, np.ndarray]:
    """World points (..., 3) -> pixel coordinates (..., 2) in the source video and a mask (...) of points in front
    of the camera (z > 1 cm). Pinhole model: u = fx * x / z + cx, v = fy * y / z + cy in the camera frame."""
    pts = np.asarray(points_world, dtype=np.float64)
    c2w = as_matrices(cam_to_world)
    rot, t = c2w[:3, :3], c2w[:3, 3]
    cam = (pts - t) @ rot  # R^T (p - t), row vectors: the world -> camera transform of a rigid pose
    z = cam[..., 2]
    in_front = z > 1e-2
    safe_z = np.where(in_front, z, 1.0)
    uv = np.stack([fx * cam[..., 0] / safe_z + cx, fy * cam[..., 1] / safe_z + cy], axis=-1)
    return uv, in_front


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
