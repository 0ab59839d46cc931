"""Human3R network speed on this CPU: seconds per frame, FLOPs, the fraction of the measured matmul peak, and the
ratio to a naive path, all measured side by side in one run.

    python bench/model.py --preset 672S --precision bfloat16 --frames 4 --vs-naive --batch 4 --profile

Untrained weights (`untrained:<preset>`, the parity pack's rules), frames of the working size (default 512x288)
and 3 people forced per frame (a forward hook on the detection classifier of the bench's models replaces its score
map by three peaks, as the reference measurement did; the product path is untouched). Per path, the time of a frame
is one `run_stream` step (forward + intrinsics) on prepared frames; the figure is the median of frames 2..N (frame
1 is a warm-up, and is where the FLOPs are counted).

* fast path: the outputs the pipeline stores by default (`tasks.reconstruction.video.stored_outputs`: none of the
  optional ones; world points come from the camera-frame pointmap and the pose, so the world-view branch, the colour
  head and the person mask do not run) at `--precision` (`auto` decides by measuring, and says why).
* `--vs-naive`: the straightforward path on the same frames, alternating frame by frame with the fast path: every
  head, float32, batch 1, stock kernels (what the reference does).
* `--batch K`: K videos in one batched forward (`run_streams`) against K single forwards, alternated step by step.
* `--profile`: one more fast frame with per-module times and the top operators.
* `--compile`: the fast path with `torch.compile`d blocks (`Human3R.compile_blocks`); the compilation happens in
  the warm-up frame and is printed, not counted in s/frame.
* `--vs-eager` (with `--compile`): the same fast path eagerly too, alternating frame by frame with the compiled one:
  the compiled speed-up measured side by side.

The matmul peak is measured in the same run at each precision used, before and after the frames (the best of a
4096^3 matmul and the network's MLP shape, the best of the two times: on a shared CPU the less disturbed one). The
machine is shared: the load average is printed; compare only figures from one run.
The last line: `preset=<p> precision=<p> size=<WxH> s_per_frame=<median> peak_fraction=<f> ratio_vs_naive=<r>`.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import time
from collections import defaultdict

if __name__ == "__main__" and not sys.flags.safe_path:  # bench/storage.py would shadow the storage package
    os.execv(sys.executable, [sys.executable, "-P", *sys.argv])

import numpy as np  # noqa: E402
import torch  # noqa: E402

STORED = frozenset()  # = tasks.reconstruction.video.stored_outputs(ReconstructOptions()) (bench imports human3r only)
PEOPLE = ((0.5, 0.25, 0.9), (0.5, 0.5, 0.85), (0.5, 0.75, 0.8))  # (row, col) as grid fractions, score


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return platform.processor() or "unknown CPU"
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in flags]
    return f"{name} [{' '.join(isa)}]"


def force_three_people(model) -> None:
    """Bench-only: the detection classifier's output becomes 1e-6 everywhere but three peaks (3 people per frame,
    whatever the weights); the classifier itself still runs and keeps its cost."""
    g = model.cfg.dino.grid
    rows_cols = [(int(g * r) + d, int(g * c), s) for (r, c, s), d in zip(PEOPLE, (0, 2, -2), strict=True)]

    def hook(module, args, logits):
        forced = torch.full_like(logits, float(np.log(1e-6)))
        for r, c, s in rows_cols:
            forced[:, r * g + c, 0] = float(np.log(s / (1 - s)))
        return forced

    model.downstream_head.mlp_classif.register_forward_hook(hook)


def make_frames(model, n: int, width: int, height: int):
    from human3r.preprocess import prepare_frame

    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = []
    for i in range(n):  # a slowly moving texture: consecutive frames alike, as in a video
        rgb = np.roll(base, 4 * i, axis=1)
        out.append(prepare_frame(rgb, max(width, height), model.cfg.dino.image_res))
    return out


def matmul_peak(dtype: torch.dtype) -> float:
    from human3r.precision import measure_matmul

    return max(measure_matmul(4096, 4096, 4096, dtype, repeats=3), measure_matmul(4096, 1024, 4096, dtype, repeats=3))


def sdpa_gflops(dtype: torch.dtype, n: int, heads: int, dim: int = 64) -> float:
    q, k, v = (torch.randn(1, heads, n, dim).to(dtype) for _ in range(3))
    times = []
    for i in range(4):
        start = time.perf_counter()
        torch.nn.functional.scaled_dot_product_attention(q, k, v)
        if i:
            times.append(time.perf_counter() - start)
    return 4 * heads * n * n * dim / statistics.median(times) / 1e9


def _sdpa_cpu_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    b, h, nq, d = query
    return 4 * b * h * nq * key[-2] * d


def count_flops(step) -> tuple[object, float]:
    """Run `step()` under a FLOP counter (matmuls, convolutions, attention incl. the CPU flash kernel)."""
    from torch.utils.flop_counter import FlopCounterMode

    aten = torch.ops.aten
    mapping = {aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flops}
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        out = step()
    return out, counter.get_total_flops()


class Path:
    """One way of running the network over the frames, stepped one frame at a time."""

    def __init__(self, name: str, model, frames, outputs, videos: int = 1):
        from human3r.stream import run_streams

        self.name, self.videos = name, videos
        self.steps = run_streams(model, [frames] * videos, use_ttt3r=True, reset_interval=100, outputs=outputs)
        self.times: list[float] = []
        self.flops = 0.0

    def step(self, count: bool = False) -> None:
        def one():
            for _ in range(self.videos):
                next(self.steps)

        start = time.perf_counter()
        if count:
            self.flops = count_flops(one)[1] / self.videos
        else:
            one()
        self.times.append(time.perf_counter() - start)

    @property
    def s_per_frame(self) -> float:
        return statistics.median(self.times[1:]) / self.videos

    @property
    def best(self) -> float:
        return min(self.times[1:]) / self.videos


def profile_frame(model, frames) -> None:
    """Per-module times (forward hooks, method wrappers) and the top operators (torch.profiler) of one fast frame."""
    from torch.profiler import ProfilerActivity, profile

    from human3r.stream import run_stream

    head, dec = model.downstream_head, model.decoder
    parts = {"CUT3R encoder": [model.encoder], "DINOv2": [model.backbone], "detection + mask MLPs": [head.mlp_classif],
             "prompt fuse MLP": [head.mlp_fuse], "decoder (both streams)": [dec],
             "pose memory write": [], "final_transform": list(head.final_transform), "DPT self": [head.dpt_self],
             "DPT cross": [head.dpt_cross], "SMPL-X regressors": [head.decpose, head.decshape, head.decexpression,
                                                                  head.deccam]}
    times, handles = defaultdict(float), []

    def timer(name):
        def pre(*_):
            times["_" + name] = time.perf_counter()

        def post(*_):
            times[name] += time.perf_counter() - times["_" + name]
        return pre, post

    for name, modules in parts.items():
        pre, post = timer(name)
        for module in modules:
            handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    write = dec.pose_retriever.write
    pre, post = timer("pose memory write")

    def timed_write(*a, **k):
        pre()
        out = write(*a, **k)
        post()
        return out
    dec.pose_retriever.write = timed_write
    steps = run_stream(model, frames[:2], use_ttt3r=True, outputs=STORED)
    next(steps)  # warm; the profiled frame is a stream's second frame (memory read and TTT3R gate included)
    times.clear()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        next(steps)
        total = time.perf_counter() - start
    for h in handles:
        h.remove()
    del dec.pose_retriever.write
    print(f"\nper-module profile of the fast path (one frame, {total:.2f} s with the profiler on):")
    for name in parts:
        print(f"  {name:<24} {times[name] * 1e3:9.0f} ms  {times[name] / total:6.1%}")
    rest = total - sum(times[name] for name in parts)
    print(f"  {'rest (tracking, glue)':<24} {rest * 1e3:9.0f} ms  {rest / total:6.1%}")
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=48)
    print("\ntop operators (self CPU time):\n" + table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="672S")
    ap.add_argument("--precision", default="auto", choices=("float32", "bfloat16", "float16", "auto"))
    ap.add_argument("--size", default="512x288", help="working size WxH (multiples of 16)")
    ap.add_argument("--frames", type=int, default=4, help="N: the median is over frames 2..N")
    ap.add_argument("--vs-naive", action="store_true", help="also run the naive path, alternating frame by frame")
    ap.add_argument("--batch", type=int, default=0, help="also time K videos per forward against K single forwards")
    ap.add_argument("--profile", action="store_true", help="per-module and per-operator profile of the fast path")
    ap.add_argument("--compile", action="store_true", help="torch.compile the fast path's blocks (slow warm-up)")
    ap.add_argument("--vs-eager", action="store_true",
                    help="with --compile: also run the fast path eagerly, alternating frame by frame")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args()
    if args.vs_eager and not args.compile:
        ap.error("--vs-eager compares the compiled fast path with the eager one: add --compile")
    width, height = (int(x) for x in args.size.lower().split("x"))
    if args.threads:
        torch.set_num_threads(args.threads)

    from human3r.precision import cpu_bfloat16_speedup, resolve_precision
    from human3r.weights import load_model

    print(f"CPU: {cpu_model()}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"load average {os.getloadavg()[0]:.2f} (a shared machine: other work inflates every figure)")
    dtype = resolve_precision(args.precision, "cpu")
    name = str(dtype).removeprefix("torch.")
    if args.precision == "auto":
        peak = cpu_bfloat16_speedup(torch.get_num_threads())
        print(f"precision auto -> {name}: bfloat16 matmul {peak.low_gflops:.0f} vs float32 {peak.float32_gflops:.0f} "
              f"GFLOP/s at {peak.shape} (x{peak.speedup:.2f}; bfloat16 is chosen from x1.3)")
    peaks = {torch.float32: matmul_peak(torch.float32)}
    if dtype != torch.float32:
        peaks[dtype] = matmul_peak(dtype)
    for dt, gf in peaks.items():
        print(f"matmul peak {str(dt).removeprefix('torch.'):>8}: {gf:7.0f} GFLOP/s; SDPA at 576 tokens x 16 heads: "
              f"{sdpa_gflops(dt, 576, 16):5.0f}, at 4097 x 16: {sdpa_gflops(dt, 4097, 16):5.0f} GFLOP/s")

    t0 = time.perf_counter()
    base = load_model(f"untrained:{args.preset}")
    fast_model = base if dtype == torch.float32 and not args.compile else copy.deepcopy(base).set_precision(name)
    eager_model = None
    if args.vs_eager:
        eager_model = base if dtype == torch.float32 else copy.deepcopy(base).set_precision(name)
    print(f"models ready in {time.perf_counter() - t0:.0f} s")
    for m in {id(m): m for m in (base, fast_model, eager_model) if m is not None}.values():
        force_three_people(m)
    frames = make_frames(base, args.frames, width, height)

    eager_flops = None
    if args.compile:  # count the fast path's FLOPs eagerly first (the counter and the compiler do not mix)
        probe = Path("probe", fast_model, frames, STORED)
        probe.step(count=True)
        eager_flops = probe.flops
        fast_model.compile_blocks()
    paths = [Path("fast", fast_model, frames, STORED)]
    if eager_model is not None:
        paths.append(Path("eager", eager_model, frames, STORED))
    if args.vs_naive:
        from human3r.outputs import OPTIONAL_OUTPUTS

        paths.append(Path("naive", base, frames, OPTIONAL_OUTPUTS))
    for i in range(args.frames):
        for p in paths:
            p.step(count=i == 0 and not (p.name == "fast" and args.compile))
        print(f"frame {i + 1}: " + ", ".join(f"{p.name} {p.times[-1]:.2f} s" for p in paths)
              + (" (includes compiling the blocks)" if args.compile and i == 0 else ""), flush=True)
    fast = paths[0]
    fast.flops = eager_flops or fast.flops
    for p in paths:
        frac = p.flops / p.s_per_frame / 1e9 / peaks[torch.float32 if p.name == "naive" else dtype]
        print(f"{p.name:>6}: {p.s_per_frame:.3f} s/frame, best {p.best:.3f} (frames 2..N: "
              f"{', '.join(f'{t / p.videos:.2f}' for t in p.times[1:])}), {p.flops / 1e12:.3f} TFLOP/frame, "
              f"{p.flops / p.s_per_frame / 1e9:.0f} GFLOP/s = {frac:.1%} of the matmul peak measured before")
    by_name = {p.name: p for p in paths}
    ratio = by_name["naive"].s_per_frame / fast.s_per_frame if args.vs_naive else float("nan")
    if args.vs_naive:
        print(f"fast vs naive: x{ratio:.2f} (medians; best frames: x{by_name['naive'].best / fast.best:.2f}; "
              "alternated frame by frame)")
    if args.vs_eager:
        eager = by_name["eager"]
        print(f"compiled vs eager: x{eager.s_per_frame / fast.s_per_frame:.3f} (medians; best frames: "
              f"x{eager.best / fast.best:.3f}; alternated frame by frame)")

    if args.batch > 1:
        batched = Path(f"batch{args.batch}", fast_model, frames, STORED, videos=args.batch)
        single = Path("single", fast_model, frames, STORED)
        for _ in range(args.frames):
            batched.step()
            single.step()
        per = batched.s_per_frame / single.s_per_frame
        print(f"batched: {args.batch} videos per forward {batched.s_per_frame * args.batch:.2f} s per step = "
              f"{batched.s_per_frame:.3f} s per video-frame vs {single.s_per_frame:.3f} single: "
              f"x{per:.2f} of {args.batch} single forwards (best steps: x{batched.best / single.best:.2f})")

    if args.profile:
        profile_frame(fast_model, frames)

    for dt in peaks:  # again after the frames: keep the less disturbed measurement
        again = matmul_peak(dt)
        print(f"matmul peak {str(dt).removeprefix('torch.'):>8} after the frames: {again:7.0f} GFLOP/s "
              f"(before: {peaks[dt]:.0f}); load average {os.getloadavg()[0]:.2f}")
        peaks[dt] = max(peaks[dt], again)
    for p in paths:
        frac = p.flops / p.s_per_frame / 1e9 / peaks[torch.float32 if p.name == "naive" else dtype]
        print(f"{p.name:>6}: {frac:.1%} of the best measured {'float32' if p.name == 'naive' else name} matmul peak "
              f"({peaks[torch.float32 if p.name == 'naive' else dtype]:.0f} GFLOP/s)")
    frac = fast.flops / fast.s_per_frame / 1e9 / peaks[dtype]
    name += "+compile" if args.compile else ""
    print(f"preset={args.preset} precision={name} size={width}x{height} s_per_frame={fast.s_per_frame:.3f} "
          f"peak_fraction={frac:.3f} ratio_vs_naive={ratio:.2f}")


if __name__ == "__main__":
    main()
