"""Fine-tuning, one call: `fine_tune(options)` plans the run, trains it on Ray Train, and writes the fine-tuned model.

1. `tasks.training.plan.plan_run`: inputs checked in one line each (base checkpoint and its preset, body model, the
   data sources' layout), the run's key, name and the fine-tuned `model_version`;
2. Ray: the cluster at `cluster.ray_address`, else the one this process is connected to, else a local one;
3. `ray.train.torch.TorchTrainer(train_loop_per_worker, ScalingConfig(num_workers, use_gpu, resources per worker),
   RunConfig(name, storage_path=output.root, FailureConfig(max_failures), CheckpointConfig(num_to_keep)))`: the
   workers run `tasks.training.loop`; a worker that dies restarts the group from the last checkpoint, and a run
   started again with the same name (the same config) resumes from its last checkpoint (Ray Train's run state in
   the storage), finished runs included (it then only writes the model again);
4. `tasks.training.product.write_model`: the last checkpoint's trained tensors into the whole base network, written
   as ``<run>/model/finetuned.safetensors`` (+ .json: model_version ``finetune-<base>-<key>``, the base and the run)
   and the reference's ``.pth`` layout beside it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from tasks.errors import UsageError
from tasks.training.config import TrainOptions
from tasks.training.plan import RunPlan, plan_run

log = logging.getLogger(__name__)


class TrainingFailed(Exception):
    """The training run failed on the cluster (the message holds the workers' error)."""


@dataclass(frozen=True)
class FineTuneResult:
    """What a finished fine-tuning run made."""

    model_path: str  # the fine-tuned model: <run>/model/finetuned.safetensors (local path or s3:// URI)
    model_version: str  # its dataset key: finetune-<base model_version>-<run key>
    run_dir: str  # the run's folder (Ray Train's checkpoints, TensorBoard events, model/)
    metrics: dict = field(default_factory=dict)  # the last reported metrics (train/*, val/*, step, epoch)
    pth_path: str | None = None  # the reference-layout export, when written
    base_version: str = ""  # model_version of the base checkpoint
    steps: int = 0  # optimiser steps done


def fine_tune(options: TrainOptions, *, progress: bool = True, kill_after: int | None = None) -> FineTuneResult:
    """Fine-tune `options.base.checkpoint` as `options` says (module doc) and return the model it made.

    progress: rank 0 prints a progress line every `loop.log_every` steps. kill_after: for tests of resuming, the
    rank-0 worker SIGKILLs itself right after the checkpoint of that optimiser step (on a first attempt only).
    Raises a `tasks.errors.UsageError` (bad config or inputs: nothing was run) or `TrainingFailed`."""
    plan = plan_run(options)
    return run_plan(plan, progress=progress, kill_after=kill_after)


def run_plan(plan: RunPlan, *, progress: bool = True, kill_after: int | None = None) -> FineTuneResult:
    """Train a planned run on Ray Train and write its model (module doc, steps 2-4)."""
    import ray

    cluster = plan.options.cluster
    started_here = not ray.is_initialized()
    if started_here:  # an explicit address, else a private local cluster (never RAY_ADDRESS from elsewhere)
        ray.init(address=cluster.ray_address or "local", log_to_driver=progress,
                 **({} if cluster.ray_address else {"num_cpus": os.cpu_count(), "include_dashboard": False}))
    try:
        return _fit(plan, progress, kill_after)
    finally:
        if started_here:
            ray.shutdown()


def _fit(plan: RunPlan, progress: bool, kill_after: int | None) -> FineTuneResult:
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from tasks.training.loop import train_loop_per_worker
    from tasks.training.product import write_model

    opts = plan.options
    cluster = opts.cluster
    use_gpu = _use_gpu(opts)
    gpus = cluster.gpus_per_worker if cluster.gpus_per_worker is not None else (1.0 if use_gpu else 0.0)
    resources = {"CPU": cluster.cpus_per_worker, **({"GPU": gpus} if gpus else {})}
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"plan": plan, "progress": progress, "kill_after": kill_after},
        scaling_config=ScalingConfig(num_workers=cluster.num_workers, use_gpu=bool(gpus),
                                     resources_per_worker=resources),
        run_config=RunConfig(name=plan.name, storage_path=plan.storage_path,
                             storage_filesystem=plan.storage_filesystem(),
                             failure_config=FailureConfig(max_failures=cluster.max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=opts.loop.keep_checkpoints)),
    )
    log.info("fine-tuning run %s (%s) in %s", plan.name, plan.model_version, plan.run_dir)
    try:
        result = trainer.fit()
    except UsageError:
        raise
    except Exception as err:  # Ray's TrainingFailedError wraps the workers' exceptions
        raise TrainingFailed(f"training run {plan.name} failed: {_reason(err)}") from err
    if result.checkpoint is None:
        raise TrainingFailed(f"training run {plan.name} ended without a checkpoint")
    with result.checkpoint.as_directory() as folder:
        written = write_model(plan, Path(folder))
    metrics = dict(result.metrics or {})
    return FineTuneResult(written.model_path, plan.model_version, plan.run_dir, metrics, written.pth_path,
                          plan.base_version, int(metrics.get("step", 0)))


def _use_gpu(opts: TrainOptions) -> bool:
    """base.device: cuda = GPUs; auto = GPUs when the cluster has some."""
    if opts.base.device != "auto":
        return opts.base.device == "cuda"
    import ray

    return ray.cluster_resources().get("GPU", 0) > 0


def _reason(err: BaseException) -> str:
    """The innermost worker error of a Ray Train failure, in one line."""
    seen = err
    while getattr(seen, "__cause__", None) is not None:
        seen = seen.__cause__
    text = str(seen).strip().splitlines()
    return f"{type(seen).__name__}: {text[-1] if text else ''}"
