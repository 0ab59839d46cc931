"""Samples without ground-truth depth (pseudo-label builds): "drop" leaves them out of the pointmap, confidence and
camera-pose terms; "distil" fills their targets from the frozen base model's outputs first."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from human3r.errors import ConfigError
from human3r.training import TrainConfig, prepare_for_training, train_step
from human3r.training.distill import BaseOutputs, pose_matrix
from human3r.training.forward import training_forward
from human3r.training.losses import compute_losses
from human3r.training.teacher import teacher_targets
from human3r.training.views import views_from_batch
from tasks.training.pack import pack_model, read_pack, recorded_views

pytestmark = pytest.mark.usefixtures("one_torch_thread")
PACK = Path(__file__).parents[2] / "fixtures" / "train_parity"


@pytest.fixture(scope="module")
def setup(train_bodies):
    model = pack_model(PACK, read_pack(PACK))
    cfg = TrainConfig(missing_depth="distil")
    sets = prepare_for_training(model, cfg)
    views = views_from_batch(recorded_views(np.load(PACK / "case_basic.npz"))[:2])
    targets = teacher_targets(views, train_bodies, model.cfg.dino.image_res, model.cfg.dino.patch_size)
    with torch.no_grad():
        preds = training_forward(model, views, targets)
    return model, sets, cfg, views, targets, preds


def _flag(views, has_depth):
    return [dataclasses.replace(v, has_depth=torch.tensor(has_depth)) for v in views]


def test_drop_leaves_the_flagged_samples_out_of_the_scene_terms(setup, train_bodies):
    model, _, cfg, views, targets, preds = setup
    flagged = _flag(views, [False, True])
    moved = [dataclasses.replace(v, pts3d=torch.where(torch.arange(2)[:, None, None, None] == 0, v.pts3d * 3 + 1,
                                                      v.pts3d)) for v in flagged]

    def conf(vs):
        return compute_losses(vs, targets, preds, train_bodies, cfg.losses).terms["ConfLoss.total"]

    assert conf(moved) == pytest.approx(conf(flagged), rel=1e-6)  # sample 0's points no longer count
    assert conf([dataclasses.replace(v, has_depth=None) for v in moved]) != pytest.approx(conf(flagged), rel=1e-3)


def test_distil_fills_the_flagged_samples_from_the_base_model(setup, train_bodies):
    model, sets, cfg, views, targets, preds = setup
    base = BaseOutputs.snapshot(model, sets)
    flagged = _flag(views, [False, False])
    filled = base.fill_missing_depth(model, flagged, targets)
    for view, pred in zip(filled, preds, strict=True):
        assert bool(view.has_depth.all()) and not bool(view.sky_mask.any())
        torch.testing.assert_close(view.camera_pose, pose_matrix(pred.camera_pose))
    torch.testing.assert_close(filled[0].pts3d[filled[0].valid_mask],
                               (pose_matrix(preds[0].camera_pose)[:, None, None, :3, :3]
                                @ preds[0].pts3d_self[..., None]).squeeze(-1)[filled[0].valid_mask]
                               + pose_matrix(preds[0].camera_pose)[:, None, None, :3, 3].expand_as(
                                   preds[0].pts3d_self)[filled[0].valid_mask], rtol=1e-5, atol=1e-5)
    with pytest.raises(ConfigError, match="needs the base model"):
        train_step(model, flagged, train_bodies, cfg)
    out = train_step(model, flagged, train_bodies, cfg, base=base)
    model.zero_grad(set_to_none=True)
    assert np.isfinite(out.loss) and out.report.terms["ConfLoss.total"] != 0
