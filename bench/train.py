"""Human3R training step: seconds and peak memory per step of the fast paths against the naive (reference) step,
side by side in one run, FLOPs per step and a per-GPU estimate of the paper's recipe; and a clipping study.

    python bench/train.py --preset 672S              # 512x288, 4 views, batch 1, untrained:672S
    python bench/train.py --preset tiny              # the parity configuration (128x80)
    python bench/train.py --clip-study --steps 300   # clip_norm reference vs trainable on the parity pack's batch

Variants (each in a fresh process, one after the other, same weights and batch):
* naive: what the reference does: every weight gradient of the fixed modules computed (the reference clips by the
  norm over all of them), float32, no gradient checkpointing;
* fast: clip_norm "trainable" (no fixed weight gradient), float32; fast+ckpt: with gradient checkpointing
  (decoder blocks and DPT heads recomputed in the backward);
* the two fast variants in bfloat16 (autocast, float32 master weights; this CPU emulates bfloat16 unless it has AMX).

Time: one process runs the variants in turn, step by step, and reports the median of steps 2..N (`--steps`; step 1
allocates the optimiser state), so the load of a shared machine falls on every variant alike; each step's CPU time
(process time) is printed too: when the load swings within a round (672S steps take minutes), it is the steadier
figure. Memory: a fresh process per variant runs one step, measured two ways: the step's own memory = peak resident
set size (RSS, sampled every 2 ms) during that step minus the RSS just before it (model, body model and optimiser
loaded), and the process's absolute peak RSS (the kernel's ru_maxrss); the ratios of the last line use the step's
own memory (on CUDA: torch.cuda.max_memory_allocated). FLOPs: one more step of `fast` and `naive` under torch's FLOP
counter (matmuls, convolutions, attention forward and backward). The batch is synthetic: a textured image, a tilted
depth plane, 4 cameras moving 5 cm per view, 2 SMPL-X people per view (the pack's stand-in body model, generated
once).

The last line: `preset=<p> s_per_step=<fast> ratio_vs_naive=<naive / fast> peak_mem_ratio=<fast / naive>`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

if __name__ == "__main__" and not sys.flags.safe_path:  # bench/storage.py would shadow the storage package
    os.execv(sys.executable, [sys.executable, "-P", *sys.argv])

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PACK = ROOT / "tests" / "fixtures" / "train_parity"
VARIANTS = {  # name -> (clip_norm, gradient_checkpointing, precision)
    "naive": ("reference", False, "float32"),
    "fast": ("trainable", False, "float32"),
    "fast+ckpt": ("trainable", True, "float32"),
    "fast bf16": ("trainable", False, "bfloat16"),
    "fast+ckpt bf16": ("trainable", True, "bfloat16"),
}
SIZES = {"tiny": (128, 80), "672S": (512, 288), "672B": (512, 288), "672L": (512, 288), "896L": (512, 288)}
H100_BF16_TFLOPS = 989.0  # dense bfloat16 peak, H100 SXM
RECIPE = {"iterations": 20_000, "batch": 8}  # 40 epochs x 4,000 samples / batch 8


# ------------------------------------------------------------------------------------------------------------------
# the synthetic batch


def synthetic_views(width: int, height: int, views: int = 4, batch: int = 1, people: int = 2, slots: int = 10,
                    seed: int = 0) -> list[dict]:
    """Collated view dicts with the reference loader's keys (see `human3r.training.views`)."""
    rng = np.random.default_rng(seed)
    f = 0.78 * width  # BEDLAM's 28 mm on a 36 mm sensor
    K = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], np.float32)
    v, u = np.mgrid[0:height, 0:width].astype(np.float32)
    depth = 4.0 + 2.0 * (1 - v / height)  # a floor-like tilted plane, 4-6 m
    rays = np.stack([(u - K[0, 2]) / f, (v - K[1, 2]) / f, np.ones_like(u)], -1)
    texture = np.sin(u[None] / 7.0 + np.arange(3)[:, None, None]) * np.cos(v[None] / 5.0)
    out = []
    for i in range(views):
        c2w = np.eye(4, dtype=np.float32)
        yaw = 0.01 * i
        c2w[:3, :3] = [[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]]
        c2w[:3, 3] = [0.05 * i, 0, 0]
        pts = (rays * depth[..., None]) @ c2w[:3, :3].T + c2w[:3, 3]
        mask = np.zeros((height, width), np.float32)
        smpl = {k: np.zeros((slots, *s), np.float32) for k, s in (
            ("smplx_root_pose", (1, 3)), ("smplx_body_pose", (21, 3)), ("smplx_jaw_pose", (1, 3)),
            ("smplx_leye_pose", (1, 3)), ("smplx_reye_pose", (1, 3)), ("smplx_left_hand_pose", (15, 3)),
            ("smplx_right_hand_pose", (15, 3)), ("smplx_shape", (11,)), ("smplx_transl", (3,)))}
        for p in range(people):
            x, z = -0.6 + 1.2 * p / max(people - 1, 1), 3.0 + 0.8 * p
            smpl["smplx_root_pose"][p, 0] = [math.pi, 0, 0]  # upright in OpenCV axes
            smpl["smplx_body_pose"][p] = rng.normal(0, 0.1, (21, 3))
            smpl["smplx_shape"][p] = rng.normal(0, 0.5, 11)
            smpl["smplx_transl"][p] = [x - 0.03 * i, 0.3, z]
            cu, cv = int(f * x / z + width / 2), int(height / 2)
            mask[max(cv - height // 4, 0):cv + height // 4, max(cu - width // 20, 0):cu + width // 20] = 1
        one = {"img": np.clip(texture + 0.05 * i, -1, 1).astype(np.float32), "msk": mask,
               "depthmap": depth, "camera_pose": c2w, "camera_intrinsics": K, "pts3d": pts.astype(np.float32),
               "valid_mask": np.ones((height, width), bool), "sky_mask": np.zeros((height, width), bool),
               "ray_map": np.zeros((height, width, 6), np.float32), "true_shape": np.array([height, width], np.int32),
               "img_mask": True, "ray_mask": False, "is_metric": True, "camera_only": False, "depth_only": False,
               "single_view": False, "reset": False, "smpl_mask": np.arange(slots) < people, **smpl}
        out.append({k: torch.from_numpy(np.stack([np.asarray(x)] * batch)) for k, x in one.items()})
    return out


# ------------------------------------------------------------------------------------------------------------------
# one variant, in its own process


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class _PeakRss:
    """Samples the RSS every 2 ms in a thread while active."""

    def __enter__(self) -> _PeakRss:
        self.peak, self._stop = _rss_mb(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, _rss_mb())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())


def _sdpa_flops(query, key, value, *args, **kwargs) -> int:
    b, h, nq, d = query
    return 4 * b * h * nq * key[-2] * d


def _sdpa_backward_flops(grad, query, key, value, *args, **kwargs) -> int:
    return 2 * _sdpa_flops(query, key, value)


def _setup(spec: dict):
    from human3r.weights import load_model
    from tasks.training.pack import load_bodies, pack_body_model

    torch.set_num_threads(spec["threads"])
    width, height = spec["size"]
    model = load_model(f"untrained:{spec['preset']}")
    bodies = load_bodies(pack_body_model(PACK))
    return model, bodies, synthetic_views(width, height, views=spec["views"], batch=spec["batch"])


def _config(name: str):
    from human3r.training import OptimizerConfig, TrainConfig

    clip, ckpt, precision = VARIANTS[name]
    return TrainConfig(precision=precision, gradient_checkpointing=ckpt, optimizer=OptimizerConfig(clip_norm=clip))


def memory_worker(spec: dict) -> dict:
    """A fresh process: one variant's first step; its peak memory, loss and (optionally) FLOPs."""
    from human3r.training import build_optimizer, optimizer_step, prepare_for_training, train_step

    model, bodies, batch = _setup(spec)
    cfg = _config(spec["variant"])
    sets = prepare_for_training(model, cfg)
    optimizer = build_optimizer(model, sets, cfg)
    cuda = next(model.parameters()).is_cuda
    before = _rss_mb()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    with _PeakRss() as rss:
        out = train_step(model, batch, bodies, cfg)
        optimizer_step(model, optimizer, sets, cfg)
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else rss.peak
    loss = out.loss
    del out
    flops = 0.0
    if spec["flops"]:
        from torch.utils.flop_counter import FlopCounterMode

        aten = torch.ops.aten
        mapping = {aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_flops,
                   aten._scaled_dot_product_flash_attention_for_cpu_backward: _sdpa_backward_flops}
        with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
            train_step(model, batch, bodies, cfg)
        flops = counter.get_total_flops()
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"loss": loss, "rss_before_mb": before, "step_peak_mb": peak - (0 if cuda else before),
            "peak_rss_mb": max(peak, maxrss), "flops": flops, "trainable": sets.numel(model, "trainable"),
            "fixed": sets.numel(model, "fixed"), "frozen": sets.numel(model, "frozen")}


