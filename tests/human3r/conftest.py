"""Fixtures shared by the network tests: the parity-pack network (built once) and its input frames."""

from __future__ import annotations

from pathlib import Path

import pytest

PARITY = Path(__file__).parents[1] / "fixtures" / "parity"


@pytest.fixture(scope="session")
def parity_model():
    """The fixture network with its generated weights, built once; tests that change it take a copy."""
    from human3r.parity import build_fixture_model

    model, _ = build_fixture_model(PARITY)
    return model


@pytest.fixture(scope="session")
def parity_frames():
    """The parity pack's 5 prepared frames (80x128 working size, 224 px human branch; 3, 3, 3, 3, 2 people)."""
    from human3r.parity import fixture_frames

    return fixture_frames(PARITY)
