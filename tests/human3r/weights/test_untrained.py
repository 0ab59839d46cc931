"""Untrained weights for smoke runs: deterministic, the parity pack's at seed 0, a handful of people per frame."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from human3r.errors import CheckpointError
from human3r.weights import load_model, to_reference_names

PARITY = Path(__file__).resolve().parents[2] / "fixtures" / "parity"


def test_untrained_tiny_seed0_is_the_parity_network():
    model = load_model("untrained:tiny")
    identity = model.identity
    assert identity.is_untrained and identity.model_version == "untrained-tiny-seed0"
    ref = json.loads((PARITY / "weights_checksum.json").read_text())
    sd = to_reference_names(model.state_dict())
    assert set(ref) == set(sd)
    for key, (s, s2) in ref.items():
        v = sd[key].double()
        assert math.isclose(float(v.sum()), s, rel_tol=1e-6, abs_tol=1e-6), key
        assert math.isclose(float((v * v).sum()), s2, rel_tol=1e-6, abs_tol=1e-6), key


def test_untrained_is_deterministic_per_seed():
    a = load_model("untrained:tiny:3")
    b = load_model("untrained:tiny:3")
    c = load_model("untrained:tiny:4")
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert set(sa) == set(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)
    key = "encoder.enc_blocks.0.attn.qkv.weight"
    assert not torch.equal(sa[key], sc[key])
    ida = a.identity
    assert ida.is_untrained and ida.name == "untrained:tiny:3" and ida.preset == "tiny" and ida.sha256 is None
    assert ida.model_version == "untrained-tiny-seed3" and ida.path is None and ida.spec == "untrained:tiny:3"
    assert ida.config.name == "tiny"


def test_untrained_model_is_ready_for_inference():
    model = load_model("untrained:tiny:1")
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert all(t.dtype == torch.float32 and t.device.type == "cpu" for t in model.state_dict().values())
    assert model.compute_dtype == torch.float32
    head = model.downstream_head.dpt_rgb.scratch
    assert head.layer_rn[1].weight is head.layer2_rn.weight


@pytest.mark.parametrize("spec, needle", [("untrained:huge:1", "untrained:<preset>"), ("untrained:tiny:x", "integer"),
                                          ("untrained:tiny:1:2", "untrained:<preset>")])
def test_bad_untrained_specs(spec, needle):
    with pytest.raises(CheckpointError, match=needle):
        load_model(spec)


@pytest.mark.usefixtures("one_torch_thread")
def test_untrained_smoke_run_sees_a_few_people():
    from human3r.stream import run_stream

    model = load_model("untrained:tiny")
    frames = list(np.load(PARITY / "inputs.npz")["frames"])
    counts = [sf.output.humans.count for sf in run_stream(model, frames)]
    assert counts == [3, 3, 3, 3, 2]  # the parity pack's counts (torch's default init gave ~140 per frame)