def timing_worker(spec: dict) -> dict:
    """One process, every variant in turn, step by step (round robin), so a shared machine's load falls on all of
    them alike. float32 variants share one model (a variant only sets `requires_grad` and checkpointing); the
    bfloat16 ones a copy stored in bfloat16. Returns the seconds of every step per variant."""
    import copy

    from human3r.training import build_optimizer, optimizer_step, prepare_for_training, train_step

    model, bodies, batch = _setup(spec)
    models = {"float32": model}
    if any(VARIANTS[n][2] == "bfloat16" for n in spec["variants"]):
        models["bfloat16"] = copy.deepcopy(model)
    setups = {}
    for name in spec["variants"]:
        cfg = _config(name)
        m = models[cfg.precision]
        setups[name] = (m, cfg, build_optimizer(m, prepare_for_training(m, cfg), cfg))
    times: dict[str, list[float]] = {n: [] for n in spec["variants"]}
    cpu: dict[str, list[float]] = {n: [] for n in spec["variants"]}
    loads = []
    for _ in range(spec["steps"]):
        loads.append(os.getloadavg()[0])
        for name, (m, cfg, optimizer) in setups.items():
            sets = prepare_for_training(m, cfg)
            start, cpu_start = time.perf_counter(), time.process_time()
            train_step(m, batch, bodies, cfg)
            optimizer_step(m, optimizer, sets, cfg)
            if next(m.parameters()).is_cuda:
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - cpu_start)
    return {"times": times, "cpu": cpu, "loads": loads}


