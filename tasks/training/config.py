"""A fine-tuning run, defined once: the typed config `human3r train --config CONFIG.yaml` and the `finetune-model`
flow read. Defaults are the paper's recipe (the reference's `config/trian_human3r.yaml` and `train.py`): 40 epochs
of `4000 @ BEDLAM_Multi(...)` at batch 8 (500 iterations per epoch, 20,000 in all), AdamW at 1e-4 with 5 warm-up
epochs and a half-cosine to 1e-6, no accumulation, 4 views per sample over the 10 aspect-ratio buckets, bfloat16
autocast on GPUs, gradient checkpointing, seed 0, validation each epoch on 1000 held-out BEDLAM samples at 512x288
(seed 42).

Sections: `base` (the checkpoint that is tuned), `data` (the training mixture and its held-out split), `step`
(`tasks.training.step_options`: the step), `loop` (epochs, batch, accumulation, checkpoints, validation), `cluster`
(the Ray cluster and the workers), `tracking` (TensorBoard), `output` (where the run lives). Frozen pydantic models
in the style of `tasks.options`: unknown keys and bad values are one `OptionsError` line (exit 2 on the command
line), naming the key path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tasks.errors import OptionsError
from tasks.options import build, with_body_model
from tasks.training.data.options import BedlamSource, LabelsSource, Source
from tasks.training.step_options import StepOptions

VALIDATION_RESOLUTION = (512, 288)  # the reference's test set: 1000 @ BEDLAM_Multi(split='test', ..., seed=42)


class _Options(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BaseOptions(_Options):
    """The checkpoint that is fine-tuned, and the SMPL-X body model the losses pose."""

    checkpoint: str = Field("auto", description="Base weights: a .pth/.safetensors path, 'auto' ($HUMAN3R_CHECKPOINT, "
                                                "then the Hugging Face cache), 'hf:faneggg/human3r/<file>', or "
                                                "'untrained:<preset>[:seed]'. Must be readable on every node.")
    preset: str | None = Field(None, description="The preset the checkpoint must be (672S, 672B, 672L, 896L, tiny); "
                                                 "a checkpoint of another preset is refused. Empty: any.")
    body_model: str | None = Field(None, description="SMPL-X body model (SMPLX_NEUTRAL.npz or its folder), required: "
                                                     "the SMPL-X losses pose it. Empty = $HUMAN3R_BODY_MODEL.")
    precision: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="auto = bfloat16 autocast on GPUs that compute it natively (the reference's "
                            "mixed_precision='bf16'), float32 elsewhere; float32; bfloat16.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = one GPU per worker when the cluster "
                                                                       "has GPUs, else CPUs; cpu; cuda.")

    @model_validator(mode="before")
    @classmethod
    def _body_model(cls, data: Any) -> Any:
        return with_body_model(data)


class ValidationOptions(_Options):
    """The held-out split, evaluated with the training criterion (teacher-forced, no gradient) each epoch."""

    sources: tuple[Source, ...] | None = Field(None, description="Held-out sources; empty = each training source's "
                                                                 "held-out split (BEDLAM: test, a label build: val; "
                                                                 "one that has none is skipped).")
    samples: int = Field(1000, ge=1, description="Samples per derived held-out source (the reference: 1000).")
    resolution: tuple[int, int] = Field(VALIDATION_RESOLUTION, description="(W, H) of the derived held-out sources.")
    seed: int = Field(42, description="Seed of the derived held-out sources (the same samples every epoch).")
    max_batches: int | None = Field(None, ge=1, description="Stop after this many batches per worker (empty: all).")


def _default_sources() -> tuple[Source, ...]:
    return (BedlamSource(root="data/bedlam", samples=4000),)


class DataOptions(_Options):
    """What is trained on: sources mixed by weight (the typed form of `4000 @ BEDLAM_Multi(...) + ...`)."""

    sources: tuple[Source, ...] = Field(default_factory=_default_sources, min_length=1,
                                        description="Training sources: {source: bedlam|labels, root, samples, ...} "
                                                    "(tasks.training.data.options).")
    mixture: str | None = Field(None, description="The reference's string form instead of `sources`, e.g. "
                                                   "\"4000 @ BEDLAM_Multi(split='train', ROOT='/data/bedlam', ...)\".")
    validation: ValidationOptions | None = Field(ValidationOptions(), description="The held-out split; null = none.")
    loader_workers: int = Field(8, ge=0, description="DataLoader processes per training worker (the reference: 8).")

    @model_validator(mode="before")
    @classmethod
    def _mixture(cls, data: Any) -> Any:
        """`mixture:` (the string form) becomes `sources:`; both at once is an error."""
        if isinstance(data, dict) and data.get("mixture"):
            if data.get("sources"):
                raise ValueError("give either sources or mixture, not both")
            from tasks.training.data.mixture import parse_mixture

            data = {**data, "sources": [s.model_dump() for s in parse_mixture(data["mixture"]).sources]}
        return data

    @field_validator("sources")
    @classmethod
    def _same_shapes(cls, value: tuple[Source, ...]) -> tuple[Source, ...]:
        first = value[0]
        for other in value[1:]:
            if other.resolution != first.resolution or other.num_views != first.num_views:
                raise ValueError("every source needs the same resolution list and num_views "
                                 f"({other.source} at {other.root} differs from {first.source} at {first.root})")
        return value

    def held_out(self) -> tuple[Source, ...]:
        """The validation sources: the given ones, or each training source's held-out split (module doc)."""
        val = self.validation
        if val is None:
            return ()
        if val.sources is not None:
            return val.sources
        out = []
        for s in self.sources:
            split = "test" if isinstance(s, BedlamSource) else "val"
            out.append(type(s)(**{**s.model_dump(), "split": split, "samples": val.samples, "resolution": (
                val.resolution,), "seed": val.seed, "aug_crop": 0, "color_jitter": False}))
        return tuple(out)


