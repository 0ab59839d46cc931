"""Resumable training state: what a checkpoint folder holds and how it is read back.

A checkpoint is one folder (Ray Train merges the workers' folders into one in the run's storage):

* ``trainable.safetensors``: the trained tensors (reference names; everything else is the base checkpoint's);
* ``optimizer.pt``: AdamW's state dict (tensors and numbers only: read with ``weights_only=True``);
* ``position.json``: optimiser steps done, the epoch and the batch index (in the epoch's sampler order) to go on
  from, and the last metrics;
* ``rng-<rank>.pt`` / ``rng-<rank>.json``: each rank's torch, numpy and python generator states.

Written by rank 0 except the generator states (every rank writes its own). A run resumed from a checkpoint goes on
exactly where it stopped: same data, same generators, same optimiser state, hence the same weights at the end.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from human3r.training.params import ParameterSets
from human3r.weights.keys import reference_key

TRAINABLE, OPTIMIZER, POSITION = "trainable.safetensors", "optimizer.pt", "position.json"


@dataclass(frozen=True)
class Position:
    """Where a run stands: `step` optimiser steps done; go on with batch `batch` of epoch `epoch`."""

    step: int = 0
    epoch: int = 0
    batch: int = 0
    metrics: dict = field(default_factory=dict)
    key: str = ""  # the run's key (`tasks.training.plan`): a checkpoint only resumes the run that wrote it


def trainable_tensors(model: nn.Module, sets: ParameterSets) -> dict[str, torch.Tensor]:
    """The trained tensors by reference name (float32, CPU, contiguous copies)."""
    trained = set(sets.trainable)
    return {reference_key(k): p.detach().float().cpu().contiguous().clone() for k, p in model.named_parameters()
            if reference_key(k) in trained}


def save_state(folder: Path, *, rank: int, model: nn.Module, sets: ParameterSets,
               optimizer: torch.optim.Optimizer, position: Position) -> None:
    """Write this rank's part of a checkpoint into `folder` (module doc)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        save_file(trainable_tensors(model, sets), str(folder / TRAINABLE))
        torch.save(optimizer.state_dict(), folder / OPTIMIZER)
        (folder / POSITION).write_text(json.dumps(asdict(position), indent=1) + "\n")
    np_state = np.random.get_state()
    torch.save({"torch": torch.get_rng_state(), "numpy": torch.from_numpy(np_state[1].astype(np.int64))},
               folder / f"rng-{rank}.pt")
    py_state = random.getstate()
    (folder / f"rng-{rank}.json").write_text(json.dumps({
        "numpy": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }))


def load_state(folder: Path, *, rank: int, model: nn.Module, optimizer: torch.optim.Optimizer) -> Position:
    """Read a checkpoint written by `save_state` into `model` (the trained tensors), `optimizer` and this rank's
    generators; returns where to go on from."""
    from safetensors.torch import load_file

    tensors = load_file(str(folder / TRAINABLE))
    with torch.no_grad():
        for name, param in model.named_parameters():
            key = reference_key(name)
            if key in tensors:
                param.copy_(tensors[key].to(param.dtype))
    optimizer.load_state_dict(torch.load(folder / OPTIMIZER, weights_only=True, map_location="cpu"))
    rng_file = folder / f"rng-{rank}.pt"
    if rng_file.exists():  # a rank the checkpoint did not have (more workers than before) keeps its fresh seeds
        rng = torch.load(rng_file, weights_only=True)
        extra = json.loads((folder / f"rng-{rank}.json").read_text())
        torch.set_rng_state(rng["torch"])
        name, pos, has_gauss, cached = extra["numpy"]
        np.random.set_state((name, rng["numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))
        version, internal, gauss = extra["python"]
        random.setstate((version, tuple(internal), gauss))
    return Position(**json.loads((folder / POSITION).read_text()))


def recorded_keys(run_dir: str) -> set[str]:
    """The run keys the checkpoints of a local run folder record (empty for a new or remote folder)."""
    if "://" in run_dir:
        return set()
    keys = set()
    for position in Path(run_dir).glob(f"checkpoint_*/{POSITION}"):
        try:
            keys.add(json.loads(position.read_text()).get("key", ""))
        except (OSError, ValueError):
            continue
    return keys


def seed_everything(seed: int) -> None:
    """torch, numpy and python generators of this process."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
