"""AMASS-style SMPL-X sequences: one ``.npz`` per clip, in the keys and layout motion code already reads.

World convention of the files: **Z up**, the floor at z = 0 (the video's fitted ground plane), x along the first
camera's x axis levelled onto the floor, y = z x x (the first camera's forward direction, levelled), origin on the
floor below the first camera (`tasks.labels.ground.zup_transform`; without a ground plane, up is the first camera's
-y and the origin is the first camera). Metres, axis-angle radians, like AMASS.

Keys (N frames): ``poses`` (N, 165) = root_orient (3) | pose_body (63) | pose_jaw (3) | pose_eye (6) | pose_hand
(90, left then right), smplx's full-pose order; ``root_orient`` (N, 3), ``pose_body`` (N, 63), ``pose_hand``
(N, 90), ``pose_jaw`` (N, 3), ``pose_eye`` (N, 6, zeros: Human3R does not predict eyes), ``trans`` (N, 3),
``betas`` (10,) the clip's mean shape, ``num_betas`` 10, ``gender`` "neutral", ``surface_model_type`` "smplx",
``mocap_frame_rate`` (frames per second of the clip). One key beyond AMASS: ``expression`` (N, 10), which AMASS
has no use for and smplx needs to give back the stored joints exactly (the body model's joints depend on it).

``trans`` follows smplx: with ``transl=trans`` and ``global_orient=root_orient`` the body's pelvis lands where the
stored pelvis (``joints_world_m[0]``), mapped into the Z-up frame, is. The rest pelvis of the clip's shape is the mean
of ``joints_world_m[0] - transl_world_m`` over the frames (it is affine in the betas), so no body model is needed.
Feeding every key to smplx (neutral, flat hand mean, no PCA) gives the stored joints, mapped to Z-up, within
float32 precision when the shape is constant over the clip; when it varies, the pelvis still lands exactly (SMPL-X's
pelvis does not depend on the expression) and the other joints move by the shape difference.
"""

from __future__ import annotations

import os

import numpy as np

from tasks.labels.ground import apply

AMASS_KEYS = ("poses", "trans", "betas", "gender", "surface_model_type", "mocap_frame_rate", "root_orient",
              "pose_body", "pose_hand", "pose_jaw", "pose_eye", "num_betas")
EXTRA_KEYS = ("expression",)
NUM_BETAS = 10


def _rotate_rotvecs(rotation: np.ndarray, rotvecs: np.ndarray) -> np.ndarray:
    """(3, 3) rotation applied on the left of (N, 3) axis-angle rotations: rotvec(R @ rotmat(r))."""
    import roma
    import torch

    r = torch.as_tensor(rotvecs, dtype=torch.float64)
    rot = torch.as_tensor(rotation, dtype=torch.float64)
    return roma.rotmat_to_rotvec(rot @ roma.rotvec_to_rotmat(r)).numpy()


def amass_sequence(*, global_orient_world: np.ndarray, body_pose: np.ndarray, left_hand_pose: np.ndarray,
                   right_hand_pose: np.ndarray, jaw_pose: np.ndarray, betas: np.ndarray, expression: np.ndarray,
                   pelvis_world: np.ndarray, transl_world: np.ndarray, frame_rate: float,
                   to_zup: np.ndarray) -> dict[str, np.ndarray]:
    """The arrays of one clip's npz (see the module docstring).

    global_orient_world: (N, 3); body_pose: (N, 63); hands: (N, 45) each; jaw_pose: (N, 3); betas, expression:
    (N, 10); pelvis_world: (N, 3) the stored joints_world_m[:, 0]; transl_world: (N, 3); to_zup: (4, 4) dataset
    world -> Z-up.

    1. root orientation: the Z-up rotation applied to the world orientation;
    2. trans: the pelvis mapped to Z-up, minus the rest pelvis of the clip's mean shape;
    3. the AMASS pose layout.
    """
    n = len(global_orient_world)
    f64 = np.float64
    root_orient = _rotate_rotvecs(to_zup[:3, :3], global_orient_world)  # 1.
    rest_pelvis = (np.asarray(pelvis_world, f64) - np.asarray(transl_world, f64)).mean(0)
    trans = apply(to_zup, pelvis_world) - rest_pelvis  # 2.
    pose_body = np.asarray(body_pose, f64).reshape(n, 63)
    pose_jaw = np.asarray(jaw_pose, f64).reshape(n, 3)
    pose_eye = np.zeros((n, 6))
    pose_hand = np.concatenate([np.asarray(left_hand_pose, f64).reshape(n, 45),
                                np.asarray(right_hand_pose, f64).reshape(n, 45)], 1)
    poses = np.concatenate([root_orient, pose_body, pose_jaw, pose_eye, pose_hand], 1)  # 3.
    return {
        "poses": poses, "trans": trans, "betas": np.asarray(betas, f64).mean(0), "gender": np.array("neutral"),
        "surface_model_type": np.array("smplx"), "mocap_frame_rate": np.array(float(frame_rate)),
        "root_orient": root_orient, "pose_body": pose_body, "pose_hand": pose_hand, "pose_jaw": pose_jaw,
        "pose_eye": pose_eye, "num_betas": np.array(NUM_BETAS), "expression": np.asarray(expression, f64),
    }


def write_amass(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Write one clip's npz (uncompressed, like AMASS), creating the folder."""
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    np.savez(path, **arrays)
