"""Our format: .safetensors + .json, reference-named keys, aliases stored once, the model version kept."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from human3r.errors import CheckpointError
from human3r.weights import load_model, save_checkpoint, verify_checkpoint


@pytest.fixture
def converted(official, tmp_path):
    """(model loaded from the official tiny file, path of its conversion to our format)."""
    model = load_model(str(official[0]), preset="tiny")
    return model, save_checkpoint(model, tmp_path / "ours", model_version=model.identity.model_version)


def test_safetensors_round_trip(official, converted, tmp_path, assert_same_weights):
    from safetensors import safe_open

    _, sd = official
    model, out = converted
    identity = model.identity
    assert out == tmp_path / "ours.safetensors" and (tmp_path / "ours.json").is_file()
    with safe_open(str(out), "pt") as f:
        stored = set(f.keys())
    assert stored <= set(sd) and "enc_blocks.0.attn.qkv.weight" in stored  # reference names, as official files
    assert not any(k.startswith(("encoder.", "decoder.")) for k in stored)
    assert "downstream_head.dpt_self.scratch.layer_rn.0.weight" not in stored  # aliases are stored once
    assert len(stored) == len(sd) - len(identity.report.aliases)
    loaded = load_model(str(out))
    assert_same_weights(loaded, sd)
    head = loaded.downstream_head.dpt_self.scratch
    assert head.layer_rn[0].weight is head.layer1_rn.weight  # the alias is one tensor again
    ours = loaded.identity
    assert ours.model_version == identity.model_version  # conversion keeps the dataset key
    assert ours.sha256 == hashlib.sha256(out.read_bytes()).hexdigest() != identity.sha256
    assert ours.preset == "tiny" and ours.config == identity.config and ours.path == str(out)
    assert_same_weights(load_model(str(tmp_path / "ours.json")), sd)  # either file name works


def test_json_records_config_aliases_and_source(converted):
    model, out = converted
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["format"] == "human3r-safetensors" and meta["format_version"] == 1 and meta["preset"] == "tiny"
    assert meta["weights_sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert meta["aliases"]["downstream_head.dpt_rgb.scratch.layer_rn.3.weight"] == (
        "downstream_head.dpt_rgb.scratch.layer4_rn.weight")
    assert meta["config"] == model.cfg.to_dict()


def test_default_model_version_is_derived_from_the_file(converted, tmp_path):
    model, _ = converted
    out = save_checkpoint(model, tmp_path / "fresh.safetensors")
    sha = hashlib.sha256(out.read_bytes()).hexdigest()
    assert load_model(str(out)).identity.model_version == f"human3r-tiny-{sha[:16]}"


def test_safetensors_changed_after_writing_is_refused(converted, tmp_path):
    _, out = converted
    meta = json.loads((tmp_path / "ours.json").read_text())
    meta["weights_sha256"] = "0" * 64
    (tmp_path / "ours.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="changed after it was written"):
        load_model(str(out))
    (tmp_path / "ours.json").unlink()
    with pytest.raises(CheckpointError, match="has no ours.json"):
        load_model(str(out))


def test_foreign_json_is_refused(converted, tmp_path):
    _, out = converted
    (tmp_path / "ours.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(CheckpointError, match="is not a human3r-safetensors v1 description"):
        load_model(str(out))
    (tmp_path / "ours.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="is not a human3r-safetensors v1 description"):
        load_model(str(out))


def test_verify_checks_shapes_without_reading_tensors(converted, monkeypatch):
    import safetensors.torch

    def no_full_read(*args, **kwargs):
        raise AssertionError("verify_checkpoint must not load every tensor")

    monkeypatch.setattr(safetensors.torch, "load_file", no_full_read)
    model, out = converted
    identity = verify_checkpoint(out)
    assert identity.model_version == model.identity.model_version and identity.report is not None
    assert len(identity.report.aliases) == 12


def test_verify_compares_alias_values_stored_twice(official, tmp_path):
    """A hand-made file that stores both alias keys with different values is refused."""
    from safetensors.torch import save_file

    model = load_model(str(official[0]), preset="tiny")
    out = save_checkpoint(model, tmp_path / "ours")
    with torch.no_grad():
        tensors = {k: v.clone() for k, v in official[1].items()}
    tensors["downstream_head.dpt_self.scratch.layer_rn.1.weight"] += 1
    save_file(tensors, str(out))
    meta = json.loads(out.with_suffix(".json").read_text())
    meta["weights_sha256"] = hashlib.sha256(out.read_bytes()).hexdigest()
    out.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="aliases that should be one tensor but differ"):
        verify_checkpoint(out)
