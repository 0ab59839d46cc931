"""The per-worker training loop: Ray Train's `train_loop_per_worker`, thin over the plain step.

Every worker loads the base checkpoint, prepares it for training (`human3r.training.prepare_for_training`), wraps
the differentiable part of the step (`TrainingStep`: forward + criterion) for data parallelism (DDP: gradients are
averaged in the backward, so the clip norm sees the synced gradients), and walks its shard of the batches (the
aspect-ratio batch sampler shards whole batches by rank). Per optimiser step: `accumulation` batches through
`train_step` (each backward scaled by 1/accumulation), the learning rate of the reference's per-iteration schedule
(set at the group's first batch, as the reference does), clipping, AdamW. Batches left over at an epoch's end (fewer
than `accumulation`) are skipped.

Checkpoints (`tasks.training.state`) every `loop.checkpoint_every` optimiser steps, at every epoch's end and at the
end; validation (the training criterion on the held-out split, no gradient, averaged over the workers) every
`loop.validate_every` epochs and at the end. Rank 0 writes TensorBoard events and the progress lines. The run stops
after `loop.epochs` epochs or `loop.max_steps` optimiser steps; the last report carries the final checkpoint, from
which the driver writes the fine-tuned model (`tasks.training.product`).

Data determinism: a source without a seed gets the run's (so a sample is a function of the seed and its index), and
the DataLoader's worker seeds come from a generator seeded per epoch: a resumed run draws the same batches.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import tempfile
import time
from pathlib import Path

import torch

from tasks.training.plan import RunPlan
from tasks.training.state import Position, load_state, save_state, seed_everything

log = logging.getLogger(__name__)


class ResumableBatches(torch.utils.data.Sampler):
    """A batch sampler's batches from index `start` on (the rest of an interrupted epoch)."""

    def __init__(self, inner):
        self.inner, self.start = inner, 0

    def set_epoch(self, epoch: int) -> None:
        self.inner.set_epoch(epoch)

    def __iter__(self):
        for i, batch in enumerate(self.inner):
            if i >= self.start:
                yield batch

    def __len__(self) -> int:
        return len(self.inner) - self.start


def make_loader(sources, batch_size: int, *, num_workers: int, rank: int, world_size: int, seed: int):
    """A DataLoader over the mixture of `sources` with the resumable, rank-sharded aspect-ratio batch sampler."""
    from tasks.training.data.buckets import BucketBatchSampler
    from tasks.training.data.mixture import build_mixture

    sources = [s if s.seed is not None else s.model_copy(update={"seed": seed}) for s in sources]
    dataset = build_mixture([s.model_dump() for s in sources])
    sampler = ResumableBatches(BucketBatchSampler(len(dataset), batch_size, len(dataset.resolutions),
                                                  dataset.num_views, rank=rank, world_size=world_size))
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers,
                                       collate_fn=torch.utils.data.default_collate, persistent_workers=False,
                                       generator=torch.Generator().manual_seed(seed))


def start_epoch(loader, epoch: int, seed: int, start: int = 0) -> None:
    """The epoch's draw, bucket order and worker seeds; its batches from `start` on."""
    if hasattr(loader.dataset, "set_epoch"):
        loader.dataset.set_epoch(epoch)
    loader.batch_sampler.set_epoch(epoch)
    loader.batch_sampler.start = start
    loader.generator.manual_seed(seed * 100_003 + epoch)


def resolve_precision(precision: str, device: torch.device) -> str:
    """auto: bfloat16 on GPUs that compute it natively, else float32."""
    if precision != "auto":
        return precision
    return "bfloat16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "float32"


def train_loop_per_worker(config: dict) -> None:
    """Ray Train's entry point: `config` = {"plan": RunPlan, "progress": bool, "kill_after": int | None}."""
    from tasks.training.context import RayContext

    run_worker(config["plan"], RayContext(), progress=config.get("progress", True),
               kill_after=config.get("kill_after"))


