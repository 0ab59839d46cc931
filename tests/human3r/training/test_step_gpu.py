"""The training step on a GPU: float32 reproduces the CPU numbers; bfloat16 autocast trains (master weights float32,
loss close to float32's). Skipped without CUDA."""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from human3r.training import OptimizerConfig, TrainConfig, build_optimizer, optimizer_step, prepare_for_training
from human3r.training import train_step as run_step
from human3r.training.params import named_parameters

PACK = Path(__file__).parents[2] / "fixtures" / "train_parity"

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def setup(train_bodies):
    from tasks.training.pack import pack_model, read_pack, recorded_views

    model = pack_model(PACK, read_pack(PACK))
    return model, recorded_views(np.load(PACK / "case_basic.npz")), copy.deepcopy(train_bodies).to("cuda")


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_step_on_cuda(setup, precision):
    template, views, bodies = setup
    model = copy.deepcopy(template).cuda()
    cfg = TrainConfig(precision=precision, gradient_checkpointing=True, optimizer=OptimizerConfig(lr=1e-4))
    sets = prepare_for_training(model, cfg)
    out = run_step(model, views, bodies, cfg)
    params = named_parameters(model)
    assert all(params[n].dtype == torch.float32 for n in sets.trainable)
    if precision == "float32":  # TF32 is off unless a process turns it on
        assert out.loss == pytest.approx(11.410968, rel=2e-4)  # the pack's total, within GPU float32 rounding
    else:
        assert out.loss == pytest.approx(11.410968, rel=0.05)
    clip = optimizer_step(model, build_optimizer(model, sets, cfg), sets, cfg)
    assert 0 < clip.clip_coef < 1
