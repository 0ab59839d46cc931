"""The `sources` cache of planning: facts about each file discovery has seen, and when a file must be read again.

A row describes one file at one (size, modification time): its probe (content hash, header facts) or why it could
not be probed. It never holds a verdict that depends on a run's options (a frame size above ``max_side``, one the
network cannot process: each run decides those from the facts) or on luck:

* a **permanent** probe error (not a video, empty, no video stream: `storage.media`) is a fact about the bytes; the
  file is not read again until its size or modification time changes, or ``--force`` asks;
* a **transient** one (network, throttling, a timeout: `storage.media.is_transient`) records how many times in a
  row it happened and the time after which the next run probes the file again (``retry_after``: `RETRY_FIRST_S`,
  doubling per attempt up to `RETRY_MAX_S`). It is never final: until a probe succeeds the video is reported
  failed with a `TransientReadError` (and its failures row shows, until that probe supersedes it);
* a row written before probe errors were classified (``probe_transient`` null) is probed again once.
"""

from __future__ import annotations

import datetime as dt

from storage import schema as S
from storage.catalog import latest_sources
from storage.fs import Root
from tasks.errors import TransientReadError, VideoError
from tasks.reconstruction.decode import VideoProbe
from tasks.reconstruction.discover import Listed

RETRY_FIRST_S = 300.0  # back-off after the first transient probe failure of a file (seconds)
RETRY_MAX_S = 6 * 3600.0  # the longest back-off: a nightly run always tries again

_PROBE_FIELDS = ("content_sha256", "width", "height", "rotation_deg", "fps", "duration_s", "frame_count", "codec")
_COLUMN_OF = {"content_sha256": S.CONTENT_SHA256, "width": S.WIDTH_PX, "height": S.HEIGHT_PX,
              "rotation_deg": S.ROTATION_DEG, "fps": S.FPS, "duration_s": S.DURATION_S, "frame_count": S.FRAME_COUNT,
              "codec": S.CODEC}


def backoff_s(attempts: int) -> float:
    """Seconds to wait before probing a file again after `attempts` transient failures in a row (>= 1)."""
    return min(RETRY_MAX_S, RETRY_FIRST_S * 2.0 ** (attempts - 1))


def read_known(root: Root) -> dict[str, dict]:
    """source_uri -> its latest row (one read of the sources table, not of the whole dataset)."""
    return {r[S.SOURCE_URI]: r for r in latest_sources(root).to_pylist()}


def unchanged(item: Listed, row: dict | None) -> bool:
    """True when the listing shows the same size and modification time as the row (the file was not rewritten)."""
    return (row is not None and item.size_bytes is not None and item.mtime_ns is not None
            and row[S.SIZE_BYTES] == item.size_bytes and row[S.MTIME_NS] == item.mtime_ns)


def due(item: Listed, row: dict | None, now: dt.datetime, *, force: bool = False) -> bool:
    """True when `item` must be probed now: new or changed, or its row holds an error that may have gone (with
    `force` any error; a transient one once its ``retry_after`` has passed; one written before errors were
    classified)."""
    if not unchanged(item, row):
        return True
    if row[S.PROBE_ERROR] is None:
        return False
    if force or row.get(S.PROBE_TRANSIENT) is None:
        return True
    return bool(row[S.PROBE_TRANSIENT]) and (row.get(S.RETRY_AFTER) is None or row[S.RETRY_AFTER] <= now)


def cached(row: dict) -> VideoProbe | VideoError:
    """What a row says of its file: the probe, or the error (a transient one with its attempt and retry time)."""
    if row[S.PROBE_ERROR] is not None:
        if row.get(S.PROBE_TRANSIENT):
            after = row[S.RETRY_AFTER].astimezone(dt.UTC)
            return TransientReadError(f"{row[S.PROBE_ERROR]} [attempt {row[S.PROBE_ATTEMPTS]}; probed again by the "
                                      f"first run after {after:%Y-%m-%d %H:%M:%S} UTC]")
        return VideoError(row[S.PROBE_ERROR])
    return VideoProbe(path=row[S.SOURCE_URI], size_bytes=row[S.SIZE_BYTES],
                      **{field: row[_COLUMN_OF[field]] for field in _PROBE_FIELDS})


def row_for(item: Listed, result: VideoProbe | VideoError, previous: dict | None, now: dt.datetime) -> dict:
    """The sources row recording a probe of `item` made at `now` (`previous`: the file's row before it)."""
    found = result if isinstance(result, VideoProbe) else None
    transient = isinstance(result, TransientReadError)
    attempts = None
    if transient:  # in a row: only while the previous row was a transient failure of the same file
        same = previous is not None and previous.get(S.PROBE_TRANSIENT) and unchanged(item, previous)
        attempts = (previous[S.PROBE_ATTEMPTS] or 0) + 1 if same else 1
    row = {S.SOURCE_URI: item.uri, S.SIZE_BYTES: item.size_bytes, S.MTIME_NS: item.mtime_ns, S.PROBED_AT: now,
           S.VIDEO_ID: found.video_id if found else None, S.PROBE_ERROR: None if found else result.message,
           S.PROBE_TRANSIENT: None if found else transient, S.PROBE_ATTEMPTS: attempts,
           S.RETRY_AFTER: now + dt.timedelta(seconds=backoff_s(attempts)) if transient else None}
    row.update({_COLUMN_OF[f]: getattr(found, f) if found else None for f in _PROBE_FIELDS})
    return row
