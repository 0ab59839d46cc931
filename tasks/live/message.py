"""The feed's message: one JSON object per processed frame, made from the same rows the dataset stores.

Everything is in the session's world frame (the camera of the session's first frame; x right, y down, z forward,
metres) with the dataset's column names (`storage.schema`)::

    {"type": "frame", "camera": "lobby", "session_id": "<32 hex>", "segment_index": 3, "video_id": "<16 hex>",
     "frame_idx": 1234,            # frames decoded in the session before this one (the skipped ones included)
     "timestamp_s": 49.36,         # stream time, seconds from the session's first frame
     "arrival_unix_s": 1767.1e6,   # when the frame was decoded (time.time() of the live process)
     "latency_ms": 41.2,           # from its arrival to this message
     "dropped_total": 12,          # frames the model skipped since the process started
     "cam_to_world": [16 floats],  # the camera pose, row-major 4x4, world frame
     "fx_src_px": 1402.1, "fy_src_px": 1402.1, "cx_src_px": 960.0, "cy_src_px": 540.0,   # intrinsics, source pixels
     "width_px": 1920, "height_px": 1080,
     "people": [{"track_id": 3, "detection_score": 0.93, "head_world_m": [x, y, z],
                 "joints_world_m": [[x, y, z] x 127] or null (no body model),
                 "transl_world_m": [x, y, z] or null, "global_orient_world": [3],
                 "smplx": {"global_orient_cam": [3], "body_pose": [63], "left_hand_pose": [45],
                           "right_hand_pose": [45], "jaw_pose": [3], "betas": [10], "expression": [10]}}]}

Rotations are axis-angle radians (SMPL-X order, flat hand mean), floats rounded to 5 decimals; a value that is not
finite is null.
"""

from __future__ import annotations

import json

import numpy as np

from storage import schema as S

DECIMALS = 5
SMPLX = (S.GLOBAL_ORIENT_CAM, S.BODY_POSE, S.LEFT_HAND_POSE, S.RIGHT_HAND_POSE, S.JAW_POSE, S.BETAS, S.EXPRESSION)
FRAME_KEYS = (S.FX_SRC_PX, S.FY_SRC_PX, S.CX_SRC_PX, S.CY_SRC_PX)


def _list(value) -> list | None:
    """A numeric array as (nested) lists of rounded floats; None for null; non-finite values as None."""
    if value is None:
        return None
    arr = np.asarray(value, dtype=np.float64)
    if np.isfinite(arr).all():
        return np.round(arr, DECIMALS).tolist()
    return np.where(np.isfinite(arr), np.round(arr, DECIMALS), None).tolist()


def _scalar(value) -> float | None:
    value = float(np.asarray(value).reshape(-1)[0])
    return round(value, DECIMALS) if np.isfinite(value) else None


def frame_message(rows: dict[str, dict], *, camera: str, session_id: str, segment_index: int, video_id: str,
                  arrival_unix_s: float, width_px: int, height_px: int) -> dict:
    """The message of one processed frame, from its rows (`tasks.reconstruction.convert.frame_rows`). The caller
    adds ``latency_ms`` and ``dropped_total`` just before sending (:func:`encode`)."""
    frames, humans = rows[S.FRAMES.name], rows[S.HUMANS.name]
    people = []
    for i in range(len(humans[S.TRACK_ID])):
        people.append({
            S.TRACK_ID: int(humans[S.TRACK_ID][i]),
            S.DETECTION_SCORE: _scalar(humans[S.DETECTION_SCORE][i]),
            S.HEAD_WORLD_M: _list(humans[S.HEAD_WORLD_M][i]),
            S.JOINTS_WORLD_M: _list(humans[S.JOINTS_WORLD_M][i]),
            S.TRANSL_WORLD_M: _list(humans[S.TRANSL_WORLD_M][i]),
            S.GLOBAL_ORIENT_WORLD: _list(humans[S.GLOBAL_ORIENT_WORLD][i]),
            "smplx": {name: _list(humans[name][i]) for name in SMPLX},
        })
    return {
        "type": "frame", S.CAMERA: camera, S.SESSION_ID: session_id, S.SEGMENT_INDEX: segment_index,
        S.VIDEO_ID: video_id, S.FRAME_IDX: int(frames[S.FRAME_IDX][0]),
        S.TIMESTAMP_S: _scalar(frames[S.TIMESTAMP_S][0]), "arrival_unix_s": arrival_unix_s,
        S.CAM_TO_WORLD: _list(np.asarray(frames[S.CAM_TO_WORLD]).reshape(16)),
        **{key: _scalar(frames[key]) for key in FRAME_KEYS},
        S.WIDTH_PX: width_px, S.HEIGHT_PX: height_px, "people": people,
    }


def encode(message: dict, *, latency_ms: float, dropped_total: int) -> str:
    """The message as the JSON text sent, with its latency and the drop count filled in."""
    return json.dumps({**message, "latency_ms": round(latency_ms, 3), "dropped_total": dropped_total},
                      separators=(",", ":"), allow_nan=False)
