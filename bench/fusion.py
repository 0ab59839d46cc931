"""Scene fusion throughput and memory: `tasks.scenes.fuse.fuse_video` (what `human3r fuse` runs) against a
straightforward numpy voxel mean of the same points, side by side in one run.

    python bench/fusion.py                       # 50 M points (2500 frames x 20k) and a 5 M-point copy
    python bench/fusion.py --points 10e6         # quicker

One synthetic video of a room (floor, walls, a box; 1 cm noise) with two people walking through (stored joints),
written through the dataset writer at `--points` points, and a copy with a tenth of the frames. Each measurement
runs in a fresh process whose peak RSS comes from the kernel (wait4 ru_maxrss):

* fusion: the whole `fuse_video` (stream from Parquet, confidence filter, people dropped, voxel grid, outlier
  removal, PLY): points in / seconds;
* numpy: the same query read whole into memory, then voxel keys -> np.unique (packed int64) -> np.bincount means.

Last line: ``fusion_mpts_per_s=<x> ratio_vs_numpy=<fusion rate / numpy rate>``; the line before it, the peak RSS of
fusion at 1x vs 10x points (memory must stay flat).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time

if __name__ == "__main__" and not sys.flags.safe_path:  # bench/storage.py would shadow the storage package
    os.execv(sys.executable, [sys.executable, "-P", *sys.argv])

import numpy as np

VOXEL_M = 0.05
ROOM = ((-5.0, 5.0), (-1.5, 1.5), (0.0, 10.0))  # x, y (down: the floor is y = +1.5), z (metres, world frame)
BOX = ((-0.5, 0.5), (0.5, 1.5), (4.5, 5.5))


def room_points(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n points on the floor, the back and side walls, and the box, with 1 cm noise: (xyz (n, 3), rgb (n, 3))."""
    (x0, x1), (y0, y1), (z0, z1) = ROOM
    u, v = rng.random(n, np.float32), rng.random(n, np.float32)
    which = rng.choice(5, n, p=[0.4, 0.2, 0.15, 0.15, 0.1])
    xyz = np.empty((n, 3), np.float32)
    floor, back, left, right, box = (which == k for k in range(5))
    xyz[floor] = np.stack([x0 + u[floor] * (x1 - x0), np.full(floor.sum(), y1), z0 + v[floor] * (z1 - z0)], 1)
    xyz[back] = np.stack([x0 + u[back] * (x1 - x0), y0 + v[back] * (y1 - y0), np.full(back.sum(), z1)], 1)
    xyz[left] = np.stack([np.full(left.sum(), x0), y0 + v[left] * (y1 - y0), z0 + u[left] * (z1 - z0)], 1)
    xyz[right] = np.stack([np.full(right.sum(), x1), y0 + v[right] * (y1 - y0), z0 + u[right] * (z1 - z0)], 1)
    (bx0, bx1), (by0, by1), (bz0, bz1) = BOX  # the box's top and front faces
    top = box & (u < 0.5)
    front = box & (u >= 0.5)
    xyz[top] = np.stack([bx0 + v[top] * (bx1 - bx0), np.full(top.sum(), by0), bz0 + 2 * u[top] * (bz1 - bz0)], 1)
    xyz[front] = np.stack([bx0 + v[front] * (bx1 - bx0), by0 + (2 * u[front] - 1) * (by1 - by0),
                           np.full(front.sum(), bz0)], 1)
    xyz += rng.normal(0, 0.01, xyz.shape).astype(np.float32)
    rgb = np.array([[120, 110, 90], [200, 200, 210], [180, 170, 160], [180, 170, 160], [200, 40, 40]])[which]
    return xyz, (rgb + rng.integers(-15, 16, rgb.shape)).astype(np.int16)


