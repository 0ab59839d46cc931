"""`human3r live` on a 25 fps stream: sustained frames/s, the fraction of frames dropped, and the latency from a
frame's arrival to its feed message (p50/p95), measured side by side with the bare model on the same frames; then
how many 25 fps cameras one H100 serves, from the network's FLOPs.

    python bench/live.py --seconds 30                       # tiny and 672S bfloat16 on this CPU, then the estimate
    python bench/live.py --configs tiny --no-estimate

Per configuration (`tiny` = untrained:tiny float32, `672S-bf16` = untrained:672S at bfloat16, 3 people forced per
frame as `bench/model.py` does): the sample camera (`python -m tasks.ops.stream`, H.264 in MPEG-TS over TCP at
`--fps`) runs in its own process; a `tasks.live.camera.LiveCamera` in this process reads it for `--seconds` into a
temporary dataset (1 s segments), its WebSocket feed read by a client in a thread. Reported: frames processed per
second of stream (sustained fps), dropped / decoded, latency p50/p95 from arrival (decoded) to the message handed to
the feed (`live_status`'s definition) and to the message received by the client (same machine, same clock); and
the bare model's frames/s (`run_stream` over the same frames already decoded, prepared in step) in the same run.
`live_vs_bare` = sustained fps / bare fps (1.0 = the live loop costs nothing beyond the network).

The estimate: FLOPs of one forward (the stored outputs, 3 people) counted at 672S and 896L on this CPU (float32;
the count does not depend on precision), then frames/s per H100 = 989 TFLOP/s (dense bfloat16) x the efficiency
`bench/README.md` assumes at batch 1 (30%; one camera per actor is batch 1), and cameras = frames/s / 25, checked
against memory (80 GB / what an actor holds) and the per-process launch bound (~20 ms of host time per eager
forward, so one actor serves at most ~50 frames/s: one camera each at 25 fps).
The last line: `tiny_fps=<f> tiny_drop=<f> tiny_p50_ms=<f> ... h100_cameras_672S=<n> h100_cameras_896L=<n>`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

if __name__ == "__main__" and not sys.flags.safe_path:  # bench/storage.py would shadow the storage package
    os.execv(sys.executable, [sys.executable, "-P", *sys.argv])

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
H100_BF16_TFLOPS, H100_MEMORY_GB = 989.0, 80.0
BATCH1_EFFICIENCY = 0.30  # bench/README.md's assumption at batch 1
LAUNCH_BOUND_FPS = 50.0  # ~3,000 eager kernel launches, ~20 ms of host time per forward (bench/README.md)
ACTOR_GB = {"672S": 1.6 + 2.5, "896L": 2.2 + 3.5}  # bfloat16 weights (bench/README.md) + activations, CUDA context
# name -> (weights, precision, stream size, torch threads: one for the tiny network, whose small ops stall with two
# threads on a shared 2-core machine; two for 672S's large matmuls)
CONFIGS = {"tiny": ("untrained:tiny", "float32", 320, 180, 1),
           "672S-bf16": ("untrained:672S", "bfloat16", 640, 360, 2)}


def bench_model():
    """bench/model.py as a module (its FLOP counter and the 3-people hook)."""
    spec = importlib.util.spec_from_file_location("bench_model", HERE / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def serve_camera(fps: float, width: int, height: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "tasks.ops.stream", "--port", "0", "--fps", str(fps), "--width",
                             str(width), "--height", str(height)], stdout=subprocess.PIPE, text=True,
                            cwd=HERE.parent, env={**os.environ, "PYTHONPATH": str(HERE.parent)})
    line = proc.stdout.readline()
    return proc, line.split()[-1]


def listen(url: str, into: list, ready: threading.Event) -> None:
    from websockets.sync.client import connect

    with connect(url) as ws:
        ready.set()
        try:
            for text in ws:
                message = json.loads(text)
                into.append((time.time() - message["arrival_unix_s"]) * 1000)
        except Exception:  # noqa: BLE001 - the feed closed
            return


def run_live(name: str, seconds: float, fps: float, threads: int | None) -> dict:
    import torch

    from human3r.weights import load_model
    from storage.dataset import init_dataset
    from storage.fs import open_root
    from tasks.identity import RunIdentity
    from tasks.live.camera import LiveCamera, checked_source
    from tasks.live.options import FeedOptions, LiveOptions
    from tasks.ops.sample import sample_frames
    from tasks.options import ConvertOptions, ReconstructOptions

    checkpoint, precision, width, height, default_threads = CONFIGS[name]
    torch.set_num_threads(threads or default_threads)
    model = load_model(checkpoint, precision=precision)
    bench_model().force_three_people(model)
    rows = ReconstructOptions(convert=ConvertOptions(points_per_frame=2000, conf_threshold=1.0))
    identity = RunIdentity.of_network(model, rows)
    options = LiveOptions(segment_seconds=1.0, status_seconds=2.0, feed=FeedOptions(port=0))
    camera_proc, url = serve_camera(fps, width, height)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = init_dataset(open_root(Path(tmp) / "ds"))
            cam = LiveCamera(checked_source(url, options), root, model, identity, options=options, camera=name)
            received, ready = [], threading.Event()
            threading.Thread(target=listen, args=(cam.feed.url, received, ready), daemon=True).start()
            ready.wait(10)
            threading.Timer(seconds, cam.stop_event.set).start()
            cam.run()
            summary = cam.summary()
            stream_s = max(cam.source.decode_times[-1] - cam.source.decode_times[0], 1e-9)
    finally:
        camera_proc.kill()
    frames = list(sample_frames(max(3, min(20, summary.frames_processed)), width, height))
    bare = bare_fps(model, frames)
    drop = summary.frames_dropped / max(summary.frames_decoded, 1)
    return {"fps": summary.frames_processed / stream_s, "drop": drop,
            "p50_ms": summary.latency_p50_ms, "p95_ms": summary.latency_p95_ms,
            "client_p50_ms": float(np.percentile(received, 50)) if received else None,
            "client_p95_ms": float(np.percentile(received, 95)) if received else None,
            "decoded": summary.frames_decoded, "processed": summary.frames_processed, "bare_fps": bare,
            "segments": summary.segments}


def bare_fps(model, frames: list) -> float:
    from human3r.stream import run_stream

    for _ in run_stream(model, frames[:1]):  # warm-up
        pass
    start = time.perf_counter()
    for _ in run_stream(model, frames):
        pass
    return len(frames) / (time.perf_counter() - start)


def forward_tflop(preset: str) -> float:
    """TFLOP of one forward with the stored outputs, 3 people, at the preset's working size (512x288)."""
    from human3r.preprocess import prepare_frame
    from human3r.stream import run_stream
    from human3r.weights import load_model

    bm = bench_model()
    model = load_model(f"untrained:{preset}")
    bm.force_three_people(model)
    rgb = np.random.default_rng(0).integers(0, 256, (288, 512, 3), dtype=np.uint8)
    frame = prepare_frame(rgb, model.cfg.image_size, model.cfg.dino.image_res)
    _, flops = bm.count_flops(lambda: list(run_stream(model, [frame], outputs=frozenset())))
    return flops / 1e12


