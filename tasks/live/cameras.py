"""The `live-cameras` stages as Prefect tasks: check the cameras, hold one Ray actor per camera, supervise them
(health every few seconds, dead ones restarted), stop them (each commits its open segment), report.

Each `@task` wraps a plain function of this module that tests call directly. What a camera writes (segments,
live_status rows) is the camera's own doing (`tasks.live.camera`); the flow only keeps the actors alive and says how
they are: a log line per camera per check, and the table artifact ``live-health`` whenever a camera's state changes
(and at the end).
"""

from __future__ import annotations

import contextlib
import os
import time

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from storage import schema as S
from tasks.errors import OptionsError
from tasks.live.options import Camera, LiveOptions
from tasks.live.source import parse_source
from tasks.options import ClusterOptions, ModelOptions, ReconstructOptions

HEALTH_COLUMNS = (S.CAMERA, S.STATE, S.MESSAGE, S.SESSION_ID, S.SEGMENT_INDEX, S.SEGMENTS_COMMITTED, S.FPS_IN,
                  S.FPS_OUT, S.FRAMES_DROPPED, S.LATENCY_P50_MS, S.LATENCY_P95_MS, S.PEOPLE_NOW, S.RECONNECTS,
                  S.RESTARTS, S.FEED_URL)


SAMPLE_CLIP = "data/live-footage/sample.mp4"  # the flow's default camera replays this clip, made when missing
SAMPLE_CLIP_FRAMES, SAMPLE_CLIP_FPS = 300, 25


def check_cameras(cameras: list[Camera], live: LiveOptions) -> list[Camera]:
    """The cameras, after checking their names are unique and their sources may be streams (not opened: a camera
    that is down is retried by its actor). The sample clip (`SAMPLE_CLIP`) is generated when a camera replays it
    and it is missing."""
    if any(c.source == SAMPLE_CLIP for c in cameras) and not os.path.exists(SAMPLE_CLIP):
        from tasks.ops.sample import make_sample_video

        os.makedirs(os.path.dirname(SAMPLE_CLIP), exist_ok=True)
        tmp = f"{SAMPLE_CLIP}.{os.getpid()}.mp4"
        make_sample_video(tmp, n_frames=SAMPLE_CLIP_FRAMES, fps=SAMPLE_CLIP_FPS)
        os.replace(tmp, SAMPLE_CLIP)
    if not cameras:
        raise OptionsError("cameras: give at least one camera, e.g. [{name: lobby, source: rtsp://cam/stream}]")
    names = [c.name for c in cameras]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise OptionsError(f"cameras: each name once (repeated: {', '.join(twice)})")
    for camera in cameras:
        parse_source(camera.source, realtime=live.realtime)
    return cameras


@contextlib.contextmanager
def camera_pool(cameras: list[Camera], dataset: str, model: ModelOptions, options: ReconstructOptions,
                live: LiveOptions, cluster: ClusterOptions):
    """Connect to (or start) Ray and run one actor per camera for the duration of the block; leaving it stops them
    (each commits its open segment)."""
    import ray

    from tasks.live.actors import CameraPool
    from tasks.reconstruction.actors import connect

    started_here = not ray.is_initialized() and not cluster.ray_address
    connect(cluster.ray_address)
    pool = CameraPool(cameras, dataset, model, options, live, cluster)
    try:
        yield pool
    finally:
        pool.summaries = pool.stop()
        if started_here:
            ray.shutdown()


def health_table(rows: list[dict]) -> list[dict]:
    """The health rows as the artifact shows them (numbers rounded)."""
    out = []
    for row in rows:
        shown = {}
        for col in HEALTH_COLUMNS:
            value = row.get(col)
            shown[col] = round(value, 1) if isinstance(value, float) else value
        out.append(shown)
    return out


def health_line(row: dict) -> str:
    p50 = row.get(S.LATENCY_P50_MS)
    latency = f", latency p50 {p50:.0f} ms" if p50 is not None else ""
    return (f"{row[S.CAMERA]}: {row[S.STATE]}{' (' + row[S.MESSAGE] + ')' if row.get(S.MESSAGE) else ''}; "
            f"{row.get(S.FPS_OUT) or 0:.1f} of {row.get(S.FPS_IN) or 0:.1f} fps processed, "
            f"{row.get(S.FRAMES_DROPPED) or 0} dropped{latency}, {row.get(S.PEOPLE_NOW) or 0} people, "
            f"{row.get(S.SEGMENTS_COMMITTED) or 0} segments, {row.get(S.RESTARTS) or 0} restarts")


def supervise(pool, *, duration_s: float | None, every_s: float, on_health=None) -> list[dict]:
    """Check the cameras every `every_s` seconds (restarting the dead) until `duration_s` has passed (forever when
    None) or every camera has stopped (replayed files ended). Returns the last health rows."""
    start = time.monotonic()
    rows = pool.check()
    while True:
        if on_health is not None:
            on_health(rows)
        if all(not r.get("running", True) for r in rows):
            return rows
        left = None if duration_s is None else duration_s - (time.monotonic() - start)
        if left is not None and left <= 0:
            return rows
        time.sleep(every_s if left is None else min(every_s, left))
        rows = pool.check()


# ------------------------------------------------------------------------------------------------ Prefect tasks
@task(name="check-cameras", cache_policy=NO_CACHE)
def check_cameras_task(cameras: list[Camera], live: LiveOptions) -> list[Camera]:
    checked = check_cameras(cameras, live)
    get_run_logger().info("%d camera(s): %s", len(checked), ", ".join(f"{c.name} ({c.source.split('@')[-1]})"
                                                                         for c in checked))
    return checked


@task(name="supervise-cameras", cache_policy=NO_CACHE)
def supervise_cameras(pool, duration_s: float | None, every_s: float) -> list[dict]:
    logger = get_run_logger()
    states: dict[str, str] = {}

    def report(rows: list[dict]) -> None:
        for row in rows:
            logger.info(health_line({**{c: None for c in HEALTH_COLUMNS}, **row}))
        now = {r[S.CAMERA]: r[S.STATE] for r in rows}
        if now != states:
            states.clear()
            states.update(now)
            create_table_artifact(key="live-health", table=health_table(rows),
                                  description="Health of each live camera (live_status of the dataset has it too)")

    return supervise(pool, duration_s=duration_s, every_s=every_s, on_health=report)


@task(name="report-cameras", cache_policy=NO_CACHE)
def report_cameras(summaries: list, health: list[dict]) -> list[str]:
    lines = [s.line if s is not None else "a camera's actor was dead at the end (its open segment is lost)"
             for s in summaries]
    create_table_artifact(key="live-health", table=health_table(health), description="Last health of each camera")
    logger = get_run_logger()
    for line in lines:
        logger.info(line)
    return lines