def write_video(root, index: int, n_frames: int, points_per_frame: int) -> str:
    """One synthetic video (frames, people with joints, room points) through `storage.writer.VideoWriter`."""
    from storage import schema as S
    from storage.writer import RunInfo, VideoWriter

    rng = np.random.default_rng(index)
    video_id = f"{index:016x}"
    run = RunInfo(model_version="bench", preset="bench", params={"frames": n_frames}, source_uri=f"bench://{index}",
                  started_at=dt.datetime.now(dt.UTC))
    offsets = np.stack([rng.normal(0, 0.15, 127), rng.uniform(-0.1, 1.7, 127), rng.normal(0, 0.1, 127)], 1)
    offsets = offsets.astype(np.float32)  # a body's joints: 1.7 m below the head (y down) to the feet
    with VideoWriter(root, video_id, run) as w:
        for start in range(0, n_frames, 50):
            f = np.arange(start, min(start + 50, n_frames), dtype=np.int32)
            k = len(f)
            c2w = np.tile(np.eye(4, dtype=np.float32), (k, 1, 1))
            c2w[:, 0, 3] = np.sin(f / 200.0)
            w.append(S.FRAMES.name, {
                S.FRAME_IDX: f, S.TIMESTAMP_S: f / 30.0, S.CAM_TO_WORLD: c2w.reshape(k, 16),
                **{c: np.full(k, 500.0, np.float32) for c in (S.FX_SRC_PX, S.FY_SRC_PX, S.FX_WORK_PX, S.FY_WORK_PX)},
                **{c: np.full(k, 256.0, np.float32) for c in (S.CX_SRC_PX, S.CY_SRC_PX, S.CX_WORK_PX, S.CY_WORK_PX)},
                S.WORK_WIDTH_PX: np.full(k, 512, np.int32), S.WORK_HEIGHT_PX: np.full(k, 512, np.int32),
                S.N_HUMANS: np.full(k, 2, np.int16), S.CONF_MEAN: np.full(k, 3.0, np.float32),
                S.CONF_MEDIAN: np.full(k, 2.5, np.float32)})
            hf, track = np.repeat(f, 2), np.tile(np.array([0, 1], np.int32), k)
            head = np.stack([np.where(track == 0, -3 + hf / n_frames * 6, 2.0), np.full(2 * k, -0.2),
                             np.where(track == 0, 3.0, 8 - hf / n_frames * 6)], 1).astype(np.float32)
            zeros = {c: np.zeros((2 * k, d), np.float32) for c, d in (
                (S.GLOBAL_ORIENT_CAM, 3), (S.BODY_POSE, 63), (S.LEFT_HAND_POSE, 45), (S.RIGHT_HAND_POSE, 45),
                (S.JAW_POSE, 3), (S.BETAS, 10), (S.EXPRESSION, 10), (S.GLOBAL_ORIENT_WORLD, 3))}
            w.append(S.HUMANS.name, {
                S.FRAME_IDX: hf, S.TIMESTAMP_S: hf / 30.0, S.TRACK_ID: track,
                S.DETECTION_SCORE: np.ones(2 * k, np.float32), **zeros, S.HEAD_CAM_M: head, S.HEAD_WORLD_M: head,
                S.TRANSL_WORLD_M: head + [0, 0.55, 0], S.JOINTS_WORLD_M: head[:, None] + offsets})
            xyz, rgb = room_points(rng, k * points_per_frame)
            w.append(S.POINTS.name, {
                S.FRAME_IDX: np.repeat(f, points_per_frame), S.X_M: xyz[:, 0], S.Y_M: xyz[:, 1], S.Z_M: xyz[:, 2],
                S.RED: rgb[:, 0], S.GREEN: rgb[:, 1], S.BLUE: rgb[:, 2],
                S.CONF: (1 + rng.gamma(2.0, 1.0, len(xyz))).astype(np.float32)})
        w.commit(videos={S.VIDEO_ID: [video_id], S.CONTENT_SHA256: [video_id * 4], S.SOURCE_URI: [run.source_uri],
                         S.SIZE_BYTES: [1], S.DURATION_S: [n_frames / 30], S.FPS: [30.0], S.WIDTH_PX: [512],
                         S.HEIGHT_PX: [512], S.ROTATION_DEG: [0], S.FRAME_COUNT: [n_frames], S.CODEC: ["h264"]})
    return video_id


# ------------------------------------------------------------------------------------------------ measured children
def child_fuse(root: str, video_id: str) -> dict:
    from storage.fs import open_root
    from tasks.scenes.fuse import FuseOptions, fuse_video

    t = time.perf_counter()
    s = fuse_video(open_root(root), video_id, FuseOptions(voxel_size_m=VOXEL_M), force=True)
    return {"seconds": time.perf_counter() - t, "points": s.n_points_in, "voxels": s.n_voxels, "out": s.n_points_out}


