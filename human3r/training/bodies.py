"""SMPL-X for training: the ground-truth bodies (11 betas, from the dataset's axis-angle parameters) and the posed
predictions the losses compare with them (10 betas, zero global orientation, rotated about the pelvis by hand and
placed by their head joint), both as the reference builds them.

The reference uses smplx's stateful `SMPLX` (`smplx.create(..., use_pca=False, flat_hand_mean=True)`) fed
axis-angle rotations, so its Rodrigues formula runs inside smplx; `human3r.body.BodyModel` (inference) feeds
rotation matrices instead. Training keeps the reference's path so the targets and losses are its numbers.
"""

from __future__ import annotations

import contextlib
import io
import os

import roma
import torch

from human3r.body import HEAD_JOINT, PELVIS_JOINT
from human3r.errors import BodyModelError
from human3r.smplx_file import GET_SMPLX, resolve_body_model_path, validate_body_model_file

GT_BETAS = 11  # BEDLAM's SMPL-X shape coefficients (the reference's smplx_neutral_11)
PRED_BETAS = 10  # the network's


def project(points: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """(n, P, 3) camera-frame points, (n, 3, 3) intrinsics -> (n, P, 2) pixels: K (x / z), as the reference
    (`einsum('bij,bkj->bki')`, which rounds like it)."""
    y = points / points[:, :, -1].unsqueeze(-1)
    return torch.einsum("bij,bkj->bki", K, y)[:, :, :2]


class TrainingBodies:
    """The two neutral SMPL-X layers of a training run, loaded once from `path` (SMPLX_NEUTRAL.npz or its folder;
    None = $HUMAN3R_BODY_MODEL). Stateless calls: every parameter is passed in."""

    def __init__(self, path: str | os.PathLike | None = None, device: str | torch.device = "cpu"):
        self.path = resolve_body_model_path(path)
        validate_body_model_file(self.path)
        import smplx

        captured = io.StringIO()
        try:
            with contextlib.redirect_stdout(captured):  # smplx prints notes about the file's components
                self.gt_layer, self.pred_layer = (
                    smplx.create(str(self.path), "smplx", gender="neutral", use_pca=False, flat_hand_mean=True,
                                 num_betas=n, ext="npz").to(device).requires_grad_(False)
                    for n in (GT_BETAS, PRED_BETAS))
        except Exception as err:  # smplx raises assorted errors on a malformed file
            raise BodyModelError(f"smplx could not build a body model from {self.path}: {err}. {GET_SMPLX}") from err

    def to(self, device: str | torch.device) -> TrainingBodies:
        self.gt_layer.to(device)
        self.pred_layer.to(device)
        return self

    def ground_truth(self, root: torch.Tensor, body: torch.Tensor, jaw: torch.Tensor, leye: torch.Tensor,
                     reye: torch.Tensor, lhand: torch.Tensor, rhand: torch.Tensor, betas: torch.Tensor,
                     transl: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """n people's axis-angle parameters (root/jaw/eyes (n, 1, 3), body (n, 21, 3), hands (n, 15, 3)), betas
        (n, 11), SMPL-X transl (n, 3) -> camera-frame vertices (n, 10475, 3) and joints (n, 127, 3); zero
        expression."""
        n = root.shape[0]
        if n == 0:  # nobody in the batch (smplx cannot pose 0 people): one zero body, none kept
            one = [t.new_zeros(1, *t.shape[1:]) for t in (root, body, jaw, leye, reye, lhand, rhand, betas, transl)]
            verts, joints = self.ground_truth(*one)
            return verts[:0], joints[:0]
        out = self.gt_layer(global_orient=root.reshape(-1, 3), body_pose=body.reshape(-1, 63),
                            jaw_pose=jaw.reshape(-1, 3), leye_pose=leye.reshape(-1, 3), reye_pose=reye.reshape(-1, 3),
                            left_hand_pose=lhand.reshape(-1, 45), right_hand_pose=rhand.reshape(-1, 45),
                            betas=betas.reshape(-1, GT_BETAS), transl=transl.reshape(-1, 3),
                            expression=self.gt_layer.expression.detach().expand(n, -1))
        return out.vertices.reshape(n, -1, 3), out.joints.reshape(n, -1, 3)

    def predicted(self, rotmat: torch.Tensor, betas: torch.Tensor, expression: torch.Tensor,
                  head: torch.Tensor, K: torch.Tensor) -> dict[str, torch.Tensor]:
        """The loss's posed predictions for n people: rotmat (n, 53, 3, 3) [global, body 21, hands 15 + 15, jaw],
        betas and expression (n, 10), head (n, 3) predicted head joint (camera frame), K (n, 3, 3).

        1. rotations -> axis-angle (roma), SMPL-X posed with zero global orientation and eye poses;
        2. the global rotation `R = Rodrigues(rotvec_0)` applied about the pelvis: x -> R (x - pelvis);
        3. re-centred on the head joint and moved to `head`; projected with K.
        Returns smpl_v3d (n, 10475, 3), smpl_j3d (n, 127, 3), smpl_j2d / smpl_v2d (pixels), smpl_transl (n, 3) and
        smpl_transl_pelvis (n, 1, 3), the reference's names.
        """
        n = rotmat.shape[0]
        if n == 0:  # nobody (smplx cannot pose 0 people): one identity body, none kept
            eye = torch.eye(3, dtype=rotmat.dtype, device=rotmat.device).expand(1, 53, 3, 3)
            one = self.predicted(eye, betas.new_zeros(1, *betas.shape[1:]), expression.new_zeros(
                1, *expression.shape[1:]), head.new_zeros(1, 3), K.new_zeros(1, 3, 3) + torch.eye(3, device=K.device))
            return {k: v[:0] for k, v in one.items()}
        rotvec = roma.rotmat_to_rotvec(rotmat)
        zeros = rotvec.new_zeros(n, 3)
        out = self.pred_layer(betas=betas, global_orient=zeros, body_pose=rotvec[:, 1:22].flatten(1),
                              left_hand_pose=rotvec[:, 22:37].flatten(1), right_hand_pose=rotvec[:, 37:52].flatten(1),
                              jaw_pose=rotvec[:, 52:53].flatten(1), expression=expression.flatten(1),
                              leye_pose=zeros, reye_pose=zeros, transl=zeros)
        verts, joints = out.vertices, out.joints
        R = roma.rotvec_to_rotmat(rotvec[:, 0])[:, None]  # 2.
        pelvis = joints[:, [PELVIS_JOINT]]
        joints = (R @ (joints - pelvis).unsqueeze(-1)).squeeze(-1)
        verts = (R @ (verts - pelvis).unsqueeze(-1)).squeeze(-1)
        centre = joints[:, [HEAD_JOINT]]  # 3.
        joints_cam = joints - centre + head.unsqueeze(1)
        verts_cam = verts - centre + head.unsqueeze(1)
        return {"smpl_v3d": verts_cam, "smpl_j3d": joints_cam, "smpl_j2d": project(joints_cam, K),
                "smpl_v2d": project(verts_cam, K), "smpl_transl": head, "smpl_transl_pelvis": joints_cam[:, [0]]}
