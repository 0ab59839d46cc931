"""The reference constructor arguments a checkpoint stores, mapped onto Human3RConfig (parsed, never evaluated)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from human3r.config import Human3RConfig
from human3r.errors import ConfigError
from human3r.weights import config_from_reference_kwargs, parse_constructor

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "parity"

# The construction string of the released model (config/trian_human3r.yaml), as a checkpoint stores it.
REFERENCE_896L = (
    "ARCroco3DStereo(ARCroco3DStereoConfig(freeze='encoder_and_decoder_and_head', state_size=768, state_pe='2d', "
    "pos_embed='RoPE100', rgb_head=True, pose_head=True, msk_head=True, patch_embed_cls='ManyAR_PatchEmbed', "
    "img_size=(512, 512), head_type='dpt', output_mode='pts3d+pose+smpl', depth_mode=('exp', -inf, inf), "
    "conf_mode=('exp', 1, inf), pose_mode=('exp', -inf, inf), enc_embed_dim=1024, enc_depth=24, enc_num_heads=16, "
    "dec_embed_dim=768, dec_depth=12, dec_num_heads=12, landscape_only=False, backbone='dinov2_vitl14', "
    "mhmr_img_res=896))"
)


def test_reference_kwargs_of_the_released_model():
    cfg = config_from_reference_kwargs(parse_constructor(REFERENCE_896L))
    ref = Human3RConfig.preset("896L")
    assert (cfg.encoder, cfg.decoder, cfg.dino, cfg.heads) == (ref.encoder, ref.decoder, ref.dino, ref.heads)
    assert cfg.name == "custom"


def test_backbone_sets_the_dino_size_without_a_hint():
    kwargs = parse_constructor(REFERENCE_896L)
    kwargs.update(backbone="dinov2_vits14", mhmr_img_res=672)
    cfg = config_from_reference_kwargs(kwargs)
    small = Human3RConfig.preset("672S")
    assert cfg.dino == small.dino


def test_reference_kwargs_of_the_fixture_match_the_tiny_preset():
    from human3r.parity import config_from_fixture

    meta = json.loads((FIXTURE / "config.json").read_text())
    cfg = config_from_fixture(meta)
    tiny = Human3RConfig.preset("tiny")
    assert (cfg.encoder, cfg.decoder, cfg.dino, cfg.heads, cfg.image_size) == (
        tiny.encoder, tiny.decoder, tiny.dino, tiny.heads, tiny.image_size)
    hinted = config_from_reference_kwargs(meta["model_config"], preset_hint="tiny")
    assert (hinted.dino, hinted.heads, hinted.name) == (tiny.dino, tiny.heads, "tiny")


@pytest.mark.parametrize(
    "key, value",
    [("output_mode", "naive"), ("backbone", "dinov2_vitg14"), ("depth_mode", ("linear", -1, 1)),
     ("conf_mode", ("exp", 0, float("inf"))), ("pos_embed", "cosine"), ("state_pe", "3d")],
)
def test_reference_kwargs_reject_unsupported_values(key, value):
    kwargs = parse_constructor(REFERENCE_896L)
    kwargs[key] = value
    with pytest.raises(ConfigError, match=key if key != "state_pe" else "3d"):
        config_from_reference_kwargs(kwargs)


def test_reference_kwargs_unknown_argument_warns():
    kwargs = parse_constructor(REFERENCE_896L)
    kwargs["future_flag"] = 3
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config_from_reference_kwargs(kwargs)
    assert any("future_flag" in str(w.message) for w in caught)


def test_reference_kwargs_must_be_a_dict():
    with pytest.raises(ConfigError, match="must be a dict, got list"):
        config_from_reference_kwargs([("state_size", 768)])