def child_numpy(root: str, video_id: str) -> dict:
    from storage import schema as S
    from storage.catalog import open_catalog
    from tasks.scenes.fuse import FuseOptions

    t = time.perf_counter()
    with open_catalog(root) as cat:
        run_id, n_points = cat.query(f"SELECT {S.RUN_ID}, {S.N_POINTS} FROM runs WHERE {S.VIDEO_ID} = ?",
                                     [video_id]).to_pylist()[0].values()
        cols = ", ".join([S.X_M, S.Y_M, S.Z_M, S.RED, S.GREEN, S.BLUE, S.CONF])
        where = f"{S.VIDEO_ID} = ? AND {S.RUN_ID} = ? AND {S.CONF} >= ?"
        table = cat.con.sql(f"SELECT {cols} FROM points_all WHERE {where}",
                            params=[video_id, run_id, FuseOptions().conf_min]).to_arrow_table()
    cols = [table.column(i).to_numpy() for i in range(table.num_columns)]
    keys = [np.floor(c / VOXEL_M).astype(np.int64) + (1 << 20) for c in cols[:3]]
    packed = (keys[0] << 42) | (keys[1] << 21) | keys[2]
    unique, inverse, hits = np.unique(packed, return_inverse=True, return_counts=True)
    means = np.stack([np.bincount(inverse, c, minlength=len(unique)) / hits for c in cols], 1)
    return {"seconds": time.perf_counter() - t, "points": n_points, "voxels": len(means)}


def measure(kind: str, root: str, video_id: str) -> dict:
    """Run one measurement in a fresh process; its result plus its peak RSS (MB)."""
    proc = subprocess.Popen([sys.executable, "-P", __file__, "--child", kind, root, video_id],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    out, err = proc.stdout.read().decode(), proc.stderr.read().decode()
    if os.waitstatus_to_exitcode(status):
        sys.exit(f"{kind} failed:\n{err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1]) | {"rss_mb": usage.ru_maxrss / 1024}


def cpu_model() -> str:
    with open("/proc/cpuinfo") as f:
        names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
    return f"{names[0] if names else 'unknown CPU'} x {os.cpu_count()} (load average {os.getloadavg()[0]:.1f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=float, default=50e6, help="Points of the large video (the small: a tenth).")
    ap.add_argument("--points-per-frame", type=int, default=20_000)
    ap.add_argument("--root", help="Dataset folder to (re)use; default: a temporary folder.")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, root, video_id = args.child
        print(json.dumps((child_fuse if kind == "fuse" else child_numpy)(root, video_id)))
        return

    from storage.fs import open_root

    print(f"CPU: {cpu_model()}; other work on the machine shares it")
    with tempfile.TemporaryDirectory(prefix="bench-fusion-") as tmp:
        root_dir = args.root or tmp
        root = open_root(root_dir)
        frames = int(args.points) // args.points_per_frame
        t = time.perf_counter()
        small = write_video(root, 1, frames // 10, args.points_per_frame)
        large = write_video(root, 2, frames, args.points_per_frame)
        print(f"wrote {frames // 10} + {frames} frames x {args.points_per_frame} points in "
              f"{time.perf_counter() - t:.0f} s")
        fuse_small = measure("fuse", root_dir, small)
        fuse_large = measure("fuse", root_dir, large)
        base = measure("numpy", root_dir, large)
    rate, base_rate = (r["points"] / r["seconds"] / 1e6 for r in (fuse_large, base))
    print(f"{'':28s}{'points of the video':>22s}{'voxels':>10s}{'seconds':>9s}{'Mpts/s':>8s}{'peak RSS MB':>13s}")
    for name, r in (("fusion 1x", fuse_small), ("fusion 10x", fuse_large), ("numpy voxel mean 10x", base)):
        print(f"{name:28s}{r['points']:>22,}{r['voxels']:>10,}{r['seconds']:>9.1f}"
              f"{r['points'] / r['seconds'] / 1e6:>8.2f}{r['rss_mb']:>13.0f}")
    print(f"fusion peak RSS 1x vs 10x points: {fuse_small['rss_mb']:.0f} vs {fuse_large['rss_mb']:.0f} MB, "
          f"rss_ratio={fuse_large['rss_mb'] / fuse_small['rss_mb']:.2f} (numpy holds all: {base['rss_mb']:.0f} MB)")
    print(f"fusion_mpts_per_s={rate:.2f} ratio_vs_numpy={rate / base_rate:.2f}")


if __name__ == "__main__":
    main()