def run_worker(plan: RunPlan, ctx, *, progress: bool = True, kill_after: int | None = None) -> dict:
    """The loop (module doc) in context `ctx` (`tasks.training.context`); returns the last reported metrics.
    `kill_after`: SIGKILL this process (rank 0) right after the checkpoint of that optimiser step, on an attempt
    that did not resume (tests of resuming)."""
    from human3r.training import TrainingBodies, build_optimizer, optimizer_step, prepare_for_training, train_step
    from human3r.training.distill import BaseOutputs
    from human3r.training.step import TrainingStep
    from human3r.weights import load_model
    from tasks.training.tracking import Tracker

    opts = plan.options
    if opts.cluster.torch_threads:
        torch.set_num_threads(opts.cluster.torch_threads)
    seed_everything(opts.loop.seed + ctx.rank)
    device = torch.device(ctx.device)
    model = load_model(opts.base.checkpoint, preset=opts.base.preset, device=device)
    cfg = opts.step.to_train_config(epochs=opts.loop.epochs, precision=resolve_precision(opts.base.precision, device))
    sets = prepare_for_training(model, cfg)
    base = BaseOutputs.snapshot(model, sets) if cfg.missing_depth == "distil" else None
    bodies = TrainingBodies(opts.base.body_model, device=device)
    optimizer = build_optimizer(model, sets, cfg)
    runner = ctx.prepare(TrainingStep(model, bodies, cfg.losses))

    loop = opts.loop
    loader = make_loader(opts.data.sources, loop.batch_size, num_workers=opts.data.loader_workers, rank=ctx.rank,
                         world_size=ctx.world_size, seed=loop.seed)
    held_out = plan.held_out
    n_batches = len(loader.batch_sampler.inner)
    steps_per_epoch = n_batches // loop.accumulation
    if steps_per_epoch == 0:
        raise ValueError(f"an epoch has {n_batches} batches per worker, fewer than loop.accumulation "
                         f"({loop.accumulation}): draw more samples or use a smaller batch")
    total = loop.epochs * steps_per_epoch if loop.max_steps is None else min(loop.max_steps,
                                                                             loop.epochs * steps_per_epoch)
    with ctx.restored() as folder:
        position = load_state(folder, rank=ctx.rank, model=model, optimizer=optimizer) if folder else Position()
    if position.key and position.key != plan.key:
        raise ValueError(f"run {plan.name} holds checkpoints of another config (key {position.key}, this one "
                         f"{plan.key}): give another output.name")
    resumed = ctx.attempt_restored
    tracker = Tracker(plan, enabled=ctx.rank == 0, progress=progress, total=total)
    step, metrics = position.step, dict(position.metrics)

    def checkpoint(epoch: int, batch: int, extra: dict) -> None:
        nonlocal metrics
        metrics = {**metrics, **extra, "step": step, "epoch": epoch}
        with tempfile.TemporaryDirectory(prefix="h3r-ckpt-") as tmp:
            save_state(Path(tmp), rank=ctx.rank, model=model, sets=sets, optimizer=optimizer,
                       position=Position(step, epoch, batch, metrics, plan.key))
            tracker.flush_into(Path(tmp))
            ctx.report(metrics, Path(tmp))
        if kill_after is not None and step == kill_after and not resumed and ctx.rank == 0:
            log.warning("killing rank 0 after step %d (kill_after)", step)
            os.kill(os.getpid(), signal.SIGKILL)

    epoch, batch_idx, ran = position.epoch, position.batch, False
    used = steps_per_epoch * loop.accumulation  # batches of an epoch that make full optimiser steps
    while step < total and epoch < loop.epochs:
        start_epoch(loader, epoch, loop.seed, batch_idx)
        next_batch = used
        for b, batch in enumerate(loader, start=batch_idx):
            micro = b % loop.accumulation
            if micro == 0:
                t0, losses, samples = time.perf_counter(), [], 0
                lr = _lr(cfg, epoch + b / n_batches)
            out = train_step(model, batch, bodies, cfg, grad_scale=1 / loop.accumulation, runner=runner, base=base)
            losses.append(out.loss)
            samples += int(batch[0]["img"].shape[0])
            if micro < loop.accumulation - 1:
                continue
            clip = optimizer_step(model, optimizer, sets, cfg, lr=lr)
            step, ran = step + 1, True
            seconds = time.perf_counter() - t0
            train = {"train/loss": sum(losses) / len(losses), "train/lr": clip.lr, "train/grad_norm": clip.grad_norm,
                     "train/samples_per_s": samples * ctx.world_size / max(seconds, 1e-9),
                     **{f"train/{k}": v for k, v in out.report.terms.items()}}
            tracker.step(step, epoch, train, log_now=step % loop.log_every == 0 or step == total)
            metrics = {**metrics, **train}
            if step >= total or b + 1 >= used:
                next_batch = b + 1
                break
            if loop.checkpoint_every and step % loop.checkpoint_every == 0:
                checkpoint(epoch, b + 1, {})
        last = step >= total
        val = {}
        if held_out and ((epoch + 1) % loop.validate_every == 0 or last or epoch + 1 == loop.epochs):
            val = validate(model, held_out, runner, bodies, cfg, base, opts, ctx)
            tracker.scalars(step, val)
        epoch, batch_idx = (epoch + 1, 0) if next_batch >= used else (epoch, next_batch)
        checkpoint(epoch, batch_idx, {**val, "final": int(last)})
    if not ran:  # resumed from the final checkpoint: report it again (the driver reads the last report's)
        checkpoint(position.epoch, position.batch, {"final": 1})
    tracker.close()
    return metrics


