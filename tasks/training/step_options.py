"""The `step:` section of a training config: `human3r.training.TrainConfig` as typed options.

Defaults are read from the step's own frozen dataclasses (the paper's recipe, written once in
`human3r/training/config.py`); this module adds the YAML shape, bounds and descriptions, and `to_train_config` builds
the dataclass (whose own checks then run too). The schedule's length is not here: it is the loop's `epochs`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from human3r.training.config import FROZEN, TRAINABLE, LossConfig, OptimizerConfig, SmplLossWeights, TrainConfig

_LOSS, _OPT, _SMPL, _STEP = LossConfig(), OptimizerConfig(), SmplLossWeights(), TrainConfig()


class _Options(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _weight(default: float, what: str):
    return Field(default, ge=0, description=what)


class SmplTermOptions(_Options):
    """Weights of SMPLLoss's terms (the reference's 0.01 x {10, 100, 100, 10, 100, 100, 100, 100, 100, 1, 1})."""

    scores: float = _weight(_SMPL.scores, "CenterNet focal loss of the detection scores.")
    msk: float = _weight(_SMPL.msk, "Person-mask BCE on the human-branch square.")
    rotmat: float = _weight(_SMPL.rotmat, "L1 of the 53 rotation matrices.")
    shape: float = _weight(_SMPL.shape, "L1 of the first 10 betas.")
    transl: float = _weight(_SMPL.transl, "L1 of the head joint (camera frame).")
    j3d: float = _weight(_SMPL.j3d, "L1 of the 127 joints, pelvis-relative.")
    v3d: float = _weight(_SMPL.v3d, "L1 of the 10475 vertices, pelvis-relative.")
    cj3d: float = _weight(_SMPL.cj3d, "L1 of the joints, camera frame.")
    cv3d: float = _weight(_SMPL.cv3d, "L1 of the vertices, camera frame.")
    j2d: float = _weight(_SMPL.j2d, "L1 of the projected joints (pixels), inside the image.")
    v2d: float = _weight(_SMPL.v2d, "L1 of the projected vertices (pixels), inside the image.")


class LossOptions(_Options):
    """The criterion: ConfLoss (with the camera-pose loss) + RGBLoss + SMPLLoss."""

    conf: float = _weight(_LOSS.conf, "Weight of ConfLoss (confidence-weighted pointmaps + camera pose).")
    rgb: float = _weight(_LOSS.rgb, "Weight of RGBLoss (MSE of the colour head).")
    smpl: float = _weight(_LOSS.smpl, "Weight of SMPLLoss.")
    conf_alpha: float = _weight(_LOSS.conf_alpha, "ConfLoss: loss * c - alpha * log(c).")
    norm_eps: float = Field(_LOSS.norm_eps, gt=0, description="Floor of the per-sample pointmap normalisation.")
    sky_loss: float = _weight(_LOSS.sky_loss, "Constant pointmap loss on sky pixels.")
    two_d_below_cv3d: float = _weight(_LOSS.two_d_below_cv3d, "The 2D SMPL terms count only while the "
                                                              "view-averaged cv3d loss is below this.")
    smpl_terms: SmplTermOptions = SmplTermOptions()


class OptimizerOptions(_Options):
    """AdamW (decay on >= 2-D non-bias tensors), gradient clipping, warm-up then half-cosine per iteration."""

    lr: float = Field(_OPT.lr, gt=0, description="Peak learning rate (after warm-up).")
    min_lr: float = Field(_OPT.min_lr, ge=0, description="End of the half-cosine.")
    warmup_epochs: float = Field(_OPT.warmup_epochs, ge=0, description="Linear warm-up from 0 (epochs, "
                                                                        "fractions allowed).")
    betas: tuple[float, float] = Field(_OPT.betas, description="AdamW betas.")
    eps: float = Field(_OPT.eps, gt=0, description="AdamW eps.")
    weight_decay: float = Field(_OPT.weight_decay, ge=0, description="Decay of >= 2-D non-bias tensors.")
    clip_max_norm: float = Field(_OPT.clip_max_norm, gt=0, description="Gradients are scaled by "
                                                                        "min(1, max_norm / (norm + 1e-6)).")
    clip_norm: Literal["reference", "trainable"] = Field(
        _OPT.clip_norm, description="Which norm clipping uses: 'reference' = over every parameter with a gradient, "
                                    "the fixed modules' included (computed for it: the reference's numbers, slower); "
                                    "'trainable' = over the trained parameters (the fast step; see the clip study).")


class StepOptions(_Options):
    """One training step: what trains, the criterion, the optimiser, and how the step computes."""

    trainable: tuple[str, ...] = Field(TRAINABLE, min_length=1, description="Trained parameters (reference names; "
                                                                            "a name covers everything below it).")
    frozen: tuple[str, ...] = Field(FROZEN, description="Parameters without a graph; the rest is fixed (not "
                                                        "trained, gradients pass through to the prompts).")
    gradient_checkpointing: bool = Field(True, description="Recompute decoder blocks and DPT heads in the backward "
                                                           "(same numbers, far less memory; the reference's recipe "
                                                           "turns it on).")
    missing_depth: Literal["drop", "distil"] = Field(
        _STEP.missing_depth, description="Samples without ground-truth depth (pseudo-label builds): 'drop' them from "
                                         "the pointmap, confidence and camera-pose terms, or 'distil' those targets "
                                         "from the frozen base model's outputs.")
    losses: LossOptions = LossOptions()
    optimizer: OptimizerOptions = OptimizerOptions()

    def to_train_config(self, *, epochs: float, precision: str = "float32") -> TrainConfig:
        """The step's `TrainConfig` for a schedule of `epochs` computed in `precision` (float32 / bfloat16)."""
        losses = self.losses.model_dump(exclude={"smpl_terms"})
        opt = self.optimizer.model_dump()
        return TrainConfig(
            losses=LossConfig(**losses, smpl_terms=SmplLossWeights(**self.losses.smpl_terms.model_dump())),
            optimizer=OptimizerConfig(**opt, epochs=float(epochs)), trainable=self.trainable, frozen=self.frozen,
            precision=precision, gradient_checkpointing=self.gradient_checkpointing,
            missing_depth=self.missing_depth)
