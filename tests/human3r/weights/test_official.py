"""Official checkpoints: the reference training pickle through the user's load path, read safely, never run."""

from __future__ import annotations

import hashlib
import os
import sys
import types
from pathlib import Path

import pytest
import torch

import human3r
from human3r.errors import CheckpointError
from human3r.weights import load_model, parse_constructor, preset_of, read_official_checkpoint
from human3r.weights.reference_config import config_from_constructor

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def test_official_checkpoint_loads_through_load_model(official, assert_same_weights):
    path, sd = official
    model = human3r.load_model(str(path), preset="tiny")
    assert_same_weights(model, sd)
    assert isinstance(model, human3r.Human3R) and not model.training
    assert all(p.device.type == "cpu" and not p.requires_grad for p in model.parameters())
    identity = model.identity
    assert identity.preset == "tiny" and not identity.is_untrained
    assert identity.config == human3r.Human3RConfig.preset("tiny")
    assert identity.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert identity.model_version == f"human3r-tiny-{identity.sha256[:16]}"
    assert identity.name == "human3r_tiny.pth" and identity.path == str(path) and identity.spec == str(path)
    report = identity.report
    assert "masked_img_token" in report.unused_present and "enc_blocks_ray_map.0.norm1.weight" in report.unused_present
    assert report.unused_missing == ()
    pair = {"downstream_head.dpt_self.scratch.layer_rn.0.weight", "downstream_head.dpt_self.scratch.layer1_rn.weight"}
    assert pair in [set(a) for a in report.aliases] and len(report.aliases) == 12  # 4 per DPT head


def test_tensors_are_assigned_not_copied(official, monkeypatch):
    """The loaded parameters are the file's (memory-mapped) tensors: weights are never allocated twice."""
    import human3r.weights.load as load

    read = []

    def remember(p):
        read.append(read_official_checkpoint(p))
        return read[-1]

    monkeypatch.setattr(load, "read_official_checkpoint", remember)
    model = load_model(str(official[0]), preset="tiny")
    stored = read[0].state_dict
    assert model.encoder.enc_blocks[0].attn.qkv.weight.data_ptr() == stored["enc_blocks.0.attn.qkv.weight"].data_ptr()
    assert model.decoder.pose_token.data_ptr() == stored["pose_token"].data_ptr()


def test_bfloat16_load(official):
    """One knob: `precision` stores the transformer weights in bfloat16 (rounded from the file's float32), keeps
    the float32 islands and token parameters as read, and says what it computes in."""
    path, sd = official
    model = load_model(str(path), preset="tiny", precision="bfloat16")
    assert model.compute_dtype == torch.bfloat16
    qkv = model.state_dict()["encoder.enc_blocks.0.attn.qkv.weight"]
    torch.testing.assert_close(qkv, sd["enc_blocks.0.attn.qkv.weight"].bfloat16(), atol=0, rtol=0)
    assert model.downstream_head.init_body_pose.dtype == torch.float32
    torch.testing.assert_close(model.state_dict()["decoder.pose_token"], sd["pose_token"], atol=0, rtol=0)
    with pytest.raises(TypeError):
        load_model(str(path), preset="tiny", dtype=torch.bfloat16)  # the second, undocumented knob is gone


def test_released_hydra_checkpoint_layout_is_understood():
    """A real omegaconf DictConfig pickle (Hydra, as src/train.py saves `args`), no omegaconf installed or run.

    Made with omegaconf 2.3.0 from upstream b1b578a config/trian_human3r.yaml (OmegaConf.load + resolve), saved as
    {'model': {'pose_token': ...}, 'args': cfg, 'epoch': 39, 'best_so_far': 0.25}.
    """
    ck = read_official_checkpoint(FIXTURES / "weights" / "hydra_args_checkpoint.pth")
    assert ck.extras == ("best_so_far", "epoch")
    assert "omegaconf" not in sys.modules
    kwargs = parse_constructor(ck.constructor)
    assert kwargs["state_size"] == 768 and kwargs["mhmr_img_res"] == 896
    assert kwargs["depth_mode"] == ("exp", float("-inf"), float("inf"))
    config = config_from_constructor(ck.constructor, None, Path("x"))
    assert preset_of(config) == "896L"


def test_a_released_file_describes_itself_whatever_preset_is_asked(caplog):
    ck = read_official_checkpoint(FIXTURES / "weights" / "hydra_args_checkpoint.pth")
    with caplog.at_level("WARNING", logger="human3r.weights"):
        config = config_from_constructor(ck.constructor, "672S", Path("human3r_896L.pth"))
    assert preset_of(config) == "896L"
    assert "holds the 896L variant, not the requested 672S" in caplog.text


