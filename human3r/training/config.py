"""Training configuration: frozen dataclasses whose defaults are the paper's recipe (the reference's
`config/train_human3r.yaml`, `ConfLoss(Regr3DPoseBatchList(L21, '?avg_dis'), alpha=0.2) + RGBLoss(MSE) +
SMPLLoss(L1)`, `freeze='encoder_and_decoder_and_head'`).

Parameter names in patterns are the reference's state-dict names (`human3r.weights.keys.reference_key`); a pattern
names a module or parameter and matches it and everything below it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from human3r.errors import ConfigError

# What trains: the prompt fusion, the SMPL-X regressors, the mask head and the two padding tokens of empty slots.
TRAINABLE = (
    "downstream_head.mlp_fuse", "downstream_head.decpose", "downstream_head.decshape",
    "downstream_head.decexpression", "downstream_head.deccam", "downstream_head.mlp_msk",
    "masked_smpl_token", "mhmr_masked_smpl_token",
)
# What is frozen without a graph (requires_grad False in the reference): both encoders, the ray-map encoder, the
# frozen Multi-HMR detection heads and the image padding tokens. Everything else is "fixed": not trained, but
# gradients pass through it to the prompts (decoder, pose memory, DPT heads, world-view branch, camera head).
FROZEN = (
    "patch_embed", "patch_embed_ray_map", "enc_blocks", "enc_blocks_ray_map", "enc_norm", "enc_norm_ray_map",
    "masked_img_token", "masked_ray_map_token", "backbone", "mhmr_masked_img_token",
    "downstream_head.mlp_classif", "downstream_head.mlp_offset",
)
CLIP_NORMS = ("reference", "trainable")
MISSING_DEPTH = ("drop", "distil")
PRECISIONS = ("float32", "bfloat16")


def _check(owner: str, **values: float) -> None:
    for name, value in values.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"{owner}.{name} must be a number >= 0, got {value!r}")


@dataclass(frozen=True)
class SmplLossWeights:
    """Weights of SMPLLoss's terms (the reference's 0.01 x {10, 100, 100, 10, 100, 100, 100, 100, 100, 1, 1})."""

    scores: float = 0.1  # CenterNet focal loss of the detection scores (constant: the detector is frozen)
    msk: float = 1.0  # person-mask BCE on the human-branch square
    rotmat: float = 1.0  # L1 of the 53 rotation matrices
    shape: float = 0.1  # L1 of the first 10 betas
    transl: float = 1.0  # L1 of the head joint (camera frame)
    j3d: float = 1.0  # L1 of the 127 joints, pelvis-relative
    v3d: float = 1.0  # L1 of the 10475 vertices, pelvis-relative
    cj3d: float = 1.0  # L1 of the joints, camera frame
    cv3d: float = 1.0  # L1 of the vertices, camera frame
    j2d: float = 0.01  # L1 of the projected joints (pixels), inside the image
    v2d: float = 0.01  # L1 of the projected vertices (pixels), inside the image

    def __post_init__(self) -> None:
        _check("SmplLossWeights", **{f.name: getattr(self, f.name) for f in fields(self)})


@dataclass(frozen=True)
class LossConfig:
    """The criterion: ConfLoss (with the camera-pose loss) + RGBLoss + SMPLLoss."""

    conf: float = 1.0  # weight of ConfLoss (confidence-weighted pointmap regression + camera pose)
    rgb: float = 1.0  # weight of RGBLoss (MSE of the colour head)
    smpl: float = 1.0  # weight of SMPLLoss
    conf_alpha: float = 0.2  # ConfLoss: loss * c - alpha * log(c)
    norm_eps: float = 1e-3  # floor of the per-sample pointmap normalisation factor (and of the pose-loss mask)
    sky_loss: float = 2.0  # constant pointmap loss on sky pixels
    two_d_below_cv3d: float = 1.0  # the 2D SMPL terms count only while the view-averaged cv3d loss is below this
    smpl_terms: SmplLossWeights = field(default_factory=SmplLossWeights)

    def __post_init__(self) -> None:
        _check("LossConfig", conf=self.conf, rgb=self.rgb, smpl=self.smpl, conf_alpha=self.conf_alpha,
               norm_eps=self.norm_eps, sky_loss=self.sky_loss, two_d_below_cv3d=self.two_d_below_cv3d)


@dataclass(frozen=True)
class OptimizerConfig:
    """AdamW with decoupled weight decay on >= 2-D non-bias tensors, and gradient-norm clipping."""

    lr: float = 1e-4  # peak learning rate (after warm-up)
    min_lr: float = 1e-6  # end of the half-cosine
    warmup_epochs: float = 5.0  # linear warm-up from 0
    epochs: float = 40.0  # the schedule's length (40 x 4,000 samples at batch 8 = 20,000 iterations)
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    weight_decay: float = 0.05  # on trainable tensors with >= 2 dims not named *.bias; 0 on the others
    clip_max_norm: float = 1.0  # gradients are scaled by min(1, max_norm / (norm + 1e-6))
    clip_norm: str = "trainable"  # "reference": the norm over every parameter with a gradient, the fixed modules'
    #                               weight gradients included (computed for it: the reference's numbers);
    #                               "trainable": over the trained parameters only (no fixed weight gradients: faster)

    def __post_init__(self) -> None:
        _check("OptimizerConfig", lr=self.lr, min_lr=self.min_lr, warmup_epochs=self.warmup_epochs,
               epochs=self.epochs, eps=self.eps, weight_decay=self.weight_decay, clip_max_norm=self.clip_max_norm)
        if self.clip_norm not in CLIP_NORMS:
            raise ConfigError(f"OptimizerConfig.clip_norm must be one of {CLIP_NORMS}, got {self.clip_norm!r}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"OptimizerConfig.betas must be two numbers in [0, 1), got {self.betas!r}")
        if self.warmup_epochs > self.epochs:
            raise ConfigError(f"OptimizerConfig.warmup_epochs {self.warmup_epochs} exceeds epochs {self.epochs}")
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))


@dataclass(frozen=True)
class TrainConfig:
    """One training run's step: what trains, the criterion, the optimiser and how the step computes."""

    losses: LossConfig = field(default_factory=LossConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    trainable: tuple[str, ...] = TRAINABLE  # parameters the optimiser updates
    frozen: tuple[str, ...] = FROZEN  # parameters without a graph; the rest is fixed (gradients pass through)
    precision: str = "float32"  # "bfloat16": autocast (GPUs), float32 master weights and losses
    gradient_checkpointing: bool = False  # recompute decoder blocks and DPT heads in the backward (same numbers)
    missing_depth: str = "drop"  # samples without ground-truth depth (pseudo-label builds): "drop" them from the
    #                              pointmap, confidence and camera-pose terms; "distil": targets from the frozen
    #                              base model's outputs (`human3r.training.distill`)

    def __post_init__(self) -> None:
        if self.missing_depth not in MISSING_DEPTH:
            raise ConfigError(f"TrainConfig.missing_depth must be one of {MISSING_DEPTH}, got {self.missing_depth!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"TrainConfig.precision must be one of {PRECISIONS}, got {self.precision!r}")
        both = sorted(set(self.trainable) & set(self.frozen))
        if both:
            raise ConfigError(f"TrainConfig: {both} are listed as both trainable and frozen")
        object.__setattr__(self, "trainable", tuple(self.trainable))
        object.__setattr__(self, "frozen", tuple(self.frozen))
