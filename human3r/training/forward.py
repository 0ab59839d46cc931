"""The training forward: V views of B samples through `Human3R.forward`, one view at a time, teacher-forced.

This is the reference's `_forward_impl`: each sample's recurrent state starts from the learned state and is
overwritten after every view (no TTT3R gate, no reset), and gradients flow through it across the views. Each view
is one call of the network's only forward path with `prompts` (the ground-truth head cells: every one of the N
slots becomes a prompt token, empty ones from the padding tokens) and, when any view of the batch has a ray map,
the batch's ray maps and masks (views without one get `masked_ray_map_token`). All heads run.

`TrainingForward` is the same as a module call (`forward(views, targets)`), for what calls modules: the frozen
base model's reparametrised forward (`human3r.training.distill`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import nn

from human3r.errors import InputShapeError
from human3r.model import Human3R
from human3r.outputs import OPTIONAL_OUTPUTS, FrameOutput
from human3r.preprocess import Frame
from human3r.training.teacher import Targets
from human3r.training.views import TrainView


@dataclass
class ViewPrediction:
    """The network's outputs for one view of B samples (N slots per sample, empty slots included)."""

    pts3d_self: torch.Tensor  # (B, H, W, 3) points in the view's camera
    conf_self: torch.Tensor  # (B, H, W) >= 1
    pts3d_world: torch.Tensor  # (B, H, W, 3) points in view 0's camera
    conf_world: torch.Tensor  # (B, H, W) >= 1
    rgb: torch.Tensor  # (B, H, W, 3) in [-1, 1]
    camera_pose: torch.Tensor  # (B, 7) [t, q (w, x, y, z)] camera-to-view-0
    human_mask: torch.Tensor  # (B, R, R, 1) person probability on the human-branch square
    scores: torch.Tensor  # (B, G, G, 1) detection scores (no NMS)
    loc: torch.Tensor  # (B, N, 2) head keypoint in R-px coordinates (0 in empty slots)
    host: torch.Tensor  # (B, N, 2) int64 (row, col) of the CUT3R patch hosting each slot's prompt ((0, 0) if empty)
    rotmat: torch.Tensor  # (B, N, 53, 3, 3)
    betas: torch.Tensor  # (B, N, 10)
    expression: torch.Tensor  # (B, N, 10)
    transl: torch.Tensor  # (B, N, 3) head joint, camera frame

    def detach(self) -> ViewPrediction:
        """The values without their graph."""
        return ViewPrediction(**{f.name: getattr(self, f.name).detach() for f in fields(self)})

    @classmethod
    def stack(cls, outs: list[FrameOutput]) -> ViewPrediction:
        """One teacher-forced `FrameOutput` per sample -> batched tensors."""
        def cat(get) -> torch.Tensor:
            return torch.cat([get(o) for o in outs])

        return cls(
            pts3d_self=cat(lambda o: o.pts3d_self), conf_self=cat(lambda o: o.conf_self),
            pts3d_world=cat(lambda o: o.pts3d_world), conf_world=cat(lambda o: o.conf_world),
            rgb=cat(lambda o: o.rgb), camera_pose=cat(lambda o: o.camera_pose),
            human_mask=cat(lambda o: o.human_mask), scores=cat(lambda o: o.det_scores),
            loc=cat(lambda o: o.humans.loc), host=cat(lambda o: o.humans.prompt_pos),
            rotmat=cat(lambda o: o.humans.rotmat), betas=cat(lambda o: o.humans.betas),
            expression=cat(lambda o: o.humans.expression), transl=cat(lambda o: o.humans.transl),
        )


def check_supported(views: list[TrainView]) -> None:
    """The reference's training path as BEDLAM exercises it: every view has an image, none resets the state.
    (Views without an image or with resets are valid reference inputs that BEDLAM never produces.)"""
    problems = [f"view {i}: {what}" for i, v in enumerate(views)
                for what, bad in (("a sample without an image (img_mask False)", not bool(v.img_mask.all())),
                                  ("a reset", bool(v.reset.any()))) if bad]
    if problems:
        raise InputShapeError("unsupported training views (" + "; ".join(problems) + "): the training forward "
                              "implements image views without resets, which is what the BEDLAM loader makes")


def training_forward(model: Human3R, views: list[TrainView], targets: list[Targets]) -> list[ViewPrediction]:
    """Every view's predictions, in view order (see the module docstring)."""
    check_supported(views)
    b = views[0].batch_size
    with_rays = any(bool(v.ray_mask.any()) for v in views)
    start = model.initial_state()
    states = [start] * b  # one learned start state, shared by the B samples (its gradient sums over them)
    predictions = []
    for view, target in zip(views, targets, strict=True):
        frame = Frame(view.img, target.img_mhmr, view.ray_map if with_rays else None,
                      view.ray_mask if with_rays else None)
        outs, states = model(frame, states, outputs=OPTIONAL_OUTPUTS, prompts=target.prompts)
        predictions.append(ViewPrediction.stack(outs))
    return predictions


class TrainingForward(nn.Module):
    """`training_forward` as a module: `TrainingForward(model)(views, targets)` -> the views' predictions."""

    def __init__(self, model: Human3R):
        super().__init__()
        self.model = model

    def forward(self, views: list[TrainView], targets: list[Targets]) -> list[ViewPrediction]:
        return training_forward(self.model, views, targets)
