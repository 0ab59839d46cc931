"""Our checkpoint format: ``<name>.safetensors`` (tensors) + ``<name>.json`` (config, aliases, model version).

* Tensors are stored under their **reference names** (:mod:`human3r.weights.keys`), the names official files use,
  so a converted file and the file it came from list the same keys, and both go through the same strict check.
* DPT alias keys (``scratch.layer_rn.{i}`` is the same tensor as ``scratch.layer{i+1}_rn``) are stored once; the
  JSON maps each alias to its canonical key and reading restores the alias as the same tensor.
* The JSON records ``format`` / ``format_version``, the preset, the ``model_version`` (a converted file keeps the
  dataset key of the file it came from), the sha256 of the .safetensors file (a file changed after writing is
  refused), where it came from, and the full :class:`Human3RConfig`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from human3r.config import Human3RConfig
from human3r.errors import CheckpointError, ConfigError
from human3r.model import Human3R
from human3r.weights.identity import atomic_write_text, file_sha256, preset_of
from human3r.weights.identity import model_version as version_of_file
from human3r.weights.keys import alias_groups, to_reference_names

__all__ = ["FORMAT", "FORMAT_VERSION", "SafetensorsCheckpoint", "read_safetensors", "save_checkpoint"]

FORMAT, FORMAT_VERSION = "human3r-safetensors", 1
_SAFETENSORS_PIP = "pip install safetensors==0.8.0"


def _safetensors_torch():
    try:
        import safetensors.torch
    except ImportError as err:
        raise ImportError(f"reading and writing .safetensors checkpoints needs safetensors: {_SAFETENSORS_PIP}"
                          ) from err
    return safetensors.torch


def _sidecar(path: Path) -> tuple[Path, Path]:
    """(weights.safetensors, weights.json) for either file name."""
    stem = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
    return stem.with_suffix(".safetensors"), stem.with_suffix(".json")


def save_checkpoint(
    model: Human3R, path: str | os.PathLike, *, model_version: str | None = None, source: dict | None = None
) -> Path:
    """Write ``<path>.safetensors`` + ``<path>.json``; returns the .safetensors path.

    ``model_version`` (default: derived from the file's sha256) and ``source`` (e.g. the official file and its
    sha256) are recorded, so a converted checkpoint keeps the dataset key of the file it came from.
    """
    save_file = _safetensors_torch().save_file
    weights_path, json_path = _sidecar(Path(path))
    config: Human3RConfig = model.cfg
    aliases = {alias: group[0] for group in alias_groups(model) for alias in group[1:]}
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in to_reference_names(model.state_dict()).items()
               if k not in aliases}
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = weights_path.with_name(f".{weights_path.name}.tmp")
    save_file(tensors, str(tmp), metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION)})
    os.replace(tmp, weights_path)
    sha = file_sha256(weights_path)
    preset = preset_of(config)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "preset": preset,
        "model_version": model_version or version_of_file(preset, sha),
        "weights_file": weights_path.name,
        "weights_sha256": sha,
        "aliases": aliases,
        "source": source or {},
        "config": config.to_dict(),
    }
    atomic_write_text(json_path, json.dumps(meta, indent=1) + "\n")
    return weights_path


@dataclass(frozen=True)
class SafetensorsCheckpoint:
    """A checkpoint in our format, described by its JSON (tensors are read on demand)."""

    weights_path: Path  # the .safetensors file
    json_path: Path  # its description
    config: Human3RConfig  # the network it is for
    model_version: str | None  # as recorded (None: derive it from the sha256)
    weights_sha256: str | None  # as recorded when written
    aliases: dict[str, str] = field(default_factory=dict)  # alias key -> canonical key (reference names)

    def check_sha256(self, sha: str) -> None:
        """Refuse a .safetensors file whose hash is not the one recorded when it was written."""
        recorded = self.weights_sha256
        if recorded and recorded != sha:
            raise CheckpointError(
                f"{self.weights_path} changed after it was written (sha256 {sha[:16]}..., its JSON records "
                f"{recorded[:16]}...); its recorded model version would be wrong. Re-run `human3r weights convert`."
            )

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor, reference-named, with the alias keys restored as the same tensor."""
        load_file = _safetensors_torch().load_file
        try:
            sd = load_file(str(self.weights_path), device="cpu")
        except Exception as err:  # safetensors raises its own error types for truncated / foreign files
            raise CheckpointError(f"cannot read {self.weights_path}: {err}. Re-run the conversion.") from err
        return self._with_aliases(sd)

    def shapes(self, *, with_values: Collection[str] = ()) -> dict[str, torch.Tensor]:
        """Every tensor as a meta tensor of its stored shape, except the keys in ``with_values``, which are read.

        For a strict check that reads (almost) no tensor data: pass the alias keys, whose values are compared.
        """
        safe_open = _safetensors_torch().safe_open
        try:
            with safe_open(str(self.weights_path), "pt") as f:
                sd = {
                    k: f.get_tensor(k) if k in with_values else torch.empty(f.get_slice(k).get_shape(), device="meta")
                    for k in f.keys()  # noqa: SIM118 (safe_open is not a mapping)
                }
        except Exception as err:  # safetensors raises its own error types for truncated / foreign files
            raise CheckpointError(f"cannot read {self.weights_path}: {err}. Re-run the conversion.") from err
        return self._with_aliases(sd)

    def _with_aliases(self, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        for alias, canonical in self.aliases.items():
            if canonical in sd and alias not in sd:
                sd[alias] = sd[canonical]
        return sd


def read_safetensors(path: str | os.PathLike) -> SafetensorsCheckpoint:
    """Read and validate the JSON of a checkpoint in our format (``path``: its .safetensors or its .json)."""
    weights_path, json_path = _sidecar(Path(path))
    if not json_path.is_file():
        raise CheckpointError(
            f"{weights_path} has no {json_path.name} next to it; our safetensors checkpoints are written with their "
            "JSON config by `human3r weights convert` / save_checkpoint. Re-run the conversion."
        )
    try:
        meta: Any = json.loads(json_path.read_text())
    except ValueError as err:
        raise CheckpointError(f"{json_path} is not valid JSON: {err}. Re-run the conversion.") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        found = meta if isinstance(meta, dict) else {}
        raise CheckpointError(
            f"{json_path} is not a {FORMAT} v{FORMAT_VERSION} description (format={found.get('format')!r}, "
            f"version={found.get('format_version')!r}). Re-run `human3r weights convert`."
        )
    if not weights_path.is_file():
        raise CheckpointError(f"{json_path} describes {weights_path}, which does not exist. Re-run the conversion.")
    try:
        config = Human3RConfig.from_dict(meta["config"])
    except (ConfigError, KeyError) as err:
        raise CheckpointError(f"{weights_path}: its JSON config is invalid: {err}. Re-run the conversion.") from err
    return SafetensorsCheckpoint(weights_path, json_path, config, meta.get("model_version") or None,
                                 meta.get("weights_sha256") or None, dict(meta.get("aliases") or {}))
