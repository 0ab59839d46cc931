"""Rank 0's view of a run: TensorBoard event files and the progress lines.

Events (`torch.utils.tensorboard.SummaryWriter`, the `tensorboard` package): every optimiser step's ``train/loss``,
the loss terms, ``train/lr``, ``train/grad_norm``, ``train/samples_per_s``, and each validation's ``val/*``, by
optimiser step. Their folder: `tracking.logdir`, else ``<run>/tensorboard`` for a local run, else (an ``s3://``
run) ``~/.cache/human3r/runs/<name>/tensorboard``, copied into every checkpoint (``tensorboard/``) so the run's
storage holds them too. Progress: one line per `loop.log_every` steps on stdout (Ray forwards it to the driver):
``step 40/200 (20%) epoch 1  loss 1.2345  lr 2.0e-05  4.1 samples/s  eta 3m10s``.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from tasks.training.plan import RunPlan


def logdir_of(plan: RunPlan) -> Path | None:
    """Where rank 0 writes the events (module doc); None when tracking is off."""
    tracking = plan.options.tracking
    if not tracking.tensorboard:
        return None
    if tracking.logdir:
        return Path(tracking.logdir).expanduser()
    if "://" not in plan.run_dir:
        return Path(plan.run_dir) / "tensorboard"
    return Path("~/.cache/human3r/runs").expanduser() / plan.name / "tensorboard"


class Tracker:
    """Events and progress of rank 0 (`enabled` False: does nothing)."""

    def __init__(self, plan: RunPlan, *, enabled: bool, progress: bool, total: int):
        self.enabled, self.progress, self.total = enabled, progress, total
        self.started, self.first_step = time.monotonic(), None
        self.logdir = logdir_of(plan) if enabled else None
        self.copy_events = self.logdir is not None and "://" in plan.run_dir and not plan.options.tracking.logdir
        self.writer = None
        if self.logdir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.logdir.mkdir(parents=True, exist_ok=True)
            self.writer = SummaryWriter(str(self.logdir))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(key, value, step)

    def step(self, step: int, epoch: int, values: dict[str, float], *, log_now: bool) -> None:
        """One optimiser step's training metrics."""
        if not self.enabled:
            return
        self.first_step = self.first_step if self.first_step is not None else (step - 1, time.monotonic())
        self.scalars(step, values)
        if self.progress and log_now:
            done0, t0 = self.first_step
            rate = (step - done0) / max(time.monotonic() - t0, 1e-9)
            eta = (self.total - step) / rate if rate > 0 else 0.0
            print(f"step {step}/{self.total} ({100 * step / self.total:.0f}%) epoch {epoch}  "
                  f"loss {values['train/loss']:.4f}  lr {values['train/lr']:.1e}  "
                  f"{values['train/samples_per_s']:.1f} samples/s  eta {int(eta // 60)}m{int(eta % 60):02d}s",
                  file=sys.stdout, flush=True)

    def flush_into(self, checkpoint: Path) -> None:
        """Flush the events; for an s3:// run, copy them into the checkpoint folder."""
        if self.writer is not None:
            self.writer.flush()
            if self.copy_events:
                shutil.copytree(self.logdir, checkpoint / "tensorboard", dirs_exist_ok=True)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
