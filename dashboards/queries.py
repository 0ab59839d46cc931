"""The read queries behind the pages, written with `storage.schema`'s names (no column spelled as a literal).

Every query is bounded: dataset-wide numbers come from the ``runs`` view (one row per video: its counts), lists are
paginated, and per-video queries filter on ``video_id`` (the Parquet scans skip other videos' row groups) and
decimate long videos to a row budget. No query reads a table whole.
"""

from __future__ import annotations

import collections
import dataclasses
import re
import threading

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dashboards.geometry import decimation
from storage import schema as S

PAGE_SIZE = 50  # rows per page of the videos and failures lists
UNTRAINED_PREFIX = "untrained-"  # model_version of random weights: 'untrained-<preset>-seed<n>' (storage.schema)
SYNTHETIC_PREFIX = "synthetic"  # model_version of `human3r synth` rows: 'synthetic:0'
TRACK_QUALITY = "track_quality"  # a derived table, when the dataset has it
# the track-quality columns drawn as figures (those the schema defines; the table shows every column)
QUALITY_FIGURES = tuple(getattr(S, name) for name in (
    "VISIBLE_FRAC", "DETECTION_SCORE_MEAN", "JITTER_MPS3", "MAX_JUMP_M", "FOOT_SLIDING_MPS", "GROUND_PENETRATION_M")
    if hasattr(S, name))
VIDEO_ID_RE = re.compile(rf"^[0-9a-f]{{{S.VIDEO_ID_HEX}}}$")

TRACK_ROW_BUDGET = 60_000  # humans rows per video for the top-down plot and the speeds (long videos: every k-th frame)
SCENE_POINT_BUDGET = 6_000  # scene points per video on the top-down plot
FRAME_POINT_LIMIT = 5_000  # points of one frame in the 3D view

VIDEO_SORTS = {  # ?sort= -> ORDER BY of the videos list
    "video_id": f"{S.VIDEO_ID}",
    "longest": f"{S.DURATION_S} DESC NULLS LAST, {S.VIDEO_ID}",
    "tracks": f"{S.N_TRACKS} DESC, {S.VIDEO_ID}",
    "newest": f"{S.FINISHED_AT} DESC, {S.VIDEO_ID}",
}


@dataclasses.dataclass(frozen=True)
class Page:
    rows: list[dict]
    total: int
    page: int  # 1-based
    size: int = PAGE_SIZE

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))


def model_kind(model_version: str) -> str:
    """'untrained' (random weights), 'synthetic' (generated rows) or 'trained'."""
    if model_version.startswith(UNTRAINED_PREFIX):
        return "untrained"
    return "synthetic" if model_version.startswith(SYNTHETIC_PREFIX) else "trained"


# ---------------------------------------------------------------------------------------------------- overview
def totals(snap) -> dict:
    """Dataset-wide counts, from the live runs (each run row carries its video's counts)."""
    row = snap.one(f"""SELECT count(*) AS videos, coalesce(sum({S.DURATION_S}), 0) / 3600.0 AS hours,
        coalesce(sum({S.N_FRAMES}), 0)::BIGINT AS frames, coalesce(sum({S.N_HUMAN_ROWS}), 0)::BIGINT AS person_rows,
        coalesce(sum({S.N_TRACKS}), 0)::BIGINT AS tracks, coalesce(sum({S.N_POINTS}), 0)::BIGINT AS points
        FROM runs""")
    row["failures"] = snap.one("SELECT count(*) AS n FROM failures")["n"]
    row["runs_committed"] = snap.one("SELECT count(*) AS n FROM runs_all")["n"]
    return row


def runs_over_time(snap) -> tuple[str, list[dict]]:
    """Committed runs (all, live or replaced) per time bucket and model version; the bucket fits the span."""
    span = snap.one(f"SELECT min({S.FINISHED_AT}) AS lo, max({S.FINISHED_AT}) AS hi FROM runs_all")
    if span is None or span["lo"] is None:
        return "day", []
    seconds = (span["hi"] - span["lo"]).total_seconds()
    bucket = "minute" if seconds < 3 * 3600 else "hour" if seconds < 3 * 86400 else "day"
    rows = snap.rows(f"""SELECT date_trunc('{bucket}', {S.FINISHED_AT}) AS t, {S.MODEL_VERSION} AS model, count(*) AS n
        FROM runs_all GROUP BY ALL ORDER BY t, model""")
    return bucket, rows


