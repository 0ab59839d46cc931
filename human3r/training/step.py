"""One training step as functions a loop calls: `train_step` (teacher forcing, forward, losses, backward; call it
k times to accumulate gradients) and `optimizer_step` (clip, AdamW, clear); `learning_rate` is the schedule.

    sets = prepare_for_training(model, cfg)
    optimizer = build_optimizer(model, sets, cfg)
    for it, batch in enumerate(loader):
        out = train_step(model, batch, bodies, cfg, grad_scale=1 / k)
        if (it + 1) % k == 0:
            optimizer_step(model, optimizer, sets, cfg, lr=learning_rate(it / iters_per_epoch, cfg.optimizer))

Clipping (`OptimizerConfig.clip_norm`): the reference clips by the norm over every parameter that has a gradient,
and its fixed modules (decoder, DPT heads, camera head: not trained) have weight gradients, so their norm counts
("reference": computed for that, the parity pack's numbers). "trainable" takes the norm over the trained parameters
only, so the fixed modules' weight gradients are never computed: the step is faster and lighter, the losses and the
trained parameters' gradients are identical, only the clip coefficient (and through AdamW's eps, a few updated
elements) differ.

Data parallel: `TrainingStep` is the differentiable part of a step as one module call (forward and criterion,
returning the loss), which is what DDP wraps: one forward per step, and the parameters that received no gradient
are found from the loss (a prediction the loss did not read, e.g. the SMPL-X heads in a batch without people,
leaves its modules without gradients). Pass the wrapped module as `train_step(..., runner=ddp)`. Missing ground
truth (`TrainConfig.missing_depth`): "distil" fills it from the frozen base model before the forward
(`human3r.training.distill`, pass `base=`), "drop" leaves those samples out of the terms that need it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from human3r.errors import ConfigError, NonFiniteLossError
from human3r.training.bodies import TrainingBodies
from human3r.training.config import LossConfig, OptimizerConfig, TrainConfig
from human3r.training.distill import BaseOutputs
from human3r.training.forward import ViewPrediction, training_forward
from human3r.training.losses import LossReport, compute_losses
from human3r.training.params import ParameterSets, named_parameters, parameter_groups
from human3r.training.teacher import Targets, teacher_targets
from human3r.training.views import TrainView, views_from_batch


@dataclass
class StepOutput:
    """What one `train_step` computed (the gradients are in the parameters' `.grad`)."""

    loss: float  # the total loss (before `grad_scale`)
    details: dict[str, float]  # the loss terms (`LossReport.terms`) and the per-view report
    report: LossReport
    targets: list[Targets]
    predictions: list[ViewPrediction]


@dataclass(frozen=True)
class ClipReport:
    """The gradient norms an `optimizer_step` saw (before clipping) and what it applied."""

    grad_norm: float  # the norm clipping used (over all parameters with a gradient, or the trainable ones)
    grad_norm_trainable: float  # over the trainable parameters
    clip_coef: float  # min(1, max_norm / (grad_norm + 1e-6)), the factor applied to the gradients
    lr: float


class TrainingStep(nn.Module):
    """Forward and criterion as one call: `TrainingStep(model, bodies, cfg.losses)(views, targets)` ->
    (LossReport with the graph of its total, the predictions without theirs). The loss is computed in float32
    whatever the autocast outside."""

    def __init__(self, model: nn.Module, bodies: TrainingBodies, losses: LossConfig):
        super().__init__()
        self.model = model
        self.bodies, self.losses = bodies, losses  # plain attributes: not parameters, never synced

    def forward(self, views: list[TrainView], targets: list[Targets]) -> tuple[LossReport, list[ViewPrediction]]:
        predictions = training_forward(self.model, views, targets)
        report = compute_losses(views, targets, predictions, self.bodies, self.losses)
        return report, [p.detach() for p in predictions]


def learning_rate(epoch: float, cfg: OptimizerConfig) -> float:
    """The reference's per-iteration schedule at fractional epoch `epoch` (= iteration / iterations per epoch):
    linear warm-up from 0 over `warmup_epochs`, then a half cosine from `lr` down to `min_lr` at `epochs`."""
    if epoch < cfg.warmup_epochs:
        return cfg.lr * epoch / cfg.warmup_epochs
    progress = (epoch - cfg.warmup_epochs) / (cfg.epochs - cfg.warmup_epochs)
    return cfg.min_lr + (cfg.lr - cfg.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_optimizer(model: nn.Module, sets: ParameterSets, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters with the reference's two weight-decay groups."""
    opt = cfg.optimizer
    return torch.optim.AdamW(parameter_groups(model, sets, opt.weight_decay), lr=opt.lr, betas=opt.betas,
                             eps=opt.eps)


def train_step(model: nn.Module, batch: Sequence[Mapping[str, object]] | list[TrainView], bodies: TrainingBodies,
               cfg: TrainConfig, *, grad_scale: float = 1.0, runner: nn.Module | None = None,
               base: BaseOutputs | None = None) -> StepOutput:
    """Teacher forcing, the forward over the batch's views, the losses, and `backward(loss * grad_scale)`
    (gradients accumulate into `.grad`). `batch`: the collated view dicts (or `TrainView`s), moved to the model's
    device. `runner`: the `TrainingStep` of `model` to call (e.g. wrapped in DDP; default: a plain one). `base`:
    the frozen base model that fills samples without ground-truth depth when `cfg.missing_depth` is "distil".
    Raises NonFiniteLossError (before the backward) when the loss is not finite."""
    device = next(model.parameters()).device
    views = batch if batch and isinstance(batch[0], TrainView) else views_from_batch(batch)
    views = [v.to(device, non_blocking=True) for v in views]
    with torch.no_grad():
        targets = teacher_targets(views, bodies, model.cfg.dino.image_res, model.cfg.dino.patch_size)
    low = cfg.precision == "bfloat16"
    if cfg.missing_depth == "distil" and not all(bool(v.depth_mask().all()) for v in views):
        if base is None:
            raise ConfigError("missing_depth='distil' needs the base model's weights: pass base=BaseOutputs(...)")
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=low):
            views = base.fill_missing_depth(model, views, targets)
    runner = runner if runner is not None else TrainingStep(model, bodies, cfg.losses)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=low):
        report, predictions = runner(views, targets)
    loss = float(report.total.detach())
    if not math.isfinite(loss):
        bad = sorted(k for k, v in report.terms.items() if not math.isfinite(v))
        raise NonFiniteLossError(f"the training loss is {loss} (non-finite terms: {', '.join(bad) or 'none'}); "
                                 "lower the learning rate or check the batch (views, SMPL-X parameters)")
    (report.total * grad_scale).backward()
    return StepOutput(loss, {**report.terms, **report.details}, report, targets, predictions)


def clip_gradients(model: nn.Module, sets: ParameterSets, cfg: OptimizerConfig) -> ClipReport:
    """Scale the trainable gradients by min(1, max_norm / (norm + 1e-6)); `norm` per `cfg.clip_norm` (module
    docstring). Drops the fixed modules' weight gradients afterwards (only their norm was needed)."""
    params = named_parameters(model)
    trainable = [params[n].grad for n in sets.trainable if params[n].grad is not None]
    norm_trainable = torch.nn.utils.get_total_norm(trainable) if trainable else torch.zeros(())
    if cfg.clip_norm == "reference":
        every = [p.grad for p in params.values() if p.grad is not None]
        norm = torch.nn.utils.get_total_norm(every) if every else torch.zeros(())
    else:
        norm = norm_trainable
    coef = torch.clamp(cfg.clip_max_norm / (norm + 1e-6), max=1.0)
    if trainable:
        torch._foreach_mul_(trainable, coef.to(trainable[0].device))
    for n in sets.fixed + sets.frozen:
        params[n].grad = None
    return ClipReport(float(norm), float(norm_trainable), float(coef), float("nan"))


def optimizer_step(model: nn.Module, optimizer: torch.optim.Optimizer, sets: ParameterSets, cfg: TrainConfig,
                   lr: float | None = None) -> ClipReport:
    """Clip, set the learning rate (`lr`: e.g. `learning_rate(epoch, cfg.optimizer)`; None keeps the optimiser's),
    take the AdamW step and clear every gradient. Returns the norms and the clip coefficient."""
    clip = clip_gradients(model, sets, cfg.optimizer)
    if lr is not None:
        for group in optimizer.param_groups:
            group["lr"] = lr
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return ClipReport(clip.grad_norm, clip.grad_norm_trainable, clip.clip_coef, optimizer.param_groups[0]["lr"])
