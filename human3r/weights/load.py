"""From a spec to a ready model: resolve, read the configuration, build on meta, load strictly, attach the identity.

:func:`load_model` returns the model; :func:`inspect_weights` gives the identity (and configuration) without
building anything; :func:`verify_checkpoint` runs the strict check on a file without loading its tensors.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import torch

from human3r.config import Human3RConfig
from human3r.model import Human3R
from human3r.weights.identity import (
    ModelIdentity,
    file_sha256,
    forget_sha256,
    model_version,
    preset_of,
    untrained_identity,
)
from human3r.weights.keys import alias_groups
from human3r.weights.official import read_official_checkpoint
from human3r.weights.reference_config import config_from_constructor
from human3r.weights.safetensors_format import SafetensorsCheckpoint, read_safetensors
from human3r.weights.spec import is_safetensors_path, resolve_spec
from human3r.weights.strict import (
    LoadReport,
    build_on_meta,
    check_state_dict,
    load_state_dict,
    prepare_for_inference,
)
from human3r.weights.untrained import untrained_state_dict

__all__ = ["inspect_weights", "load_model", "verify_checkpoint"]

logger = logging.getLogger(__name__)


def load_model(
    spec: str, *, preset: str | None = None, device: str | torch.device = "cpu", precision: str = "float32",
) -> Human3R:
    """Build Human3R and load the weights ``spec`` names; returns the model in eval mode without gradients.

    The model's ``identity`` attribute is its :class:`ModelIdentity` (model version, sha256, config, load report).

    spec:
      * a path: official ``.pth`` (reference training checkpoint) or our ``.safetensors`` (+ ``.json``);
      * ``auto``: ``$HUMAN3R_CHECKPOINT``, else the Hugging Face cache (``preset``'s file first);
      * ``hf:faneggg/human3r/<file>``: download (cached) with huggingface_hub;
      * ``untrained:<preset>[:seed]``: deterministic random weights, for smoke runs only.

    preset: for official files, the variant whose internals the constructor string does not spell out (needed
    for ``tiny``; the released variants follow from the string); for ``auto``, which file to prefer.

    precision: the one numeric knob: ``float32`` (parity), ``bfloat16``, ``float16`` or ``auto`` (measured on
    this machine for ``device``), see :mod:`human3r.precision` and :meth:`Human3R.set_precision`. The weights
    are read as float32; a low precision then stores the transformer / DPT weights in that dtype and runs the
    forward under autocast, keeping the parts where a percent matters float32. ``model.compute_dtype`` says
    which dtype was chosen (what ``auto`` resolved to).
    """
    resolved = resolve_spec(spec, preset=preset, download=True)
    if resolved.untrained is not None:
        name, seed = resolved.untrained
        model = build_on_meta(Human3RConfig.preset(name))
        report = load_state_dict(model, untrained_state_dict(model, seed), f"untrained:{name}:{seed}")
        logger.warning("using UNTRAINED random weights (%s, seed %d): outputs are meaningless", name, seed)
        identity = dataclasses.replace(untrained_identity(spec, name, seed), report=report)
    else:
        path = resolved.path
        logger.info("loading Human3R weights %s (spec %r from %s)", path, spec, resolved.origin)
        if resolved.is_safetensors:
            ck = read_safetensors(path)
            sha = _checked_sha256(ck)
            model = build_on_meta(ck.config)
            report = load_state_dict(model, ck.tensors(), str(ck.weights_path))
            identity = _safetensors_identity(spec, ck, sha, report)
        else:
            official = read_official_checkpoint(path)
            config = config_from_constructor(official.constructor, preset, path)
            model = build_on_meta(config)
            report = load_state_dict(model, official.state_dict, str(path))
            identity = _official_identity(spec, path, config, file_sha256(path), report)
    prepare_for_inference(model, device, torch.float32)
    model.set_precision(precision)
    model.identity = identity
    return model


def inspect_weights(spec: str, *, preset: str | None = None, download: bool = False) -> ModelIdentity:
    """Identity and configuration of the weights ``spec`` names, without building the network.

    Reads only the configuration (an official file's pickle is memory-mapped, not loaded). ``download`` lets
    ``hf:`` specs that are not cached yet be downloaded.
    """
    resolved = resolve_spec(spec, preset=preset, download=download)
    if resolved.untrained is not None:
        return untrained_identity(spec, *resolved.untrained)
    path = resolved.path
    if resolved.is_safetensors:
        ck = read_safetensors(path)
        return _safetensors_identity(spec, ck, _checked_sha256(ck), None)
    official = read_official_checkpoint(path)
    config = config_from_constructor(official.constructor, preset, path)
    return _official_identity(spec, path, config, file_sha256(path), None)


def verify_checkpoint(path: str | os.PathLike, *, preset: str | None = None) -> ModelIdentity:
    """Strictly check a weights file against the network it describes, without loading its tensors.

    Raises CheckpointError listing every mismatch; returns the identity (sha256 freshly computed) with its report.
    """
    p, spec = Path(path), str(path)
    if is_safetensors_path(p):
        ck = read_safetensors(p)
        forget_sha256(ck.weights_path)
        sha = _checked_sha256(ck)
        model = build_on_meta(ck.config)
        aliases = {k for group in alias_groups(model) for k in group}
        report = check_state_dict(model, ck.shapes(with_values=aliases), str(ck.weights_path))
        return _safetensors_identity(spec, ck, sha, report)
    official = read_official_checkpoint(p)
    config = config_from_constructor(official.constructor, preset, p)
    report = check_state_dict(build_on_meta(config), official.state_dict, str(p))
    return _official_identity(spec, p, config, file_sha256(p, use_cache=False), report)


def _checked_sha256(ck: SafetensorsCheckpoint) -> str:
    sha = file_sha256(ck.weights_path)
    ck.check_sha256(sha)
    return sha


def _safetensors_identity(
    spec: str, ck: SafetensorsCheckpoint, sha: str, report: LoadReport | None
) -> ModelIdentity:
    preset = preset_of(ck.config)
    version = ck.model_version or model_version(preset, sha)
    return ModelIdentity(spec, ck.weights_path.name, preset, version, ck.config, sha, str(ck.weights_path),
                         report=report)


def _official_identity(
    spec: str, path: Path, config: Human3RConfig, sha: str, report: LoadReport | None
) -> ModelIdentity:
    preset = preset_of(config)
    return ModelIdentity(spec, path.name, preset, model_version(preset, sha), config, sha, str(path), report=report)
