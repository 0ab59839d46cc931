"""The dataset contract: schema version, tables, column names (with units and frames), and the path layout.

This module is the single source of truth for what a Human3R dataset holds. The writer (`storage.parquet`), the
commit log (`storage.manifest`), the DuckDB catalog (`storage.catalog`), the dashboard and the tests import the
names from here; none of them spells a column name as a literal.

Coordinate frames and units
---------------------------
* **World frame** (``*_world*``): the camera frame of the first processed frame of the video (x right, y down,
  z forward, OpenCV convention), in **metres as the model predicts them**. Human3R's scale is metric up to the
  network's accuracy; nothing is rescaled afterwards. When a run uses ``reset_interval``, the segments are chained
  into this one frame exactly as the reference does.
* **Camera frame** (``*_cam*``): the camera of the row's own frame, same axis convention.
* **Rotations** are axis-angle vectors (radians) in the frame named by the column.
* **Pixels** (``*_px``): ``src`` columns are in the source video's pixels after display rotation; ``work`` columns
  are at the network's working resolution (the resized and centre-cropped image the model saw).
* **Matrices** are flattened row-major: ``cam_to_world[4*i + j]`` is row i, column j (DuckDB lists are 1-based, so
  the camera centre is ``[cam_to_world[4], cam_to_world[8], cam_to_world[12]]``).

Layout (``ROOT`` is a local folder or an ``s3://bucket/prefix``)
--------------------------------------------------------------
::

    ROOT/_dataset.json                                  # {"schema_version": N, "created_at": ...}
    ROOT/_commits/video_id=<id>.json                    # the commit pointer of one video: which files are live
    ROOT/<table>/video_id=<id>/<table>-<generation>.parquet
    ROOT/failures/source=<key>.parquet                  # latest failure of one source URI

A video's rows become visible only when its commit pointer is (atomically) replaced; readers list the pointers, so
a crash between the files of one video leaves the previous generation (or nothing) visible, never a mix.
"""

from __future__ import annotations

import dataclasses

import pyarrow as pa

SCHEMA_VERSION = 1
"""Bump on any breaking change (rename, type change, removed column). Adding a nullable column does not break."""

PRODUCER = "human3r-archive"

# --------------------------------------------------------------------------------------------------- path layout
DATASET_FILE = "_dataset.json"
COMMITS_DIR = "_commits"
COMMIT_FILE = "_commits/video_id={video_id}.json"
TABLE_FILE = "{table}/video_id={video_id}/{table}-{generation}.parquet"
FAILURE_FILE = "failures/source={source_key}.parquet"
PARTITION_KEY = "video_id"

# --------------------------------------------------------------------------------------------------- column names
# shared
VIDEO_ID = "video_id"  # 16 hex chars: the first 64 bits of the sha256 of the video file's bytes (video_id_for)
RUN_ID = "run_id"  # 32 hex chars (uuid4) of the run that produced the rows
FRAME_IDX = "frame_idx"  # index of the frame in the decoded source stream (0-based, before stride)
TIMESTAMP_S = "timestamp_s"  # presentation time of the frame, seconds from the stream start

# videos
CONTENT_SHA256 = "content_sha256"
SOURCE_URI = "source_uri"
SIZE_BYTES = "size_bytes"
DURATION_S = "duration_s"
FPS = "fps"
WIDTH_PX = "width_px"
HEIGHT_PX = "height_px"
ROTATION_DEG = "rotation_deg"
FRAME_COUNT = "frame_count"
CODEC = "codec"

# runs
MODEL_VERSION = "model_version"
CHECKPOINT_SHA256 = "checkpoint_sha256"
PRESET = "preset"
PARAMS_JSON = "params_json"
PARAMS_HASH = "params_hash"
SCHEMA_VERSION_COL = "schema_version"
STATUS = "status"
STARTED_AT = "started_at"
FINISHED_AT = "finished_at"
SECONDS = "seconds"
N_FRAMES = "n_frames"
N_HUMAN_ROWS = "n_human_rows"
N_TRACKS = "n_tracks"
N_POINTS = "n_points"
N_DECODE_ERRORS = "n_decode_errors"
HOST = "host"

