"""`human3r live SOURCE --out ROOT`: one camera, live, into the dataset, with a low-latency feed.

Flags are built from the option models (`tasks.options`: the model and the rows, as `human3r reconstruct`;
`tasks.live.options`: segments, sessions, reconnection, feed). Registered lazily on the `human3r` group
(`tasks.cli.main`), which turns a bad source or option into one red line and exit code 2.
"""

from __future__ import annotations

import signal
import threading

import click

from tasks.cli.reconstruct import MODEL_FLAGS
from tasks.live.options import LiveOptions
from tasks.options import ModelOptions, ReconstructOptions, click_options

ROW_FLAGS = {
    "--reset-interval": "reset_interval",
    "--ttt3r/--no-ttt3r": "use_ttt3r",
    "--points-per-frame": "convert.points_per_frame",
    "--conf-threshold": "convert.conf_threshold",
    "--world-points": "convert.world_points",
}
LIVE_FLAGS = {
    "--segment-seconds": "segment_seconds",
    "--session-gap": "session_gap_s",
    "--realtime/--no-realtime": "realtime",
    "--queue-size": "queue_size",
    "--reconnect-initial": "reconnect_initial_s",
    "--reconnect-max": "reconnect_max_s",
    "--open-timeout": "open_timeout_s",
    "--read-timeout": "read_timeout_s",
    "--status-seconds": "status_seconds",
    "--feed/--no-feed": "feed.enabled",
    "--feed-host": "feed.host",
    "--feed-port": "feed.port",
    "--rerun": "rerun",
}


@click.command(context_settings={"max_content_width": 110})
@click.argument("source")
@click.option("--out", "root", required=True, envvar="HUMAN3R_DATASET", show_envvar=True,
              help="Dataset root to write into (folder or s3://bucket/prefix).")
@click.option("--camera", default=None, help="The camera's name (runs.camera, live_status); default: from SOURCE.")
@click_options(ModelOptions, MODEL_FLAGS, dest="model")
@click_options(ReconstructOptions, ROW_FLAGS, dest="options")
@click_options(LiveOptions, LIVE_FLAGS, dest="live")
@click.option("--duration", "duration_s", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop after this many seconds, as SIGTERM would (default: run until stopped).")
def live(source: str, root: str, camera: str | None, model: ModelOptions, options: ReconstructOptions,
         live: LiveOptions, duration_s: float | None) -> None:
    """Reconstruct the camera at SOURCE live into the dataset at --out, and feed people in the world over a
    WebSocket as each frame is processed.

    \b
    SOURCE: rtsp://, rtmp://, srt://, udp://, tcp://, http(s):// (HLS), a V4L2 device (/dev/video0), or a video file
    with --realtime (replayed at its frame rate). The model takes the newest frame; frames that come while it is
    busy are dropped and counted. The stream lands as sessions (one recurrent state, world frame and set of track
    ids) of segments of --segment-seconds (each a video of the dataset, committed atomically; SQL: the sessions
    view). A stream that drops is reopened with back-off; back within --session-gap seconds, the session goes on.
    SIGTERM or Ctrl-C commits the open segment and exits; a kill loses at most the open segment.
    Feed: ws://127.0.0.1:8765/feed, one JSON message per processed frame (status: http://.../status).
    Examples:
      human3r live rtsp://user:pass@cam1/stream --out data/live --checkpoint human3r_672S.pth --camera lobby
      python -m tasks.ops.stream --port 9000 &   # a sample camera on this machine
      human3r live tcp://127.0.0.1:9000 --out data/live --checkpoint untrained:tiny --segment-seconds 10
    """
    from rich.console import Console

    from human3r.body import load_body_model
    from human3r.weights import load_model
    from storage.dataset import init_dataset
    from storage.fs import open_root
    from tasks.identity import RunIdentity
    from tasks.live.camera import LiveCamera, checked_source
    from tasks.live.options import CAMERA_NAME
    from tasks.ops.listen import LOOPBACK
    from tasks.reconstruction.video import resolve_device

    console = Console(stderr=True, soft_wrap=True, highlight=False)
    if camera is not None and not CAMERA_NAME.match(camera):
        raise click.BadParameter("letters, digits, '.', '_' or '-', at most 64, starting with a letter or digit",
                                 param_hint="--camera")
    spec = checked_source(source, live)  # a bad source: one line, exit 2, before the model loads
    dataset = init_dataset(open_root(root))
    device = resolve_device(model.device)
    identity = RunIdentity.planned(model, options)
    body = load_body_model(model.body_model) if model.body_model else None
    if identity.weights.is_untrained:
        console.print(f"[bold yellow]UNTRAINED WEIGHTS ({identity.weights.name}): a smoke run; every row is marked "
                      f"model_version={identity.model_version}[/]")
    network = load_model(model.checkpoint, preset=model.preset, device=device, precision=model.precision)
    network = network.compile_blocks() if model.compile else network
    identity = identity.computed_by(network)

    cam = LiveCamera(spec, dataset, network, identity, options=live, camera=camera, body_model=body,
                     log_line=lambda text: console.print(text, markup=False))
    feed = f", feed {cam.feed.url}" if cam.feed is not None else ""
    click.echo(f"live: {spec.public_uri} as camera {cam.name} into {root}{feed} (Ctrl-C or SIGTERM stops it)")
    if cam.feed is not None and live.feed.host not in LOOPBACK:
        click.secho(f"warning: the feed listens on {live.feed.host}: anyone who can reach this machine can read it",
                    fg="yellow", err=True)
    stop = cam.stop_event

    def on_signal(signum, frame) -> None:
        console.print(f"{signal.Signals(signum).name}: committing the open segment and stopping", markup=False)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    timer = threading.Timer(duration_s, stop.set) if duration_s else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        cam.run()
    finally:
        if timer is not None:
            timer.cancel()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo(cam.summary().line)
