"""Config presets, validation and the dict round trip (reference kwargs: tests/human3r/weights)."""

import json

import pytest

from human3r.config import DecoderConfig, EncoderConfig, HeadsConfig, Human3RConfig
from human3r.errors import ConfigError


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
