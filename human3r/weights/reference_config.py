"""What a reference checkpoint's constructor arguments mean for the network: kwargs -> :class:`Human3RConfig`.

The reference builds its model from a string such as ``ARCroco3DStereo(ARCroco3DStereoConfig(state_size=768,
backbone='dinov2_vitl14', mhmr_img_res=896, ...))``. :mod:`human3r.weights.official` parses it (never evaluates
it); :func:`config_from_reference_kwargs` maps the arguments onto our config, rejecting values this implementation
does not reproduce, and :func:`config_from_constructor` does both for a checkpoint file.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import warnings
from pathlib import Path
from typing import Any

from human3r.config import DINO_BACKBONES, Human3RConfig
from human3r.errors import CheckpointError, ConfigError
from human3r.weights.identity import preset_of
from human3r.weights.official import parse_constructor
from human3r.weights.spec import OFFICIAL_FILES

__all__ = ["config_from_constructor", "config_from_reference_kwargs", "reference_constructor"]

logger = logging.getLogger(__name__)

# Reference argument values this implementation reproduces; anything else is rejected with ConfigError.
_REQUIRED_VALUES = {
    "output_mode": ("pts3d+pose+smpl",),
    "head_type": ("dpt",),
    "pose_head": (True,),
    "landscape_only": (False,),
    "patch_embed_cls": ("PatchEmbedDust3R", "ManyAR_PatchEmbed"),
    "norm_im2_in_dec": (True,),
    "depth_head": (False,),
    "pose_conf_head": (False,),
}
# Reference argument -> [(config part, field)].
_KWARG_FIELDS = {
    "enc_embed_dim": [("encoder", "embed_dim")],
    "enc_depth": [("encoder", "depth")],
    "enc_num_heads": [("encoder", "num_heads")],
    "patch_size": [("encoder", "patch_size")],
    "ray_enc_depth": [("encoder", "ray_depth")],
    "mlp_ratio": [("encoder", "mlp_ratio"), ("decoder", "mlp_ratio")],
    "dec_embed_dim": [("decoder", "embed_dim")],
    "dec_depth": [("decoder", "depth")],
    "dec_num_heads": [("decoder", "num_heads")],
    "state_dec_num_heads": [("decoder", "state_num_heads")],
    "state_size": [("decoder", "state_size")],
    "state_pe": [("decoder", "state_pe")],
    "local_mem_size": [("decoder", "mem_size")],
    "mhmr_img_res": [("dino", "image_res")],
    "rgb_head": [("heads", "rgb_head")],
    "msk_head": [("heads", "msk_head")],
}
# Accepted and ignored: training-only or cosmetic arguments.
_IGNORED = {"freeze", "img_size", "croco_kwargs", "enc_pos_embed", "dec_pos_embed", "gradient_checkpointing"}


def _is_inf(v: Any, sign: int) -> bool:
    try:
        return math.isinf(float(v)) and (float(v) > 0) == (sign > 0)
    except (TypeError, ValueError):
        return False


def _check_mode(name: str, value: Any, vmin_inf: bool, vmin: float | None = None) -> None:
    ok = isinstance(value, (list, tuple)) and len(value) == 3 and value[0] == "exp" and _is_inf(value[2], +1)
    if ok:
        ok = _is_inf(value[1], -1) if vmin_inf else (not _is_inf(value[1], -1) and float(value[1]) == vmin)
    if not ok:
        expected = "('exp', -inf, inf)" if vmin_inf else f"('exp', {vmin}, inf)"
        raise ConfigError(f"{name}={value!r} is not supported; expected {expected}")


def config_from_reference_kwargs(kwargs: dict[str, Any], preset_hint: str | None = None) -> Human3RConfig:
    """Map reference constructor arguments (``ARCroco3DStereoConfig(...)`` as a checkpoint's ``args.model`` stores
    them, parsed by :func:`~human3r.weights.official.parse_constructor`) onto :class:`Human3RConfig`.

    The reference hard-codes some internals (DINOv2 depth/width beyond the backbone name, DPT widths); those come
    from ``preset_hint`` when given (e.g. "tiny"), otherwise from the released defaults. Unsupported values raise
    ConfigError naming the argument; unknown arguments are ignored with a warning.
    """
    if not isinstance(kwargs, dict):
        raise ConfigError(f"reference kwargs must be a dict, got {type(kwargs).__name__}")
    base = Human3RConfig.preset(preset_hint) if preset_hint is not None else Human3RConfig()
    kw = dict(kwargs)
    if isinstance(kw.get("croco_kwargs"), dict):  # a nested croco_kwargs dict is flattened (explicit args win)
        kw = {**kw.pop("croco_kwargs"), **kw}
    parts: dict[str, dict[str, Any]] = {"encoder": {}, "decoder": {}, "dino": {}, "heads": {}}
    for key, value in kw.items():
        if key in _KWARG_FIELDS:
            for part, name in _KWARG_FIELDS[key]:
                parts[part][name] = value
        elif key in _REQUIRED_VALUES:
            if value not in _REQUIRED_VALUES[key]:
                raise ConfigError(f"{key}={value!r} is not supported; expected one of {_REQUIRED_VALUES[key]}")
        elif key in ("depth_mode", "pose_mode"):
            _check_mode(key, value, vmin_inf=True)
        elif key == "conf_mode":
            _check_mode(key, value, vmin_inf=False, vmin=1.0)
        elif key == "pos_embed":
            base_str = value[4:] if isinstance(value, str) and value.startswith("RoPE") else ""
            if not base_str.replace(".", "", 1).isdigit():
                raise ConfigError(f"pos_embed={value!r} is not supported; expected 'RoPE<base>' such as 'RoPE100'")
            parts["encoder"]["rope_base"] = float(base_str)
        elif key == "backbone":
            if value not in DINO_BACKBONES:
                raise ConfigError(f"backbone={value!r} is not supported; expected one of {sorted(DINO_BACKBONES)}")
            if preset_hint is None:  # with a hint, the preset's (possibly overridden) DINOv2 size wins
                dims = dict(zip(("embed_dim", "depth", "num_heads"), DINO_BACKBONES[value], strict=True))
                parts["dino"].update(dims)
        elif key not in _IGNORED:
            warnings.warn(f"config_from_reference_kwargs: ignoring unknown reference argument {key!r}={value!r}",
                          stacklevel=2)
    enc, dec, dino, heads = parts["encoder"], parts["decoder"], parts["dino"], parts["heads"]
    try:
        return dataclasses.replace(
            base,
            name=preset_hint or "custom",
            encoder=dataclasses.replace(base.encoder, **enc),
            decoder=dataclasses.replace(base.decoder, **dec),
            dino=dataclasses.replace(base.dino, **dino),
            heads=dataclasses.replace(base.heads, **heads),
        )
    except TypeError as err:
        raise ConfigError(f"bad reference kwargs {kwargs!r}: {err}") from err


def config_from_constructor(constructor: str | None, preset: str | None, source: str | Path) -> Human3RConfig:
    """The configuration an official file describes: its constructor string, else ``preset`` (required then).

    A released variant is fully described by its string (backbone, mhmr_img_res); only other presets (``tiny``)
    supply internals the reference hard-codes. A released file whose string disagrees with the requested released
    preset wins, with a warning.
    """
    if constructor is None:
        if preset is None:
            raise CheckpointError(
                f"{source} has no args.model constructor string, so its configuration is unknown; pass the preset "
                f"(preset=... / --preset, one of {list(Human3RConfig.preset_names())})."
            )
        return Human3RConfig.preset(preset)
    kwargs = parse_constructor(constructor)
    kwargs["landscape_only"] = False  # the reference forces this too: portrait frames are processed as they are
    hint = None if preset in OFFICIAL_FILES else preset
    try:
        with warnings.catch_warnings(record=True) as caught:  # training-only arguments are expected
            warnings.simplefilter("always")
            config = config_from_reference_kwargs(kwargs, preset_hint=hint)
        for w in caught:
            logger.debug("%s: %s", source, w.message)
    except ConfigError as err:
        raise CheckpointError(f"{source}: its model configuration is not supported: {err}") from err
    if preset in OFFICIAL_FILES and preset_of(config) != preset:
        logger.warning("%s holds the %s variant, not the requested %s; using the file's", source,
                       preset_of(config), preset)
    return config


def reference_constructor(config: Human3RConfig) -> str:
    """The reference's constructor string for `config` (the inverse of :func:`config_from_reference_kwargs`):
    ``ARCroco3DStereo(ARCroco3DStereoConfig(...))`` with every argument that function reads. Internals the
    reference hard-codes (DPT widths, a DINOv2 size no backbone name gives) need the preset when read back."""
    parts = {"encoder": config.encoder, "decoder": config.decoder, "dino": config.dino, "heads": config.heads}
    kwargs: dict[str, Any] = {key: required[0] for key, required in _REQUIRED_VALUES.items()}
    for key, targets in _KWARG_FIELDS.items():
        part, name = targets[0]
        kwargs[key] = getattr(parts[part], name)
    rope = config.encoder.rope_base
    kwargs["pos_embed"] = f"RoPE{int(rope) if float(rope).is_integer() else rope}"
    dims = (config.dino.embed_dim, config.dino.depth, config.dino.num_heads)
    backbone = next((name for name, d in DINO_BACKBONES.items() if tuple(d) == dims), None)
    if backbone is not None:
        kwargs["backbone"] = backbone
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    modes = "depth_mode=('exp', -inf, inf), pose_mode=('exp', -inf, inf), conf_mode=('exp', 1, inf)"
    return f"ARCroco3DStereo(ARCroco3DStereoConfig({args}, {modes}))"
