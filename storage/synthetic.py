"""Plausible synthetic datasets for tests, benchmarks and the offline demo (no model, no video needed).

Not junk: cameras move on smooth paths; people walk at 0.5-2 m/s on a ground plane with stable track ids,
entering and leaving the view; poses vary smoothly; scene points lie on a floor and walls with colour and
confidence. Everything is a deterministic function of the seed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib

import numpy as np

from storage import fs as _fs
from storage import schema as S
from storage.writer import RunInfo, VideoWriter, commit_runs

N_JOINTS = 127  # smplx's default joint count (body, hands, face landmarks)


@dataclasses.dataclass(frozen=True)
class SynthSpec:
    n_frames: int = 300  # frames per video
    fps: float = 30.0  # frame rate of the fake source
    max_people: int = 4  # people per video: 1..max_people
    points_per_frame: int = 256  # scene points kept per frame
    with_joints: bool = True  # fill joints_world_m / transl_world_m as if a body model was given
    width: int = 1280
    height: int = 720


def _rot_y(angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    z, o = np.zeros_like(angle), np.ones_like(angle)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def _smooth_noise(rng: np.random.Generator, n: int, dim: int, scale: float, knots: int = 8) -> np.ndarray:
    """(n, dim) smooth random curves: cubic-ish interpolation of a few random knots."""
    t = np.linspace(0, knots - 1, n)
    k = rng.standard_normal((knots, dim)) * scale
    return np.stack([np.interp(t, np.arange(knots), k[:, d]) for d in range(dim)], -1).astype(np.float32)


def synth_video(seed: int, index: int, spec: SynthSpec = SynthSpec()) -> dict:
    """The tables of one synthetic video: {'video_id', 'videos', 'frames', 'humans', 'points'} (column dicts)."""
    rng = np.random.default_rng([seed, index])
    digest = hashlib.sha256(f"synthetic:{seed}:{index}".encode()).hexdigest()
    video_id = digest[:16]
    n = spec.n_frames
    frame_idx = np.arange(n, dtype=np.int32)
    t = frame_idx / spec.fps

    # camera: slow arc around the scene, looking roughly forward (+z), 1.5 m above the floor (y down)
    yaw = 0.3 * np.sin(t / max(t[-1], 1e-6) * np.pi * rng.uniform(0.5, 1.5)) + rng.uniform(-0.2, 0.2)
    cam_pos = np.stack([np.sin(t * 0.2) * rng.uniform(0.5, 2.0), np.zeros(n), t * rng.uniform(0.0, 0.4)], -1)
    c2w = np.tile(np.eye(4, dtype=np.float32), (n, 1, 1))
    c2w[:, :3, :3] = _rot_y(yaw)
    c2w[:, :3, 3] = cam_pos
    f_src = spec.width * rng.uniform(0.6, 1.0)
    scale = 512 / max(spec.width, spec.height)
    work_w, work_h = 512, (round(spec.height * scale) // 16) * 16
    conf = 1.0 + rng.gamma(2.0, 1.0, size=(n,)).astype(np.float32)

    # people: each walks a straight-ish line at its own speed over a sub-interval of the video
    n_people = int(rng.integers(1, spec.max_people + 1))
    rows: dict[str, list] = {k: [] for k in ("frame", "track", "head", "score")}
    for track in range(n_people):
        start = int(rng.integers(0, max(n // 3, 1)))
        stop = int(rng.integers(min(start + n // 3, n), n + 1))
        m = stop - start
        speed = rng.uniform(0.5, 2.0)
        heading = rng.uniform(0, 2 * np.pi)
        origin = np.array([rng.uniform(-3, 3), -0.2, rng.uniform(2, 8)])
        tt = (np.arange(m) / spec.fps)[:, None]
        step = np.array([np.cos(heading), 0.0, np.sin(heading)])
        head = origin + tt * speed * step + _smooth_noise(rng, m, 3, 0.05) * [1, 0.2, 1]
        rows["frame"].append(np.arange(start, stop))
        rows["track"].append(np.full(m, track))
        rows["head"].append(head.astype(np.float32))
        rows["score"].append(np.clip(0.6 + _smooth_noise(rng, m, 1, 0.15)[:, 0], 0.31, 1.0))
    hf = np.concatenate(rows["frame"]).astype(np.int32)
    order = np.lexsort((np.concatenate(rows["track"]), hf))
    hf = hf[order]
    track = np.concatenate(rows["track"]).astype(np.int32)[order]
    head_world = np.concatenate(rows["head"])[order]
    score = np.concatenate(rows["score"]).astype(np.float32)[order]
    h = len(hf)
    w2c = np.linalg.inv(c2w[hf])
    head_cam = (w2c[:, :3, :3] @ head_world[..., None])[..., 0] + w2c[:, :3, 3]
    orient_world = np.concatenate([np.zeros((h, 1)), rng.uniform(-np.pi, np.pi, (h, 1)), np.zeros((h, 1))], 1)
    orient_world = orient_world.astype(np.float32)
    orient_cam = orient_world.copy()
    orient_cam[:, 1] -= yaw[hf]
    body_pose = (_smooth_noise(rng, h, 63, 0.15) if h else np.zeros((0, 63), np.float32))
    n_humans = np.bincount(hf, minlength=n).astype(np.int16)

    humans = {
        S.FRAME_IDX: hf, S.TIMESTAMP_S: t[hf], S.TRACK_ID: track, S.DETECTION_SCORE: score,
        S.GLOBAL_ORIENT_CAM: list(orient_cam), S.BODY_POSE: list(body_pose),
        S.LEFT_HAND_POSE: list(np.zeros((h, 45), np.float32)), S.RIGHT_HAND_POSE: list(np.zeros((h, 45), np.float32)),
        S.JAW_POSE: list(np.zeros((h, 3), np.float32)),
        S.BETAS: list(np.repeat(rng.standard_normal((1, 10)).astype(np.float32) * 0.5, h, 0)),
        S.EXPRESSION: list(np.zeros((h, 10), np.float32)),
        S.HEAD_CAM_M: list(head_cam.astype(np.float32)), S.HEAD_WORLD_M: list(head_world),
        S.GLOBAL_ORIENT_WORLD: list(orient_world),
        S.TRANSL_WORLD_M: list(head_world + [0, 0.55, 0]) if spec.with_joints else [None] * h,
        S.JOINTS_WORLD_M: [None] * h,
    }
    if spec.with_joints and h:
        offsets = rng.standard_normal((N_JOINTS, 3)).astype(np.float32) * [0.2, 0.5, 0.1]
        offsets[0] = [0, 0.55, 0]
        joints = head_world[:, None, :] + offsets[None]
        humans[S.JOINTS_WORLD_M] = [list(j) for j in joints]

    p = spec.points_per_frame
    uv = rng.uniform(-1, 1, (n, p, 2)).astype(np.float32)
    on_floor = rng.random((n, p)) < 0.6
    local = np.where(on_floor[..., None],
                     np.stack([uv[..., 0] * 5, np.full_like(uv[..., 0], 1.5), 4 + uv[..., 1] * 4], -1),
                     np.stack([uv[..., 0] * 5, uv[..., 1] * 1.5, np.full_like(uv[..., 0], 8.0)], -1))
    world = np.einsum("nij,npj->npi", c2w[:, :3, :3], local) + c2w[:, None, :3, 3]
    colour = np.where(on_floor[..., None], [120, 110, 90], [200, 200, 210]) + rng.integers(-20, 20, (n, p, 3))
    points = {
        S.FRAME_IDX: np.repeat(frame_idx, p),
        S.X_M: world[..., 0].ravel().astype(np.float32), S.Y_M: world[..., 1].ravel().astype(np.float32),
        S.Z_M: world[..., 2].ravel().astype(np.float32),
        S.RED: colour[..., 0].ravel().astype(np.uint8), S.GREEN: colour[..., 1].ravel().astype(np.uint8),
        S.BLUE: colour[..., 2].ravel().astype(np.uint8),
        S.CONF: (1 + rng.gamma(2.0, 1.0, n * p)).astype(np.float32),
    }
    frames = {
        S.FRAME_IDX: frame_idx, S.TIMESTAMP_S: t, S.CAM_TO_WORLD: list(c2w.reshape(n, 16)),
        S.FX_SRC_PX: np.full(n, f_src, np.float32), S.FY_SRC_PX: np.full(n, f_src, np.float32),
        S.CX_SRC_PX: np.full(n, spec.width / 2, np.float32), S.CY_SRC_PX: np.full(n, spec.height / 2, np.float32),
        S.FX_WORK_PX: np.full(n, f_src * scale, np.float32), S.FY_WORK_PX: np.full(n, f_src * scale, np.float32),
        S.CX_WORK_PX: np.full(n, work_w / 2, np.float32), S.CY_WORK_PX: np.full(n, work_h / 2, np.float32),
        S.WORK_WIDTH_PX: np.full(n, work_w, np.int32), S.WORK_HEIGHT_PX: np.full(n, work_h, np.int32),
        S.N_HUMANS: n_humans, S.CONF_MEAN: conf, S.CONF_MEDIAN: conf * 0.9,
    }
    videos = {
        S.VIDEO_ID: [video_id], S.CONTENT_SHA256: [digest], S.SOURCE_URI: [f"synthetic://{seed}/{index}.mp4"],
        S.SIZE_BYTES: [int(n * 20_000)], S.DURATION_S: [n / spec.fps], S.FPS: [spec.fps], S.WIDTH_PX: [spec.width],
        S.HEIGHT_PX: [spec.height], S.ROTATION_DEG: [0], S.FRAME_COUNT: [n], S.CODEC: ["h264"],
    }
    return {"video_id": video_id, "videos": videos, "frames": frames, "humans": humans, "points": points}


def write_synthetic_dataset(
    root: _fs.Root, n_videos: int, spec: SynthSpec = SynthSpec(), *, seed: int = 0, progress=None, batch: int = 200
) -> list[str]:
    """Write `n_videos` synthetic videos into `root` through the normal writer, committing `batch` videos per
    transaction (a bulk load: each batch becomes visible at once). Returns their video ids."""
    ids, pending = [], []
    for i in range(n_videos):
        v = synth_video(seed, i, spec)
        params = {"seed": seed, **dataclasses.asdict(spec)}
        run = RunInfo(model_version="synthetic:0", preset="synthetic", params=params,
                      started_at=dt.datetime.now(dt.UTC), source_uri=v["videos"][S.SOURCE_URI][0])
        with VideoWriter(root, v["video_id"], run) as writer:
            for name in S.DATA_TABLES:
                writer.append(name, v[name])
            pending.append(writer.finish(videos=v["videos"]))
        ids.append(v["video_id"])
        if len(pending) >= batch or i == n_videos - 1:
            commit_runs(root, pending)
            pending = []
        if progress is not None:
            progress(i + 1)
    return ids


def synth_evaluation(*, model_version: str = "human3r-896L-0123456789abcdef", precision: str = "float32",
                     protocol: str = "reference", benchmark: str = "emdb2", sequences: tuple[str, ...] = (
                         "P0/09_outdoor_walk", "P7/57_outdoor_rock_chair"),
                     metrics: dict[str, tuple[str, float]] | None = None, seed: int = 0,
                     run_id: str | None = None, evaluated_at: dt.datetime | None = None, status: str = "ok",
                     params_hash: str = "0" * 16, with_average: bool = True) -> dict[str, list]:
    """Plausible ``evaluations`` rows (columns -> lists): per sequence and metric (around the given `metrics`:
    name -> (unit, typical value)), and the average (sequence null, the plain mean) unless `with_average`. One run id
    and time for all rows (one evaluation run); `status` 'failed' gives one failed row per sequence instead."""
    rng = np.random.default_rng(seed)
    metrics = metrics or {"pa_mpjpe": ("mm", 50.0), "mpjpe": ("mm", 80.0), "pve": ("mm", 95.0),
                          "wa_mpjpe100": ("mm", 120.0), "w_mpjpe100": ("mm", 280.0), "rte_pct": ("pct", 2.3)}
    run_id = run_id or S.new_run_id()
    at = evaluated_at or dt.datetime.now(dt.UTC)
    rows: list[dict] = []
    base = {S.RUN_ID: run_id, S.MODEL_VERSION: model_version, S.CHECKPOINT_SHA256: None,
            S.PRESET: model_version.split("-")[1] if model_version.count("-") >= 2 else "custom",
            S.PRECISION: precision, S.PARAMS_JSON: "{}", S.PARAMS_HASH: params_hash, S.PROTOCOL: protocol,
            S.BENCHMARK: benchmark, S.ALIGNMENT: None, S.ERROR_TYPE: None, S.MESSAGE: None, S.N_SEQUENCES: None,
            S.SECONDS: 1.0, S.DATA_ROOT: "/data/synthetic", S.HOST: "synthetic", S.EVALUATED_AT: at}
    per_metric: dict[str, list[float]] = {m: [] for m in metrics}
    for name in sequences:
        if status == "failed":
            rows.append({**base, S.SEQUENCE: name, S.METRIC: None, S.VALUE: None, S.COUNT: None, S.UNIT: None,
                         S.STATUS: "failed", S.ERROR_TYPE: "FrameReadError", S.MESSAGE: "cannot read frame 3",
                         S.N_FRAMES: None})
            continue
        for metric, (unit, typical) in metrics.items():
            value = float(typical * rng.uniform(0.8, 1.2))
            per_metric[metric].append(value)
            rows.append({**base, S.SEQUENCE: name, S.METRIC: metric, S.VALUE: value, S.COUNT: 100, S.UNIT: unit,
                         S.STATUS: status, S.N_FRAMES: 100})
    if with_average and status != "failed":
        rows += [{**base, S.SEQUENCE: None, S.METRIC: m, S.VALUE: float(np.mean(v)), S.COUNT: 100 * len(v),
                  S.UNIT: metrics[m][0], S.STATUS: "ok", S.N_FRAMES: 100 * len(v), S.N_SEQUENCES: len(v)}
                 for m, v in per_metric.items()]
    return {c: [r[c] for r in rows] for c in S.EVALUATIONS.column_names}