class LoopOptions(_Options):
    """How long and how the loop runs (per worker: the effective batch is batch x accumulation x workers)."""

    epochs: int = Field(40, ge=1, description="Epochs; also the schedule's length (warm-up then half-cosine).")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimiser steps (the schedule keeps "
                                                          "its length: for smoke runs and toy tasks).")
    batch_size: int = Field(8, ge=1, description="Samples per batch per worker.")
    accumulation: int = Field(1, ge=1, description="Batches whose gradients are summed before one optimiser step.")
    seed: int = Field(0, description="Seed of the run: every rank's torch/numpy/python generators, and the samples of "
                                     "sources without their own seed (a sample is then a function of the seed, the "
                                     "epoch and its index, so a resumed run sees the same data).")
    checkpoint_every: int | None = Field(None, ge=1, description="Checkpoint every N optimiser steps (always at the "
                                                                 "end of each epoch and of the run).")
    keep_checkpoints: int = Field(2, ge=1, description="Checkpoints kept (the newest).")
    validate_every: int = Field(1, ge=1, description="Validate every N epochs (and after the last).")
    log_every: int = Field(10, ge=1, description="Optimiser steps between logged training metrics.")


class TrainClusterOptions(_Options):
    """Where the workers run (Ray Train: one DDP process per worker)."""

    ray_address: str | None = Field(None, description="An existing Ray cluster ('auto', 'host:6379', 'ray://...'); "
                                                      "empty = start a local one.")
    num_workers: int = Field(1, ge=1, description="Training workers (data-parallel processes: GPUs, or CPU "
                                                  "processes); part of the run's identity (it changes the batch).")
    cpus_per_worker: float = Field(1.0, gt=0, description="CPUs per worker (give the loader's processes room too).")
    gpus_per_worker: float | None = Field(None, ge=0, description="GPUs per worker; empty = 1 when base.device "
                                                                  "uses GPUs, else 0.")
    torch_threads: int | None = Field(None, ge=1, description="Intra-op threads per worker (empty: torch's).")
    max_failures: int = Field(3, ge=0, description="Worker-group restarts from the last checkpoint after a worker "
                                                   "or node dies.")


class TrackingOptions(_Options):
    """Metrics: TensorBoard event files (train loss and terms, lr, gradient norm, samples/s; validation)."""

    tensorboard: bool = Field(True, description="Write TensorBoard event files (rank 0).")
    logdir: str | None = Field(None, description="Their folder on rank 0's machine; empty = <run>/tensorboard for a "
                                                 "local output, ~/.cache/human3r/runs/<run>/tensorboard for s3:// "
                                                 "(copied into <run>/tensorboard at every checkpoint).")


