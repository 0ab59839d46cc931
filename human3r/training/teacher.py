"""Teacher forcing: the ground truth a training step needs before the forward (the reference's `update_smpl_gt`).

Per view, from the dataset's SMPL-X parameters and intrinsics:

1. ground-truth SMPL-X (neutral, 11 betas, flat hands, zero expression) of every person: vertices, 127 joints, their
   projections, the head joint (15, the person centre the network regresses) and the pelvis;
2. the human-branch geometry: `img_mhmr` (the image fitted into the R x R square, padded with -1), `K_mhmr` (the
   intrinsics scaled to that square) and the person mask on it (`msk_mhmr`);
3. `keep_heads` (the reference's `get_score`): each head, nearest person first, projected with `K_mhmr` onto the
   14-px grid; a head outside the grid or on a cell already taken by a nearer person of the same image is dropped
   (its slot becomes empty and its targets zero: slots keep their positions, so dropped people leave holes).

Views are flattened view-major (index = view * B + sample) as in the reference, then split back per view.
"""

from __future__ import annotations

from dataclasses import dataclass

import roma
import torch

from human3r.body import HEAD_JOINT, PELVIS_JOINT
from human3r.errors import InputShapeError
from human3r.preprocess import TeacherPrompts, pad_image
from human3r.training.bodies import TrainingBodies, project
from human3r.training.views import TrainView

CUT3R_PATCH = 16  # the CUT3R encoder's patch (smpl_uv_16)


@dataclass
class Targets:
    """Teacher-forcing targets of one view (B samples, N slots, G x G human-branch grid, R = G * 14 pixels).
    Slots without a kept person hold zeros."""

    smpl_mask: torch.Tensor  # (B, N) bool: the slot holds a kept person
    smpl_uv: torch.Tensor  # (B, N, 2) int32 (row, col) head cell on the G x G grid
    smpl_uv_16: torch.Tensor  # (B, N, 2) int32 (row, col) head patch on the CUT3R 16-px grid (not used later)
    smpl_scores: torch.Tensor  # (B, G, G) float32 score map: 1 at kept heads
    K_mhmr: torch.Tensor  # (B, 3, 3) float32 intrinsics of the R x R square
    img_mhmr: torch.Tensor  # (B, 3, R, R) float32 human-branch input, padded with -1
    msk_mhmr: torch.Tensor  # (B, R, R) float32 person mask on the square, {0, 1}
    transl: torch.Tensor  # (B, N, 3) head joint, camera frame, metres
    transl_pelvis: torch.Tensor  # (B, N, 3) pelvis joint
    j3d: torch.Tensor  # (B, N, 127, 3) joints, camera frame
    v3d: torch.Tensor  # (B, N, 10475, 3) vertices, camera frame
    j2d: torch.Tensor  # (B, N, 127, 2) projected joints, working-image pixels
    v2d: torch.Tensor  # (B, N, 10475, 2) projected vertices
    rotvec: torch.Tensor  # (B, N, 53, 3) axis-angle [root, body 21, left hand 15, right hand 15, jaw]
    rotmat: torch.Tensor  # (B, N, 53, 3, 3)
    shape: torch.Tensor  # (B, N, 11) betas

    @property
    def prompts(self) -> TeacherPrompts:
        return TeacherPrompts(self.smpl_mask, self.smpl_uv)


def square_intrinsics(K: torch.Tensor, height: int, width: int, res: int) -> torch.Tensor:
    """(n, 3, 3) working-image intrinsics -> the R x R square's (`resize_camera_intrinsics`): principal point
    R (cx / W, cy / H), focal f R / max(W, H). Equals the padded geometry when the principal point is central."""
    out = K.clone()
    out[:, [0, 1], 2] = res * torch.stack([K[:, 0, 2] / width, K[:, 1, 2] / height], dim=1)
    out[:, [0, 1], [0, 1]] /= max(width, height) / res
    return out


