"""The training views: what one view of a collated batch holds (the reference's view dicts, typed).

A training sample is V views of one video; the data loader collates B samples, so a batch is a list of V view dicts
whose tensors have a leading B axis, with the key names of the reference BEDLAM loader (the parity pack's
`batch.v{i}.*`). `views_from_batch` checks and types them once; everything downstream reads `TrainView` fields.

Coordinates: `camera_pose` is camera-to-world (OpenCV axes), `pts3d` world points, `camera_intrinsics` pixels of
the working image (pixel centres at integers). SMPL-X parameters are per slot (N slots per view, nearest person
first, zeros in empty slots), in the camera frame.

Supervision flags (optional, a mixture's views carry them): `has_depth` False marks a sample whose depth, points
and camera are not ground truth (a pseudo-label build: the point, confidence and camera-pose terms drop it, unless
the step distils them from the base model first), `has_msk` False one without a person mask (the mask term drops
it). Absent flags mean True (BEDLAM alone, the parity pack).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import torch

from human3r.errors import InputShapeError

SMPLX_KEYS = ("smplx_root_pose", "smplx_body_pose", "smplx_jaw_pose", "smplx_leye_pose", "smplx_reye_pose",
              "smplx_left_hand_pose", "smplx_right_hand_pose", "smplx_shape", "smplx_transl")


@dataclass
class TrainView:
    """One view of B samples (leading axis B everywhere; N person slots)."""

    img: torch.Tensor  # (B, 3, H, W) float32 in [-1, 1]
    msk: torch.Tensor  # (B, H, W) float32 person mask, 1 on people
    camera_pose: torch.Tensor  # (B, 4, 4) float32 camera-to-world
    camera_intrinsics: torch.Tensor  # (B, 3, 3) float32 pixels
    pts3d: torch.Tensor  # (B, H, W, 3) float32 world points, metres
    valid_mask: torch.Tensor  # (B, H, W) bool: depth > 0 and finite
    sky_mask: torch.Tensor  # (B, H, W) bool
    ray_map: torch.Tensor  # (B, H, W, 6) float32 ray origins and unit directions in view 0's camera
    true_shape: torch.Tensor  # (B, 2) int (H, W)
    img_mask: torch.Tensor  # (B,) bool: the view has an image
    ray_mask: torch.Tensor  # (B,) bool: the view also gives its ground-truth ray map
    is_metric: torch.Tensor  # (B,) bool
    camera_only: torch.Tensor  # (B,) bool
    depth_only: torch.Tensor  # (B,) bool
    single_view: torch.Tensor  # (B,) bool
    reset: torch.Tensor  # (B,) bool
    smpl_mask: torch.Tensor  # (B, N) bool: the slot holds a person
    smplx_root_pose: torch.Tensor  # (B, N, 1, 3) axis-angle, camera frame
    smplx_body_pose: torch.Tensor  # (B, N, 21, 3)
    smplx_jaw_pose: torch.Tensor  # (B, N, 1, 3)
    smplx_leye_pose: torch.Tensor  # (B, N, 1, 3)
    smplx_reye_pose: torch.Tensor  # (B, N, 1, 3)
    smplx_left_hand_pose: torch.Tensor  # (B, N, 15, 3)
    smplx_right_hand_pose: torch.Tensor  # (B, N, 15, 3)
    smplx_shape: torch.Tensor  # (B, N, 11) betas
    smplx_transl: torch.Tensor  # (B, N, 3) SMPL-X `transl` (pelvis = J_pelvis(betas) + transl)
    has_depth: torch.Tensor | None = None  # (B,) bool: depth, points and camera are ground truth (None: all)
    has_msk: torch.Tensor | None = None  # (B,) bool: the person mask is ground truth (None: all)

    @property
    def batch_size(self) -> int:
        return int(self.img.shape[0])

    @property
    def hw(self) -> tuple[int, int]:
        return int(self.img.shape[-2]), int(self.img.shape[-1])

    def to(self, device: torch.device | str, non_blocking: bool = False) -> TrainView:
        return TrainView(**{f.name: None if getattr(self, f.name) is None
                            else getattr(self, f.name).to(device, non_blocking=non_blocking) for f in fields(self)})

    def depth_mask(self) -> torch.Tensor:
        """(B,) bool: samples whose depth, points and camera are ground truth."""
        return self.has_depth if self.has_depth is not None else self.img_mask.new_ones(self.batch_size)

    def msk_mask(self) -> torch.Tensor:
        """(B,) bool: samples whose person mask is ground truth."""
        return self.has_msk if self.has_msk is not None else self.img_mask.new_ones(self.batch_size)


_BOOL = {"valid_mask", "sky_mask", "img_mask", "ray_mask", "is_metric", "camera_only", "depth_only", "single_view",
         "reset", "smpl_mask", "has_depth", "has_msk"}
FLAGS = ("has_depth", "has_msk")  # optional keys (absent: True for every sample)


def views_from_batch(batch: Sequence[Mapping[str, object]]) -> list[TrainView]:
    """The collated view dicts of one batch (reference key names; extra keys are ignored) -> typed views.

    One InputShapeError lists every missing key and every view whose batch size, image size or slot count differs
    from view 0's.
    """
    if not batch:
        raise InputShapeError("a training batch needs at least one view, got none")
    names = [f.name for f in fields(TrainView)]
    problems, views = [], []
    for i, view in enumerate(batch):
        missing = [k for k in names if k not in view and k not in FLAGS]
        if missing:
            problems.append(f"view {i} lacks {', '.join(missing)}")
            continue
        values = {}
        for k in names:
            if k not in view:
                continue
            t = torch.as_tensor(view[k])
            values[k] = t.bool() if k in _BOOL else (t if k == "true_shape" else t.float())
        views.append(TrainView(**values))
    if not problems:
        first = views[0]
        b, hw, n = first.batch_size, first.hw, first.smpl_mask.shape[1]
        for i, v in enumerate(views):
            if v.batch_size != b or v.hw != hw or v.smpl_mask.shape[1] != n:
                problems.append(f"view {i}: batch {v.batch_size}, image {v.hw}, {v.smpl_mask.shape[1]} slots "
                                f"(view 0: {b}, {hw}, {n})")
    if problems:
        raise InputShapeError("the training batch is not a list of collated views with the reference's keys: "
                              + "; ".join(problems))
    return views
