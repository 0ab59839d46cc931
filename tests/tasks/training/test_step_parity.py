"""The training step against the reference's recorded step (tests/fixtures/train_parity), through the harness and
the CLI: every group passes; both mistakes of the pack's README §5 fail; the fast path (trainable-only clipping,
gradient checkpointing) gives the same losses and gradients and touches only the trained parameters."""

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from human3r.training.config import OptimizerConfig, TrainConfig
from human3r.training.params import named_parameters, prepare_for_training
from human3r.training.step import build_optimizer, optimizer_step, train_step
from tasks.training.pack import pack_model, read_pack, recorded_views
from tasks.training.parity import TrainParityOptions, check_loader_views, run_train_parity

PACK = Path(__file__).parents[2] / "fixtures" / "train_parity"
GROUPS = ("batch.", "gt.", "tok.", "pred.", "pred_smpl.", "loss.norm_factor_gt", "grad", "param_after", "loss_total",
          "loss_terms", "loss_details", "grad_norm_all_params_pre_clip", "grad_norm_trainable_pre_clip", "clip_coef",
          "trainable", "trainable_with_grad", "trainable_without_grad")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def template():
    return pack_model(PACK, read_pack(PACK))


@pytest.fixture(scope="module")
def reference(template, train_bodies, tmp_path_factory):
    """The pack's step with the reference's clipping, from the BEDLAM loader's views (checked against batch.*),
    and its recording."""
    folder = tmp_path_factory.mktemp("reference")
    report = run_train_parity(PACK, TrainParityOptions(record=str(folder), threads=1, views="loader"),
                              model=template, bodies=train_bodies)
    return report, folder


@pytest.fixture(scope="module")
def trainable_cli(human3r_cli, smplx_standin, tmp_path_factory):
    """`human3r parity train --clip-norm trainable`: the fast clipping, run by the command (its own model)."""
    folder = tmp_path_factory.mktemp("trainable")
    result = human3r_cli("parity", "train", PACK, "--clip-norm", "trainable", "--body-model", smplx_standin,
                         "--record", folder, "--threads", "1", "--case", "basic", code=None)
    return result, folder


def failing(report) -> set[str]:
    return {k.quantity for c in report.cases for k in c.checks if not k.ok}


def test_every_group_passes(reference):
    report, _ = reference
    assert report.ok, "\n" + report.table()
    checked = {k.quantity for k in report.cases[0].checks}
    for group in GROUPS:
        assert any(q.startswith(group) for q in checked), group
    assert not report.cases[0].not_checked
    by_name = {k.quantity: k for k in report.cases[0].checks}
    assert by_name["grad"].count == 25 and by_name["param_after"].count == 26
    assert by_name["loss_details"].count == 65


def test_trainable_only_clipping_fails_exactly_the_clip_and_the_update(trainable_cli, reference):
    result, folder = trainable_cli
    assert result.exit_code == 1
    lines = {line.split()[1]: line for line in result.stdout.splitlines() if line.startswith("basic ")}
    bad = {q for q, line in lines.items() if " FAIL" in line}
    assert bad == {"clip_coef", "param_after"}
    assert "train parity FAILED" in result.stdout
    # ... and its losses and gradients are the reference clipping's, to the bit
    _, ref_folder = reference
    fast, ref = np.load(folder / "case_basic.npz"), np.load(ref_folder / "case_basic.npz")
    for key in ref.files:
        if not key.startswith("param_after."):
            assert np.array_equal(fast[key], ref[key]), key
    fast_s, ref_s = (json.loads((f / "case_basic.json").read_text()) for f in (folder, ref_folder))
    assert fast_s["loss_terms"] == ref_s["loss_terms"] and fast_s["loss_details"] == ref_s["loss_details"]
    assert fast_s["clip_coef"] == pytest.approx(0.06417, rel=1e-3)  # README: 0.0641 instead of 0.0205
    assert ref_s["clip_coef"] == pytest.approx(0.020511, rel=5e-5)


def test_encoder_rope_without_float16_rounding_fails(template, train_bodies):
    def perturb(model):
        for blk in model.encoder.enc_blocks:
            blk.attn.rope = "fp32"

    report = run_train_parity(PACK, TrainParityOptions(threads=1), model=template, bodies=train_bodies,
                              perturb=perturb)
    assert {"grad", "param_after"} <= failing(report)
    assert "gt.smpl_uv" not in failing(report)  # teacher forcing does not read the encoder


def test_fast_path_with_checkpointing_same_numbers_only_trained_parameters_move(template, train_bodies, reference):
    """Checkpointed, trainable-only clipping, the batch accumulated twice at half weight: the reference's bits."""
    cfg = TrainConfig(optimizer=OptimizerConfig(clip_norm="trainable", lr=1e-4), gradient_checkpointing=True)
    model = copy.deepcopy(template)
    sets = prepare_for_training(model, cfg)
    params = named_parameters(model)
    views = recorded_views(np.load(PACK / "case_basic.npz"))
    for _ in range(2):
        out = train_step(model, views, train_bodies, cfg, grad_scale=0.5)
    _, ref_folder = reference
    ref = np.load(ref_folder / "case_basic.npz")
    assert out.loss == json.loads((ref_folder / "case_basic.json").read_text())["loss_total"]
    assert all(params[n].grad is None for n in sets.fixed + sets.frozen)  # no weight gradient outside the trained set
    assert params["masked_smpl_token"].grad is None
    for name in sets.trainable:
        if name != "masked_smpl_token":
            assert np.array_equal(params[name].grad.numpy(), ref[f"grad.{name}"]), name  # g/2 + g/2 = g exactly
    before = {n: p.detach().clone() for n, p in params.items()}
    optimizer_step(model, build_optimizer(model, sets, cfg), sets, cfg)
    changed = {n for n, p in params.items() if not torch.equal(p, before[n])}
    assert changed == set(sets.trainable) - {"masked_smpl_token"}
    token = before["mhmr_masked_smpl_token"]  # a zero gradient: only the decoupled weight decay moves it
    torch.testing.assert_close(params["mhmr_masked_smpl_token"].detach(), token * (1 - 1e-4 * 0.05), rtol=0, atol=0)


def test_loader_hook_compares_views_with_the_pack():
    fixture = np.load(PACK / "case_basic.npz")
    views = recorded_views(fixture)
    assert all(k.ok for k in check_loader_views(views, fixture))
    views[1]["img"] = views[1]["img"] + 2e-6
    views[3]["smpl_mask"] = ~views[3]["smpl_mask"]
    bad = {k.quantity for k in check_loader_views(views, fixture) if not k.ok}
    assert bad == {"batch.img", "batch.smpl_mask"}


def test_not_a_pack_is_a_usage_error(human3r_cli, tmp_path):
    result = human3r_cli("parity", "train", tmp_path, code=2)
    assert "is not a training parity pack" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    result = human3r_cli("parity", "train", PACK, "--clip-norm", "all", code=2)
    assert "--clip-norm" in result.stderr