def models(snap) -> list[dict]:
    rows = snap.rows(f"""SELECT {S.MODEL_VERSION} AS model_version, {S.PRESET} AS preset, count(*) AS videos,
        coalesce(sum({S.N_FRAMES}), 0)::BIGINT AS frames, bool_or({S.CHECKPOINT_SHA256} IS NULL) AS no_checkpoint,
        max({S.FINISHED_AT}) AS last_run FROM runs GROUP BY ALL ORDER BY videos DESC, model_version LIMIT 100""")
    for r in rows:
        r["kind"] = model_kind(r["model_version"])
    return rows


def failure_stages(snap) -> list[dict]:
    return snap.rows(f"""SELECT {S.STAGE} AS stage, {S.ERROR_TYPE} AS error_type, count(*) AS n FROM failures
        GROUP BY ALL ORDER BY n DESC, stage, error_type LIMIT 50""")


def failures_page(snap, page: int) -> Page:
    total = snap.one("SELECT count(*) AS n FROM failures")["n"]
    rows = snap.rows(f"""SELECT {S.SOURCE_URI}, {S.VIDEO_ID}, {S.STAGE}, {S.ERROR_TYPE}, {S.MESSAGE}, {S.FAILED_AT}
        FROM failures ORDER BY {S.FAILED_AT} DESC, {S.SOURCE_URI} LIMIT ? OFFSET ?""",
                     [PAGE_SIZE, (page - 1) * PAGE_SIZE])
    return Page(rows, total, page)


def videos_page(snap, page: int, search: str = "", sort: str = "video_id", size: int = PAGE_SIZE) -> Page:
    """One page of the live videos, optionally those whose id starts with, or source contains, `search`."""
    where, params = "", []
    if search:
        where = f" WHERE starts_with({S.VIDEO_ID}, ?) OR contains(lower({S.SOURCE_URI}), ?)"
        params = [search.lower(), search.lower()]
    total = snap.one(f"SELECT count(*) AS n FROM runs{where}", params)["n"]
    rows = snap.rows(f"""SELECT {S.VIDEO_ID}, {S.SOURCE_URI}, {S.DURATION_S}, {S.FPS}, {S.WIDTH_PX}, {S.HEIGHT_PX},
        {S.N_FRAMES}, {S.N_TRACKS}, {S.N_HUMAN_ROWS}, {S.N_POINTS}, {S.MODEL_VERSION}, {S.FINISHED_AT}
        FROM runs{where} ORDER BY {VIDEO_SORTS[sort]} LIMIT ? OFFSET ?""", [*params, size, (page - 1) * size])
    return Page(rows, total, page, size)


# ---------------------------------------------------------------------------------------------------- one video
def video(snap, video_id: str) -> dict | None:
    """The live run row of a video (video columns, model, counts), or None."""
    return snap.one(f"SELECT * FROM runs WHERE {S.VIDEO_ID} = ?", [video_id])


def frames(snap, video_id: str) -> list[dict]:
    """Every processed frame of the video: index, time, pose, people count."""
    return snap.rows(f"""SELECT {S.FRAME_IDX}, {S.TIMESTAMP_S}, {S.CAM_TO_WORLD}, {S.N_HUMANS}, {S.CONF_MEAN}
        FROM frames WHERE {S.VIDEO_ID} = ? ORDER BY {S.FRAME_IDX}""", [video_id])


def head_tracks(snap, video_id: str, n_rows: int) -> tuple[list[dict], int]:
    """Head positions of every track (sorted by track, then frame), every k-th frame for long videos; returns
    (rows, k)."""
    k = decimation(n_rows, TRACK_ROW_BUDGET)
    rows = snap.rows(f"""SELECT {S.TRACK_ID}, {S.FRAME_IDX}, {S.TIMESTAMP_S}, {S.HEAD_WORLD_M} FROM humans
        WHERE {S.VIDEO_ID} = ? AND {S.FRAME_IDX} % ? = 0 ORDER BY {S.TRACK_ID}, {S.FRAME_IDX}""", [video_id, k])
    return rows, k


def track_speeds(snap, video_id: str) -> list[dict]:
    """Per track: frames seen, time span, path length, mean and peak head speed (the catalog's track_speed())."""
    return snap.rows(f"""SELECT {S.TRACK_ID}, n_frames, duration_s, length_m, mean_speed_mps, max_speed_mps
        FROM track_speed() WHERE {S.VIDEO_ID} = ? ORDER BY {S.TRACK_ID}""", [video_id])


