"""Shared fixtures: a fresh dataset root per test and a small synthetic video factory."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def root(tmp_path):
    """A dataset root (pyarrow filesystem handle) in a fresh temporary folder."""
    from storage.fs import open_root

    return open_root(tmp_path / "dataset")
