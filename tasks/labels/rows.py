"""Per-frame labels of a clip: one row per person per frame, the BEDLAM-style image-label pairs.

`LABELS_SCHEMA` is the format of ``labels/<split>.parquet`` in a build (every field documented in its metadata and
in the dataset card); `clip_label_rows` computes one clip's rows from its stored rows: SMPL-X in the camera frame,
the stored joints projected into the source frame, the keypoint box, and one validity flag per field (bad labels are
flagged, never dropped; ``valid`` is the AND of the known flags). Pure numpy.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa

from storage import schema as S
from storage.arrays import as_joints, as_vectors
from storage.geometry import SMPLX_BODY_JOINTS, project
from tasks.labels.ground import GroundPlane
from tasks.labels.options import FlagOptions

_F32, _LF = pa.float32(), pa.list_(pa.float32())


def _f(name: str, type_: pa.DataType, doc: str, nullable: bool = False) -> pa.Field:
    return pa.field(name, type_, nullable=nullable, metadata={b"doc": doc.encode()})


LABELS_SCHEMA = pa.schema([
    _f("image_id", pa.string(), "the source frame: '<video_id>-<frame_idx, 6 digits>' (shared by its people)"),
    _f("image_path", pa.string(), "the cut JPEG relative to the build folder (full frame or this person's crop); "
                                  "null when images were not cut or the source could not be read", True),
    _f("crop_xyxy_src_px", _LF, "crops: the crop's box in source pixels (x0, y0, x1, y1); null for full frames", True),
    _f("clip_id", pa.string(), "the clip ('<video_id>-t<track_id>-f<first frame_idx>'), see clips.parquet"),
    _f("split", pa.string(), "train, val or test (by video)"),
    _f("video_id", pa.string(), "dataset video id (first 16 hex of the source's sha256)"),
    _f("run_id", pa.string(), "the dataset run the label comes from"),
    _f("track_id", pa.int32(), "person track id within the video"),
    _f("frame_idx", pa.int32(), "0-based index of the frame in the decoded source stream"),
    _f("frame_in_clip", pa.int32(), "0-based index of the frame within its clip (the npz row)"),
    _f("timestamp_s", pa.float64(), "presentation time of the frame, seconds"),
    _f("source_uri", pa.string(), "where the source video was read from"),
    _f("image_width_px", pa.int32(), "source frame width (after display rotation)"),
    _f("image_height_px", pa.int32(), "source frame height"),
    _f("intrinsics_src_px", _LF, "camera matrix K (3x3, row-major) in source pixels"),
    _f("world_to_cam", _LF, "4x4 row-major: the build's Z-up world (as in the npz files) -> camera (OpenCV axes: x "
                            "right, y down, z forward), metres"),
    _f("global_orient_cam", _LF, "SMPL-X root orientation in the camera frame, axis-angle (3)"),
    _f("body_pose", _LF, "SMPL-X body pose, 21 joints x 3 axis-angle (63)"),
    _f("left_hand_pose", _LF, "SMPL-X left hand, 15 x 3 axis-angle, flat hand mean (45)"),
    _f("right_hand_pose", _LF, "SMPL-X right hand, 15 x 3 axis-angle, flat hand mean (45)"),
    _f("jaw_pose", _LF, "SMPL-X jaw, axis-angle (3)"),
    _f("betas", _LF, "SMPL-X neutral shape (10)"),
    _f("expression", _LF, "SMPL-X expression (10)"),
    _f("transl_cam_m", _LF, "SMPL-X transl (pelvis convention) posing the body in the camera frame with "
                            "global_orient_cam; null without stored joints", True),
    _f("head_cam_m", _LF, "head joint in the camera frame, metres (3)"),
    _f("keypoints_2d_src_px", pa.list_(_LF), "the stored SMPL-X joints (127, smplx order) projected into the "
                                             "source frame, (u, v) pixels; null without joints", True),
    _f("keypoints_visible", pa.list_(pa.bool_()), "per joint: in front of the camera and inside the frame; null "
                                                  "without joints", True),
    _f("bbox_xyxy_src_px", _LF, "box around the projected joints in front of the camera, clipped to the frame "
                                "(x0, y0, x1, y1), source pixels; null without joints", True),
    _f("detection_score", _F32, "detection score in [0, 1]"),
    _f("valid_detection", pa.bool_(), "detection_score >= flags.min_detection_score"),
    _f("valid_shape", pa.bool_(), "every |beta_i| <= flags.max_abs_beta"),
    _f("valid_pose", pa.bool_(), "every SMPL-X parameter is finite"),
    _f("valid_body", pa.bool_(), "stored joints present (transl_cam_m, keypoints and the npz need them)"),
    _f("valid_keypoints", pa.bool_(), "at least half of the 22 body joints are visible"),
    _f("valid_bbox", pa.bool_(), "the box is at least flags.min_bbox_px on both sides"),
    _f("valid_motion", pa.bool_(), "head speed since the previous frame of the clip <= flags.max_speed_mps"),
    _f("valid_ground", pa.bool_(), "lowest joint at most flags.max_penetration_m below the ground plane; null "
                                   "without joints or ground plane", True),
    _f("valid", pa.bool_(), "every flag above that is known is true"),
])


@dataclasses.dataclass(frozen=True)
class ClipFrames:
    """The camera of each row of a clip (N rows)."""

    cam_to_world: np.ndarray  # (N, 4, 4) dataset world
    intrinsics: np.ndarray  # (N, 3, 3) source pixels
    width: int
    height: int


def clip_label_rows(humans: pa.Table, frames: ClipFrames, *, to_zup: np.ndarray, plane: GroundPlane | None,
                    flags: FlagOptions, ids: dict) -> dict[str, list | np.ndarray]:
    """Column dict (LABELS_SCHEMA, without image_path/crop) of one clip's rows (`humans`: its stored rows, sorted by
    frame). ids: clip_id, split, source_uri (constant columns)."""
    n = humans.num_rows
    col = humans.column
    w2c = np.linalg.inv(frames.cam_to_world)  # (N, 4, 4)
    params = {name: as_vectors(col(name), k) for name, k in (
        (S.GLOBAL_ORIENT_CAM, 3), (S.BODY_POSE, 63), (S.LEFT_HAND_POSE, 45), (S.RIGHT_HAND_POSE, 45),
        (S.JAW_POSE, 3), (S.BETAS, 10), (S.EXPRESSION, 10))}
    joints = as_joints(col(S.JOINTS_WORLD_M))
    has_body = np.zeros(n, bool) if joints is None else np.isfinite(joints).all(axis=(1, 2))
    transl = as_vectors(col(S.TRANSL_WORLD_M), 3)
    head = as_vectors(col(S.HEAD_WORLD_M), 3)
    t = col(S.TIMESTAMP_S).to_numpy()
    score = col(S.DETECTION_SCORE).to_numpy()
    out: dict = {
        "image_id": [f"{v}-{f:06d}" for v, f in zip(col(S.VIDEO_ID).to_pylist(), col(S.FRAME_IDX).to_pylist())],
        "clip_id": [ids["clip_id"]] * n, "split": [ids["split"]] * n, "video_id": col(S.VIDEO_ID),
        "run_id": col(S.RUN_ID), "track_id": col(S.TRACK_ID), "frame_idx": col(S.FRAME_IDX),
        "frame_in_clip": np.arange(n, dtype=np.int32), "timestamp_s": t, "source_uri": [ids["source_uri"]] * n,
        "image_width_px": np.full(n, frames.width, np.int32), "image_height_px": np.full(n, frames.height, np.int32),
        "intrinsics_src_px": list(frames.intrinsics.reshape(n, 9).astype(np.float32)),
        "world_to_cam": list((w2c @ np.linalg.inv(to_zup)).reshape(n, 16).astype(np.float32)),
        **{name: col(name) for name in (S.GLOBAL_ORIENT_CAM, S.BODY_POSE, S.LEFT_HAND_POSE, S.RIGHT_HAND_POSE,
                                        S.JAW_POSE, S.BETAS, S.EXPRESSION)},
        "head_cam_m": col(S.HEAD_CAM_M), "detection_score": score,
    }
    transl_cam, keypoints, visible, bbox = [None] * n, [None] * n, [None] * n, [None] * n
    valid_keypoints, valid_bbox = np.zeros(n, bool), np.zeros(n, bool)
    valid_ground = [None] * n
    if has_body.any():
        joints_cam = np.einsum("nij,nkj->nki", w2c[:, :3, :3], joints) + w2c[:, None, :3, 3]
        pelvis_cam = joints_cam[:, 0]
        rest_pelvis = joints[:, 0] - transl
        uv = project(joints_cam, frames.intrinsics)
        in_front = joints_cam[..., 2] > 1e-3
        inside = in_front & (uv[..., 0] >= 0) & (uv[..., 0] < frames.width) & (uv[..., 1] >= 0) & (
            uv[..., 1] < frames.height)
        lowest = plane.height(joints).min(axis=1) if plane is not None else None
        for i in np.flatnonzero(has_body):
            transl_cam[i] = (pelvis_cam[i] - rest_pelvis[i]).astype(np.float32)
            keypoints[i] = list(uv[i].astype(np.float32))
            visible[i] = inside[i].tolist()
            valid_keypoints[i] = inside[i, :SMPLX_BODY_JOINTS].mean() >= 0.5
            if in_front[i].any():
                u, v = uv[i, in_front[i], 0], uv[i, in_front[i], 1]
                box = np.array([u.min(), v.min(), u.max(), v.max()]).clip(
                    0, [frames.width, frames.height, frames.width, frames.height])
                bbox[i] = box.astype(np.float32)
                valid_bbox[i] = min(box[2] - box[0], box[3] - box[1]) >= flags.min_bbox_px
            if lowest is not None:
                valid_ground[i] = bool(lowest[i] >= -flags.max_penetration_m)
    speed = np.r_[0.0, np.linalg.norm(np.diff(head, axis=0), axis=1) / np.maximum(np.diff(t), 1e-9)]
    finite = np.all([np.isfinite(p).all(axis=1) for p in params.values()], axis=0)
    checks = {
        "valid_detection": score >= flags.min_detection_score,
        "valid_shape": np.abs(params[S.BETAS]).max(axis=1) <= flags.max_abs_beta,
        "valid_pose": finite, "valid_body": has_body, "valid_keypoints": valid_keypoints, "valid_bbox": valid_bbox,
        "valid_motion": speed <= flags.max_speed_mps,
    }
    known_ground = np.array([g is not False for g in valid_ground])
    out.update(transl_cam_m=transl_cam, keypoints_2d_src_px=keypoints, keypoints_visible=visible,
               bbox_xyxy_src_px=bbox, **checks, valid_ground=valid_ground,
               valid=np.all(list(checks.values()), axis=0) & known_ground)
    return out


def to_table(columns: dict, image_paths: list | None = None, crops: list | None = None) -> pa.Table:
    """A clip's column dict (plus image paths / crop boxes) as a LABELS_SCHEMA table."""
    n = len(columns["image_id"])
    columns = {**columns, "image_path": image_paths or [None] * n, "crop_xyxy_src_px": crops or [None] * n}
    arrays = []
    for field in LABELS_SCHEMA:
        value = columns[field.name]
        arrays.append(value.cast(field.type) if isinstance(value, pa.Array | pa.ChunkedArray)
                      else pa.array(value, type=field.type))
    return pa.Table.from_arrays(arrays, schema=LABELS_SCHEMA)