def scene_points(snap, video_id: str, n_points: int) -> list[dict]:
    """A thinned sample of the video's scene points (every k-th frame's), for context on the top-down plot."""
    k = decimation(n_points, SCENE_POINT_BUDGET)
    return snap.rows(f"""SELECT {S.X_M}, {S.Z_M} FROM points WHERE {S.VIDEO_ID} = ? AND {S.FRAME_IDX} % ? = 0
        LIMIT ?""", [video_id, k, SCENE_POINT_BUDGET * 2])


def track_quality(snap, video_id: str) -> tuple[list[str], list[dict]] | None:
    """The video's rows of the derived ``track_quality`` table, or None when the dataset has no such table."""
    if not snap.has_view(TRACK_QUALITY):
        return None
    columns = snap.columns(TRACK_QUALITY)
    if S.VIDEO_ID not in columns:
        return None
    order = f" ORDER BY {S.TRACK_ID}" if S.TRACK_ID in columns else ""
    return columns, snap.rows(f"SELECT * FROM {TRACK_QUALITY} WHERE {S.VIDEO_ID} = ?{order} LIMIT 500", [video_id])


# ---------------------------------------------------------------------------------------------------- one frame
def frame(snap, video_id: str, frame_idx: int) -> dict | None:
    return snap.one(f"""SELECT {S.FRAME_IDX}, {S.TIMESTAMP_S}, {S.CAM_TO_WORLD}, {S.FX_SRC_PX}, {S.FY_SRC_PX},
        {S.CX_SRC_PX}, {S.CY_SRC_PX}, {S.N_HUMANS} FROM frames WHERE {S.VIDEO_ID} = ? AND {S.FRAME_IDX} = ?""",
                    [video_id, frame_idx])


def _joints(column: pa.ChunkedArray) -> list[np.ndarray]:
    """joints_world_m (list of 3-vectors per row, or null) -> one (J, 3) float32 array per row ((0, 3) for null)."""
    col = column.combine_chunks()
    lengths = pc.list_value_length(col).fill_null(0).to_numpy(zero_copy_only=False)
    xyz = pc.list_flatten(pc.list_flatten(col)).to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, 3)
    return np.split(xyz, np.cumsum(lengths)[:-1]) if len(lengths) else []


def _people(table: pa.Table) -> list[dict]:
    """Rows of humans (track id, head, joints) with the joints as arrays, not nested Python lists."""
    joints = _joints(table.column(S.JOINTS_WORLD_M))
    rest = table.drop_columns([S.JOINTS_WORLD_M]).to_pylist()
    return [{**r, S.JOINTS_WORLD_M: j} for r, j in zip(rest, joints)]


