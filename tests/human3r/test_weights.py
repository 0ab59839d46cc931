"""Checkpoints: official-format files through the user's load path, strictness, safety, our format, identity, CLI."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import types
from pathlib import Path

import pytest
import torch

from human3r import weights as W
from human3r.config import Human3RConfig
from human3r.errors import CheckpointError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
_MODES = ("depth_mode", "conf_mode", "pose_mode")


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path, monkeypatch):
    """Hash cache and Hugging Face cache in the test's temporary folder; no checkpoint from the environment."""
    monkeypatch.setenv(W.CACHE_ENV, str(tmp_path / "h3r-cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", W.CHECKPOINT_ENV):
        monkeypatch.delenv(var, raising=False)


def tiny_constructor() -> str:
    """The reference constructor string for the tiny parity configuration (as `args.model` would hold it)."""
    config = json.loads((FIXTURES / "parity" / "config.json").read_text())["model_config"]

    def literal(key, value):
        if key in _MODES:  # JSON stores the infinities as strings
            return tuple(float(v) if v in ("inf", "-inf") else v for v in value)
        return tuple(value) if isinstance(value, list) else value

    args = ", ".join(f"{k}={literal(k, v)!r}" for k, v in config.items())
    return f"ARCroco3DStereo(ARCroco3DStereoConfig({args}))"


def tiny_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    from human3r.model import Human3R

    torch.manual_seed(seed)
    return Human3R(Human3RConfig.preset("tiny")).state_dict()


def save_official(path: Path, state_dict: dict, constructor: str | None = None, **extra) -> Path:
    """A file laid out like the released checkpoints: {'model': ..., 'args': Namespace(model=...), 'epoch': ...}."""
    args = argparse.Namespace(model=constructor or tiny_constructor(), lr=1e-4, num_views=4)
    torch.save({"model": state_dict, "args": args, "epoch": 39, **extra}, path)
    return path


@pytest.fixture(scope="session")
def official(tmp_path_factory):
    """(path of an official-format tiny checkpoint, its state dict)."""
    sd = tiny_state_dict()
    path = save_official(tmp_path_factory.mktemp("official") / "human3r_tiny.pth", sd)
    return path, sd


def _assert_same_weights(model, sd):
    got = model.state_dict()
    assert set(got) == set(sd)
    for key, value in sd.items():
        assert torch.equal(got[key], value), key


# ---------------------------------------------------------------------------------------------------- official files


def test_official_checkpoint_loads_through_load_model(official):
    path, sd = official
    model, identity = W.load_model(str(path), preset="tiny")
    _assert_same_weights(model, sd)
    assert not model.training
    assert all(p.device.type == "cpu" and not p.requires_grad for p in model.parameters())
    assert identity.preset == "tiny" and not identity.is_untrained
    assert identity.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert identity.model_version == f"human3r-tiny-{identity.sha256[:16]}"
    assert identity.name == "human3r_tiny.pth" and identity.path == str(path)
    report = identity.report
    assert "masked_img_token" in report.unused_present and "enc_blocks_ray_map.0.norm1.weight" in report.unused_present
    assert report.unused_missing == ()
    pair = {"downstream_head.dpt_self.scratch.layer_rn.0.weight", "downstream_head.dpt_self.scratch.layer1_rn.weight"}
    assert pair in [set(a) for a in report.aliases] and len(report.aliases) == 12  # 4 per DPT head


def test_bfloat16_load(official):
    path, sd = official
    model, _ = W.load_model(str(path), preset="tiny", dtype=torch.bfloat16)
    assert model.downstream_head.init_body_pose.dtype == torch.bfloat16
    torch.testing.assert_close(model.state_dict()["pose_token"], sd["pose_token"].bfloat16())


def test_released_hydra_checkpoint_layout_is_understood():
    """A real omegaconf DictConfig pickle (Hydra, as src/train.py saves `args`), no omegaconf installed or run.

    Made with omegaconf 2.3.0 from upstream b1b578a config/trian_human3r.yaml (OmegaConf.load + resolve), saved as
    {'model': {'pose_token': ...}, 'args': cfg, 'epoch': 39, 'best_so_far': 0.25}.
    """
    ck = W.read_official_checkpoint(FIXTURES / "weights" / "hydra_args_checkpoint.pth")
    assert ck.extras == ("best_so_far", "epoch")
    assert "omegaconf" not in sys.modules
    kwargs = W.parse_constructor(ck.constructor)
    assert kwargs["state_size"] == 768 and kwargs["mhmr_img_res"] == 896
    assert kwargs["depth_mode"] == ("exp", float("-inf"), float("inf"))
    config = W._config_from_constructor(ck.constructor, None, Path("x"))
    assert W.preset_of(config) == "896L"


def test_mismatches_are_reported_together(tmp_path):
    sd = tiny_state_dict()
    del sd["enc_blocks.0.attn.qkv.weight"]
    sd["downstream_head.decshape.mlp.layers.2.bias"] = torch.zeros(11)
    sd["foo.bar"] = torch.zeros(2)
    path = save_official(tmp_path / "bad.pth", sd)
    with pytest.raises(CheckpointError) as info:
        W.load_model(str(path), preset="tiny")
    msg = str(info.value)
    assert "1 missing" in msg and "enc_blocks.0.attn.qkv.weight" in msg
    assert "1 unexpected" in msg and "foo.bar" in msg
    assert "1 wrong shape" in msg and "decshape.mlp.layers.2.bias: file (11,) vs network (10,)" in msg
    assert "--preset" in msg  # says what to do next


def test_unused_keys_are_accepted_and_listed(tmp_path):
    sd = tiny_state_dict()
    del sd["masked_img_token"]
    del sd["enc_blocks_ray_map.0.norm1.weight"]
    sd["patch_embed_ray_map.extra_training_buffer"] = torch.ones(3)
    path = save_official(tmp_path / "unused.pth", sd)
    model, identity = W.load_model(str(path), preset="tiny")
    report = identity.report
    assert set(report.unused_missing) == {"masked_img_token", "enc_blocks_ray_map.0.norm1.weight"}
    assert "patch_embed_ray_map.extra_training_buffer" in report.unused_present
    assert torch.count_nonzero(model.masked_img_token) == 0  # zero-filled, never read


def test_aliases_that_differ_are_refused(tmp_path):
    sd = {k: v.clone() for k, v in tiny_state_dict().items()}  # clone breaks the sharing
    sd["downstream_head.dpt_rgb.scratch.layer_rn.2.weight"] += 1
    path = save_official(tmp_path / "alias.pth", sd)
    with pytest.raises(CheckpointError, match="aliases that should be one tensor"):
        W.load_model(str(path), preset="tiny")


def test_checkpoint_without_constructor_needs_a_preset(tmp_path):
    path = tmp_path / "bare.pth"
    torch.save(tiny_state_dict(), path)
    with pytest.raises(CheckpointError, match="pass the preset"):
        W.load_model(str(path))
    model, identity = W.load_model(str(path), preset="tiny")
    assert identity.preset == "tiny"


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
def test_constructor_code_is_refused_not_run(tmp_path, constructor):
    marker = tmp_path / "pwned"
    text = constructor.format(marker=marker)
    with pytest.raises(CheckpointError, match="never evaluated|not valid Python"):
        W.parse_constructor(text)
    path = save_official(tmp_path / "evil.pth", tiny_state_dict(), constructor=text)
    with pytest.raises(CheckpointError):
        W.load_model(str(path), preset="tiny")
    assert not marker.exists()


def test_constructor_literals_including_infinities():
    kwargs = W.parse_constructor(
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
def test_pickled_code_is_refused(tmp_path, payload):
    marker = tmp_path / "pwned"
    obj = _Payload(marker) if payload == "reduce" else _Arbitrary()
    path = save_official(tmp_path / "evil.pth", tiny_state_dict(), extra_state=obj)
    with pytest.raises(CheckpointError, match="refused"):
        W.load_model(str(path), preset="tiny")
    assert not marker.exists()


def test_fake_omegaconf_objects_are_inert(tmp_path, monkeypatch):
    """Classes named like omegaconf's get stand-ins whose state is kept and whose code never runs."""
    ran = []

    def make(name, module):
        def setstate(self, state):  # would run on a normal unpickle
            ran.append(name)
            self.__dict__.update(state)

        cls = type(name, (), {"__setstate__": setstate, "__module__": module})
        return cls

    modules = {m: types.ModuleType(m) for m in ("omegaconf", "omegaconf.dictconfig", "omegaconf.nodes")}
    DictConfig, AnyNode = make("DictConfig", "omegaconf.dictconfig"), make("AnyNode", "omegaconf.nodes")
    modules["omegaconf.dictconfig"].DictConfig = DictConfig
    modules["omegaconf.nodes"].AnyNode = AnyNode
    for name, mod in modules.items():
        monkeypatch.setitem(sys.modules, name, mod)
    cfg = DictConfig()
    node = AnyNode()
    node.__dict__.update({"_val": tiny_constructor(), "_parent": cfg})
    cfg.__dict__.update({"_content": {"model": node, "num_views": 4}, "_parent": None})
    path = tmp_path / "hydra.pth"
    torch.save({"model": tiny_state_dict(), "args": cfg}, path)
    for name in modules:
        monkeypatch.delitem(sys.modules, name)
    _, identity = W.load_model(str(path), preset="tiny")
    assert identity.preset == "tiny" and ran == []


# ---------------------------------------------------------------------------------------------------- our format


def test_safetensors_round_trip(official, tmp_path):
    from safetensors import safe_open

    path, sd = official
    model, identity = W.load_model(str(path), preset="tiny")
    out = W.save_checkpoint(model, tmp_path / "ours", model_version=identity.model_version)
    assert out == tmp_path / "ours.safetensors" and (tmp_path / "ours.json").is_file()
    with safe_open(str(out), "pt") as f:
        stored = set(f.keys())
    assert "downstream_head.dpt_self.scratch.layer1_rn.weight" not in stored or (
        "downstream_head.dpt_self.scratch.layer_rn.0.weight" not in stored
    )
    assert len(stored) == len(sd) - len(identity.report.aliases)
    loaded, ours = W.load_model(str(out))
    _assert_same_weights(loaded, sd)
    head = loaded.downstream_head.dpt_self.scratch
    assert head.layer_rn[0].weight is head.layer1_rn.weight  # the alias is one tensor again
    assert ours.model_version == identity.model_version  # conversion keeps the dataset key
    assert ours.sha256 == hashlib.sha256(out.read_bytes()).hexdigest() != identity.sha256
    assert ours.preset == "tiny"
    loaded_json, _ = W.load_checkpoint(tmp_path / "ours.json")
    _assert_same_weights(loaded_json, sd)


def test_safetensors_changed_after_writing_is_refused(official, tmp_path):
    model, _ = W.load_model(str(official[0]), preset="tiny")
    out = W.save_checkpoint(model, tmp_path / "ours.safetensors")
    meta = json.loads((tmp_path / "ours.json").read_text())
    meta["weights_sha256"] = "0" * 64
    (tmp_path / "ours.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="changed after it was written"):
        W.load_checkpoint(out)
    (tmp_path / "ours.json").unlink()
    with pytest.raises(CheckpointError, match="has no ours.json"):
        W.load_checkpoint(out)


# ---------------------------------------------------------------------------------------------------- specs


def test_untrained_is_deterministic():
    a, ida = W.load_model("untrained:tiny:3")
    b, _ = W.load_model("untrained:tiny:3")
    c, _ = W.load_model("untrained:tiny:4")
    _assert_same_weights(b, a.state_dict())
    key = "enc_blocks.0.attn.qkv.weight"
    assert not torch.equal(a.state_dict()[key], c.state_dict()[key])
    assert ida.is_untrained and ida.name == "untrained:tiny:3" and ida.preset == "tiny" and ida.sha256 is None
    assert ida.model_version == "untrained-tiny-seed3"
    with pytest.raises(CheckpointError, match="untrained:<preset>"):
        W.load_model("untrained:huge:1")
    with pytest.raises(CheckpointError, match="integer"):
        W.load_model("untrained:tiny:x")


def test_auto_without_weights_says_how_to_get_them():
    with pytest.raises(CheckpointError) as info:
        W.load_model("auto")
    msg = str(info.value)
    assert "huggingface-cli download faneggg/human3r human3r_896L.pth" in msg
    assert W.CHECKPOINT_ENV in msg and "hf-home" in msg


def test_auto_uses_env_var_then_hf_cache(official, tmp_path, monkeypatch):
    path, sd = official
    monkeypatch.setenv(W.CHECKPOINT_ENV, str(path))
    model, identity = W.load_model("auto", preset="tiny")
    assert identity.spec == "auto" and identity.path == str(path)
    monkeypatch.delenv(W.CHECKPOINT_ENV)
    # a Hugging Face cache laid out as huggingface_hub writes it
    repo = tmp_path / "hf-home" / "hub" / "models--faneggg--human3r"
    snapshot = repo / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    (snapshot / "human3r_672S.pth").write_bytes(path.read_bytes())
    model, identity = W.load_model("auto", preset="tiny")
    _assert_same_weights(model, sd)
    assert identity.path == str(snapshot / "human3r_672S.pth")
    assert W.inspect_weights(f"hf:{W.HF_REPO}/human3r_672S.pth", preset="tiny").sha256 == identity.sha256


def test_hf_download_offline_says_what_to_do(monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(*args, **kwargs):
        raise LocalEntryNotFoundError("Cannot reach the Hub and the file is not cached")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(CheckpointError) as info:
        W.load_model("hf:faneggg/human3r/human3r_896L.pth")
    msg = str(info.value)
    assert "huggingface-cli download faneggg/human3r human3r_896L.pth" in msg and W.CHECKPOINT_ENV in msg


def test_missing_path_names_the_file():
    with pytest.raises(CheckpointError, match="does not exist"):
        W.load_model("/nonexistent/human3r_896L.pth")


def test_sha256_streamed_and_cached(tmp_path):
    f = tmp_path / "blob.bin"
    f.write_bytes(os.urandom(3 << 20) + b"tail")
    expected = hashlib.sha256(f.read_bytes()).hexdigest()
    assert W.file_sha256(f) == expected
    cache = json.loads((tmp_path / "h3r-cache" / "sha256.json").read_text())
    assert cache[str(f.resolve())]["sha256"] == expected
    cache[str(f.resolve())]["sha256"] = "cached"  # a cache hit does not read the file again
    (tmp_path / "h3r-cache" / "sha256.json").write_text(json.dumps(cache))
    assert W.file_sha256(f) == "cached"
    f.write_bytes(b"changed")  # new size / mtime -> recomputed
    assert W.file_sha256(f) == hashlib.sha256(b"changed").hexdigest()


def test_parameters_are_built_on_meta_and_buffers_are_real():
    model = W._build_empty(Human3RConfig.preset("tiny"))
    assert all(p.device.type == "meta" for p in model.parameters())
    assert all(b.device.type == "cpu" for b in model.buffers())
    head = model.downstream_head.dpt_self.scratch
    assert head.layer_rn[0].weight is head.layer1_rn.weight


# ---------------------------------------------------------------------------------------------------- CLI


def test_cli(official, tmp_path):
    from click.testing import CliRunner

    from human3r.weights_cli import weights

    path, sd = official
    runner = CliRunner()
    sha = hashlib.sha256(path.read_bytes()).hexdigest()

    result = runner.invoke(weights, ["resolve", str(path), "--preset", "tiny"])
    assert result.exit_code == 0, result.output
    assert sha in result.output and "tiny" in result.output

    result = runner.invoke(weights, ["verify", str(path), "--preset", "tiny", "--sha256", sha])
    assert result.exit_code == 0, result.output
    assert "OK (strict match)" in result.output and "unused keys" in result.output
    result = runner.invoke(weights, ["verify", str(path), "--preset", "tiny", "--sha256", "0" * 64])
    assert result.exit_code == 1 and "sha256 mismatch" in result.output

    result = runner.invoke(weights, ["convert", str(path), str(tmp_path / "conv"), "--preset", "tiny"])
    assert result.exit_code == 0, result.output
    model, _ = W.load_model(str(tmp_path / "conv.safetensors"))
    _assert_same_weights(model, sd)
    result = runner.invoke(weights, ["verify", str(tmp_path / "conv.safetensors"), "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["preset"] == "tiny"

    result = runner.invoke(weights, ["resolve", "auto"])
    assert result.exit_code == 1 and "huggingface-cli download" in result.output

    result = runner.invoke(weights, ["resolve", "untrained:tiny:2", "--json"])
    assert json.loads(result.output)["model_version"] == "untrained-tiny-seed2"

    result = runner.invoke(weights, ["--help"])
    assert result.exit_code == 0 and "untrained:PRESET[:SEED]" in result.output


def _key_listings() -> list[Path]:
    """Released variants' key lists: the repo's fixtures, plus the shared reference folder when present."""
    found: dict[str, Path] = {}
    for folder in (Path("/work/shared/reference"), FIXTURES / "reference"):
        found.update({p.name: p for p in folder.glob("human3r_*_state_dict.txt")})
    return [found[k] for k in sorted(found)]


@pytest.mark.parametrize("listing", _key_listings(), ids=lambda p: p.name)
def test_released_key_lists_pass_the_strict_check(listing):
    """A checkpoint with exactly a released variant's keys and shapes (from the reference code) is accepted."""
    import re

    preset = listing.name.split("_")[1]
    text = listing.read_text().split("## full key list")[1]
    shapes = {}
    for line in text.splitlines()[1:]:
        if line.strip() and not line.startswith("#"):
            shapes[line.split()[0]] = tuple(int(x) for x in re.findall(r"\d+", line[line.index("["):]))
    sd = {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    for alias in [k for k in sd if ".scratch.layer_rn." in k]:  # aliases are one tensor, as torch.save keeps them
        i = int(alias.split(".scratch.layer_rn.")[1].split(".")[0])
        sd[alias] = sd[alias.replace(f".scratch.layer_rn.{i}.", f".scratch.layer{i + 1}_rn.")]
    report = W.check_state_dict(W._build_empty(Human3RConfig.preset(preset)), sd, listing.name)
    assert "enc_blocks_ray_map.1.mlp.fc2.bias" in report.unused_present and report.unused_missing == ()
    assert len(report.aliases) == 12


def test_truncated_or_foreign_file_is_a_clear_error(official, tmp_path):
    cut = tmp_path / "cut.pth"
    cut.write_bytes(official[0].read_bytes()[:100_000])
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    for path in (cut, junk):
        with pytest.raises(CheckpointError, match="truncated, corrupt or not a torch checkpoint") as info:
            W.load_model(str(path), preset="tiny")
        assert "weights_only" not in str(info.value)


def test_a_released_file_describes_itself_whatever_preset_is_asked(caplog):
    ck = W.read_official_checkpoint(FIXTURES / "weights" / "hydra_args_checkpoint.pth")
    with caplog.at_level("WARNING", logger="human3r.weights"):
        config = W._config_from_constructor(ck.constructor, "672S", Path("human3r_896L.pth"))
    assert W.preset_of(config) == "896L"
    assert "holds the 896L variant, not the requested 672S" in caplog.text


def test_cli_download(official, monkeypatch):
    import huggingface_hub
    from click.testing import CliRunner

    from human3r.weights_cli import weights

    calls = []

    def fake_download(repo_id, filename, cache_dir=None, **kwargs):
        calls.append((repo_id, filename))
        return str(official[0])

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    result = CliRunner().invoke(weights, ["download", "--preset", "672S"])
    assert result.exit_code == 0, result.output
    assert calls == [("faneggg/human3r", "human3r_672S.pth")]
    assert hashlib.sha256(official[0].read_bytes()).hexdigest() in result.output