# failures
STAGE = "stage"
ERROR_TYPE = "error_type"
MESSAGE = "message"
FAILED_AT = "failed_at"

# frames
CAM_TO_WORLD = "cam_to_world"
FX_SRC_PX, FY_SRC_PX, CX_SRC_PX, CY_SRC_PX = "fx_src_px", "fy_src_px", "cx_src_px", "cy_src_px"
FX_WORK_PX, FY_WORK_PX, CX_WORK_PX, CY_WORK_PX = "fx_work_px", "fy_work_px", "cx_work_px", "cy_work_px"
WORK_WIDTH_PX, WORK_HEIGHT_PX = "work_width_px", "work_height_px"
N_HUMANS = "n_humans"
CONF_MEAN = "conf_mean"
CONF_MEDIAN = "conf_median"

# humans
TRACK_ID = "track_id"
DETECTION_SCORE = "detection_score"
GLOBAL_ORIENT_CAM = "global_orient_cam"
BODY_POSE = "body_pose"
LEFT_HAND_POSE = "left_hand_pose"
RIGHT_HAND_POSE = "right_hand_pose"
JAW_POSE = "jaw_pose"
BETAS = "betas"
EXPRESSION = "expression"
HEAD_CAM_M = "head_cam_m"
HEAD_WORLD_M = "head_world_m"
GLOBAL_ORIENT_WORLD = "global_orient_world"
TRANSL_WORLD_M = "transl_world_m"
JOINTS_WORLD_M = "joints_world_m"

# points
X_M, Y_M, Z_M = "x_m", "y_m", "z_m"
RED, GREEN, BLUE = "r", "g", "b"
CONF = "conf"

VIDEO_ID_HEX = 16  # a video's id is the first 16 hex chars (64 bits) of its content sha256


def video_id_for(content_sha256: str) -> str:
    """The dataset key of a video: the first 64 bits of the sha256 of its bytes, so a copy is the same video."""
    return content_sha256[:VIDEO_ID_HEX]


# --------------------------------------------------------------------------------------------------- types
_F32, _F64, _I16, _I32, _I64, _U8 = pa.float32(), pa.float64(), pa.int16(), pa.int32(), pa.int64(), pa.uint8()
_TS = pa.timestamp("us", tz="UTC")


def _vec(n: int) -> pa.DataType:
    return pa.list_(_F32, n)


@dataclasses.dataclass(frozen=True)
class Column:
    """One column: name, Arrow type, nullability, and the documentation a user reads (unit, frame)."""

    name: str
    type: pa.DataType
    doc: str
    nullable: bool = False

    def field(self) -> pa.Field:
        return pa.field(self.name, self.type, nullable=self.nullable, metadata={b"doc": self.doc.encode()})


@dataclasses.dataclass(frozen=True)
class Table:
    """A table of the dataset. ``per_video`` tables are committed per video; the rest are keyed otherwise."""

    name: str
    doc: str
    columns: tuple[Column, ...]
    per_video: bool = True
    sort_by: tuple[str, ...] = ()

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def arrow_schema(self) -> pa.Schema:
        """The Parquet file schema. ``video_id`` of per-video tables lives in the partition path, not the file."""
        return pa.schema(
            [c.field() for c in self.columns if not (self.per_video and c.name == VIDEO_ID)],
            metadata={b"schema_version": str(SCHEMA_VERSION).encode(), b"producer": PRODUCER.encode(),
                      b"table": self.name.encode()},
        )

    @property
    def full_schema(self) -> pa.Schema:
        """The schema a reader sees: every column, ``video_id`` included."""
        return pa.schema([c.field() for c in self.columns])


_VIDEO = Column(VIDEO_ID, pa.string(), "content-derived video id: first 16 hex chars of the file's sha256")
_FRAME = Column(FRAME_IDX, _I32, "0-based index of the frame in the decoded source stream (before stride)")
_TIME = Column(TIMESTAMP_S, _F64, "presentation timestamp of the frame, seconds from the stream start")

