"""Ground truth distilled from the frozen base model, for samples that lack it (pseudo-label builds: no depth).

Training changes only the trainable set; every other weight stays the base checkpoint's. So the frozen base model is
the training model with the trainable tensors put back to their loaded values: `BaseOutputs.snapshot` keeps a copy
of those (32 M floats at 672S, not a second network), and `BaseOutputs.predictions` runs the model with them
swapped in for one call (`torch.func.functional_call`: the module's own parameters are untouched, no gradient).

`fill_missing_depth` turns the base model's teacher-forced outputs on the samples flagged ``has_depth`` False into
their scene ground truth, so the point, confidence and camera-pose terms keep the tuned model where the base model
was instead of leaving those outputs unsupervised:

* camera of view i: the base model's pose of view i (camera-to-view-0, (t, unit quaternion)) as a 4x4 matrix;
* points: the base model's camera-frame pointmap moved by that pose (so the loss's camera-frame ground truth is the
  base pointmap itself, and its view-0 frame ground truth the base pointmap moved by the base pose);
* valid pixels: positive, finite depth; no sky pixels.

The SMPL-X targets (the build's labels) and the image are the sample's own; the person mask is not distilled (the
mask term keeps dropping those samples, `has_msk`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import roma
import torch
from torch import nn

from human3r.training.forward import TrainingForward, ViewPrediction
from human3r.training.params import ParameterSets
from human3r.training.teacher import Targets
from human3r.training.views import TrainView
from human3r.weights.keys import reference_key


def pose_matrix(pose: torch.Tensor) -> torch.Tensor:
    """(B, 7) [t, q (w, x, y, z)] -> (B, 4, 4) rigid transforms (the quaternion normalised)."""
    q = torch.nn.functional.normalize(pose[:, 3:].float(), dim=-1)
    out = torch.eye(4, dtype=torch.float32, device=pose.device).repeat(pose.shape[0], 1, 1)
    out[:, :3, :3] = roma.unitquat_to_rotmat(roma.quat_wxyz_to_xyzw(q))
    out[:, :3, 3] = pose[:, :3].float()
    return out


def _take(obj, index: torch.Tensor):
    """A TrainView / Targets with every tensor field indexed along the batch axis."""
    return dataclasses.replace(obj, **{f.name: getattr(obj, f.name)[index] for f in dataclasses.fields(obj)
                                       if isinstance(getattr(obj, f.name), torch.Tensor)})


def _put(full: torch.Tensor, index: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """A copy of `full` with the rows `index` replaced (the input is left as it is)."""
    out = full.clone()
    out[index] = values.to(out.dtype)
    return out


@dataclass
class BaseOutputs:
    """The frozen base model: the trainable tensors as the base checkpoint holds them (module names)."""

    tensors: dict[str, torch.Tensor]

    @classmethod
    def snapshot(cls, model: nn.Module, sets: ParameterSets) -> BaseOutputs:
        """Copy `model`'s trainable tensors now (call it before any training step or resumed state)."""
        trained = set(sets.trainable)
        return cls({k: p.detach().clone() for k, p in model.named_parameters() if reference_key(k) in trained})

    def predictions(self, model: nn.Module, views: list[TrainView], targets: list[Targets]) -> list[ViewPrediction]:
        """The base model's teacher-forced predictions of `views` (no graph)."""
        with torch.no_grad():
            swapped = {f"model.{k}": v for k, v in self.tensors.items()}
            return torch.func.functional_call(TrainingForward(model), swapped, (views, targets))

    def fill_missing_depth(self, model: nn.Module, views: list[TrainView], targets: list[Targets]
                           ) -> list[TrainView]:
        """`views` with the samples whose view 0 lacks ground-truth depth filled from the base model (module
        docstring) and flagged ``has_depth``; the others unchanged. New views: the inputs are not modified."""
        missing = torch.where(~views[0].depth_mask())[0]
        if missing.numel() == 0:
            return views
        preds = self.predictions(model, [_take(v, missing) for v in views], [_take(t, missing) for t in targets])
        out = []
        for view, pred in zip(views, preds, strict=True):
            pose = pose_matrix(pred.camera_pose)  # (b, 4, 4) camera -> view 0
            local = pred.pts3d_self.float()
            world = torch.einsum("bij, bhwj -> bhwi", pose[:, :3, :3], local) + pose[:, None, None, :3, 3]
            valid = (local[..., 2] > 0) & torch.isfinite(world).all(dim=-1)
            out.append(dataclasses.replace(
                view, camera_pose=_put(view.camera_pose, missing, pose), pts3d=_put(view.pts3d, missing, world),
                valid_mask=_put(view.valid_mask, missing, valid),
                sky_mask=_put(view.sky_mask, missing, torch.zeros_like(valid)),
                has_depth=_put(view.depth_mask(), missing, torch.ones_like(missing, dtype=torch.bool))))
        return out
