"""The fine-tuned model, a product: the whole network (the base checkpoint's weights with the trained tensors of the
final checkpoint put in) in our safetensors format, with an identity naming the base and the run, and the
reference's ``.pth`` layout beside it.

``<run>/model/finetuned.safetensors`` + ``finetuned.json``: `model_version` ``finetune-<base model_version>-<key>``
(`tasks.training.plan`), ``source`` = {base: spec, model_version, sha256; run: name, key, steps}. So
`human3r.load_model(path)`, ``--checkpoint path`` and the Ray actors load it, and every row made with it carries
that model_version. ``<run>/model/finetuned.pth``: ``{"model": state_dict (reference key names), "args": {"model":
constructor string}, "epoch": ..., "steps": ...}``, what the reference's tools read (``human3r weights verify``).
For an ``s3://`` run the files are written locally, then copied into the run's storage.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from tasks.training.plan import RunPlan
from tasks.training.state import POSITION, TRAINABLE

MODEL_DIR, MODEL_NAME = "model", "finetuned"


@dataclass(frozen=True)
class WrittenModel:
    model_path: str  # the .safetensors (path or URI)
    pth_path: str | None  # the .pth export


def finetuned_network(plan: RunPlan, checkpoint: Path):
    """The base network (float32, CPU) with the checkpoint's trained tensors in; its identity is the base's."""
    from safetensors.torch import load_file

    from human3r.weights import load_model
    from human3r.weights.keys import reference_key

    model = load_model(plan.options.base.checkpoint, preset=plan.options.base.preset)
    tensors = load_file(str(checkpoint / TRAINABLE))
    seen = set()
    with torch.no_grad():
        for name, param in model.named_parameters():
            key = reference_key(name)
            if key in tensors:
                param.copy_(tensors[key])
                seen.add(key)
    missing = sorted(set(tensors) - seen)
    if missing:
        raise ValueError(f"checkpoint {checkpoint} holds tensors the network lacks: {missing[:5]}")
    return model


def write_model(plan: RunPlan, checkpoint: Path, *, pth: bool = True) -> WrittenModel:
    """Write the fine-tuned model of `checkpoint` (a final checkpoint folder) into ``<run>/model/``."""
    import json

    from human3r.weights import save_checkpoint

    model = finetuned_network(plan, checkpoint)
    position = json.loads((checkpoint / POSITION).read_text())
    source = {"base": {"spec": plan.options.base.checkpoint, "model_version": plan.base_version,
                       "sha256": plan.base_sha256},
              "run": {"name": plan.name, "key": plan.key, "steps": position["step"], "epoch": position["epoch"]}}
    remote = "://" in plan.run_dir
    local_dir = Path(tempfile.mkdtemp(prefix="h3r-model-")) if remote else Path(plan.run_dir) / MODEL_DIR
    try:
        path = save_checkpoint(model, local_dir / MODEL_NAME, model_version=plan.model_version, source=source)
        pth_path = None
        if pth:
            pth_path = local_dir / f"{MODEL_NAME}.pth"
            write_reference_pth(model, pth_path, position)
        if not remote:
            return WrittenModel(str(path), str(pth_path) if pth_path else None)
        _upload(local_dir, plan.storage_filesystem(), f"{plan.storage_path}/{plan.name}/{MODEL_DIR}")
        target = f"{plan.run_dir}/{MODEL_DIR}"
        return WrittenModel(f"{target}/{path.name}", f"{target}/{pth_path.name}" if pth_path else None)
    finally:
        if remote:
            shutil.rmtree(local_dir, ignore_errors=True)


def write_reference_pth(model, path: Path, position: dict) -> Path:
    """The reference's training-checkpoint layout: {"model": state dict with reference key names (aliases
    included, as the reference saves them), "args": {"model": constructor string}, "epoch", "steps"}."""
    from human3r.weights.keys import to_reference_names
    from human3r.weights.reference_config import reference_constructor

    state = {k: v.detach().cpu().contiguous() for k, v in to_reference_names(model.state_dict()).items()}
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"model": state, "args": {"model": reference_constructor(model.cfg)}, "epoch": position["epoch"],
                "steps": position["step"]}, tmp)
    os.replace(tmp, path)
    return path


def _upload(folder: Path, filesystem, path: str) -> None:
    """Copy the files of `folder` to `path` inside `filesystem` (the run's s3:// storage)."""
    from pyarrow import fs

    filesystem.create_dir(path, recursive=True)
    for item in sorted(folder.iterdir()):
        fs.copy_files(str(item), f"{path}/{item.name}", destination_filesystem=filesystem)
