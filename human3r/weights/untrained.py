"""Untrained weights for `untrained:<preset>[:seed]` smoke runs: deterministic, and shaped like a real run.

PyTorch's default initialisation makes an untrained Human3R degenerate: the detection logits are nearly constant,
so every grid cell survives NMS and a frame "contains" a hundred people. Smoke runs should look like real runs
(a few people per frame, non-uniform attention, finite pointmaps), so untrained weights follow the rules of the
parity fixtures (tests/fixtures/parity/README.md): every tensor is a function of deterministic per-key noise
``randn(shape, seed=crc32(salt + key))`` by the key's role, keyed by the reference name. With seed 0 (salt "") the
`tiny` preset gets exactly the parity pack's weights, so the untrained tiny model is the network the parity tests
verify. The weights go through the same strict load as a file's.
"""

from __future__ import annotations

import math
import re
import zlib

import torch
from torch import nn

from human3r.weights.keys import alias_groups, module_keys

__all__ = ["CLASSIFIER_OVERRIDES", "synthetic_tensor", "untrained_state_dict"]

# the detection classifier's last layer: more contrast and a negative bias, so a frame has a handful of detections
CLASSIFIER_OVERRIDES = {
    "downstream_head.mlp_classif.2.weight": ("scale", 0.5),
    "downstream_head.mlp_classif.2.bias": ("const", -5.84),
}
_TOKENS = re.compile(
    r"^(pose_token|register_tokens\.weight|masked_img_token|masked_ray_map_token|masked_smpl_token"
    r"|mhmr_masked_smpl_token|mhmr_masked_img_token|pose_retriever\.mem|pose_retriever\.masked_token"
    r"|backbone\.encoder\.cls_token|backbone\.encoder\.pos_embed|backbone\.encoder\.mask_token)$"
)
_ALIAS = re.compile(r"^(.*)\.scratch\.layer_rn\.(\d+)\.weight$")
_CONV_TRANSPOSE = re.compile(r"\.act_postprocess\.[01]\.1\.weight$")
_DPT_OUT = re.compile(r"\.dpt_(self|cross|rgb)\.head\.4\.weight$")
_NORM_WEIGHT = re.compile(r"norm[^.]*\.weight$")


def _noise(key: str, shape: tuple[int, ...], salt: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(zlib.crc32((salt + key).encode()))
    return torch.randn(shape, generator=g, dtype=torch.float32)


def synthetic_tensor(key: str, shape: tuple[int, ...], salt: str = "") -> torch.Tensor:
    """The float32 value of one state-dict entry (rules in order: overrides, aliases, SMPL buffers, LayerScale,
    LayerNorm, token tables, other 1-D, DPT output convs, weights with unit gain 1/sqrt(fan_in))."""
    alias = _ALIAS.match(key)
    if alias is not None:  # the same tensor as `layer{i+1}_rn`
        key = f"{alias.group(1)}.scratch.layer{int(alias.group(2)) + 1}_rn.weight"
    n = _noise(key, shape, salt)
    if key in CLASSIFIER_OVERRIDES:
        kind, value = CLASSIFIER_OVERRIDES[key]
        return torch.full(shape, value) if kind == "const" else value * n
    if key.endswith("downstream_head.init_body_pose"):
        return torch.tensor([1.0, 0, 0, 1, 0, 0]).repeat(shape[-1] // 6).reshape(shape) + 0.1 * n
    if key.endswith("downstream_head.init_betas"):
        return 0.5 * n
    if key.endswith("downstream_head.init_betas_kid"):
        betas = synthetic_tensor(key[: -len("_kid")], (shape[0], shape[1] - 1), salt)
        return torch.cat([betas, torch.zeros(shape[0], 1)], 1)
    if key.endswith("downstream_head.init_expression"):
        return torch.zeros(shape)
    if key.endswith("downstream_head.init_cam"):
        return n
    if key.endswith((".ls1.gamma", ".ls2.gamma")):
        return 0.1 + 0.02 * n
    if len(shape) == 1 and _NORM_WEIGHT.search(key):
        return 1.0 + 0.1 * n
    if _TOKENS.match(key):
        return n
    if len(shape) <= 1:
        return 0.02 * n
    fan_in = shape[0] if _CONV_TRANSPOSE.search(key) else math.prod(shape[1:])
    return (0.25 if _DPT_OUT.search(key) else 1.0) * n / math.sqrt(fan_in)


def untrained_state_dict(model: nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """Reference-named state dict of synthetic weights for every entry of ``model`` (which may be meta-built).

    Seed 0 uses salt '', any other seed salt 'seed<N>:'. Alias keys share their canonical key's tensor; entries
    that are not floating point keep the model's own value.
    """
    salt = "" if seed == 0 else f"seed{seed}:"
    entries = model.state_dict(keep_vars=True)
    out: dict[str, torch.Tensor] = {}
    for ref, key in module_keys(model).items():
        value = entries[key]
        if value.is_floating_point():
            out[ref] = synthetic_tensor(ref, tuple(value.shape), salt).to(value.dtype)
        else:
            out[ref] = value.detach()
    for group in alias_groups(model):
        for alias in group[1:]:
            out[alias] = out[group[0]]
    return out