def h100_cameras(tflop: float, preset: str, fps: float) -> dict:
    frames_s = H100_BF16_TFLOPS * BATCH1_EFFICIENCY / tflop
    by_compute = frames_s / fps
    by_memory = H100_MEMORY_GB // ACTOR_GB[preset]
    cameras = int(min(by_compute, by_memory))
    return {"tflop": tflop, "frames_s": frames_s, "by_compute": by_compute, "by_memory": by_memory,
            "cameras": cameras, "actor_fps_cap": LAUNCH_BOUND_FPS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0, help="stream seconds per configuration")
    ap.add_argument("--fps", type=float, default=25.0)
    ap.add_argument("--configs", default="tiny,672S-bf16", help=f"comma-separated, of {', '.join(CONFIGS)}")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: per configuration)")
    ap.add_argument("--no-estimate", action="store_true", help="skip the FLOP count and the H100 estimate")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # a stopped bench stops its camera too (finally blocks)
    import torch

    cpu = bench_model().cpu_model()
    print(f"CPU: {cpu}; load average {os.getloadavg()[0]:.1f}; a {args.fps:g} fps stream for {args.seconds:g} s "
          "per configuration")
    if "bf16" in args.configs and "_bf16" not in cpu:
        print("note: this CPU has no native bfloat16 (no avx512_bf16 / amx_bf16): bfloat16 is emulated and a 672S "
              "frame takes minutes; --configs tiny measures the loop alone")
    last = []
    for name in args.configs.split(","):
        r = run_live(name, args.seconds, args.fps, args.threads)
        print(f"{name:10s} ({torch.get_num_threads()} threads) sustained {r['fps']:6.2f} fps of {args.fps:g}, "
              f"dropped {r['drop']:.1%} "
              f"({r['decoded'] - r['processed']} of {r['decoded']}), latency p50/p95 {r['p50_ms']:.0f}/"
              f"{r['p95_ms']:.0f} ms to the feed, {r['client_p50_ms'] or float('nan'):.0f}/"
              f"{r['client_p95_ms'] or float('nan'):.0f} ms to the client; {r['segments']} segments; bare model "
              f"{r['bare_fps']:.2f} fps, live_vs_bare={r['fps'] / r['bare_fps']:.2f}")
        key = name.split("-")[0]
        last += [f"{key}_fps={r['fps']:.2f}", f"{key}_drop={r['drop']:.3f}", f"{key}_p50_ms={r['p50_ms']:.0f}",
                 f"{key}_p95_ms={r['p95_ms']:.0f}", f"{key}_live_vs_bare={r['fps'] / r['bare_fps']:.2f}"]
    if not args.no_estimate:
        for preset in ("672S", "896L"):
            e = h100_cameras(forward_tflop(preset), preset, args.fps)
            print(f"H100 {preset}: {e['tflop']:.2f} TFLOP/frame -> ~{e['frames_s']:.0f} frames/s at "
                  f"{BATCH1_EFFICIENCY:.0%} of {H100_BF16_TFLOPS:.0f} TFLOP/s -> {e['by_compute']:.1f} cameras at "
                  f"{args.fps:g} fps by compute, {e['by_memory']:.0f} by memory ({ACTOR_GB[preset]:.1f} GB per "
                  f"actor): {e['cameras']} cameras (one actor each, gpus_per_actor={1 / max(e['cameras'], 1):.2f}; "
                  f"an actor's eager forward is launch-bound at ~{e['actor_fps_cap']:.0f} fps)")
            last.append(f"h100_cameras_{preset}={e['cameras']}")
    print(" ".join(last))


if __name__ == "__main__":
    main()
