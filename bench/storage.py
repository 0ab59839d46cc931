"""Storage benchmark: build a ~1M-human-row, ~50M-point synthetic dataset, then time typical queries.

    python bench/storage.py                       # defaults: 200 videos x 1600 frames, ~170 points per frame
    python bench/storage.py --videos 20 --frames 200   # a small run

Writes through the real writer, compacts (as the after-nightly deployment does; `--no-compact` keeps one file per
run and table), then prints the write throughput, the on-disk bytes per frame per table, and the median (of --repeat
runs, warm) of each query. Side by side, the same per-video aggregate computed by a plain Delta reader (delta-rs ->
pyarrow dataset with a filter, + numpy, and the live-run rule) gives a ratio measured in the same run. The last line is
``per_video_aggregate_ms=<median> bytes_per_frame=<total>``.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

if __name__ == "__main__" and not sys.flags.safe_path:
    # this file is named like the `storage` package it measures: re-run with -P so its folder does not shadow it
    os.execv(sys.executable, [sys.executable, "-P", *sys.argv])

from storage import schema as S
from storage.catalog import open_catalog
from storage.fs import open_root
from storage.synthetic import SynthSpec, write_synthetic_dataset

QUERIES = {
    "per_video_aggregate": (
        "SELECT track_id, count(*) AS n, avg(detection_score) AS score, min(timestamp_s) AS t0, "
        "max(timestamp_s) AS t1 FROM humans WHERE video_id = ? GROUP BY track_id"
    ),
    "per_video_track_speed": "SELECT * FROM track_speed() WHERE video_id = ?",
    "per_video_points_box": (
        "SELECT count(*) FROM points WHERE video_id = ? AND x_m BETWEEN -1 AND 1 AND z_m BETWEEN 2 AND 6"
    ),
    "all_frames_with_3_people": "SELECT count(*) FROM frames WHERE n_humans >= 3",
    "all_humans_per_video": "SELECT video_id, count(*), avg(detection_score) FROM humans GROUP BY 1",
    "all_fastest_walkers": "SELECT * FROM track_speed() ORDER BY mean_speed_mps DESC LIMIT 10",
    "all_points_conf_count": "SELECT count(*) FROM points WHERE conf > 2",
}
PER_VIDEO = {"per_video_aggregate", "per_video_track_speed", "per_video_points_box"}


def _median_ms(fn, repeat: int) -> float:
    fn()  # warm
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*.parquet"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=".bench/storage", help="dataset folder (rebuilt unless --reuse)")
    ap.add_argument("--videos", type=int, default=200)
    ap.add_argument("--frames", type=int, default=1600)
    ap.add_argument("--points-per-frame", type=int, default=170)
    ap.add_argument("--max-people", type=int, default=10)
    ap.add_argument("--joints", action="store_true", help="also fill joints_world_m (127 joints per person)")
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--reuse", action="store_true", help="query an existing dataset at --root")
    ap.add_argument("--no-compact", action="store_true",
                    help="query the files as written (one per run and table) instead of after `human3r compact`")
    args = ap.parse_args()

    root_path = Path(args.root)
    spec = SynthSpec(n_frames=args.frames, points_per_frame=args.points_per_frame, max_people=args.max_people,
                     with_joints=args.joints)
    if not args.reuse:
        shutil.rmtree(root_path, ignore_errors=True)
        t = time.perf_counter()
        write_synthetic_dataset(open_root(root_path), args.videos, spec, seed=1,
                                progress=lambda i: print(f"\rwriting {i}/{args.videos}", end="", file=sys.stderr))
        print(file=sys.stderr)
        write_s = time.perf_counter() - t
        if not args.no_compact:  # the steady state: the after-nightly deployment compacts the tables
            from storage.maintenance import compact

            t = time.perf_counter()
            compact(open_root(root_path), min_age_s=0)
            print(f"compacted in {time.perf_counter() - t:.1f} s")
    else:
        write_s = float("nan")

    with open_catalog(root_path, threads=os.cpu_count()) as cat:
        count = {name: cat.query(f"SELECT count(*) FROM {name}").column(0)[0].as_py()
                 for name in ("frames", "humans", "points")}
        ids = cat.query("SELECT video_id FROM videos").column(0).to_pylist()
        print(f"dataset: {len(ids)} videos, {count['frames']:,} frames, {count['humans']:,} human rows, "
              f"{count['points']:,} points; written in {write_s:.1f} s "
              f"({count['frames'] / write_s:,.0f} frames/s)")
        per_frame = {name: _dir_bytes(root_path / name) / count["frames"] for name in (*S.DATA_TABLES, "runs")}
        total_bpf = sum(per_frame.values())
        print("bytes per frame: " + ", ".join(f"{k}={v:,.0f}" for k, v in per_frame.items())
              + f", total={total_bpf:,.0f}")

        t = time.perf_counter()
        open_catalog(root_path).close()
        print(f"open_catalog: {(time.perf_counter() - t) * 1000:.1f} ms")

        rnd = random.Random(0)
        results = {}
        for name, sql in QUERIES.items():
            if name in PER_VIDEO:
                results[name] = _median_ms(lambda sql=sql: cat.query(sql, [rnd.choice(ids)]), args.repeat)
            else:
                results[name] = _median_ms(lambda sql=sql: cat.query(sql), max(3, args.repeat // 3))
            print(f"{name:28s} {results[name]:9.1f} ms (median)")

    root = open_root(root_path)
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    from storage import delta

    humans = delta.open_table(root, S.HUMANS).to_pyarrow_dataset()
    runs = delta.open_table(root, S.RUNS).to_pyarrow_dataset()

    def baseline():
        vid = rnd.choice(ids)
        video_runs = runs.to_table(filter=ds.field(S.VIDEO_ID) == vid, columns=[S.RUN_ID, S.FINISHED_AT])
        live = video_runs.sort_by([(S.FINISHED_AT, "descending")]).column(S.RUN_ID)[0]
        t = humans.to_table(filter=(ds.field(S.VIDEO_ID) == vid) & (ds.field(S.RUN_ID) == live),
                            columns=[S.TRACK_ID, S.DETECTION_SCORE])
        track = t.column(S.TRACK_ID).to_numpy()
        score = pc.cast(t.column(S.DETECTION_SCORE), "float32").to_numpy()
        for tr in np.unique(track):
            score[track == tr].mean()

    base = _median_ms(baseline, max(3, args.repeat // 3))
    print(f"baseline (delta-rs -> pyarrow dataset + numpy) per-video aggregate: {base:.1f} ms; "
          f"catalog is {base / results['per_video_aggregate']:.1f}x faster")
    print(f"per_video_aggregate_ms={results['per_video_aggregate']:.1f} bytes_per_frame={total_bpf:.0f}")


if __name__ == "__main__":
    main()
