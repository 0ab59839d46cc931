"""One live camera, everything around its `LiveRun`: the decoder, the feed, the optional Rerun stream and the
`live_status` rows. `human3r live` runs one in its main thread; a deployment's Ray actor runs one in a thread of
its own (`tasks.live.actors`).

    spec = checked_source("rtsp://cam/stream", options)     # SourceError (exit 2) before the model loads
    camera = LiveCamera(spec, root, model, identity, options=options)
    camera.run(stop)                                          # until stop is set (or a replayed file ends)
    camera.summary()                                          # sessions, segments, frames, drops, latency
"""

from __future__ import annotations

import dataclasses
import logging
import threading

import numpy as np

from storage.fs import Root
from tasks.identity import RunIdentity
from tasks.live.feed import Feed
from tasks.live.options import LiveOptions
from tasks.live.session import LiveRun
from tasks.live.source import SourceSpec, StreamSource, check_source, parse_source
from tasks.live.stats import LiveStats, StatusWriter

log = logging.getLogger(__name__)


def checked_source(source: str, options: LiveOptions) -> SourceSpec:
    """SOURCE classified and opened once (closed again): SourceError unless it is a stream with video."""
    spec = parse_source(source, realtime=options.realtime)
    check_source(spec, options)
    return spec


@dataclasses.dataclass(frozen=True)
class LiveSummary:
    """What a live camera did, from its start to its stop."""

    camera: str
    sessions: int
    segments: int  # committed
    frames_decoded: int
    frames_processed: int
    frames_dropped: int
    reconnects: int
    latency_p50_ms: float | None  # from arrival to message, over every processed frame
    latency_p95_ms: float | None
    messages: int  # handed to the feed
    video_ids: tuple[str, ...]  # the committed segments, in order

    @property
    def line(self) -> str:
        latency = (f", latency p50 {self.latency_p50_ms:.0f} ms / p95 {self.latency_p95_ms:.0f} ms"
                   if self.latency_p50_ms is not None else "")
        return (f"{self.camera}: {self.sessions} session(s), {self.segments} segment(s) committed; "
                f"{self.frames_processed} of {self.frames_decoded} frames processed, {self.frames_dropped} dropped "
                f"(model busy){latency}; {self.reconnects} reconnection(s)")


class LiveCamera:
    """A checked source run through a loaded model into the dataset at `root`."""

    def __init__(self, spec: SourceSpec, root: Root, model, identity: RunIdentity, *, options: LiveOptions,
                 camera: str | None = None, body_model=None, restarts: int = 0, feed_port: int | None = None,
                 log_line=None):
        import deltalake.transaction  # noqa: F401 - imported before the threads: two threads importing a package at
        # once can fail (KeyError from importlib), and the status thread and this one both write to the dataset

        self.spec, self.root, self.options = spec, root, options
        self.name = camera or spec.name
        self.log_line = log_line or (lambda text: log.info(text))
        self.source = StreamSource(spec, options)
        self.stats = LiveStats(self.name, spec.public_uri, identity.model_version, window_s=options.status_seconds,
                               restarts=restarts)
        self.feed = None
        if options.feed.enabled:
            feed_options = options.feed if feed_port is None else options.feed.model_copy(update={"port": feed_port})
            self.feed = Feed(feed_options, lambda: self.stats.snapshot(self.source))
            self.stats.feed_url = self.feed.url
        self.viewer = None
        if options.rerun:
            from tasks.live.viewer import LiveViewer

            self.viewer = LiveViewer(options.rerun, self.name)
        self.status = StatusWriter(root, self.log_line)
        self.stop_event = threading.Event()
        self.error: str | None = None
        self.run_ = LiveRun(self.source, root, model, identity, camera=self.name, options=options, stats=self.stats,
                            stop=self.stop_event, body_model=body_model,
                            publish=self.feed.publish if self.feed is not None else None, viewer=self.viewer,
                            status=self.status, log=self.log_line)
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------------------------ running
    def run(self) -> None:
        """Run until `stop()` (or a replayed file ends); then commit the open segment, write the last status row
        and close the feed. An unexpected error is recorded (status 'failed', a failures row) and raised."""
        try:
            self.run_.run()
        except Exception as err:
            self.error = f"{type(err).__name__}: {' '.join(str(err).split())}"[:500]
            self.stats.set(state="failed", message=self.error)
            from storage.writer import write_failure

            try:
                write_failure(self.root, source_uri=self.spec.public_uri, stage="live", error=err)
            except Exception:  # noqa: BLE001 - the status row below still says why
                log.debug("could not record the failure", exc_info=True)
            raise
        finally:
            self.close()

    def start(self) -> None:
        """Run in a thread of its own (`stop()` ends it)."""
        def target() -> None:
            try:
                self.run()
            except Exception:  # noqa: BLE001 - recorded by run(); health() reports it
                log.exception("live camera %s failed", self.name)

        self._thread = threading.Thread(target=target, name=f"live:{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 60) -> None:
        """Ask it to stop (it commits its open segment) and wait for it."""
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self) -> None:
        self.stop_event.set()
        self.status.close(self.stats.snapshot(self.source))
        if self.feed is not None:
            self.feed.close()
        if self.viewer is not None:
            self.viewer.close()

    # ------------------------------------------------------------------------------------------------ reading
    def health(self) -> dict:
        """The camera's `live_status` row now."""
        return self.stats.snapshot(self.source)

    def summary(self) -> LiveSummary:
        latencies = np.asarray(self.stats.latencies_ms, dtype=np.float64)
        p50, p95 = np.percentile(latencies, [50, 95]).tolist() if latencies.size else (None, None)
        committed = self.run_.committed
        return LiveSummary(self.name, len(self.run_.sessions), len(committed), self.source.decoded,
                           self.stats.processed, self.source.queue.dropped, self.source.reconnects, p50, p95,
                           self.feed.published if self.feed is not None else 0,
                           tuple(c.video_id for c in committed))

