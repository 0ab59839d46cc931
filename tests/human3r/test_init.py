"""Untrained weights for smoke runs: deterministic, parity-shaped, and a handful of people per frame."""

from __future__ import annotations

import json
import math
import pathlib

import torch

from human3r.weights import load_model

PARITY = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "parity"


def test_untrained_tiny_seed0_is_the_parity_network():
    model, identity = load_model("untrained:tiny")
    assert identity.is_untrained and identity.model_version == "untrained-tiny-seed0"
    ref = json.loads((PARITY / "weights_checksum.json").read_text())
    sd = model.state_dict()
    assert set(ref) == set(sd)
    for key, (s, s2) in ref.items():
        v = sd[key].double()
        assert math.isclose(float(v.sum()), s, rel_tol=1e-6, abs_tol=1e-6), key
        assert math.isclose(float((v * v).sum()), s2, rel_tol=1e-6, abs_tol=1e-6), key


def test_seeds_differ_and_repeat():
    a = load_model("untrained:tiny:1")[0].state_dict()
    b = load_model("untrained:tiny:1")[0].state_dict()
    c = load_model("untrained:tiny")[0].state_dict()
    key = "downstream_head.mlp_fuse.0.weight" if "downstream_head.mlp_fuse.0.weight" in a else next(iter(a))
    assert torch.equal(a[key], b[key]) and not torch.equal(a[key], c[key])


def test_untrained_smoke_run_sees_a_few_people():
    import numpy as np

    from human3r.stream import run_stream

    model, _ = load_model("untrained:tiny")
    frames = list(np.load(PARITY / "inputs.npz")["frames"])
    counts = [sf.output.humans.count for sf in run_stream(model, frames)]
    assert counts == [3, 3, 3, 3, 2]  # the parity pack's counts (torch's default init gave ~140 per frame)
