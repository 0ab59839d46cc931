"""Config presets, validation, dict round trip and the reference-kwargs mapping."""

import ast
import json
import warnings
from pathlib import Path

import pytest

from human3r.config import DecoderConfig, EncoderConfig, HeadsConfig, Human3RConfig
from human3r.errors import ConfigError

FIXTURE = Path(__file__).parents[1] / "fixtures" / "parity"

# The construction string of the released model (config/trian_human3r.yaml), as a checkpoint stores it.
REFERENCE_896L = (
    "ARCroco3DStereo(ARCroco3DStereoConfig(freeze='encoder_and_decoder_and_head', state_size=768, state_pe='2d', "
    "pos_embed='RoPE100', rgb_head=True, pose_head=True, msk_head=True, patch_embed_cls='ManyAR_PatchEmbed', "
    "img_size=(512, 512), head_type='dpt', output_mode='pts3d+pose+smpl', depth_mode=('exp', -inf, inf), "
    "conf_mode=('exp', 1, inf), pose_mode=('exp', -inf, inf), enc_embed_dim=1024, enc_depth=24, enc_num_heads=16, "
    "dec_embed_dim=768, dec_depth=12, dec_num_heads=12, landscape_only=False, backbone='dinov2_vitl14', "
    "mhmr_img_res=896))"
)


def _kwargs_from_string(s: str) -> dict:
    """What the checkpoint loader does: parse with ast, no eval. inf is a bare name in the string."""
    call = ast.parse(s, mode="eval").body.args[0]

    def value(node):
        if isinstance(node, ast.Name) and node.id == "inf":
            return float("inf")
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -value(node.operand)
        if isinstance(node, ast.Tuple):
            return tuple(value(e) for e in node.elts)
        return ast.literal_eval(node)

    return {kw.arg: value(kw.value) for kw in call.keywords}


@pytest.mark.parametrize("name", Human3RConfig.preset_names())
def test_presets_round_trip_through_dict(name):
    cfg = Human3RConfig.preset(name)
    again = Human3RConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg


def test_real_sizes():
    cfg = Human3RConfig.preset("896L")
    assert (cfg.encoder.embed_dim, cfg.encoder.depth, cfg.decoder.embed_dim, cfg.decoder.depth) == (1024, 24, 768, 12)
    assert (cfg.decoder.num_heads, cfg.decoder.state_num_heads, cfg.decoder.state_size) == (12, 16, 768)
    assert cfg.heads.dpt_layer_dims == (96, 192, 384, 768)
    assert (cfg.heads.dpt_feature_dim, cfg.heads.dpt_last_dim) == (256, 128)
    assert cfg.decoder.hooks == (0, 6, 9, 12)
    assert cfg.dino.grid == 64
    assert Human3RConfig.preset("672S").dino.embed_dim == 384
    assert Human3RConfig.preset("672B").dino.grid == 48


def test_unknown_keys_warn_and_are_ignored():
    d = Human3RConfig.preset("tiny").to_dict()
    d["bogus"] = 1
    d["decoder"]["also_bogus"] = 2
    with pytest.warns(UserWarning, match="bogus"):
        cfg = Human3RConfig.from_dict(d)
    assert cfg == Human3RConfig.preset("tiny")


@pytest.mark.parametrize(
    "build, needle",
    [
        (lambda: EncoderConfig(embed_dim=100, num_heads=16), "100"),
        (lambda: DecoderConfig(state_pe="3d"), "3d"),
        (lambda: DecoderConfig(state_size=0), "0"),
        (lambda: HeadsConfig(det_threshold=1.5), "1.5"),
        (lambda: Human3RConfig.preset("999X"), "999X"),
        (lambda: Human3RConfig.from_dict({"decoder": {"depth": "twelve"}}), "twelve"),
    ],
)
def test_bad_values_raise_config_error_naming_the_value(build, needle):
    with pytest.raises(ConfigError, match=needle):
        build()
    assert issubclass(ConfigError, ValueError)


def test_reference_kwargs_of_the_released_model():
    cfg = Human3RConfig.from_reference_kwargs(_kwargs_from_string(REFERENCE_896L))
    ref = Human3RConfig.preset("896L")
    assert (cfg.encoder, cfg.decoder, cfg.dino, cfg.heads) == (ref.encoder, ref.decoder, ref.dino, ref.heads)


def test_reference_kwargs_of_the_fixture_match_the_tiny_preset():
    from human3r.parity import config_from_fixture

    meta = json.loads((FIXTURE / "config.json").read_text())
    cfg = config_from_fixture(meta)
    tiny = Human3RConfig.preset("tiny")
    assert (cfg.encoder, cfg.decoder, cfg.dino, cfg.heads, cfg.image_size) == (
        tiny.encoder, tiny.decoder, tiny.dino, tiny.heads, tiny.image_size)
    hinted = Human3RConfig.from_reference_kwargs(meta["model_config"], preset_hint="tiny")
    assert (hinted.dino, hinted.heads) == (tiny.dino, tiny.heads)


@pytest.mark.parametrize(
    "key, value",
    [("output_mode", "naive"), ("backbone", "dinov2_vitg14"), ("depth_mode", ("linear", -1, 1)),
     ("pos_embed", "cosine"), ("state_pe", "3d")],
)
def test_reference_kwargs_reject_unsupported_values(key, value):
    kwargs = _kwargs_from_string(REFERENCE_896L)
    kwargs[key] = value
    with pytest.raises(ConfigError, match=key if key != "state_pe" else "3d"):
        Human3RConfig.from_reference_kwargs(kwargs)


def test_reference_kwargs_unknown_argument_warns():
    kwargs = _kwargs_from_string(REFERENCE_896L)
    kwargs["future_flag"] = 3
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Human3RConfig.from_reference_kwargs(kwargs)
    assert any("future_flag" in str(w.message) for w in caught)
