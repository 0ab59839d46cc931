"""State-dict keys and shapes: the module's own names, and, mapped to reference names, exactly the reference's
(tiny fixture and every released preset, built on meta)."""

import re
from pathlib import Path

import pytest
import torch

from human3r import Human3R, Human3RConfig
from human3r.weights import UNUSED_KEY_PREFIXES, to_module_names, to_reference_names

FIXTURES = Path(__file__).parents[1] / "fixtures"


def _tiny_keys() -> dict[str, tuple[int, ...]]:
    out = {}
    for line in (FIXTURES / "parity" / "keys.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, shape, _ = line.split("\t")
            out[key] = () if shape == "-" else tuple(int(x) for x in shape.split("x"))
    return out


def _reference_keys(name: str) -> dict[str, tuple[int, ...]]:
    lines = (FIXTURES / "reference" / f"human3r_{name}_state_dict.txt").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("## full key list"))
    out = {}
    for line in lines[start + 1:]:
        if line.strip():
            key, shape = line.split("  ", 1)
            out[key] = tuple(int(x) for x in re.findall(r"\d+", shape))
    return out


def _reference_shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in to_reference_names(model.state_dict()).items()}


def test_tiny_keys_match_fixture():
    assert _reference_shapes(Human3R(Human3RConfig.preset("tiny"))) == _tiny_keys()


@pytest.mark.parametrize("name", ["672S", "672B", "672L", "896L"])
def test_preset_keys_match_reference(name):
    with torch.device("meta"):
        model = Human3R(Human3RConfig.preset(name))
    assert _reference_shapes(model) == _reference_keys(name)
    if name.endswith("L"):
        assert sum(p.numel() for p in model.parameters()) == 1_167_461_358  # reference parameter count


def test_module_state_dict_uses_natural_names_and_maps_both_ways():
    model = Human3R(Human3RConfig.preset("tiny"))
    sd = model.state_dict()
    assert "encoder.enc_blocks.0.attn.qkv.weight" in sd and "decoder.dec_blocks_state.3.norm1.weight" in sd
    assert "decoder.pose_retriever.mem" in sd and "downstream_head.init_body_pose" in sd
    ref = to_reference_names(sd)
    assert "enc_blocks.0.attn.qkv.weight" in ref and "dec_blocks_state.3.norm1.weight" in ref
    assert "pose_retriever.mem" in ref and "downstream_head.init_body_pose" in ref
    back = to_module_names(ref, model)
    assert list(back) == list(sd) and all(back[k] is sd[k] for k in sd)
    assert to_module_names({"not.a.key": 1}, model) == {"not.a.key": 1}  # left for the strict check to report


def test_dpt_alias_keys_are_one_tensor():
    sd = Human3R(Human3RConfig.preset("tiny")).state_dict()
    for head in ("dpt_self", "dpt_cross", "dpt_rgb"):
        for i in range(4):
            a = sd[f"downstream_head.{head}.scratch.layer_rn.{i}.weight"]
            b = sd[f"downstream_head.{head}.scratch.layer{i + 1}_rn.weight"]
            assert a.data_ptr() == b.data_ptr()


def test_unused_prefixes_name_existing_reference_keys():
    keys = list(_tiny_keys())
    for prefix in UNUSED_KEY_PREFIXES:
        assert any(k.startswith(prefix) for k in keys), prefix


def test_strict_round_trip_and_meta_assign_load():
    src = Human3R(Human3RConfig.preset("tiny"))
    with torch.no_grad():
        for p in src.parameters():
            p.normal_()
    sd = src.state_dict()
    with torch.device("meta"):
        dst = Human3R(Human3RConfig.preset("tiny"))
    dst.load_state_dict(sd, strict=True, assign=True)
    for k, v in dst.state_dict().items():
        assert v.device.type == "cpu" and torch.equal(v, sd[k]), k
    with pytest.raises(RuntimeError, match="Unexpected key"):
        Human3R(Human3RConfig.preset("tiny")).load_state_dict({**sd, "bogus.weight": torch.zeros(1)})