class FramePeople:
    """The people of a video's frames for the frame scrubber, read once per video and kept for the last few videos.

    A query for one frame decodes as much of the compacted ``joints_world_m`` column as a query for the whole video
    (the row group's pages), so the first frame of a video reads all its people (joints as float32 arrays) and the
    next frames cost nothing. Videos with more than `max_rows` people rows are read frame by frame instead."""

    def __init__(self, max_videos: int = 6, max_rows: int = 10_000):
        self.max_videos, self.max_rows = max_videos, max_rows
        self._videos: collections.OrderedDict[tuple[str, str], dict[int, list[dict]]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def frame(self, snap, run: dict, frame_idx: int) -> list[dict]:
        columns = f"{S.FRAME_IDX}, {S.TRACK_ID}, {S.DETECTION_SCORE}, {S.HEAD_WORLD_M}, {S.JOINTS_WORLD_M}"
        video_id = run[S.VIDEO_ID]
        if run[S.N_HUMAN_ROWS] > self.max_rows:
            return _people(snap.arrow(f"SELECT {columns} FROM humans WHERE {S.VIDEO_ID} = ? AND {S.FRAME_IDX} = ? "
                                      f"ORDER BY {S.TRACK_ID}", [video_id, frame_idx]))
        key = (video_id, run[S.RUN_ID])  # a new live run of the video is another entry
        with self._lock:
            by_frame = self._videos.get(key)
            if by_frame is not None:
                self._videos.move_to_end(key)
        if by_frame is None:
            by_frame = {}
            for person in _people(snap.arrow(f"SELECT {columns} FROM humans WHERE {S.VIDEO_ID} = ? "
                                             f"ORDER BY {S.FRAME_IDX}, {S.TRACK_ID}", [video_id])):
                by_frame.setdefault(person[S.FRAME_IDX], []).append(person)
            with self._lock:
                self._videos[key] = by_frame
                while len(self._videos) > self.max_videos:
                    self._videos.popitem(last=False)
        return by_frame.get(frame_idx, [])


def frame_points(snap, video_id: str, frame_idx: int) -> list[dict]:
    return snap.rows(f"""SELECT {S.X_M}, {S.Y_M}, {S.Z_M}, {S.RED}, {S.GREEN}, {S.BLUE} FROM points
        WHERE {S.VIDEO_ID} = ? AND {S.FRAME_IDX} = ? LIMIT ?""", [video_id, frame_idx, FRAME_POINT_LIMIT])


# ---------------------------------------------------------------------------------------------------- models
EVALUATION_ROW_LIMIT = 200_000  # live evaluations rows the Models page reads (a full benchmark suite is ~10k)


def evaluations(snap) -> pa.Table:
    """The live ``evaluations`` rows (every model's benchmark results), bounded."""
    return snap.arrow(f"""SELECT * FROM evaluations ORDER BY {S.MODEL_VERSION}, {S.BENCHMARK}, {S.SEQUENCE},
        {S.METRIC} LIMIT {EVALUATION_ROW_LIMIT}""")


def evaluated_models(snap) -> list[dict]:
    """One row per evaluated configuration and benchmark: sequences ok / excluded / failed, frames, when."""
    rows = snap.rows(f"""WITH seqs AS (
            SELECT {S.MODEL_VERSION}, {S.PRESET}, {S.PRECISION}, {S.PROTOCOL}, {S.BENCHMARK}, {S.SEQUENCE},
                   CASE WHEN bool_or({S.STATUS} = 'failed') THEN 'failed' WHEN bool_or({S.STATUS} = 'ok') THEN 'ok'
                        ELSE 'excluded' END AS status, max({S.N_FRAMES}) AS frames, max({S.EVALUATED_AT}) AS last_at
            FROM evaluations WHERE {S.SEQUENCE} IS NOT NULL GROUP BY ALL)
        SELECT {S.MODEL_VERSION} AS model_version, {S.PRESET} AS preset, {S.PRECISION} AS precision,
               {S.PROTOCOL} AS protocol, {S.BENCHMARK} AS benchmark, count(*) AS sequences,
               count(*) FILTER (WHERE status = 'ok') AS ok, count(*) FILTER (WHERE status = 'excluded') AS excluded,
               count(*) FILTER (WHERE status = 'failed') AS failed,
               coalesce(sum(frames) FILTER (WHERE status != 'failed'), 0)::BIGINT AS frames, max(last_at) AS last
        FROM seqs GROUP BY ALL ORDER BY model_version, precision, benchmark, protocol LIMIT 500""")
    for r in rows:
        r["kind"] = model_kind(r["model_version"])
    return rows


def failed_sequences(snap) -> list[dict]:
    """Sequences whose live evaluation failed, with the reason (evaluated again by the next run)."""
    return snap.rows(f"""SELECT {S.MODEL_VERSION}, {S.PRECISION}, {S.PROTOCOL}, {S.BENCHMARK}, {S.SEQUENCE},
        {S.ERROR_TYPE}, {S.MESSAGE}, {S.EVALUATED_AT} FROM evaluations WHERE {S.STATUS} = 'failed'
        ORDER BY {S.EVALUATED_AT} DESC LIMIT 100""")

# ---------------------------------------------------------------------------------------------------- live
LIVE_STALE_INTERVALS = 3  # a camera that has not reported for this many status intervals is shown as gone
LIVE_ACTIVE_STATES = ("starting", "running", "reconnecting")  # states of a process that should keep reporting
SESSIONS_SHOWN = 50


def live_cameras(snap) -> list[dict]:
    """Each camera's latest health row (the ``live_status`` view), with ``stale_s``: seconds since it reported,
    when an active camera is overdue (its process is gone), else None."""
    rows = snap.rows(f"""SELECT *, epoch(now() - {S.UPDATED_AT}) AS age_s FROM {S.LIVE_STATUS.name}
        ORDER BY {S.CAMERA}""")
    for r in rows:
        overdue = r["age_s"] > LIVE_STALE_INTERVALS * max(r[S.STATUS_INTERVAL_S] or 0, 1)
        r["stale_s"] = r["age_s"] if overdue and r[S.STATE] in LIVE_ACTIVE_STATES else None
    return rows


def live_sessions(snap, limit: int = SESSIONS_SHOWN) -> list[dict]:
    """The latest live sessions (the ``sessions`` view), newest commit first."""
    return snap.rows(f"SELECT * FROM {S.SESSIONS.name} ORDER BY {S.LAST_COMMITTED_AT} DESC LIMIT ?", [limit])
