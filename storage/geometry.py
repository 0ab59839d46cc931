"""How to read the dataset's geometric columns: camera poses, the pinhole camera of the intrinsics, the SMPL-X skeleton
of the joints. Pure numpy, so every reader shares one definition: the dashboard (which imports only `storage`), the
label exports and the scene exports.

Conventions (`storage.schema`): world and camera frames are OpenCV-style (x right, y down, z forward), metres;
``cam_to_world`` is a flattened row-major 4x4; ``*_src_px`` intrinsics are source-video pixels after display
rotation; ``joints_world_m`` holds smplx's 127 joints, of which the first 55 are the skeleton below.
"""

from __future__ import annotations

import numpy as np

# SMPL-X's kinematic tree (kintree_table row 0 of every SMPL-X v1.x model): the parent of each of the 55 skeleton
# joints, -1 for the root (pelvis). A body model file carries the same tree; this copy serves readers without one.
SMPLX_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19,  # body
                 15, 15, 15,  # jaw, left eye, right eye
                 20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38,  # left hand
                 21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53)  # right hand
SMPLX_BODY_JOINTS = 22  # joints 0-21 (pelvis .. wrists): the body without jaw, eyes and fingers


def pose_matrices(cam_to_world: list | np.ndarray) -> np.ndarray:
    """(..., 16) flattened row-major poses -> (..., 4, 4) float64."""
    arr = np.asarray(cam_to_world, dtype=np.float64)
    return arr.reshape(*arr.shape[:-1], 4, 4)


def camera_centres(cam_to_world: list | np.ndarray) -> np.ndarray:
    """(..., 16) poses -> (..., 3) camera centres in the world frame, metres (the translation column)."""
    return pose_matrices(cam_to_world)[..., :3, 3]


def world_to_camera(points_world: np.ndarray, cam_to_world: list | np.ndarray) -> np.ndarray:
    """World points (..., 3) -> the same points in the frame of one camera pose (16,), metres: R^T (p - t)."""
    c2w = pose_matrices(cam_to_world)
    return (np.asarray(points_world, dtype=np.float64) - c2w[:3, 3]) @ c2w[:3, :3]


def intrinsics_matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """The (3, 3) camera matrix K of the four intrinsics columns (pixels)."""
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def project(points_cam: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """Camera-frame points (..., P, 3) and camera matrices K (..., 3, 3) (one per leading index, or one for all)
    -> pixel coordinates (..., P, 2): the pinhole model u = fx x / z + cx, v = fy y / z + cy (skew from K).

    Points behind the camera project to meaningless pixels (their z is not clipped, only kept off zero): mask them
    with ``points_cam[..., 2] > min_depth``."""
    pts = np.asarray(points_cam, dtype=np.float64)
    z = pts[..., 2:]
    z = np.where(np.abs(z) < 1e-9, 1e-9, z)
    uv1 = (pts / z) @ np.swapaxes(np.asarray(intrinsics, dtype=np.float64), -1, -2)
    return uv1[..., :2]