def test_checkpoint_without_constructor_needs_a_preset(tmp_path, tiny_state_dict):
    path = tmp_path / "bare.pth"
    torch.save(tiny_state_dict(), path)
    with pytest.raises(CheckpointError, match="pass the preset"):
        load_model(str(path))
    assert load_model(str(path), preset="tiny").identity.preset == "tiny"


def test_data_parallel_prefix_is_dropped(tmp_path, tiny_state_dict, save_official, assert_same_weights):
    sd = tiny_state_dict()
    path = save_official(tmp_path / "dp.pth", {f"module.{k}": v for k, v in sd.items()})
    assert_same_weights(load_model(str(path), preset="tiny"), sd)


def test_truncated_or_foreign_file_is_a_clear_error(official, tmp_path):
    cut = tmp_path / "cut.pth"
    cut.write_bytes(official[0].read_bytes()[:100_000])
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    for path in (cut, junk):
        with pytest.raises(CheckpointError, match="truncated, corrupt or not a torch checkpoint") as info:
            load_model(str(path), preset="tiny")
        assert "weights_only" not in str(info.value)


# ---------------------------------------------------------------------------------------------------- safety


@pytest.mark.parametrize(
    "constructor",
    [
        "__import__('os').system('touch {marker}')",
        "ARCroco3DStereo(ARCroco3DStereoConfig(state_size=__import__('pathlib').Path('{marker}').touch()))",
        "ARCroco3DStereo(ARCroco3DStereoConfig(state_size=os.sep))",
        "ARCroco3DStereo(Evil(state_size=60))",
        "ARCroco3DStereo(ARCroco3DStereoConfig(**{{'state_size': 60}}))",
        "ARCroco3DStereo(ARCroco3DStereoConfig(state_size=60, state_size=61))",
    ],
)
def test_constructor_code_is_refused_not_run(tmp_path, constructor, tiny_state_dict, save_official):
    marker = tmp_path / "pwned"
    text = constructor.format(marker=marker)
    with pytest.raises(CheckpointError, match="never evaluated|not valid Python"):
        parse_constructor(text)
    path = save_official(tmp_path / "evil.pth", tiny_state_dict(), constructor=text)
    with pytest.raises(CheckpointError):
        load_model(str(path), preset="tiny")
    assert not marker.exists()


def test_constructor_literals_including_infinities():
    kwargs = parse_constructor(
        "ARCroco3DStereo(ARCroco3DStereoConfig(img_size=(512, 512), depth_mode=('exp', -inf, inf), "
        "conf_mode=('exp', 1, float('inf')), rgb_head=True, x=None, y=[1, 2], z={'a': -1.5}))"
    )
    assert kwargs == {
        "img_size": (512, 512), "depth_mode": ("exp", float("-inf"), float("inf")),
        "conf_mode": ("exp", 1, float("inf")), "rgb_head": True, "x": None, "y": [1, 2], "z": {"a": -1.5},
    }


class _Payload:
    """Pickles as a call of os.system: what a malicious checkpoint would carry."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Arbitrary:
    pass


@pytest.mark.parametrize("payload", ["reduce", "class"])
def test_pickled_code_is_refused(tmp_path, payload, tiny_state_dict, save_official):
    marker = tmp_path / "pwned"
    obj = _Payload(marker) if payload == "reduce" else _Arbitrary()
    path = save_official(tmp_path / "evil.pth", tiny_state_dict(), extra_state=obj)
    with pytest.raises(CheckpointError, match="refused"):
        load_model(str(path), preset="tiny")
    assert not marker.exists()


def test_fake_omegaconf_objects_are_inert(tmp_path, monkeypatch, tiny_constructor, tiny_state_dict):
    """Classes named like omegaconf's get stand-ins whose state is kept and whose code never runs."""
    ran = []

    def make(name, module):
        def setstate(self, state):  # would run on a normal unpickle
            ran.append(name)
            self.__dict__.update(state)

        return type(name, (), {"__setstate__": setstate, "__module__": module})

    modules = {m: types.ModuleType(m) for m in ("omegaconf", "omegaconf.dictconfig", "omegaconf.nodes")}
    DictConfig, AnyNode = make("DictConfig", "omegaconf.dictconfig"), make("AnyNode", "omegaconf.nodes")
    modules["omegaconf.dictconfig"].DictConfig = DictConfig
    modules["omegaconf.nodes"].AnyNode = AnyNode
    for name, mod in modules.items():
        monkeypatch.setitem(sys.modules, name, mod)
    cfg = DictConfig()
    node = AnyNode()
    node.__dict__.update({"_val": tiny_constructor, "_parent": cfg})
    cfg.__dict__.update({"_content": {"model": node, "num_views": 4}, "_parent": None})
    path = tmp_path / "hydra.pth"
    torch.save({"model": tiny_state_dict(), "args": cfg}, path)
    for name in modules:
        monkeypatch.delitem(sys.modules, name)
    assert load_model(str(path), preset="tiny").identity.preset == "tiny" and ran == []
