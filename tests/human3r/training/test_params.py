"""What trains, what is fixed, what is frozen; the optimiser's groups; the bfloat16 layout; the ray-map input."""

import copy
import json
from pathlib import Path

import pytest
import torch

from human3r.errors import ConfigError
from human3r.preprocess import Frame
from human3r.training.config import OptimizerConfig, TrainConfig
from human3r.training.params import named_parameters, parameter_groups, partition_parameters, prepare_for_training

PACK = Path(__file__).parents[2] / "fixtures" / "train_parity"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny():
    from human3r.weights import load_model

    return load_model("untrained:tiny")  # the parity packs' weights


def test_split_matches_the_pack(tiny):
    meta = json.loads((PACK / "case_basic.json").read_text())
    sets = partition_parameters(tiny, TrainConfig())
    assert list(sets.trainable) == sorted(sets.trainable, key=list(named_parameters(tiny)).index)
    assert sorted(sets.trainable) == sorted(meta["trainable"])
    # element counts of the pack README's table (frozen / fixed / trainable)
    assert (sets.numel(tiny, "trainable"), sets.numel(tiny, "fixed"), sets.numel(tiny, "frozen")) == (
        meta["trainable_count"], 1_683_362, 582_339)
    assert len(sets.frozen) == meta["frozen_params_count"]


def test_groups_decay_matrices_and_tokens_not_biases(tiny):
    meta = json.loads((PACK / "case_basic.json").read_text())
    sets = partition_parameters(tiny, TrainConfig())
    groups = parameter_groups(tiny, sets, 0.05)
    by_decay = {g["weight_decay"]: sorted(g["names"]) for g in groups}
    want = {g["weight_decay"]: sorted(g["params"]) for g in meta["optimizer"]["groups"]}
    assert by_decay == want
    assert "mhmr_masked_smpl_token" in by_decay[0.05] and "masked_smpl_token" in by_decay[0.05]


def test_a_pattern_that_names_nothing_is_an_error(tiny):
    with pytest.raises(ConfigError, match="downstream_head.mlp_fusee"):
        partition_parameters(tiny, TrainConfig(trainable=("downstream_head.mlp_fusee",)))


def test_requires_grad_per_clip_mode(tiny):
    model = copy.deepcopy(tiny)
    params = named_parameters(model)
    for mode, fixed_grad in (("trainable", False), ("reference", True)):
        sets = prepare_for_training(model, TrainConfig(optimizer=OptimizerConfig(clip_norm=mode)))
        assert all(params[n].requires_grad for n in sets.trainable)
        assert not any(params[n].requires_grad for n in sets.frozen)
        assert all(params[n].requires_grad == fixed_grad for n in sets.fixed)
        assert model.training


def test_bfloat16_keeps_trained_master_weights_float32(tiny):
    model = copy.deepcopy(tiny)
    sets = prepare_for_training(model, TrainConfig(precision="bfloat16", gradient_checkpointing=True))
    params = named_parameters(model)
    assert all(params[n].dtype == torch.float32 for n in sets.trainable)
    assert params["dec_blocks.0.attn.qkv.weight"].dtype == torch.bfloat16  # fixed: stored low
    assert params["enc_blocks.0.mlp.fc1.weight"].dtype == torch.bfloat16  # frozen: stored low
    assert params["downstream_head.pose_head.mlp.fc1.weight"].dtype == torch.float32  # a float32 island
    assert model.decoder.checkpointing and model.downstream_head.checkpointing


def test_ray_maps_add_their_tokens_and_the_padding_token_elsewhere(tiny):
    model = copy.deepcopy(tiny)
    assert all(blk.attn.rope == "fp32" for blk in model.encoder.enc_blocks_ray_map)  # dust3r blocks: float32 RoPE
    g = torch.Generator().manual_seed(0)
    img = torch.rand(2, 3, 32, 48, generator=g) * 2 - 1
    rays = torch.randn(2, 32, 48, 6, generator=g)
    frame = Frame(img, torch.zeros(2, 3, 224, 224) - 1)
    with torch.no_grad():
        plain, _, _ = model._encode(frame)
        mixed, _, _ = model._encode(Frame(frame.img, frame.img_mhmr, rays, torch.tensor([True, False])))
        ray_tokens = model.encoder.encode_rays(rays[:1])
    torch.testing.assert_close(mixed[0], plain[0] + ray_tokens[0], rtol=0, atol=0)
    torch.testing.assert_close(mixed[1], plain[1] + model.masked_ray_map_token, rtol=0, atol=0)
    assert not torch.equal(ray_tokens[0], torch.zeros_like(ray_tokens[0]))


def test_weights_without_the_ray_map_encoder_are_refused(tiny):
    import dataclasses

    from human3r.errors import CheckpointError
    from human3r.weights import LoadReport

    model = copy.deepcopy(tiny)
    model.identity = dataclasses.replace(tiny.identity, report=LoadReport(
        "old.pth", unused_missing=("enc_blocks_ray_map.0.attn.qkv.weight", "masked_smpl_token")))
    with pytest.raises(CheckpointError, match="old.pth lacks the ray-map encoder"):
        prepare_for_training(model, TrainConfig())
    model.identity = dataclasses.replace(tiny.identity, report=LoadReport("old.pth", unused_missing=(
        "masked_smpl_token",)))
    prepare_for_training(model, TrainConfig())  # the padding tokens only start from zeros
