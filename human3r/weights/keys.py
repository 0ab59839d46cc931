"""State-dict key names: the reference's (every checkpoint file) and the module's, and the keys inference never reads.

Checkpoint files name tensors as the reference model does, with the encoder and decoder parts at the top level:
``enc_blocks.0.attn.qkv.weight``, ``dec_blocks_state.3.norm1.weight``, ``pose_retriever.mem``. So do the official
``.pth`` files, our ``.safetensors`` files, ``tests/fixtures/parity/keys.txt`` and the reference listings in
``tests/fixtures/reference``. :class:`~human3r.model.Human3R` registers those parts as its ``encoder`` / ``decoder``
submodules, so its own ``state_dict()`` says ``encoder.enc_blocks.0...`` and ``decoder.dec_blocks_state.3...``.

The mapping is this module and nothing else: a module key becomes a reference key by dropping one of
:data:`PART_PREFIXES`; every other key is spelled the same in both. The reverse direction is read off the model
(:func:`module_keys`), so it follows the module tree wherever it changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from torch import nn

__all__ = [
    "PART_PREFIXES",
    "UNUSED_KEY_PREFIXES",
    "alias_groups",
    "is_unused",
    "module_keys",
    "reference_key",
    "to_module_names",
    "to_reference_names",
]

T = TypeVar("T")

PART_PREFIXES = ("encoder.", "decoder.")  # module prefixes the reference keys do not have

# Reference keys (prefixes) the released checkpoints hold but inference never reads: the ray-map encoder, the
# training-time padding tokens, the DINOv2 mask token, two SMPL init buffers and each DPT head's unused last
# residual unit. A file may carry or lack them; they are accepted, listed in the LoadReport, and zero-filled.
UNUSED_KEY_PREFIXES: tuple[str, ...] = (
    "patch_embed_ray_map.",
    "enc_blocks_ray_map.",
    "enc_norm_ray_map.",
    "masked_img_token",
    "masked_ray_map_token",
    "masked_smpl_token",
    "mhmr_masked_smpl_token",
    "mhmr_masked_img_token",
    "backbone.encoder.mask_token",
    "downstream_head.init_betas_kid",
    "downstream_head.init_cam",
    "downstream_head.dpt_self.scratch.refinenet4.resConfUnit1.",
    "downstream_head.dpt_cross.scratch.refinenet4.resConfUnit1.",
    "downstream_head.dpt_rgb.scratch.refinenet4.resConfUnit1.",
)


def reference_key(module_key: str) -> str:
    """``encoder.enc_blocks.0.norm1.weight`` -> ``enc_blocks.0.norm1.weight``; other keys unchanged."""
    for prefix in PART_PREFIXES:
        if module_key.startswith(prefix):
            return module_key[len(prefix):]
    return module_key


def to_reference_names(state_dict: Mapping[str, T]) -> dict[str, T]:
    """A module-named state dict (``model.state_dict()``) with reference names, in the same order."""
    out = {reference_key(k): v for k, v in state_dict.items()}
    assert len(out) == len(state_dict), "two module keys map to one reference key"
    return out


def module_keys(model: nn.Module) -> dict[str, str]:
    """Reference key -> module key, for every state-dict entry of ``model`` (in state-dict order)."""
    return {reference_key(k): k for k in model.state_dict(keep_vars=True)}


def to_module_names(state_dict: Mapping[str, T], model: nn.Module) -> dict[str, T]:
    """A reference-named state dict with ``model``'s names; keys the model does not have are kept as they are."""
    names = module_keys(model)
    return {names.get(k, k): v for k, v in state_dict.items()}


def is_unused(key: str) -> bool:
    """True for reference keys inference never reads (:data:`UNUSED_KEY_PREFIXES`)."""
    return any(key == p or key.startswith(p) for p in UNUSED_KEY_PREFIXES)


def alias_groups(model: nn.Module) -> list[tuple[str, ...]]:
    """Reference keys that name one tensor of ``model``, grouped; the first key of a group is the canonical one.

    In Human3R these are the DPT heads' ``scratch.layer_rn.{i}`` and ``scratch.layer{i+1}_rn`` (4 per head).
    """
    groups: dict[int, list[str]] = {}
    for key, value in model.state_dict(keep_vars=True).items():
        groups.setdefault(id(value), []).append(reference_key(key))
    return [tuple(g) for g in groups.values() if len(g) > 1]
