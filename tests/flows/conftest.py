"""Flows run under one session-wide Prefect test harness (a temporary SQLite database and in-process API)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    import os

    for key in ("PREFECT_API_URL", "PREFECT_PROFILE"):
        os.environ.pop(key, None)
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