def _lr(cfg, epoch_f: float) -> float:
    from human3r.training import learning_rate

    return learning_rate(epoch_f, cfg.optimizer)


def validate(model, sources, runner, bodies, cfg, base, opts, ctx) -> dict:
    """The training criterion on the held-out sources (teacher-forced, no gradient), averaged over the samples of
    every worker. Returns ``val/loss`` and the mean terms."""
    from human3r.training.views import views_from_batch

    loader = make_loader(sources, opts.loop.batch_size, num_workers=opts.data.loader_workers, rank=ctx.rank,
                         world_size=ctx.world_size, seed=opts.loop.seed)
    start_epoch(loader, 0, opts.loop.seed)
    limit = opts.data.validation.max_batches if opts.data.validation else None
    sums: dict[str, float] = {}
    count = 0
    device = next(model.parameters()).device
    low = cfg.precision == "bfloat16"
    step_module = getattr(runner, "module", runner)  # not through DDP: no collective per batch
    from human3r.training.teacher import teacher_targets

    with torch.no_grad():
        for i, batch in enumerate(loader):
            if limit is not None and i >= limit:
                break
            views = [v.to(device) for v in views_from_batch(batch)]
            targets = teacher_targets(views, bodies, model.cfg.dino.image_res, model.cfg.dino.patch_size)
            if base is not None and not all(bool(v.depth_mask().all()) for v in views):
                views = base.fill_missing_depth(model, views, targets)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=low):
                report, _ = step_module(views, targets)
            n = views[0].batch_size
            sums["loss"] = sums.get("loss", 0.0) + float(report.total) * n
            for k, v in report.terms.items():
                sums[k] = sums.get(k, 0.0) + float(v) * n
            count += n
    from tasks.training.context import mean_over_workers

    keys = sorted(sums)
    totals = mean_over_workers(torch.tensor([sums[k] for k in keys] + [count], dtype=torch.float64))
    n = float(totals[-1])
    if n == 0 or not math.isfinite(n):
        return {}
    return {f"val/{k}": float(v) / n for k, v in zip(keys, totals[:-1].tolist(), strict=True)}
