"""Which parameters train: the trainable / fixed / frozen split, the model set up for a training step, and the
optimiser's parameter groups.

* trainable (`TrainConfig.trainable`): the optimiser updates them.
* frozen (`TrainConfig.frozen`): `requires_grad` False, and their modules run without a graph (`Human3R.forward`
  wraps the encoders in `torch.no_grad` when none of their parameters trains).
* fixed (everything else): not trained, but gradients pass through them to the prompts. With
  `clip_norm="trainable"` their `requires_grad` is False too, so autograd computes only the gradients of their
  inputs, not of their weights; with `clip_norm="reference"` their weight gradients are computed, because the
  reference clips by the norm over every parameter with a gradient (see `human3r.training.step`).
Names are the reference's (`human3r.weights.keys.reference_key`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn

from human3r.errors import CheckpointError, ConfigError
from human3r.precision import cast_for_precision
from human3r.training.config import TrainConfig
from human3r.weights.keys import reference_key

logger = logging.getLogger(__name__)

# Reference keys inference never reads (`human3r.weights.keys.UNUSED_KEY_PREFIXES`) that training does: a weights
# file without them is zero-filled at load. The ray-map encoder is frozen, so zeros would stay; the padding tokens
# train, so zeros are only a different start.
TRAINING_ONLY_FROZEN = ("patch_embed_ray_map.", "enc_blocks_ray_map.", "enc_norm_ray_map.", "masked_ray_map_token")
TRAINING_ONLY_TRAINED = ("masked_smpl_token", "mhmr_masked_smpl_token")


def check_training_weights(model: nn.Module) -> None:
    """A model loaded from a file that lacked the training-only tensors: CheckpointError for the frozen ray-map
    encoder (it could never learn them), a warning for the padding tokens (they start from zeros)."""
    report = getattr(getattr(model, "identity", None), "report", None)
    missing = getattr(report, "unused_missing", ())
    frozen = [k for k in missing if k.startswith(TRAINING_ONLY_FROZEN)]
    if frozen:
        raise CheckpointError(f"{report.source} lacks the ray-map encoder training reads ({len(frozen)} tensors, "
                              f"e.g. {frozen[:3]}), and training keeps it frozen; start from a full training "
                              "checkpoint (the released human3r_*.pth files hold it)")
    trained = [k for k in missing if k in TRAINING_ONLY_TRAINED]
    if trained:
        logger.warning("%s lacks %s: they start from zeros", report.source, ", ".join(trained))


def matches(name: str, patterns: tuple[str, ...]) -> bool:
    """True when `name` is one of `patterns` or lies below one (`a.b` matches `a.b.c.weight`, not `a.bc`)."""
    return any(name == p or name.startswith(p + ".") for p in patterns)


def named_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """Reference name -> parameter, in the model's order (tied parameters once)."""
    return {reference_key(k): p for k, p in model.named_parameters()}


@dataclass(frozen=True)
class ParameterSets:
    """The split of a model's parameters (reference names, model order)."""

    trainable: tuple[str, ...]
    fixed: tuple[str, ...]
    frozen: tuple[str, ...]

    def numel(self, model: nn.Module, kind: str) -> int:
        params = named_parameters(model)
        return sum(params[n].numel() for n in getattr(self, kind))


def partition_parameters(model: nn.Module, cfg: TrainConfig) -> ParameterSets:
    """Split by the config's patterns; a pattern that names no parameter is an error (a typo would silently
    freeze or train the wrong thing)."""
    names = list(named_parameters(model))
    unused = [p for p in cfg.trainable + cfg.frozen if not any(matches(n, (p,)) for n in names)]
    if unused:
        raise ConfigError(f"TrainConfig patterns {unused} name no parameter of the model (names are the reference's, "
                          "e.g. downstream_head.mlp_fuse, enc_blocks)")
    trainable = tuple(n for n in names if matches(n, cfg.trainable))
    frozen = tuple(n for n in names if matches(n, cfg.frozen) and n not in trainable)
    fixed = tuple(n for n in names if n not in trainable and n not in frozen)
    return ParameterSets(trainable, fixed, frozen)


def prepare_for_training(model: nn.Module, cfg: TrainConfig) -> ParameterSets:
    """Train mode, `requires_grad` per set (fixed weights get gradients only for `clip_norm="reference"`),
    gradient checkpointing as configured, and for bfloat16 the untrained modules' weights stored in bfloat16 (the
    trained ones keep float32 master weights). Returns the split. Refuses a model whose weights file lacked the
    frozen ray-map encoder (`check_training_weights`)."""
    check_training_weights(model)
    sets = partition_parameters(model, cfg)
    params = named_parameters(model)
    fixed_grads = cfg.optimizer.clip_norm == "reference"
    for kind, flag in (("trainable", True), ("frozen", False), ("fixed", fixed_grads)):
        for name in getattr(sets, kind):
            params[name].requires_grad_(flag)
    model.train(True)
    model.set_gradient_checkpointing(cfg.gradient_checkpointing)
    if cfg.precision == "bfloat16":
        cast_for_precision(model, torch.bfloat16, keep_float32=cfg.trainable)
    return sets


def parameter_groups(model: nn.Module, sets: ParameterSets, weight_decay: float) -> list[dict]:
    """AdamW groups of the trainable parameters: decay for tensors with >= 2 dims not named `*.bias` (the (1, C)
    padding tokens included), none for biases and 1-D tensors. Each group lists its parameter `names`."""
    params = named_parameters(model)
    decay = [n for n in sets.trainable if params[n].ndim >= 2 and not n.endswith(".bias")]
    no_decay = [n for n in sets.trainable if n not in decay]
    return [{"params": [params[n] for n in names], "names": names, "weight_decay": wd}
            for names, wd in ((decay, weight_decay), (no_decay, 0.0)) if names]
