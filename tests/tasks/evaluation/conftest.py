"""The evaluation parity pack (tests/fixtures/eval_parity: the reference's inputs, outputs and tolerances), and the
benchmark loaders' fixtures: the pack's format samples and SMPL stand-ins (benchmark_fixtures.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from benchmark_fixtures import FORMATS, write_smpl_files

PACK = Path(__file__).resolve().parents[2] / "fixtures" / "eval_parity"


@pytest.fixture(scope="session")
def pack() -> Path:
    return PACK


@pytest.fixture(scope="session")
def tol() -> dict:
    return json.loads((PACK / "tolerances.json").read_text())


@pytest.fixture(scope="session")
def camcoord() -> dict[str, np.ndarray]:
    """human/camcoord.npz, read once (6 MB compressed)."""
    z = np.load(PACK / "human/camcoord.npz")
    return {k: z[k] for k in z.files}


@pytest.fixture(scope="session")
def aggregate():
    """{name: HumanSequence} of the pack's aggregate sequences through the launch loop, both protocols."""
    from tasks.evaluation.metrics.humans import evaluate_human_sequence
    from tasks.evaluation.parity import aggregate_frames

    z = np.load(PACK / "human/aggregate.npz")
    names = [s["name"] for s in json.loads((PACK / "human/aggregate.json").read_text())["sequences"]]
    out = {}
    for protocol in ("reference", "corrected"):
        out[protocol] = {name: evaluate_human_sequence(aggregate_frames(z, f"seq{i}"), world=True, protocol=protocol)
                         for i, name in enumerate(names)}
    return out


@pytest.fixture(scope="session")
def parsed() -> dict[str, np.ndarray]:
    """formats/parsed.npz: what the reference loaders returned on the pack's samples."""
    with np.load(FORMATS / "parsed.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="session")
def formats_info() -> dict:
    """formats/formats.json["info"]: facts about the samples (image lists, stub J0, shapes)."""
    return json.loads((FORMATS / "formats.json").read_text())["info"]


@pytest.fixture(scope="session")
def smpl_files(tmp_path_factory) -> Path:
    """A folder of SMPL stand-ins with the real shapes (reference layout; smplx2smpl as GVHMR's sparse .pt)."""
    return write_smpl_files(tmp_path_factory.mktemp("smpl_files"))
