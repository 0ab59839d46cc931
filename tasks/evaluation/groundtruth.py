"""A human benchmark sequence's ground-truth people, as the reference's ``update_smpl_gt_eval`` builds them.

Every person of every frame is posed with its body model (`tasks.evaluation.bodies`): 3DPW with the gender rule of
the protocol (`tasks.evaluation.metrics.gt_bodies`: the reference poses female actors with the male body except
rows 0/1), EMDB and RICH with the sequence's gender (the largest gender id, as the reference takes it). Joints are
regressed from the SMPL vertices with the benchmark's regressor; world-frame parameters (EMDB, RICH) are moved to
each frame's camera with ``T_w2c``, camera-frame ones (3DPW) to the world with ``T_c2w``; 2-D joints are projected
with the ground-truth intrinsics at the working size (`tasks.evaluation.benchmarks.views.frame_targets`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tasks.evaluation.benchmarks.protocol import BenchmarkProtocol, ProtocolName
from tasks.evaluation.benchmarks.sequence import Sequence
from tasks.evaluation.benchmarks.views import frame_targets
from tasks.evaluation.bodies import EvalBodies
from tasks.evaluation.metrics.gt_bodies import gt_body_genders
from tasks.evaluation.metrics.humans import project_px


def _apply(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(R, 4, 4) rigid maps applied to (R, K, 3) points, float64."""
    T = np.asarray(T, np.float64)
    return np.einsum("rij,rkj->rki", T[:, :3, :3], np.asarray(points, np.float64)) + T[:, None, :3, 3]


@dataclasses.dataclass(frozen=True)
class GroundTruthPeople:
    """The ground truth of a sequence's F frames: R people (the filled slots, frame by frame), J joints."""

    frame_of: np.ndarray  # (R,) int: the frame of each person
    j3d_c: np.ndarray  # (R, J, 3) float64 joints, camera frame, metres
    v3d_c: np.ndarray  # (R, 6890, 3) float32 SMPL vertices, camera frame, metres
    j2d: np.ndarray  # (R, J, 2) float64 joints projected with the working-size intrinsics, pixels
    j3d_w: np.ndarray | None  # (R, J, 3) world frame (world-metric benchmarks), else None
    v3d_w: np.ndarray | None  # (R, 6890, 3) world frame, else None
    starts: np.ndarray  # (F + 1,) rows of frame f are starts[f]:starts[f + 1]

    def frame(self, f: int) -> slice:
        return slice(int(self.starts[f]), int(self.starts[f + 1]))


def gt_genders(seq: Sequence, protocol: ProtocolName) -> np.ndarray:
    """(R,) gender id of the body that poses each ground-truth person (rows in frame-major order)."""
    b = seq.bodies
    if seq.benchmark == "3dpw":
        return gt_body_genders(b.gender, b.mask, protocol)
    own = b.gender[b.mask].astype(np.int64)
    if protocol == "corrected" or own.size == 0:
        return own
    return np.full(own.shape, int(own.max()), np.int64)  # the reference's smpl_gender_id.max() of the batch


def ground_truth_people(seq: Sequence, bp: BenchmarkProtocol, protocol: ProtocolName, bodies: EvalBodies,
                        working_size: int) -> GroundTruthPeople:
    """Pose, regress and project every ground-truth person of `seq` (see the module docstring)."""
    b, cam = seq.bodies, seq.camera
    mask = np.asarray(b.mask, bool)
    frame_of = np.nonzero(mask)[0]
    verts = bodies.pose_gt(b.model, gt_genders(seq, protocol), b.global_orient[mask], b.body_pose[mask],
                           b.betas[mask], b.transl[mask])
    regressor = bodies.regressor(bp.joint_set).astype(np.float64)
    joints = np.einsum("jv,rvk->rjk", regressor, verts.astype(np.float64))
    if b.frame == "world":
        T_w2c = cam.T_w2c[frame_of]
        j3d_w, v3d_w = joints, verts
        j3d_c, v3d_c = _apply(T_w2c, joints), _apply(T_w2c, verts).astype(np.float32)
    else:
        j3d_c, v3d_c = joints, verts
        T_c2w = cam.T_c2w[frame_of]
        j3d_w, v3d_w = _apply(T_c2w, joints), _apply(T_c2w, verts).astype(np.float32)
    if not bp.world_metrics:
        j3d_w = v3d_w = None
    K = frame_targets(seq, size=working_size, protocol=protocol).intrinsics.astype(np.float64)
    j2d = np.stack([project_px(j[None], K[f])[0] for j, f in zip(j3d_c, frame_of, strict=True)]) if len(
        frame_of) else np.zeros((0, joints.shape[1], 2))
    starts = np.concatenate([[0], np.cumsum(mask.sum(axis=1))])
    return GroundTruthPeople(frame_of, j3d_c, v3d_c, j2d, j3d_w, v3d_w, starts)