def keep_heads(cells: torch.Tensor, image: torch.Tensor, slot: torch.Tensor, grid: int, num_images: int,
               num_slots: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The reference's `get_score`. cells (n, 2) int (col, row) head cells of n people in (image, slot) order;
    image, slot (n,) their image and slot. Visits them in that order (nearest person first within an image): a
    cell outside [0, grid)^2 or already taken in the same image drops the person.

    Returns (kept (n,) bool, mask (num_images, num_slots) bool, scores (num_images, grid, grid) float32)."""
    scores = torch.zeros(num_images, grid, grid)
    mask = torch.zeros(num_images, num_slots, dtype=torch.bool)
    kept = torch.zeros(len(cells), dtype=torch.bool)
    for k, ((col, row), i, j) in enumerate(zip(cells.tolist(), image.tolist(), slot.tolist(), strict=True)):
        if 0 <= row < grid and 0 <= col < grid and scores[i, row, col] != 1:
            scores[i, row, col] = 1
            mask[i, j] = kept[k] = True
    return kept.to(cells.device), mask.to(cells.device), scores.to(cells.device)


def teacher_targets(views: list[TrainView], bodies: TrainingBodies, res: int, patch: int = 14) -> list[Targets]:
    """Targets of every view (see the module docstring); `res` is the human branch's square size R, `patch` its
    patch size. The views must share one working size (the reference's rule too)."""
    shapes = {tuple(s) for v in views for s in v.true_shape.tolist()}
    if len(shapes) != 1:
        raise InputShapeError(f"teacher forcing needs one working size per batch, got {sorted(shapes)}")
    nv, b = len(views), views[0].batch_size
    n_slots = views[0].smpl_mask.shape[1]
    height, width = views[0].hw

    def flat(name: str) -> torch.Tensor:  # (V * B, ...) view-major
        return torch.cat([getattr(v, name) for v in views])

    present = flat("smpl_mask")
    image, slot = torch.where(present)
    K = flat("camera_intrinsics")
    imgs = flat("img")
    K_mhmr = square_intrinsics(K, height, width, res)

    # 1. ground-truth bodies of every person the dataset lists
    pick = {k: flat(k)[present] for k in ("smplx_root_pose", "smplx_body_pose", "smplx_jaw_pose", "smplx_leye_pose",
                                          "smplx_reye_pose", "smplx_left_hand_pose", "smplx_right_hand_pose",
                                          "smplx_shape", "smplx_transl")}
    verts, joints = bodies.ground_truth(*pick.values())
    Ki = K[image]
    per_person = {
        "transl": joints[:, HEAD_JOINT], "transl_pelvis": joints[:, PELVIS_JOINT], "v3d": verts, "j3d": joints,
        "j2d": project(joints, Ki), "v2d": project(verts, Ki),
        "rotvec": torch.cat([pick["smplx_root_pose"], pick["smplx_body_pose"], pick["smplx_left_hand_pose"],
                             pick["smplx_right_hand_pose"], pick["smplx_jaw_pose"]], dim=1),
        "shape": pick["smplx_shape"],
    }
    per_person["rotmat"] = roma.rotvec_to_rotmat(per_person["rotvec"])

    # 2.-3. head cells on both grids, then the reference's drops
    head = per_person["transl"].unsqueeze(1)
    uv16 = (project(head, Ki).squeeze(1) // CUT3R_PATCH).int()
    cells = (project(head, K_mhmr[image]).squeeze(1) // patch).int()
    kept, mask, scores = keep_heads(cells, image, slot, res // patch, nv * b, n_slots)
    per_person["uv"] = cells[:, [1, 0]]
    per_person["uv_16"] = uv16[:, [1, 0]]

    full = {}
    for k, v in per_person.items():
        out = v.new_zeros(nv * b, n_slots, *v.shape[1:])
        out[mask] = v[kept]
        full[k] = out.chunk(nv)
    msk_mhmr = (pad_image(flat("msk")[:, None], res, pad_value=0.0)[:, 0] > 0.1).float()
    img_mhmr = pad_image(imgs, res)
    per_view = zip(mask.chunk(nv), scores.chunk(nv), K_mhmr.chunk(nv), img_mhmr.chunk(nv), msk_mhmr.chunk(nv),
                   *(full[k] for k in ("uv", "uv_16", "transl", "transl_pelvis", "j3d", "v3d", "j2d", "v2d",
                                       "rotvec", "rotmat", "shape")), strict=True)
    return [Targets(smpl_mask=m, smpl_scores=s, K_mhmr=km, img_mhmr=im, msk_mhmr=mm, smpl_uv=uv, smpl_uv_16=uv16_,
                    transl=t, transl_pelvis=tp, j3d=j3, v3d=v3, j2d=j2, v2d=v2, rotvec=rv, rotmat=rm, shape=sh)
            for m, s, km, im, mm, uv, uv16_, t, tp, j3, v3, j2, v2, rv, rm, sh in per_view]
