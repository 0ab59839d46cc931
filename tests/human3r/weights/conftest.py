"""Fixtures for the weights tests: isolated caches, and official-format tiny checkpoints made on the fly."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from human3r import Human3R, Human3RConfig
from human3r.weights import to_reference_names

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
_MODES = ("depth_mode", "conf_mode", "pose_mode")


@pytest.fixture(autouse=True)
def _isolated_caches(isolated_weight_caches):
    """Every weights test runs with its own caches (see tests/conftest.py)."""


@pytest.fixture(scope="session")
def tiny_constructor() -> str:
    """The reference constructor string for the tiny parity configuration (as `args.model` would hold it)."""
    config = json.loads((FIXTURES / "parity" / "config.json").read_text())["model_config"]

    def literal(key, value):
        if key in _MODES:  # JSON stores the infinities as strings
            return tuple(float(v) if v in ("inf", "-inf") else v for v in value)
        return tuple(value) if isinstance(value, list) else value

    args = ", ".join(f"{k}={literal(k, v)!r}" for k, v in config.items())
    return f"ARCroco3DStereo(ARCroco3DStereoConfig({args}))"


@pytest.fixture(scope="session")
def tiny_state_dict():
    """`make(seed=0)`: a default-initialised tiny network's state dict, in reference names (as files hold it)."""

    def make(seed: int = 0) -> dict[str, torch.Tensor]:
        torch.manual_seed(seed)
        return to_reference_names(Human3R(Human3RConfig.preset("tiny")).state_dict())

    return make


@pytest.fixture(scope="session")
def save_official(tiny_constructor):
    """`save(path, state_dict, constructor=None, **extra)`: a file laid out like the released checkpoints,
    {'model': ..., 'args': Namespace(model=...), 'epoch': ...}."""

    def save(path: Path, state_dict: dict, constructor: str | None = None, **extra) -> Path:
        args = argparse.Namespace(model=constructor or tiny_constructor, lr=1e-4, num_views=4)
        torch.save({"model": state_dict, "args": args, "epoch": 39, **extra}, path)
        return path

    return save


@pytest.fixture(scope="session")
def official(tmp_path_factory, tiny_state_dict, save_official):
    """(path of an official-format tiny checkpoint, its reference-named state dict)."""
    sd = tiny_state_dict()
    path = save_official(tmp_path_factory.mktemp("official") / "human3r_tiny.pth", sd)
    return path, sd


@pytest.fixture(scope="session")
def assert_same_weights():
    """`check(model, sd)`: the model holds exactly the reference-named state dict `sd`."""

    def check(model: torch.nn.Module, sd: dict[str, torch.Tensor]) -> None:
        got = to_reference_names(model.state_dict())
        assert set(got) == set(sd)
        for key, value in sd.items():
            assert torch.equal(got[key], value), key

    return check
