"""An archive of N short videos through the `reconstruct-archive` flow (Prefect + Ray actors) vs the same videos
through `reconstruct` in one process (model loaded once, a plain loop). Both include loading the model.

    python bench/archive.py --videos 6 --frames 24

The flow runs here without a server (Prefect's ephemeral API) with one local Ray actor; its extra cost is Ray's
start-up, the actor's model load, Prefect's task bookkeeping and the per-video hashing/probing of the plan step.
The last line prints `archive_overhead=<flow seconds / in-process seconds>`.
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
    ap.add_argument("--videos", type=int, default=6)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--checkpoint", default="untrained:tiny")
    args = ap.parse_args()

    from human3r.weights import load_model
    from storage.fs import open_root
    from tasks.identity import RunIdentity
    from tasks.ops.sample import make_sample_video
    from tasks.options import ClusterOptions, ModelOptions, ReconstructOptions
    from tasks.reconstruction.video import reconstruct_video

    with tempfile.TemporaryDirectory() as tmp:
        inbox = Path(tmp) / "inbox"
        inbox.mkdir()
        for i in range(args.videos):
            make_sample_video(inbox / f"clip{i:02d}.mp4", n_frames=args.frames, seed=i)
        options = ReconstructOptions()

        t = time.perf_counter()
        model = load_model(args.checkpoint)
        root = open_root(Path(tmp) / "inprocess")
        for path in sorted(inbox.iterdir()):
            assert reconstruct_video(str(path), root, model, RunIdentity.of_network(model, options)).status == "ok"
        inprocess = time.perf_counter() - t

        from flows.reconstruct import reconstruct_archive

        t = time.perf_counter()
        out = reconstruct_archive(source=str(inbox), dataset=str(Path(tmp) / "flow"), options=options,
                                  model=ModelOptions(checkpoint=args.checkpoint), cluster=ClusterOptions(num_actors=1))
        flow = time.perf_counter() - t
        assert out.counts["ok"] == args.videos, out.counts

    frames = args.videos * args.frames
    print(f"in-process reconstruct: {inprocess:6.1f} s ({frames / inprocess:.1f} frames/s)")
    print(f"reconstruct-archive   : {flow:6.1f} s ({frames / flow:.1f} frames/s), "
          f"fixed + per-video overhead {flow - inprocess:.1f} s")
    print(f"archive_overhead={flow / inprocess:.2f}")


if __name__ == "__main__":
    main()
