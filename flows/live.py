"""`live-cameras`: run a list of cameras live into the dataset, one long-lived Ray actor per camera (GPU per actor
as for videos), restart an actor that dies, and report each camera's health until stopped.

    prefect deployment run live-cameras/cameras -p cameras='[{"name": "lobby", "source": "rtsp://cam1/stream"}]'
    python flows/live.py          # locally with the defaults: a sample clip replayed as a camera into data/live

Each camera lands in the dataset as sessions of segments (`human3r live` does the same for one camera in one
process); its health is in the dataset's `live_status` table (the dashboard's Live page) and in this flow's logs and
`live-health` artifact. Cancelling the flow run stops the cameras: each commits its open segment.
"""

from __future__ import annotations

from prefect import flow

from tasks.live.cameras import SAMPLE_CLIP, camera_pool, check_cameras_task, report_cameras, supervise_cameras
from tasks.live.options import Camera, LiveOptions
from tasks.options import ClusterOptions, ModelOptions, ReconstructOptions

SAMPLE = [Camera(name="sample", source=SAMPLE_CLIP)]  # a generated clip replayed as a camera (live.realtime)


@flow(name="live-cameras", log_prints=False)
def live_cameras(
    cameras: list[Camera] = SAMPLE,
    dataset: str = "data/live",
    model: ModelOptions = ModelOptions(),
    options: ReconstructOptions = ReconstructOptions(),
    live: LiveOptions = LiveOptions(realtime=True),
    cluster: ClusterOptions = ClusterOptions(),
    duration_s: float | None = 30.0,
    health_every_s: float = 10.0,
) -> list[str]:
    """Run `cameras` live into the dataset at `dataset` until `duration_s` has passed or the run is cancelled.

    Args:
        cameras: the cameras: each a name (the key of its health row) and a stream source (rtsp://, rtmp://,
            srt://, udp://, tcp://, http(s):// (HLS), /dev/videoN, or a file with live.realtime), optionally a
            feed_port (`tasks.live.options.Camera`).
        dataset: dataset root (folder or s3://bucket/prefix).
        model: the weights, the body model and how the network runs (`tasks.options.ModelOptions`).
        options: what the rows are made with: resets, TTT3R, points (`tasks.options.ReconstructOptions`).
        live: segment length, session gap, reconnection, frame queue, status interval, feed
            (`tasks.live.options.LiveOptions`).
        cluster: where the actors run (ray_address, gpus_per_actor, cpus_per_actor, torch_threads); one actor per
            camera (`tasks.options.ClusterOptions`).
        duration_s: stop the cameras after this many seconds (empty = run until cancelled).
        health_every_s: seconds between two health checks (a dead actor is restarted at the next one).
    """
    checked = check_cameras_task(cameras, live)
    with camera_pool(checked, dataset, model, options, live, cluster) as pool:
        health = supervise_cameras(pool, duration_s, health_every_s)
    return report_cameras(pool.summaries, health)


if __name__ == "__main__":
    live_cameras()
