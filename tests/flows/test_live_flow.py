"""The live-cameras flow under the Prefect test harness, on a local Ray cluster: one camera (a clip replayed at its
frame rate) as a long-lived actor; the actor is killed mid-stream, the flow restarts it, and the camera's health
lands in live_status; its deployment in prefect.yaml points at the flow."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import yaml

from storage import schema as S
from storage.catalog import open_catalog
from tasks.ops.sample import make_sample_video
from tasks.options import ClusterOptions, ConvertOptions, ModelOptions, ReconstructOptions

pytest.importorskip("ray")
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def query(root, sql: str) -> list[dict]:
    if not (root / S.DATASET_FILE).exists():
        return []
    with open_catalog(root) as cat:
        return cat.query(sql).to_pylist()


def test_cameras_run_as_actors_and_a_dead_one_is_restarted(prefect_harness, tmp_path):
    import ray

    from flows.live import live_cameras
    from tasks.live.actors import actor_name
    from tasks.live.options import Camera, LiveOptions
    from tasks.reconstruction.actors import NAMESPACE

    clip = make_sample_video(tmp_path / "cam.mp4", n_frames=40, width=160, height=96, fps=10)
    dataset = tmp_path / "ds"
    killed = []

    def kill_once_it_committed() -> None:  # the actor dies (as if killed or out of memory) mid-stream
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not query(dataset, "SELECT 1 FROM runs"):
            time.sleep(0.2)
        ray.kill(ray.get_actor(actor_name("lobby"), namespace=NAMESPACE), no_restart=True)
        killed.append(time.monotonic())

    threading.Thread(target=kill_once_it_committed, daemon=True).start()
    lines = live_cameras(
        cameras=[Camera(name="lobby", source=clip)], dataset=str(dataset),
        model=ModelOptions(checkpoint="untrained:tiny"),
        options=ReconstructOptions(convert=ConvertOptions(points_per_frame=20, conf_threshold=1.0)),
        live=LiveOptions(realtime=True, segment_seconds=1.0, status_seconds=0.5),
        cluster=ClusterOptions(torch_threads=1), duration_s=120, health_every_s=0.5)
    assert killed, "the actor was never killed"
    assert len(lines) == 1 and "lobby: 1 session(s)" in lines[0]  # the replacement's own summary

    sessions = query(dataset, "SELECT * FROM sessions ORDER BY started_at")
    assert len(sessions) == 2 and all(s[S.MISSING_SEGMENTS] == 0 for s in sessions)  # a kill loses the open one
    status = query(dataset, "SELECT * FROM live_status")[0]
    assert status[S.CAMERA] == "lobby" and status[S.RESTARTS] == 1 and status[S.STATE] == "stopped"
    assert status[S.FRAMES_DECODED] == 40  # the replacement replayed the whole clip
    assert status[S.SEGMENTS_COMMITTED] == sessions[1][S.N_SEGMENTS]
    assert not ray.is_initialized()  # the flow's own cluster is gone

    deployments = {d["name"]: d for d in yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]}
    assert deployments["cameras"]["entrypoint"] == "flows/live.py:live_cameras"


def test_cameras_are_checked_before_any_actor_starts():
    from tasks.errors import OptionsError, SourceError
    from tasks.live.cameras import check_cameras
    from tasks.live.options import Camera, LiveOptions

    with pytest.raises(OptionsError, match="at least one camera"):
        check_cameras([], LiveOptions())
    with pytest.raises(OptionsError, match="repeated: a"):
        check_cameras([Camera(name="a", source="rtsp://x/1"), Camera(name="a", source="rtsp://x/2")], LiveOptions())
    with pytest.raises(SourceError, match="unsupported source"):
        check_cameras([Camera(name="a", source="ftp://x/1")], LiveOptions())