class OutputOptions(_Options):
    """Where the run lives: Ray Train's storage (checkpoints) and the products (the fine-tuned model)."""

    root: str = Field("runs", description="A folder or s3://bucket/prefix (shared by every node of a multi-node "
                                          "run); the run is <root>/<name>.")
    name: str | None = Field(None, description="The run's name; empty = finetune-<preset>-<hash of what changes "
                                               "the weights>, so re-running a config resumes it.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and (not value or not all(c.isalnum() or c in "._-" for c in value)):
            raise ValueError("use letters, digits, '.', '_' and '-' only")
        return value


class TrainOptions(_Options):
    """A whole fine-tuning run (see the module doc)."""

    base: BaseOptions = BaseOptions()
    data: DataOptions = DataOptions()
    step: StepOptions = StepOptions()
    loop: LoopOptions = LoopOptions()
    cluster: TrainClusterOptions = TrainClusterOptions()
    tracking: TrackingOptions = TrackingOptions()
    output: OutputOptions = OutputOptions()

    @classmethod
    def for_labels(cls, build_dir: str | os.PathLike, *, base_checkpoint: str, steps: int | None = None,
                   body_model: str | None = None, preset: str | None = None, output_root: str | None = None,
                   name: str | None = None, overrides: dict | None = None) -> TrainOptions:
        """A run that fine-tunes `base_checkpoint` on the pseudo-label build at `build_dir` (its train split; its
        val split, when it has one, is the held-out set), the recipe's defaults otherwise. `steps`: stop after that
        many optimiser steps (`loop.max_steps`); `overrides`: nested sections merged over the result (e.g.
        ``{"loop": {"batch_size": 2}, "data": {"loader_workers": 0}}``; a `data.sources` list of one entry is
        merged into the build's source). Bad values: `OptionsError`."""
        source: dict[str, Any] = {"source": "labels", "root": os.path.abspath(os.fspath(build_dir))}
        data: dict[str, Any] = {"base": {"checkpoint": base_checkpoint, "preset": preset, "body_model": body_model},
                                "data": {"sources": [source]}, "loop": {"max_steps": steps}}
        if output_root is not None or name is not None:
            data["output"] = {k: v for k, v in (("root", output_root), ("name", name)) if v is not None}
        return options_from(_merge(data, overrides or {}), "for_labels")

    def effective_batch(self) -> int:
        """Samples per optimiser step: batch x accumulation x workers."""
        return self.loop.batch_size * self.loop.accumulation * self.cluster.num_workers

    @model_validator(mode="after")
    def _step(self) -> TrainOptions:
        from human3r.errors import ConfigError

        try:
            self.step.to_train_config(epochs=self.loop.epochs)
        except ConfigError as err:
            raise ValueError(str(err)) from None
        return self


def read_config(path: str | os.PathLike) -> TrainOptions:
    """The YAML file at `path` as `TrainOptions`; every problem is one `OptionsError` line naming the key."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise OptionsError(f"training config {p} does not exist (write one: see `human3r train --example`)")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise OptionsError(f"{p} is not valid YAML{at}: {getattr(err, 'problem', err)}") from None
    if not isinstance(data, dict):
        raise OptionsError(f"{p} must hold a mapping of sections (base, data, step, loop, cluster, tracking, output)")
    return options_from(data, str(p))


def _merge(into: dict, over: dict) -> dict:
    """`into` with `over` merged in, section by section (a one-entry `sources` list merges into the first)."""
    out = dict(into)
    for key, value in over.items():
        mine = out.get(key)
        if isinstance(value, dict) and isinstance(mine, dict):
            out[key] = _merge(mine, value)
        elif key == "sources" and isinstance(value, list | tuple) and len(value) == 1 and isinstance(mine, list) \
                and len(mine) == 1 and isinstance(value[0], dict):
            out[key] = [_merge(mine[0], value[0])]
        else:
            out[key] = value
    return out


def options_from(data: dict | TrainOptions, where: str = "config") -> TrainOptions:
    """`TrainOptions` from a dict (a YAML file, flow parameters); an `OptionsError` line on bad input."""
    if isinstance(data, TrainOptions):
        return data
    try:
        return build(TrainOptions, data)
    except OptionsError as err:
        raise OptionsError(f"{where}: {err}") from None


__all__ = ["BaseOptions", "DataOptions", "LabelsSource", "LoopOptions", "OutputOptions", "TrackingOptions",
           "TrainClusterOptions", "TrainOptions", "ValidationOptions", "options_from", "read_config"]
