"""Strict loading: every mismatch in one error, never-read keys accepted and listed, aliases, meta build."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from human3r.config import Human3RConfig
from human3r.errors import CheckpointError
from human3r.weights import build_on_meta, check_state_dict, load_model, load_state_dict

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def test_mismatches_are_reported_together(tmp_path, tiny_state_dict, save_official):
    sd = tiny_state_dict()
    del sd["enc_blocks.0.attn.qkv.weight"]
    sd["downstream_head.decshape.mlp.layers.2.bias"] = torch.zeros(11)
    sd["foo.bar"] = torch.zeros(2)
    path = save_official(tmp_path / "bad.pth", sd)
    with pytest.raises(CheckpointError) as info:
        load_model(str(path), preset="tiny")
    msg = str(info.value)
    assert "1 missing" in msg and "enc_blocks.0.attn.qkv.weight" in msg  # reference names, as in the file
    assert "1 unexpected" in msg and "foo.bar" in msg
    assert "1 wrong shape" in msg and "decshape.mlp.layers.2.bias: file (11,) vs network (10,)" in msg
    assert "--preset" in msg  # says what to do next


def test_module_names_in_a_file_are_unexpected():
    """Files speak reference names; a state dict saved with the module's own names does not load silently."""
    model = build_on_meta(Human3RConfig.preset("tiny"))
    sd = {k: torch.empty(v.shape, device="meta") for k, v in model.state_dict(keep_vars=True).items()}
    with pytest.raises(CheckpointError, match=r"missing[\s\S]*encoder\.enc_blocks\.0\.attn\.qkv\.weight"):
        check_state_dict(model, sd, "module-named")


def test_unused_keys_are_accepted_and_listed(tmp_path, tiny_state_dict, save_official):
    sd = tiny_state_dict()
    del sd["masked_img_token"]
    del sd["enc_blocks_ray_map.0.norm1.weight"]
    sd["patch_embed_ray_map.extra_training_buffer"] = torch.ones(3)
    path = save_official(tmp_path / "unused.pth", sd)
    model = load_model(str(path), preset="tiny")
    report = model.identity.report
    assert set(report.unused_missing) == {"masked_img_token", "enc_blocks_ray_map.0.norm1.weight"}
    assert "patch_embed_ray_map.extra_training_buffer" in report.unused_present
    assert torch.count_nonzero(model.masked_img_token) == 0  # zero-filled, never read
    assert torch.count_nonzero(model.encoder.enc_blocks_ray_map[0].norm1.weight) == 0


def test_aliases_that_differ_are_refused(tmp_path, tiny_state_dict, save_official):
    sd = {k: v.clone() for k, v in tiny_state_dict().items()}  # clone breaks the sharing
    sd["downstream_head.dpt_rgb.scratch.layer_rn.2.weight"] += 1
    path = save_official(tmp_path / "alias.pth", sd)
    with pytest.raises(CheckpointError, match="aliases that should be one tensor"):
        load_model(str(path), preset="tiny")


def test_parameters_are_built_on_meta_and_buffers_are_real():
    model = build_on_meta(Human3RConfig.preset("tiny"))
    assert all(p.device.type == "meta" for p in model.parameters())
    assert all(b.device.type == "cpu" for b in model.buffers())
    head = model.downstream_head.dpt_self.scratch
    assert head.layer_rn[0].weight is head.layer1_rn.weight


def test_load_state_dict_assigns_reference_named_tensors(tiny_state_dict):
    sd = tiny_state_dict(seed=1)
    model = build_on_meta(Human3RConfig.preset("tiny"))
    report = load_state_dict(model, sd, "seed-1 weights")
    assert report.source == "seed-1 weights" and len(report.aliases) == 12
    assert model.encoder.enc_norm.weight.data_ptr() == sd["enc_norm.weight"].data_ptr()  # assigned, not copied
    assert model.decoder.dec_blocks_state[0].norm1.bias.data_ptr() == sd["dec_blocks_state.0.norm1.bias"].data_ptr()
    head = model.downstream_head.dpt_cross.scratch
    assert head.layer_rn[3].weight is head.layer4_rn.weight  # still one tensor
    assert not any(t.device.type == "meta" for t in [*model.parameters(), *model.buffers()])


def _reference_shapes(listing: Path) -> dict[str, tuple[int, ...]]:
    text = listing.read_text().split("## full key list")[1]
    shapes = {}
    for line in text.splitlines()[1:]:
        if line.strip() and not line.startswith("#"):
            shapes[line.split()[0]] = tuple(int(x) for x in re.findall(r"\d+", line[line.index("["):]))
    return shapes


@pytest.mark.parametrize("listing", sorted((FIXTURES / "reference").glob("human3r_*_state_dict.txt")),
                         ids=lambda p: p.name)
def test_released_key_lists_pass_the_strict_check(listing):
    """A checkpoint with exactly a released variant's keys and shapes (from the reference code) is accepted."""
    preset = listing.name.split("_")[1]
    sd = {k: torch.empty(s, device="meta") for k, s in _reference_shapes(listing).items()}
    for alias in [k for k in sd if ".scratch.layer_rn." in k]:  # aliases are one tensor, as torch.save keeps them
        i = int(alias.split(".scratch.layer_rn.")[1].split(".")[0])
        sd[alias] = sd[alias.replace(f".scratch.layer_rn.{i}.", f".scratch.layer{i + 1}_rn.")]
    report = check_state_dict(build_on_meta(Human3RConfig.preset(preset)), sd, listing.name)
    assert "enc_blocks_ray_map.1.mlp.fc2.bias" in report.unused_present and report.unused_missing == ()
    assert len(report.aliases) == 12


def test_the_reference_key_lists_are_all_here():
    names = sorted(p.name for p in (FIXTURES / "reference").glob("human3r_*_state_dict.txt"))
    assert names == [f"human3r_{p}_state_dict.txt" for p in ("672B", "672L", "672S", "896L")]