VIDEOS = Table(
    "videos",
    "One row per video: what the source file is.",
    (
        _VIDEO,
        Column(CONTENT_SHA256, pa.string(), "sha256 of the file's bytes, 64 hex chars"),
        Column(SOURCE_URI, pa.string(), "where the file was read from (path or URI) when it was last processed"),
        Column(SIZE_BYTES, _I64, "file size in bytes"),
        Column(DURATION_S, _F64, "stream duration in seconds", nullable=True),
        Column(FPS, _F64, "average frame rate (frames per second) of the video stream", nullable=True),
        Column(WIDTH_PX, _I32, "displayed width in pixels (after display rotation)"),
        Column(HEIGHT_PX, _I32, "displayed height in pixels (after display rotation)"),
        Column(ROTATION_DEG, _I16, "display rotation applied to the decoded frames, degrees counter-clockwise"),
        Column(FRAME_COUNT, _I64, "number of frames in the stream (decoded count when the container has none)"),
        Column(CODEC, pa.string(), "codec name of the video stream", nullable=True),
    ),
)

RUNS = Table(
    "runs",
    "One row per committed video: the run that produced its rows, with the model identity and every parameter.",
    (
        _VIDEO,
        Column(RUN_ID, pa.string(), "uuid4 hex of the run"),
        Column(MODEL_VERSION, pa.string(), "model identity: 'human3r-<preset>-<first 16 hex of the checkpoint's "
                                           "sha256>', or 'untrained-<preset>-seed<n>' for random weights"),
        Column(CHECKPOINT_SHA256, pa.string(), "sha256 of the checkpoint file; null for untrained weights",
               nullable=True),
        Column(PRESET, pa.string(), "network configuration preset (672S, 672B, 672L, 896L, tiny)"),
        Column(PARAMS_JSON, pa.string(), "every run parameter as canonical JSON (sorted keys)"),
        Column(PARAMS_HASH, pa.string(), "sha256 prefix of params_json; with model_version it decides re-runs"),
        Column(SCHEMA_VERSION_COL, _I32, "dataset schema version the rows were written with"),
        Column(STATUS, pa.string(), "'complete' for committed runs"),
        Column(STARTED_AT, _TS, "when the run started (UTC)"),
        Column(FINISHED_AT, _TS, "when the rows were committed (UTC)"),
        Column(SECONDS, _F64, "wall-clock seconds of the run"),
        Column(N_FRAMES, _I64, "rows written to frames"),
        Column(N_HUMAN_ROWS, _I64, "rows written to humans (person x frame)"),
        Column(N_TRACKS, _I32, "distinct track ids"),
        Column(N_POINTS, _I64, "rows written to points"),
        Column(N_DECODE_ERRORS, _I32, "packets or frames the decoder could not read (the video still completed)"),
        Column(HOST, pa.string(), "machine that ran it", nullable=True),
    ),
)

FAILURES = Table(
    "failures",
    "The latest failure of each source that did not complete. A later success of the same video removes it.",
    (
        Column(SOURCE_URI, pa.string(), "the input as given (path or URI)"),
        Column(VIDEO_ID, pa.string(), "video id when the content could be hashed, else null", nullable=True),
        Column(STAGE, pa.string(), "where it failed: probe, decode, inference, write, timeout, ..."),
        Column(ERROR_TYPE, pa.string(), "exception class name"),
        Column(MESSAGE, pa.string(), "one-line reason"),
        Column(RUN_ID, pa.string(), "run that failed", nullable=True),
        Column(FAILED_AT, _TS, "when it failed (UTC)"),
    ),
    per_video=False,
)

FRAMES = Table(
    "frames",
    "One row per processed frame: camera pose and intrinsics.",
    (
        _VIDEO,
        _FRAME,
        _TIME,
        Column(CAM_TO_WORLD, _vec(16), "camera-to-world 4x4, row-major; translation in metres, world frame"),
        Column(FX_SRC_PX, _F32, "focal length x, source-video pixels"),
        Column(FY_SRC_PX, _F32, "focal length y, source-video pixels"),
        Column(CX_SRC_PX, _F32, "principal point x, source-video pixels"),
        Column(CY_SRC_PX, _F32, "principal point y, source-video pixels"),
        Column(FX_WORK_PX, _F32, "focal length x at working resolution, pixels"),
        Column(FY_WORK_PX, _F32, "focal length y at working resolution, pixels"),
        Column(CX_WORK_PX, _F32, "principal point x at working resolution, pixels"),
        Column(CY_WORK_PX, _F32, "principal point y at working resolution, pixels"),
        Column(WORK_WIDTH_PX, _I32, "working-resolution width (after resize and centre crop)"),
        Column(WORK_HEIGHT_PX, _I32, "working-resolution height"),
        Column(N_HUMANS, _I16, "people detected in this frame (rows in humans)"),
        Column(CONF_MEAN, _F32, "mean pointmap confidence of the frame"),
        Column(CONF_MEDIAN, _F32, "median pointmap confidence of the frame"),
    ),
    sort_by=(FRAME_IDX,),
)

