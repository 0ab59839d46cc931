"""SMPL-X as a rigged character: one rest shape per track, the 55-joint skeleton, and per-frame joint rotations and
root translation in the export frame (y-up). What the GLB and BVH exports (tasks.scenes.export, tasks.scenes.bvh) are
built from.

Export frame
------------
glTF and BVH are y-up and right-handed, in metres. The dataset's world frame is the first camera's (x right, y down,
z forward). Exports map it with a 180-degree rotation about x, :data:`TO_EXPORT` = diag(1, -1, -1):
``(x, y, z)_export = (x, -y, -z)_dataset``. So +y (up) is the first camera's up, -z (glTF's forward, the direction a
default glTF camera looks) is the direction the first camera looked, and the first camera sits at the origin. The
map is applied once, to each character's root joint (rotation ``C R_root``, translation ``C (J_root + transl)``), to
the camera path and to the fused scene; bone offsets and joint-local rotations are SMPL-X's own (its canonical frame
is y-up, so a standing body stands upright).

The rig
-------
* skeleton: SMPL-X's 55 joints (pelvis, 21 body, jaw, eyes, 2 x 15 hand joints) with the kinematic tree of the
  body model file (`kintree_table`: the tree its skin weights and posing use, which for SMPL-X is
  `storage.geometry.SMPLX_PARENTS`, the copy for readers without a body model), named as smplx names them;
* rest shape: one per track, the per-coefficient **median** of the track's betas and expression over its rows
  (glTF skins have one bind shape); rest mesh and rest joints are the body model's for that shape with zero pose;
* skin: the body model's linear-blend weights, the 4 largest per vertex, renormalised (glTF's JOINTS_0/WEIGHTS_0);
* motion: per row, the stored axis-angle rotations (``global_orient_world`` for the root, ``body_pose``, ``jaw_pose``,
  ``left_hand_pose``, ``right_hand_pose``; eyes at rest) and ``transl_world_m`` (or the translation that puts the
  head joint on ``head_world_m`` when the run had no body model).

Forward kinematics of this rig give SMPL-X's own skeleton joints exactly (up to float32). Pose-dependent corrective
shapes and per-frame shape changes cannot be expressed by a glTF skin; the surface differs from the full SMPL-X mesh
by them (a few mm to cm); the per-frame meshes (``--meshes``) are the full model.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tasks.scenes.bodies import NUM_SKELETON, People, pose_world, rotvec_to_rotmat

TO_EXPORT = np.diag([1.0, -1.0, -1.0])  # dataset world frame (y down, z forward) -> export frame (y up, z back)
MAX_INFLUENCES = 4  # skin weights per vertex (glTF JOINTS_0 / WEIGHTS_0)


@dataclasses.dataclass(frozen=True)
class Rig:
    """The character of one track at rest (SMPL-X canonical frame, y up, metres)."""

    names: list[str]  # (55,) smplx joint names
    parents: np.ndarray  # (55,) int, -1 for the root
    rest_joints: np.ndarray  # (55, 3) float32
    rest_vertices: np.ndarray  # (V, 3) float32
    faces: np.ndarray  # (F, 3) uint32
    joints4: np.ndarray  # (V, 4) uint8: the joints of the 4 largest skin weights
    weights4: np.ndarray  # (V, 4) float32: those weights, summing to 1

    @property
    def offsets(self) -> np.ndarray:
        """(55, 3) each joint's rest position relative to its parent (the root's: its rest position)."""
        parent = np.where(self.parents >= 0, self.parents, 0)
        return np.where(self.parents[:, None] >= 0, self.rest_joints - self.rest_joints[parent], self.rest_joints)


def skin_arrays(weights: np.ndarray, k: int = MAX_INFLUENCES) -> tuple[np.ndarray, np.ndarray]:
    """(V, J) blend weights -> the k largest per vertex: joints (V, k) uint8, weights (V, k) float32 summing to 1."""
    top = np.argsort(-weights, axis=1)[:, :k]
    w = np.take_along_axis(weights, top, 1)
    w = w / np.maximum(w.sum(1, keepdims=True), 1e-12)
    return top.astype(np.uint8), w.astype(np.float32)


def build_rig(body_model, betas: np.ndarray, expression: np.ndarray) -> Rig:
    """The rest character for one shape (betas (10,), expression (10,)) of a `human3r.body.BodyModel`."""
    import torch
    from smplx.joint_names import JOINT_NAMES

    eye = torch.eye(3).expand(1, 53, 3, 3)
    verts, joints = body_model.pose(eye, torch.as_tensor(betas[None], dtype=torch.float32),
                                    torch.as_tensor(expression[None], dtype=torch.float32))
    with np.load(body_model.path) as data:
        parents = data["kintree_table"][0].astype(np.int64)
        weights = np.asarray(data["weights"], np.float64)
    parents = np.where(parents >= NUM_SKELETON, -1, parents)  # the root's parent is stored as 2^32 - 1
    joints4, weights4 = skin_arrays(weights)
    return Rig(names=list(JOINT_NAMES[:NUM_SKELETON]), parents=parents,
               rest_joints=joints[0, :NUM_SKELETON].float().numpy(), rest_vertices=verts[0].float().numpy(),
               faces=body_model.faces.numpy().astype(np.uint32), joints4=joints4, weights4=weights4)


def track_shape(people: People, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rest shape of a track: per-coefficient median of its betas and expression."""
    betas, expression = np.median(people.betas[rows], 0), np.median(people.expression[rows], 0)
    return betas.astype(np.float32), expression.astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Motion:
    """One track's animation in the export frame. T = the track's rows (frames where it was seen)."""

    frame_idx: np.ndarray  # (T,)
    times_s: np.ndarray  # (T,) seconds from the video's first processed frame
    root_translation: np.ndarray  # (T, 3) root joint position, export frame, metres
    rotations: np.ndarray  # (T, 55, 3, 3) joint rotations relative to the parent; the root's in the export frame


def track_motion(body_model, people: People, rows: np.ndarray, rig: Rig, t0: float) -> Motion:
    """The motion of `rows` (one track): local rotations, and the root position that reproduces SMPL-X's joints."""
    rot = rotvec_to_rotmat(people.rotvec[rows])  # (T, 55, 3, 3)
    if people.transl_world is not None:  # SMPL-X rotates about the rest pelvis: posed pelvis = J0 + transl
        root = people.transl_world[rows].astype(np.float64) + rig.rest_joints[0]
    else:  # no stored transl: the pelvis of the body whose head lands on head_world_m (as at reconstruction)
        root = pose_world(body_model, people, rows, with_vertices=False)[1][:, 0].astype(np.float64)
    rot[:, 0] = TO_EXPORT @ rot[:, 0]
    return Motion(frame_idx=people.frame_idx[rows], times_s=people.timestamp_s[rows] - t0,
                  root_translation=root @ TO_EXPORT.T, rotations=rot)
