"""`human3r weights resolve|verify|convert|download`, in-process with click's CliRunner."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from click.testing import CliRunner

from human3r import Human3R, Human3RConfig
from human3r.weights import load_model, to_reference_names
from tasks.cli.weights import weights

pytestmark = pytest.mark.usefixtures("isolated_weight_caches")


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """(a tiny reference-named checkpoint without a constructor string, so it needs --preset tiny; its tensors)."""
    torch.manual_seed(0)
    sd = to_reference_names(Human3R(Human3RConfig.preset("tiny")).state_dict())
    path = tmp_path_factory.mktemp("weights") / "human3r_tiny.pth"
    torch.save({"model": sd, "epoch": 1}, path)
    return path, sd


def test_resolve_verify_convert(official, tmp_path):
    path, sd = official
    runner = CliRunner()
    sha = hashlib.sha256(path.read_bytes()).hexdigest()

    result = runner.invoke(weights, ["resolve", str(path), "--preset", "tiny"])
    assert result.exit_code == 0, result.output
    assert sha in result.output and "tiny" in result.output and f"human3r-tiny-{sha[:16]}" in result.output

    result = runner.invoke(weights, ["verify", str(path), "--preset", "tiny", "--sha256", sha])
    assert result.exit_code == 0, result.output
    assert "OK (strict match)" in result.output and "unused keys" in result.output
    result = runner.invoke(weights, ["verify", str(path), "--preset", "tiny", "--sha256", "0" * 64])
    assert result.exit_code == 1 and "sha256 mismatch" in result.output

    result = runner.invoke(weights, ["convert", str(path), str(tmp_path / "conv"), "--preset", "tiny"])
    assert result.exit_code == 0, result.output
    assert f"(model version human3r-tiny-{sha[:16]})" in result.output
    model = load_model(str(tmp_path / "conv.safetensors"))
    got = to_reference_names(model.state_dict())
    assert set(got) == set(sd) and all(torch.equal(got[k], sd[k]) for k in sd)
    result = runner.invoke(weights, ["verify", str(tmp_path / "conv.safetensors"), "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["preset"] == "tiny"


def test_errors_are_one_line_with_the_next_step(tmp_path, human3r_cli):
    result = human3r_cli("weights", "resolve", "auto", code=2)  # through the `human3r` group, as a user runs it
    assert result.stderr.startswith("error: ") and "huggingface-cli download" in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    result = human3r_cli("weights", "convert", "untrained:tiny", tmp_path / "x", code=1)
    assert "refusing to convert untrained weights" in result.stderr


def test_resolve_untrained_and_help():
    runner = CliRunner()
    result = runner.invoke(weights, ["resolve", "untrained:tiny:2", "--json"])
    assert json.loads(result.output)["model_version"] == "untrained-tiny-seed2"
    result = runner.invoke(weights, ["--help"])
    assert result.exit_code == 0 and "untrained:PRESET[:SEED]" in result.output


def test_main_cli_loads_the_group_lazily():
    from tasks.cli.main import cli

    result = CliRunner().invoke(cli, ["weights", "verify", "--help"])
    assert result.exit_code == 0 and "strict key/shape match" in result.output


def test_download(official, monkeypatch):
    import huggingface_hub

    calls = []

    def fake_download(repo_id, filename, cache_dir=None, **kwargs):
        calls.append((repo_id, filename))
        return str(official[0])

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    result = CliRunner().invoke(weights, ["download", "--preset", "672S"])
    assert result.exit_code == 0, result.output
    assert calls == [("faneggg/human3r", "human3r_672S.pth")]
    assert hashlib.sha256(official[0].read_bytes()).hexdigest() in result.output