def run_worker(kind: str, spec: dict) -> dict:
    done = subprocess.run([sys.executable, "-P", __file__, f"--{kind}-worker", json.dumps(spec)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode != 0:
        raise SystemExit(f"{kind} worker {spec.get('variant', '')} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------------------------
# reports


def h100_estimate(flops_step_b1: float, batch: int, mfu: float) -> float:
    """Hours for the recipe's iterations at `batch` (FLOPs linear in the batch) at `mfu` of the bf16 peak."""
    return RECIPE["iterations"] * flops_step_b1 * batch / (mfu * H100_BF16_TFLOPS * 1e12) / 3600


def bench(args) -> None:
    size = tuple(int(x) for x in args.size.split("x")) if args.size else SIZES[args.preset]
    names = [n for n in VARIANTS if n in args.variants.split(",")] if args.variants else list(VARIANTS)
    print(f"{cpu_model()}, {args.threads} threads, load average {os.getloadavg()[0]:.1f}; preset {args.preset}, "
          f"{size[0]}x{size[1]}, {args.views} views, batch {args.batch}; memory: step 1 of a fresh process per "
          f"variant; time: median of steps 2..{args.steps}, variants in turn in one process", flush=True)
    base = {"preset": args.preset, "size": size, "views": args.views, "batch": args.batch, "threads": args.threads}
    phases = set(args.phases.split(","))
    mem = {}
    for name in names if "memory" in phases else ():
        mem[name] = run_worker("memory", {**base, "variant": name,
                                          "flops": name in ("naive", "fast") and not args.no_flops})
        r = mem[name]
        print(f"  {name:<15} step memory {r['step_peak_mb']:8.0f} MB  peak RSS {r['peak_rss_mb']:8.0f} MB  loss "
              f"{r['loss']:.7f}" + (f"  {r['flops'] / 1e12:.4g} TFLOP/step" if r["flops"] else "")
              + f"  (load {os.getloadavg()[0]:.1f})", flush=True)
    if "timing" in phases:
        timing = run_worker("timing", {**base, "variants": names, "steps": args.steps})
        times = timing["times"]
        print("timing: load average at the start of each round " + ", ".join(f"{x:.1f}" for x in timing["loads"]))
        cpu = timing["cpu"]
        naive_cpu = _median(cpu["naive"]) if "naive" in cpu else float("nan")
        print("CPU seconds per step (the process's CPU time: what a loaded machine's wall clock adds is left out): "
              + "; ".join(f"{n} {_median(c):.2f} [{', '.join(f'{x:.1f}' for x in c)}] x naive "
                          f"{naive_cpu / _median(c):.2f}" for n, c in cpu.items()))
    else:
        times = {n: [float("nan")] for n in names}
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    if mem:
        first = next(iter(mem.values()))
        print(f"parameters: trainable {first['trainable']:,}, fixed {first['fixed']:,}, frozen {first['frozen']:,}")
    empty = {"step_peak_mb": float("nan"), "peak_rss_mb": float("nan"), "loss": float("nan"), "flops": 0}
    mem = {n: mem.get(n, empty) for n in names}
    naive = "naive" if "naive" in names else None
    print(f"{'variant':<15} {'s/step':>8} {'steps':<28} {'x naive':>8} {'step mem':>9} {'x naive':>8} "
          f"{'peak RSS':>9} {'x naive':>8} {'loss vs naive':>13}")
    for name in names:
        t, r = times[name], mem[name]
        ratio = _median(times[naive]) / _median(t) if naive else float("nan")
        m_ratio = r["step_peak_mb"] / mem[naive]["step_peak_mb"] if naive else float("nan")
        a_ratio = r["peak_rss_mb"] / mem[naive]["peak_rss_mb"] if naive else float("nan")
        same = "same" if naive and r["loss"] == mem[naive]["loss"] else (
            f"{abs(r['loss'] - mem[naive]['loss']) / abs(mem[naive]['loss']):.1e}" if naive else "")
        print(f"{name:<15} {_median(t):>8.2f} {', '.join(f'{x:.1f}' for x in t):<28} {ratio:>8.2f} "
              f"{r['step_peak_mb']:>9.0f} {m_ratio:>8.2f} {r['peak_rss_mb']:>9.0f} {a_ratio:>8.2f} {same:>13}")
    flops = mem.get("fast", {}).get("flops", 0)
    if flops and naive:
        fb = flops / args.batch
        print(f"FLOPs per step (batch {args.batch}): fast {flops / 1e12:.4g} T, naive {mem[naive]['flops'] / 1e12:.4g}"
              f" T; the recipe (batch {RECIPE['batch']}, {RECIPE['iterations']:,} iterations) on one H100 SXM (bf16 "
              f"dense {H100_BF16_TFLOPS:.0f} TFLOP/s): "
              + ", ".join(f"{h100_estimate(fb, RECIPE['batch'], m):.3g} h at {m:.0%} MFU" for m in (0.25, 0.4)))
    best = args.default if args.default in names else names[-1]
    ratio = _median(times[naive]) / _median(times[best]) if naive else float("nan")
    m_ratio = mem[best]["step_peak_mb"] / mem[naive]["step_peak_mb"] if naive else float("nan")
    print(f"preset={args.preset} s_per_step={_median(times[best]):.2f} ratio_vs_naive={ratio:.2f} "
          f"peak_mem_ratio={m_ratio:.2f}")


def _median(xs: list[float]) -> float:
    return statistics.median(xs[1:] or xs)


def cpu_model() -> str:
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    return next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")


# ------------------------------------------------------------------------------------------------------------------
# the clipping study


def clip_study(args) -> None:
    """`--steps` steps on the pack's batch per clip mode, from the same weights at the pack's learning rate."""
    import copy

    from human3r.training import build_optimizer, optimizer_step, prepare_for_training, train_step
    from human3r.training.params import named_parameters
    from tasks.training.pack import (
        load_bodies,
        pack_body_model,
        pack_model,
        pack_train_config,
        read_pack,
        recorded_views,
    )

    torch.set_num_threads(args.threads)
    train_config = read_pack(PACK)
    template = pack_model(PACK, train_config)
    bodies = load_bodies(pack_body_model(PACK))
    views = recorded_views(np.load(PACK / "case_basic.npz"))
    runs = {}
    for mode in ("reference", "trainable"):
        model = copy.deepcopy(template)
        cfg = pack_train_config(train_config, mode)
        sets = prepare_for_training(model, cfg)
        optimizer = build_optimizer(model, sets, cfg)
        start = {n: p.detach().clone() for n, p in named_parameters(model).items() if n in sets.trainable}
        losses, coefs, t0 = [], [], time.perf_counter()
        for _ in range(args.steps):
            out = train_step(model, views, bodies, cfg)
            clip = optimizer_step(model, optimizer, sets, cfg)
            losses.append(out.loss)
            coefs.append(clip.clip_coef)
        params = {n: p.detach().clone() for n, p in named_parameters(model).items() if n in sets.trainable}
        runs[mode] = (losses, coefs, start, params, (time.perf_counter() - t0) / args.steps)
    (lr, cr, start, pr, tr), (lt, ct, _, pt, tt) = runs["reference"], runs["trainable"]
    print(f"{args.steps} steps on the pack's case_basic batch (tiny model, lr 1e-4, clip 1.0), {args.threads} "
          f"threads; s/step reference {tr:.2f}, trainable {tt:.2f}")
    print(f"{'step':>5} {'loss ref':>10} {'loss train':>10} {'rel diff':>9} {'coef ref':>9} {'coef train':>10} "
          f"{'drift ref':>10} {'drift train':>11} {'ref-vs-train':>12}")
    marks = sorted({0, 1, 4, 9, 24, 49, 99, 199, 299, 499, args.steps - 1} & set(range(args.steps)))
    for i in marks:
        print(f"{i + 1:>5} {lr[i]:>10.5f} {lt[i]:>10.5f} {abs(lr[i] - lt[i]) / lr[i]:>9.2e} {cr[i]:>9.4f} "
              f"{ct[i]:>10.4f}")
    drift_r = _norm({n: pr[n] - start[n] for n in start})
    drift_t = _norm({n: pt[n] - start[n] for n in start})
    gap = _norm({n: pr[n] - pt[n] for n in start})
    print(f"after {args.steps} steps: parameter drift from the start ||dp|| reference {drift_r:.4f}, trainable "
          f"{drift_t:.4f}; ||p_ref - p_trainable|| {gap:.4f} ({gap / drift_r:.1%} of the drift)")
    tail = max(1, args.steps // 10)
    print(f"mean loss of the last {tail} steps: reference {statistics.mean(lr[-tail:]):.5f}, trainable "
          f"{statistics.mean(lt[-tail:]):.5f}; min reference {min(lr):.5f}, trainable {min(lt):.5f}")
    print(f"clip_study steps={args.steps} loss_ref={lr[-1]:.5f} loss_trainable={lt[-1]:.5f} "
          f"param_gap_fraction={gap / drift_r:.4f} speed_ratio={tr / tt:.2f}")


def _norm(tensors: dict) -> float:
    return math.sqrt(sum(float((t.double() ** 2).sum()) for t in tensors.values()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="672S", choices=tuple(SIZES))
    ap.add_argument("--size", default=None, help="working size WxH (default: 512x288; tiny: 128x80)")
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--steps", type=int, default=None, help="steps per variant (default 3; clip study 300)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", default=None, help=f"comma-separated subset of {', '.join(VARIANTS)}")
    ap.add_argument("--default", default="fast", help="the variant of the last line")
    ap.add_argument("--no-flops", action="store_true", help="skip the FLOP-counting step")
    ap.add_argument("--phases", default="memory,timing", help="memory, timing or both (comma-separated)")
    ap.add_argument("--clip-study", action="store_true", help="clip_norm reference vs trainable over --steps steps")
    ap.add_argument("--memory-worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--timing-worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_worker:
        print(json.dumps(memory_worker(json.loads(args.memory_worker))))
    elif args.timing_worker:
        print(json.dumps(timing_worker(json.loads(args.timing_worker))))
    elif args.clip_study:
        args.steps = args.steps or 300
        clip_study(args)
    else:
        args.steps = args.steps or 3
        bench(args)


if __name__ == "__main__":
    main()