HUMANS = Table(
    "humans",
    "One row per person per frame: SMPL-X parameters, track id, positions in camera and world frames.",
    (
        _VIDEO,
        _FRAME,
        _TIME,
        Column(TRACK_ID, _I32, "person track id, stable across the frames of one video"),
        Column(DETECTION_SCORE, _F32, "detection score in [0, 1] (after NMS)"),
        Column(GLOBAL_ORIENT_CAM, _vec(3), "root (pelvis) orientation, axis-angle radians, camera frame"),
        Column(BODY_POSE, _vec(63), "21 body joints, axis-angle radians, parent-relative (SMPL-X order)"),
        Column(LEFT_HAND_POSE, _vec(45), "15 left-hand joints, axis-angle radians (flat hand mean, no PCA)"),
        Column(RIGHT_HAND_POSE, _vec(45), "15 right-hand joints, axis-angle radians (flat hand mean, no PCA)"),
        Column(JAW_POSE, _vec(3), "jaw, axis-angle radians"),
        Column(BETAS, _vec(10), "SMPL-X shape coefficients (neutral model)"),
        Column(EXPRESSION, _vec(10), "SMPL-X expression coefficients"),
        Column(HEAD_CAM_M, _vec(3), "head-joint position in the camera frame, metres, as the network predicts it"),
        Column(HEAD_WORLD_M, _vec(3), "head-joint position in the world frame, metres"),
        Column(GLOBAL_ORIENT_WORLD, _vec(3), "root orientation, axis-angle radians, world frame"),
        Column(TRANSL_WORLD_M, _vec(3), "SMPL-X `transl` (pelvis convention) that poses the body in the world frame "
                                        "with global_orient_world; null without a body model", nullable=True),
        Column(JOINTS_WORLD_M, pa.list_(_vec(3)), "SMPL-X joints (127, smplx order) in the world frame, metres; "
                                                  "null without a body model", nullable=True),
    ),
    sort_by=(FRAME_IDX, TRACK_ID),
)

POINTS = Table(
    "points",
    "Scene points in the world frame, subsampled per frame (run parameter points_per_frame).",
    (
        _VIDEO,
        _FRAME,
        Column(X_M, _F32, "x, world frame, metres"),
        Column(Y_M, _F32, "y, world frame, metres"),
        Column(Z_M, _F32, "z, world frame, metres"),
        Column(RED, _U8, "red 0-255 from the frame"),
        Column(GREEN, _U8, "green 0-255 from the frame"),
        Column(BLUE, _U8, "blue 0-255 from the frame"),
        Column(CONF, _F32, "pointmap confidence (>= 1; higher is more reliable)"),
    ),
    sort_by=(FRAME_IDX,),
)

TABLES: dict[str, Table] = {t.name: t for t in (VIDEOS, RUNS, FAILURES, FRAMES, HUMANS, POINTS)}
VIDEO_TABLES: tuple[str, ...] = tuple(name for name, t in TABLES.items() if t.per_video)


def describe() -> str:
    """The whole schema as Markdown (what `human3r schema` prints and the README links to)."""
    lines = [f"# Dataset schema, version {SCHEMA_VERSION}", ""]
    for t in TABLES.values():
        lines += [f"## {t.name}", "", t.doc, "", "| column | type | meaning |", "|---|---|---|"]
        lines += [f"| `{c.name}` | {c.type}{' (nullable)' if c.nullable else ''} | {c.doc} |" for c in t.columns]
        lines.append("")
    return "\n".join(lines)
