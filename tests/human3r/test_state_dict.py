"""State-dict keys and shapes are exactly the reference's (tiny fixture and every released preset, built on meta)."""

import re
from pathlib import Path

import pytest
import torch

from human3r import Human3R, Human3RConfig

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


def _shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_tiny_keys_match_fixture():
    assert _shapes(Human3R(Human3RConfig.preset("tiny"))) == _tiny_keys()


@pytest.mark.parametrize("name", ["672S", "672B", "672L", "896L"])
def test_preset_keys_match_reference(name):
    with torch.device("meta"):
        model = Human3R(Human3RConfig.preset(name))
    assert _shapes(model) == _reference_keys(name)
    if name.endswith("L"):
        assert sum(p.numel() for p in model.parameters()) == 1_167_461_358  # reference parameter count


def test_dpt_alias_keys_are_one_tensor():
    sd = Human3R(Human3RConfig.preset("tiny")).state_dict()
    for head in ("dpt_self", "dpt_cross", "dpt_rgb"):
        for i in range(4):
            a = sd[f"downstream_head.{head}.scratch.layer_rn.{i}.weight"]
            b = sd[f"downstream_head.{head}.scratch.layer{i + 1}_rn.weight"]
            assert a.data_ptr() == b.data_ptr()


def test_unused_prefixes_name_existing_keys():
    keys = list(Human3R(Human3RConfig.preset("tiny")).state_dict())
    for prefix in Human3R.UNUSED_KEY_PREFIXES:
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
