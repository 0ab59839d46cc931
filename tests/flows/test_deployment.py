"""The README's main job for real: `human3r demo` starts a Prefect server and worker, deploys prefect.yaml and runs
reconstruct-archive/demo --watch; the nightly cron deployment gets its scheduled runs from the server."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys

import pytest

from storage.catalog import open_catalog

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_demo_through_real_server_and_worker(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "HUMAN3R_CHECKPOINT")}
    env.update(HUMAN3R_HOME=str(tmp_path / "home"), HUMAN3R_PREFECT_PORT=str(port), HF_HOME=str(tmp_path / "hf"),
               PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="1")
    cli = [sys.executable, "-m", "tasks.cli.main"]
    dataset = tmp_path / "ds"
    try:
        proc = subprocess.run([*cli, "demo", "--footage", str(tmp_path / "footage"), "--dataset", str(dataset)],
                              env=env, capture_output=True, text=True, timeout=1200)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "UNTRAINED" in proc.stdout and "Completed" in proc.stdout
        assert "untrained-tiny-seed0" in proc.stdout  # the DuckDB summary of what landed
        with open_catalog(dataset) as cat:
            assert cat.query("SELECT count(*) FROM videos").column(0)[0].as_py() == 3
            assert cat.query("SELECT count(*) FROM frames").column(0)[0].as_py() == 3 * 24

        status = subprocess.run([*cli, "services", "status"], env=env, capture_output=True, text=True, timeout=60)
        assert f"127.0.0.1:{port}" in status.stdout and "running, pid" in status.stdout

        os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
        try:
            assert asyncio.run(_scheduled_nightly_runs()) > 0  # cron schedules fire (the sqlalchemy<2.1 pin)
            # what `human3r watch` sends when footage lands: the on-new-footage trigger makes a run of it
            from tasks.ops.watch import Landed, footage_event, send_event

            inbox = tmp_path / "inbox"
            inbox.mkdir()
            clip = inbox / "landed.mp4"
            clip.write_bytes(b"not really a video")
            st = clip.stat()
            event = footage_event(inbox, [Landed(str(clip), st.st_size, st.st_mtime_ns)], str(tmp_path / "ev-ds"))
            send_event(event, os.environ["PREFECT_API_URL"])
            params = asyncio.run(_runs_of("on-new-footage"))
            assert params == {"source": str(clip), "dataset": str(tmp_path / "ev-ds")}, params
        finally:
            os.environ.pop("PREFECT_API_URL")
    finally:
        stop = subprocess.run([*cli, "services", "stop"], env=env, capture_output=True, text=True, timeout=120)
    assert "worker" in stop.stdout and "server" in stop.stdout


async def _runs_of(deployment: str) -> dict | None:
    """The parameters of the first flow run of `deployment` the server creates (within 60 s)."""
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    async with PrefectClient(os.environ["PREFECT_API_URL"]) as client:
        for _ in range(120):
            runs = await client.read_flow_runs(deployment_filter=DeploymentFilter(
                name=DeploymentFilterName(any_=[deployment])))
            if runs:
                return {k: v for k, v in runs[0].parameters.items() if k in ("source", "dataset")}
            await asyncio.sleep(0.5)
    return None


async def _scheduled_nightly_runs() -> int:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    async with PrefectClient(os.environ["PREFECT_API_URL"]) as client:
        for _ in range(60):
            runs = await client.read_flow_runs(deployment_filter=DeploymentFilter(
                name=DeploymentFilterName(any_=["nightly"])))
            if runs:
                return len(runs)
            await asyncio.sleep(1)
    return 0
