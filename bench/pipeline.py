"""End-to-end `reconstruct` throughput vs the bare model loop on the same decoded frames (tiny config).

    python bench/pipeline.py --frames 120

Both run in this process, one after the other, on the same video: the bare loop gets frames already decoded into
memory and only runs `run_stream`; the pipeline decodes, converts rows and writes Parquet as a user's run does.
The pipeline runs twice per round: frames prepared in step with the forward (`prefetch=0`, the CPU default) and
`--prefetch` frames ahead in a thread (the GPU default), printed as `prefetch<N>_vs_0=<ratio of frames/s>`.
The last line prints `e2e_vs_bare=<ratio of frames/s>` (target >= 0.9) for the in-step pipeline.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

if __name__ == "__main__" and not sys.flags.safe_path:  # bench/storage.py would shadow the storage package
    os.execv(sys.executable, [sys.executable, "-P", *sys.argv])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=180)
    ap.add_argument("--checkpoint", default="untrained:tiny")
    ap.add_argument("--points-per-frame", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=2, help="alternate bare / pipeline this many times, keep the best")
    ap.add_argument("--prefetch", type=int, default=2, help="frames prepared ahead in the second pipeline run")
    args = ap.parse_args()

    from human3r.stream import run_stream
    from human3r.weights import load_model
    from storage.fs import open_root
    from tasks.identity import RunIdentity
    from tasks.ops.sample import make_sample_video
    from tasks.options import ConvertOptions, ReconstructOptions
    from tasks.reconstruction.decode import FrameReader
    from tasks.reconstruction.video import reconstruct_video

    model = load_model(args.checkpoint)
    options = ReconstructOptions(convert=ConvertOptions(points_per_frame=args.points_per_frame, conf_threshold=1.0))
    identity = RunIdentity.of_network(model, options)
    with tempfile.TemporaryDirectory() as tmp:
        video = make_sample_video(Path(tmp) / "v.mp4", n_frames=args.frames, width=args.width, height=args.height)
        with FrameReader(video) as reader:
            frames = [f.rgb for f in reader]
        for _sf in run_stream(model, frames[:3]):  # warm-up
            pass
        bare, e2e, ahead = [], [], []
        for r in range(args.repeat):
            t = time.perf_counter()
            for _sf in run_stream(model, frames):
                pass
            bare.append(len(frames) / (time.perf_counter() - t))
            for prefetch, out in ((0, e2e), (args.prefetch, ahead)):
                t = time.perf_counter()
                summary = reconstruct_video(video, open_root(f"{tmp}/ds{r}-{prefetch}"), model, identity,
                                            prefetch=prefetch)
                assert summary.status == "ok", summary
                out.append(summary.frames / (time.perf_counter() - t))
    print(f"bare model loop : {max(bare):7.2f} frames/s  (runs: {', '.join(f'{x:.2f}' for x in bare)})")
    print(f"reconstruct e2e : {max(e2e):7.2f} frames/s  (runs: {', '.join(f'{x:.2f}' for x in e2e)})")
    print(f"e2e, prefetch {args.prefetch}: {max(ahead):7.2f} frames/s  (runs: {', '.join(f'{x:.2f}' for x in ahead)})")
    print(f"prefetch{args.prefetch}_vs_0={max(ahead) / max(e2e):.3f}")
    print(f"e2e_vs_bare={max(e2e) / max(bare):.3f}")


if __name__ == "__main__":
    main()
