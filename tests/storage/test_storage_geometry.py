"""The dataset's camera and skeleton conventions (`storage.geometry`): the pinhole model per row, poses, the tree."""

from __future__ import annotations

import numpy as np

from storage.geometry import (
    SMPLX_BODY_JOINTS,
    SMPLX_PARENTS,
    camera_centres,
    intrinsics_matrix,
    project,
    world_to_camera,
)


def test_projection_takes_one_camera_matrix_per_row_or_one_for_all():
    rng = np.random.default_rng(1)
    k = np.stack([intrinsics_matrix(*f) for f in rng.uniform([300, 300, 100, 80], [900, 900, 500, 300], (4, 4))])
    pts = rng.uniform([-1, -1, 0.5], [1, 1, 8], (4, 7, 3))  # (N rows, P points, 3), camera frame
    per_row = project(pts, k)
    assert per_row.shape == (4, 7, 2)
    for n in range(4):
        np.testing.assert_allclose(project(pts[n], k[n]), per_row[n], rtol=0, atol=1e-9)
        fx, fy, cx, cy = k[n, 0, 0], k[n, 1, 1], k[n, 0, 2], k[n, 1, 2]
        expected = np.stack([fx * pts[n, :, 0] / pts[n, :, 2] + cx, fy * pts[n, :, 1] / pts[n, :, 2] + cy], -1)
        np.testing.assert_allclose(per_row[n], expected, rtol=1e-12)
    assert np.isfinite(project(np.zeros((1, 3)), k[0])).all()  # a point on the camera plane: no division by zero


def test_world_to_camera_inverts_the_pose():
    c2w = np.eye(4)
    c2w[:3, :3] = [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]]  # 90 degrees about y
    c2w[:3, 3] = [1.0, 2.0, 3.0]
    cam = np.array([[0.1, -0.2, 2.0], [0.0, 0.0, 1.0]])
    world = cam @ c2w[:3, :3].T + c2w[:3, 3]
    np.testing.assert_allclose(world_to_camera(world, c2w.ravel()), cam, atol=1e-12)
    np.testing.assert_allclose(camera_centres([c2w.ravel(), np.eye(4).ravel()]), [[1.0, 2.0, 3.0], [0, 0, 0]])


def test_the_skeleton_is_a_tree_in_smplx_order():
    assert len(SMPLX_PARENTS) == 55 and SMPLX_PARENTS[0] == -1
    assert all(0 <= p < j for j, p in enumerate(SMPLX_PARENTS) if j)  # parents come first
    assert all(p < SMPLX_BODY_JOINTS for p in SMPLX_PARENTS[:SMPLX_BODY_JOINTS])  # the body is closed under parents
    assert SMPLX_PARENTS[15] == 12 and SMPLX_PARENTS[20:22] == (18, 19)  # head on the neck, wrists on the elbows
