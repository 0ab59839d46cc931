"""Specs: a path, `auto` ($HUMAN3R_CHECKPOINT, then the Hugging Face cache), `hf:...`, `untrained:...`."""

from __future__ import annotations

import pytest

from human3r.errors import CheckpointError
from human3r.weights import CHECKPOINT_ENV, HF_REPO, inspect_weights, load_model
from human3r.weights.spec import resolve_spec


def _hf_cache_with(tmp_path, name: str, data: bytes):
    """A Hugging Face cache laid out as huggingface_hub writes it, holding faneggg/human3r/<name>."""
    repo = tmp_path / "hf-home" / "hub" / "models--faneggg--human3r"
    snapshot = repo / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    (snapshot / name).write_bytes(data)
    return snapshot / name


def test_auto_without_weights_says_how_to_get_them():
    with pytest.raises(CheckpointError) as info:
        load_model("auto")
    msg = str(info.value)
    assert "huggingface-cli download faneggg/human3r human3r_896L.pth" in msg
    assert CHECKPOINT_ENV in msg and "hf-home" in msg


def test_auto_prefers_the_presets_file_in_the_hint():
    with pytest.raises(CheckpointError, match="human3r_672B.pth"):
        inspect_weights("auto", preset="672B")


def test_auto_uses_env_var_then_hf_cache(official, tmp_path, monkeypatch, assert_same_weights):
    path, sd = official
    monkeypatch.setenv(CHECKPOINT_ENV, str(path))
    assert resolve_spec("auto").origin == f"${CHECKPOINT_ENV}"
    identity = load_model("auto", preset="tiny").identity
    assert identity.spec == "auto" and identity.path == str(path)
    monkeypatch.delenv(CHECKPOINT_ENV)
    cached = _hf_cache_with(tmp_path, "human3r_672S.pth", path.read_bytes())
    model = load_model("auto", preset="tiny")
    assert_same_weights(model, sd)
    assert model.identity.path == str(cached)
    assert inspect_weights(f"hf:{HF_REPO}/human3r_672S.pth", preset="tiny").sha256 == model.identity.sha256


def test_env_var_may_hold_any_spec_but_auto(monkeypatch):
    monkeypatch.setenv(CHECKPOINT_ENV, "untrained:tiny:5")
    assert resolve_spec("auto").untrained == ("tiny", 5)
    assert inspect_weights("auto").model_version == "untrained-tiny-seed5"
    monkeypatch.setenv(CHECKPOINT_ENV, "auto")
    with pytest.raises(CheckpointError, match="resolve to itself"):
        resolve_spec("auto")


def test_hf_spec_reads_the_cache_unless_download_is_asked(monkeypatch):
    import huggingface_hub

    calls = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda **kw: calls.append(kw) or "/nowhere")
    with pytest.raises(CheckpointError, match="is not in the Hugging Face cache"):
        resolve_spec("hf:faneggg/human3r/human3r_672L.pth")
    assert calls == []
    resolve_spec("hf:faneggg/human3r/human3r_672L.pth", download=True)
    assert [(c["repo_id"], c["filename"]) for c in calls] == [("faneggg/human3r", "human3r_672L.pth")]


def test_hf_download_offline_says_what_to_do(monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(*args, **kwargs):
        raise LocalEntryNotFoundError("Cannot reach the Hub and the file is not cached")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(CheckpointError) as info:
        load_model("hf:faneggg/human3r/human3r_896L.pth")
    msg = str(info.value)
    assert "huggingface-cli download faneggg/human3r human3r_896L.pth" in msg and CHECKPOINT_ENV in msg


@pytest.mark.parametrize("spec, needle", [("/nonexistent/human3r_896L.pth", "does not exist"),
                                          ("hf:", "expected hf:<owner>/<repo>/<file>"),
                                          ("", "non-empty string")])
def test_bad_specs_name_the_problem(spec, needle):
    with pytest.raises(CheckpointError, match=needle):
        load_model(spec)


def test_untrained_defaults_to_the_preset_then_896L():
    assert resolve_spec("untrained", preset="tiny").untrained == ("tiny", 0)
    assert resolve_spec("untrained").untrained == ("896L", 0)
    assert resolve_spec("untrained::7", preset="672S").untrained == ("672S", 7)
