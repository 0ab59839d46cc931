"""Where a training worker runs: under Ray Train (`RayContext`) or in this process alone (`LocalContext`).

The loop (`tasks.training.loop`) asks its context for its rank, world size and device, the checkpoint to resume
from, to wrap the step for data parallelism and to report metrics with an optional checkpoint folder. Under Ray
Train: `ray.train.get_context()`, `ray.train.get_checkpoint()`, `ray.train.torch.prepare_model` (DDP over gloo on
CPUs, NCCL on GPUs; `find_unused_parameters`, since a batch without people leaves the SMPL-X heads without
gradients) and `ray.train.report(metrics, checkpoint=Checkpoint.from_directory(folder))`. Locally (tests, tools):
rank 0 of 1, checkpoints copied into a folder when one is given.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn


class LocalContext:
    """One process, no Ray: rank 0 of 1. `checkpoints`: a folder receiving each reported checkpoint as
    `<checkpoints>/checkpoint_<n>` (None: not kept); `resume_from`: a checkpoint folder to start from."""

    rank, world_size = 0, 1

    def __init__(self, device: str = "cpu", checkpoints: Path | None = None, resume_from: Path | None = None):
        self.device = torch.device(device)
        self.checkpoints, self.resume_from = checkpoints, resume_from
        self.reports: list[dict] = []

    @contextlib.contextmanager
    def restored(self) -> Iterator[Path | None]:
        yield self.resume_from

    def prepare(self, module: nn.Module) -> nn.Module:
        return module.to(self.device)

    def report(self, metrics: dict, checkpoint: Path | None = None) -> None:
        self.reports.append(dict(metrics))
        if checkpoint is not None and self.checkpoints is not None:
            shutil.copytree(checkpoint, self.checkpoints / f"checkpoint_{len(self.reports):06d}", dirs_exist_ok=True)

    @property
    def attempt_restored(self) -> bool:
        return self.resume_from is not None


class RayContext:
    """A Ray Train worker (inside `train_loop_per_worker`)."""

    def __init__(self):
        import ray.train
        import ray.train.torch

        ctx = ray.train.get_context()
        self.rank, self.world_size = ctx.get_world_rank(), ctx.get_world_size()
        device = ray.train.torch.get_device()
        self.device = device[0] if isinstance(device, list) else device
        self._checkpoint = ray.train.get_checkpoint()

    @property
    def attempt_restored(self) -> bool:
        return self._checkpoint is not None

    @contextlib.contextmanager
    def restored(self) -> Iterator[Path | None]:
        if self._checkpoint is None:
            yield None
            return
        with self._checkpoint.as_directory() as folder:
            yield Path(folder)

    def prepare(self, module: nn.Module) -> nn.Module:
        import ray.train.torch

        return ray.train.torch.prepare_model(module, parallel_strategy_kwargs={"find_unused_parameters": True})

    def report(self, metrics: dict, checkpoint: Path | None = None) -> None:
        import ray.train

        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(str(checkpoint))
                         if checkpoint is not None else None)


def mean_over_workers(values: torch.Tensor) -> torch.Tensor:
    """`values` averaged over the workers (sum / world size) when a process group is up; else themselves."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        values = values.clone()
        dist.all_reduce(values)
        values /= dist.get_world_size()
    return values
