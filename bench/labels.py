"""Pseudo-label builds at archive scale: `labels score` and `labels build` over N synthetic videos, side by side with
reading the same rows (the humans table with joints, and the points) through the catalog.

    python bench/labels.py                        # 1000 synthetic videos (300 frames, 256 points/frame, 1-4 people)
    python bench/labels.py --videos 50 --keep /tmp/lb          # smaller; keep the dataset and the build
    python bench/labels.py --root data/demo --where "true"     # an existing dataset (e.g. the demo's)

Measured once each (cold, in-process): writing the synthetic dataset (when generated), compacting it, scoring every
track (`tasks.labels.quality.score_videos`), the build (`tasks.labels.build.build_labels`, no images), and the
baseline: reading humans (every column) and points (xyz, conf) with `SELECT *` through `open_catalog`.
Last line: ``videos=<N> tracks=<T> clips=<C> score_s=<x> build_s=<y> read_s=<z> build_vs_read=<y/z>``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

if __name__ == "__main__" and not sys.flags.safe_path:
    # bench/storage.py is named like the `storage` package: re-run with -P so this folder does not shadow it
    os.execv(sys.executable, [sys.executable, "-P", *sys.argv])

from storage.catalog import open_catalog  # noqa: E402
from storage.fs import open_root  # noqa: E402
from storage.maintenance import compact  # noqa: E402
from storage.synthetic import SynthSpec, write_synthetic_dataset  # noqa: E402
from tasks.labels.build import build_labels  # noqa: E402
from tasks.labels.options import LabelOptions  # noqa: E402
from tasks.labels.quality import score_videos  # noqa: E402


def _timed(label: str, fn):
    t = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t
    print(f"{label:<44} {seconds:8.1f} s", flush=True)
    return out, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=1000)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--points", type=int, default=256)
    ap.add_argument("--root", help="an existing dataset instead of a synthetic one")
    ap.add_argument("--where", default="n_frames >= 30 AND jitter_mps3 < 1000")
    ap.add_argument("--keep", help="folder to keep the dataset and the build in")
    args = ap.parse_args()
    folder = Path(args.keep or tempfile.mkdtemp(prefix="bench-labels-"))
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}")
    try:
        if args.root:
            root = open_root(args.root)
        else:
            root = open_root(folder / "ds")
            spec = SynthSpec(n_frames=args.frames, points_per_frame=args.points)
            _timed(f"write {args.videos} synthetic videos", lambda: write_synthetic_dataset(root, args.videos, spec))
            _timed("compact", lambda: compact(root, min_age_s=0))
        score, score_s = _timed("labels score (every track)", lambda: score_videos(root, force=True))

        def read_all():
            with open_catalog(root) as cat:
                return cat.query("SELECT * FROM humans").num_rows + cat.query(
                    "SELECT frame_idx, x_m, y_m, z_m, conf FROM points").num_rows

        _, read_s = _timed("baseline: read humans + points", read_all)
        out = folder / "build"
        report, build_s = _timed(f"labels build --where {args.where!r}", lambda: build_labels(
            root, out, args.where, LabelOptions(), score=False, overwrite=True))
        print(report.line)
        c = report.info["counts"]
        print(f"videos={score.videos} tracks={score.tracks} clips={c['clips']} score_s={score_s:.1f} "
              f"build_s={build_s:.1f} read_s={read_s:.1f} build_vs_read={build_s / read_s:.2f}")
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
