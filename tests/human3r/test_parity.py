"""Numerical parity with the reference implementation on the tiny synthetic-weight fixture pack."""

import copy
from pathlib import Path

import pytest
import torch

from human3r.parity import fixture_frames, main, run_parity

FIXTURE = Path(__file__).parents[1] / "fixtures" / "parity"


# the fixtures were made with 2 threads; 1 vs 2 threads moves results by <= 2.2e-6 (fixture README)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def report(parity_model):
    return run_parity(FIXTURE, model=parity_model)


def test_parity_passes(report):
    assert report.ok, "\n" + report.table()
    names = {(r.case, r.name) for r in report.rows}
    for case in ("default", "ttt3r", "reset2"):
        for name in ("pts3d_in_self_view", "smpl_id", "final.state", "final.mem", "post.c2w", "f0.dec_img_4",
                     "state_new", "smpl_prompt_pos", "f0.enc_block0", "f0.det_logits", "state_in", "pose_query",
                     "post.focal", "post.pp", "post.focal_from_ref_pts"):
            assert (case, name) in names
    assert ("ttt3r", "ttt3r_gate") in names
    assert ("inputs", "preprocess.img") in names
    assert not any(r.name == "recorded_calls" for r in report.rows)  # one recorded forward call per view


def test_readme_tolerances_hold_except_documented_platform_floor(parity_model):
    """Everything but f0.enc_block0 and post.focal meets the README numbers verbatim (see parity.PLATFORM_FLOOR)."""
    strict = run_parity(FIXTURE, strict=True, cases=("ttt3r",), model=parity_model)
    failing = {r.name for r in strict.rows if not r.ok}
    assert failing <= {"f0.enc_block0", "post.focal"}, failing


def test_perturbed_weight_fails(parity_model):
    def perturb(model):
        model.decoder.dec_blocks_state[1].cross_attn.projk.weight.mul_(1.01)

    bad = run_parity(FIXTURE, perturb=perturb, cases=("default",), model=copy.deepcopy(parity_model))
    assert not bad.ok
    failing = {r.name for r in bad.rows if not r.ok}
    assert {"f0.dec_img_4", "pts3d_in_self_view", "camera_pose"} <= failing
    assert "f0.enc_block0" not in failing  # encoder untouched


def test_missing_fp16_rope_rounding_fails(parity_model):
    def perturb(model):
        for blk in model.encoder.enc_blocks:
            blk.attn.rope = "fp32"

    bad = run_parity(FIXTURE, perturb=perturb, cases=("default",), model=copy.deepcopy(parity_model))
    assert "f0.enc_block0" in {r.name for r in bad.rows if not r.ok}


def test_cli_exit_code(capsys):
    assert main([str(FIXTURE), "--case", "reset2", "--threads", "1"]) == 0
    assert "parity PASSED" in capsys.readouterr().out


def test_compiled_blocks_keep_parity(parity_model):
    """`Human3R.compile_blocks` is an exact option: the torch.compile'd blocks (fused LayerNorm / GELU / RoPE, the
    encoder's float16 rounding emulated) pass the pack's tolerances on a case with resets and changing people.

    And on any CPU, not just where inductor's kernels happen to round like ATen's: compiled encoder block 0 matches
    the eager one to float32 rounding (~1e-6), i.e. no q/k element lands on the other side of a float16 rounding
    (one that does moves the output by ~1e-4: inductor's own LayerNorm did that on an AVX2 CPU, 330 elements)."""
    from human3r.layers import Rope
    from human3r.model import Human3R

    model = copy.deepcopy(parity_model)
    compiled = run_parity(FIXTURE, perturb=Human3R.compile_blocks, cases=("reset2",), model=model)
    assert compiled.ok, "\n" + compiled.table()
    assert len(compiled.rows) > 30

    enc = parity_model.encoder
    with torch.inference_mode():  # as `run_stream`: the compiled graph is reused, not recompiled
        x, pos = enc.patch_embed(fixture_frames(FIXTURE)[0].img)
        rope = Rope(pos, enc.cfg.rope_base, (enc.cfg.embed_dim // enc.cfg.num_heads,))
        eager, fused = enc.enc_blocks[0](x, rope), model.encoder.enc_blocks[0](x, rope)
    assert not torch.equal(eager, fused)  # really compiled: the fused MLP rounds differently
    torch.testing.assert_close(fused, eager, atol=5e-6, rtol=0)
