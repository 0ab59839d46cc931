"""Typed outputs of the network: the heads' parts (`SceneOutput`, `Detections`, `SmplParams`) and what one frame
yields (`FrameOutput` with its `Humans`). A `FrameOutput` is one video's frame (batch 1); a batched forward over
several videos returns one per video.

"No humans" is represented by zero-length tensors of the right trailing shape, never by missing fields. Outputs
that were not asked for (`OPTIONAL_OUTPUTS`, see `Human3R.forward`) are None.
Coordinates: `pts3d_self` is in the current camera frame; `pts3d_world` and `c2w` are relative to the first frame
of the current segment (see `human3r.stream` for poses chained across resets). Units are the model's metric scale.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, fields

import torch

from human3r.errors import ConfigError

# Outputs a caller may leave out (their heads then do not run): the world-view pointmap (final_transform +
# dpt_cross), the colour head, the person mask. Everything else is always computed (pts3d_self gives the
# intrinsics, the camera pose and humans are the product).
OPTIONAL_OUTPUTS = frozenset({"pts3d_world", "rgb", "human_mask"})


def check_outputs(outputs: Collection[str]) -> frozenset[str]:
    """The optional outputs asked for, validated."""
    asked = frozenset(outputs)
    unknown = sorted(asked - OPTIONAL_OUTPUTS)
    if unknown:
        raise ConfigError(f"unknown optional outputs {unknown}; choose from {sorted(OPTIONAL_OUTPUTS)} (the other "
                          "outputs are always computed)")
    return asked


@dataclass
class SceneOutput:
    """The scene branch of the heads (`Human3RHead.forward`) at the working resolution H x W."""

    pts3d_self: torch.Tensor  # (B, H, W, 3) float32 points in the current camera frame
    conf_self: torch.Tensor  # (B, H, W) float32 confidence of pts3d_self, >= 1
    pts3d_world: torch.Tensor | None  # (B, H, W, 3) float32 points in the segment's world frame; None if not asked
    conf_world: torch.Tensor | None  # (B, H, W) float32 confidence of pts3d_world, >= 1; None if not asked
    rgb: torch.Tensor | None  # (B, H, W, 3) float32 colour in [-1, 1]; None if not asked or no rgb head
    camera_pose: torch.Tensor  # (B, 7) float32 [t (3), q (w, x, y, z), w >= 0] camera-to-world


@dataclass
class Detections:
    """People found by the human branch (`Human3RHead.detect`) in all B streams: n >= 0 in total, ordered by
    (stream, grid row, grid column)."""

    logits: torch.Tensor  # (B, G*G, 1) float32 raw classifier output
    scores: torch.Tensor  # (B, G, G, 1) float32 squashed scores after NMS
    batch: torch.Tensor  # (n,) int64 stream of each detection
    rows: torch.Tensor  # (n,) int64 grid row of each detection
    cols: torch.Tensor  # (n,) int64 grid column
    loc: torch.Tensor  # (n, 2) float32 (x, y) head keypoint in padded human-branch pixels
    tokens: torch.Tensor  # (n, C) float32 DINOv2 token at each detection


@dataclass
class SmplParams:
    """SMPL-X parameters regressed per person (`Human3RHead.smpl`)."""

    rotmat: torch.Tensor  # (1, n, 53, 3, 3) float32 global, body 21, left hand 15, right hand 15, jaw
    betas: torch.Tensor  # (1, n, 10) float32
    expression: torch.Tensor  # (1, n, 10) float32
    transl: torch.Tensor  # (1, n, 3) float32 head joint (SMPL-X joint 15) in camera coordinates


@dataclass
class Humans:
    """People detected in one frame, n >= 0, in detection (row-major grid) order. Teacher-forced (training): every
    slot in slot order, empty ones included (their `loc` 0, `prompt_pos` (0, 0)), track ids the slot numbers."""

    loc: torch.Tensor  # (1, n, 2) float32 head keypoint (x, y) in padded human-branch pixels (e.g. 896 px)
    score: torch.Tensor  # (1, n) float32 detection score after NMS, >= the detection threshold
    rotmat: torch.Tensor  # (1, n, 53, 3, 3) float32 rotations: global, body 21, left hand 15, right hand 15, jaw
    betas: torch.Tensor  # (1, n, 10) float32 SMPL-X shape
    expression: torch.Tensor  # (1, n, 10) float32 SMPL-X expression
    transl: torch.Tensor  # (1, n, 3) float32 head joint (SMPL-X joint 15) in camera coordinates
    track_id: torch.Tensor  # (1, n) int64 track ids
    token: torch.Tensor  # (1, n, D) float32 final decoder token of each person (used for tracking)
    prompt: torch.Tensor  # (1, n, D) float32 human prompt token fed to the decoder
    prompt_pos: torch.Tensor  # (1, n, 2) int64 (row, col) of the CUT3R patch hosting each head

    @property
    def count(self) -> int:
        return int(self.loc.shape[1])

    @classmethod
    def empty(cls, dim: int, num_rot: int = 53, num_betas: int = 10, num_expr: int = 10,
              device: torch.device | str | None = None) -> Humans:
        def z(*s: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.zeros(1, 0, *s, dtype=dtype, device=device)

        return cls(z(2), z(), z(num_rot, 3, 3), z(num_betas), z(num_expr), z(3), z(dtype=torch.long), z(dim), z(dim),
                   z(2, dtype=torch.long))


@dataclass
class FrameOutput(SceneOutput):
    """Everything the network predicts for one frame at the working resolution H x W: the scene heads' output
    (fields of :class:`SceneOutput` first), the camera matrix, and the human branch."""

    c2w: torch.Tensor  # (1, 4, 4) camera-to-world matrix built from camera_pose
    human_mask: torch.Tensor | None  # (1, R, R, 1) person probability in padded human-branch pixels; None if not
    #                                   asked or no mask head
    det_scores: torch.Tensor  # (1, G, G, 1) detection scores after NMS (G = R / 14); no NMS when teacher-forced
    humans: Humans  # detected people (possibly none)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> FrameOutput:
        """Copy with every tensor moved to `device` (`non_blocking`: asynchronous copies; to the CPU, synchronise
        the stream before reading them)."""
        kw = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, torch.Tensor):
                v = v.to(device, non_blocking=non_blocking)
            elif isinstance(v, Humans):
                v = Humans(**{h.name: getattr(v, h.name).to(device, non_blocking=non_blocking)
                              for h in fields(Humans)})
            kw[f.name] = v
        return FrameOutput(**kw)
