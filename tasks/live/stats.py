"""The health of one live camera: counters and sliding windows the model thread updates, read as a snapshot by the
status rows (`live_status`), the feed's ``/status`` and the deployment's health checks.

Latency is measured per processed frame from its arrival (decoded, `tasks.live.source.Arrival.mono`) to the moment
its feed message is handed to the feed: decoding the queue wait, preprocessing, the network, the conversion to
rows and the message itself. Rates and percentiles are over the last `window_s` seconds.
"""

from __future__ import annotations

import collections
import datetime as dt
import os
import socket
import threading
import time

import numpy as np

from storage import schema as S


class LiveStats:
    """Counters of one live process (thread-safe)."""

    def __init__(self, camera: str, source_uri: str, model_version: str, *, window_s: float, restarts: int = 0,
                 feed_url: str | None = None):
        self.camera, self.source_uri, self.model_version = camera, source_uri, model_version
        self.window_s, self.restarts, self.feed_url = window_s, restarts, feed_url
        self.started_at = dt.datetime.now(dt.UTC)
        self._start = time.monotonic()
        self._lock = threading.Lock()
        self.state, self.message = "starting", None
        self.session_id: str | None = None
        self.segment_index: int | None = None
        self.sessions = 0
        self.processed = 0
        self.people_now = 0
        self.segments_committed = 0
        self.last_video_id: str | None = None
        self.last_committed_at: dt.datetime | None = None
        self._done: collections.deque[tuple[float, float]] = collections.deque(maxlen=8192)  # (when, latency ms)
        self.latencies_ms: collections.deque[float] = collections.deque(maxlen=100_000)  # every frame's, for totals

    def frame_done(self, latency_ms: float, people: int) -> None:
        with self._lock:
            self.processed += 1
            self.people_now = people
            self._done.append((time.monotonic(), latency_ms))
            self.latencies_ms.append(latency_ms)

    def committed(self, video_id: str, at: dt.datetime) -> None:
        with self._lock:
            self.segments_committed += 1
            self.last_video_id, self.last_committed_at = video_id, at

    def set(self, **fields) -> None:
        """Update state, message, session_id, segment_index."""
        with self._lock:
            for name, value in fields.items():
                setattr(self, name, value)

    def snapshot(self, source) -> dict:
        """A `live_status` row (every column) from these counters and the source's (`StreamSource`)."""
        now = time.monotonic()
        window = max(min(self.window_s, now - self._start), 1e-3)
        with self._lock:
            recent = [ms for t, ms in self._done if t > now - window]
            row = {
                S.CAMERA: self.camera, S.SOURCE_URI: self.source_uri, S.STATE: self.state, S.MESSAGE: self.message,
                S.SESSION_ID: self.session_id, S.SEGMENT_INDEX: self.segment_index,
                S.SEGMENTS_COMMITTED: self.segments_committed, S.LAST_VIDEO_ID: self.last_video_id,
                S.LAST_COMMITTED_AT: self.last_committed_at, S.FRAMES_PROCESSED: self.processed,
                S.PEOPLE_NOW: self.people_now, S.RESTARTS: self.restarts,
            }
        if source.state == "reconnecting" and row[S.STATE] in ("starting", "running"):  # the decoder knows first
            row[S.STATE], row[S.MESSAGE] = "reconnecting", source.message
        decoded = sum(1 for t in list(source.decode_times) if t > now - window)
        p50, p95 = (np.percentile(recent, [50, 95]).tolist() if recent else (None, None))
        row.update({
            S.FRAMES_DECODED: source.decoded, S.FRAMES_DROPPED: source.queue.dropped,
            S.FPS_IN: decoded / window, S.FPS_OUT: len(recent) / window,
            S.LATENCY_P50_MS: p50, S.LATENCY_P95_MS: p95, S.RECONNECTS: source.reconnects,
            S.MODEL_VERSION: self.model_version, S.HOST: socket.gethostname(), S.PID: os.getpid(),
            S.FEED_URL: self.feed_url, S.STARTED_AT: self.started_at, S.UPDATED_AT: dt.datetime.now(dt.UTC),
            S.STATUS_INTERVAL_S: self.window_s,
        })
        return row


class StatusWriter:
    """Writes `live_status` rows from a background thread (the model thread never waits for storage): the latest
    submitted row wins; `close` writes the last one before returning. A failed write is logged, not raised."""

    def __init__(self, root, log):
        self.root, self.log = root, log
        self._row: dict | None = None
        self._cond = threading.Condition()
        self._closed = False
        self.written = 0
        self._thread = threading.Thread(target=self._run, name="live-status", daemon=True)
        self._thread.start()

    def submit(self, row: dict) -> None:
        with self._cond:
            self._row = row
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._row is not None or self._closed)
                row, self._row = self._row, None
                if row is None:
                    return
            self._write(row)

    def _write(self, row: dict) -> None:
        from storage.writer import write_rows

        try:
            write_rows(self.root, S.LIVE_STATUS.name, {k: [v] for k, v in row.items()})
            self.written += 1
        except Exception as err:  # noqa: BLE001 - health rows are best effort; the segments are what counts
            self.log(f"could not write live_status ({type(err).__name__}: {err})")

    def close(self, last: dict | None = None) -> None:
        """Write `last` (or what is pending) and stop the thread."""
        with self._cond:
            if last is not None:
                self._row = last
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=60)
