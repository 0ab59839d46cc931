"""Peak memory of `human3r reconstruct` on a short and a 10x longer video (tiny config, stride 1).

    python bench/memory.py                 # 200 and 2000 frames
    python bench/memory.py --short 50 --long 500

Each run is a fresh `human3r reconstruct` process; its peak RSS comes from the kernel (wait4 ru_maxrss). The last
line prints `rss_ratio=<long/short>`: memory must not grow with the video's length (target <= 1.1).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __name__ == "__main__" and not sys.flags.safe_path:  # bench/storage.py would shadow the storage package
    os.execv(sys.executable, [sys.executable, "-P", *sys.argv])


def peak_rss_mb(cmd: list[str]) -> tuple[float, float]:
    """Run `cmd`; return (peak RSS of the process in MB, seconds)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr.read().decode()[-2000:]}")
    return usage.ru_maxrss / 1024, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--short", type=int, default=200)
    ap.add_argument("--long", type=int, default=2000)
    ap.add_argument("--width", type=int, default=192)
    ap.add_argument("--height", type=int, default=108)
    ap.add_argument("--points-per-frame", type=int, default=2000)
    args = ap.parse_args()

    from tasks.ops.sample import make_sample_video

    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for n in (args.short, args.long):
            video = make_sample_video(Path(tmp) / f"v{n}.mp4", n_frames=n, width=args.width, height=args.height)
            cmd = [sys.executable, "-m", "tasks.cli.main", "reconstruct", video, "--out", f"{tmp}/ds{n}",
                   "--checkpoint", "untrained:tiny", "--points-per-frame", str(args.points_per_frame),
                   "--conf-threshold", "1.0"]
            rss, seconds = peak_rss_mb(cmd)
            results[n] = rss
            print(f"{n:6d} frames: peak RSS {rss:8.1f} MB, {seconds:6.1f} s ({n / seconds:.1f} frames/s end to end)")
    print(f"rss_ratio={results[args.long] / results[args.short]:.3f}")


if __name__ == "__main__":
    main()
