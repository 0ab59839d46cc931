"""Numeric precision of a run: what `precision="auto"` picks on this machine, and a model's bfloat16 layout.

* ``float32``: the parity path (every result matches the reference within the fixture tolerances).
* ``bfloat16`` / ``float16``: the transformer and DPT weights are stored in that dtype once and the forward runs
  under autocast, so matmuls, convolutions and attention run at low precision while the residual streams stay
  float32. The parts where a percent matters stay float32 ("islands", `float32_island`): detection scores (a
  threshold), the DPT output convolutions and their exp activations, the camera-pose and SMPL-X regressors, the
  TTT3R gate, the state / memory update and the tracker.
* ``auto``: on CUDA, bfloat16 when the GPU computes it natively (Ampere, compute capability 8.0, or newer; ROCm),
  else float16 (older GPUs only emulate bfloat16, slowly); on a CPU, bfloat16 only when a measured bfloat16
  matmul at the network's shapes is clearly faster than float32 (AMX or AVX512-BF16 machines: 4-6x; machines that
  emulate bfloat16: slower), else float32. The measurement takes about a second and is done once per process.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from dataclasses import dataclass

import torch
from torch import nn

from human3r.errors import ConfigError

log = logging.getLogger(__name__)

PRECISIONS = ("float32", "bfloat16", "float16", "auto")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
AUTO_MIN_SPEEDUP = 1.3  # bfloat16 must beat float32 by this factor at the network's shapes to be chosen on a CPU

# Modules (names relative to the model) whose weights stay float32 in every precision: small, and where a percent
# of error shows in the stored outputs (see the module docstring).
FLOAT32_MODULES = (
    "decoder.decoder_embed_state", "downstream_head.mlp_classif", "downstream_head.mlp_offset",
    "downstream_head.pose_head", "downstream_head.deccam", "downstream_head.decpose", "downstream_head.decshape",
    "downstream_head.decexpression",
    "downstream_head.dpt_self.head.4", "downstream_head.dpt_cross.head.4", "downstream_head.dpt_rgb.head.4",
)


@dataclass(frozen=True)
class MatmulPeak:
    """Throughput of one GEMM shape at two precisions on this machine, measured side by side."""

    shape: tuple[int, int, int]  # (M, K, N)
    float32_gflops: float
    low_gflops: float  # at `low_dtype`
    low_dtype: str

    @property
    def speedup(self) -> float:
        return self.low_gflops / self.float32_gflops


def measure_matmul(m: int, k: int, n: int, dtype: torch.dtype, repeats: int = 5, device: str = "cpu") -> float:
    """GFLOP/s of an (m, k) @ (k, n) matmul in `dtype` (median of `repeats` after two warm-up calls)."""
    a = torch.randn(m, k, device=device).to(dtype)
    b = torch.randn(k, n, device=device).to(dtype)
    times = []
    for i in range(repeats + 2):
        if device != "cpu":
            torch.cuda.synchronize()
        start = time.perf_counter()
        torch.mm(a, b)
        if device != "cpu":
            torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return 2 * m * k * n / sorted(times)[len(times) // 2] / 1e9


@functools.lru_cache(maxsize=4)
def cpu_bfloat16_speedup(threads: int) -> MatmulPeak:
    """bfloat16 vs float32 matmul throughput at a transformer-MLP shape of the network (576 tokens x 1024 x 4096),
    measured now, alternating the two dtypes. Cached per thread count."""
    m, k, n = 576, 1024, 4096
    f32, b16 = [], []
    for _ in range(2):
        f32.append(measure_matmul(m, k, n, torch.float32, repeats=3))
        b16.append(measure_matmul(m, k, n, torch.bfloat16, repeats=3))
    return MatmulPeak((m, k, n), max(f32), max(b16), "bfloat16")


def cuda_native_bfloat16(device: torch.device | str = "cuda") -> bool:
    """Whether the GPU `device` computes bfloat16 in hardware: compute capability 8.0 (Ampere) or newer, or ROCm.

    `torch.cuda.is_bf16_supported(including_emulation=False)`'s rule, asked of `device` rather than of the current
    GPU (the default `is_bf16_supported()` also counts pre-Ampere GPUs, which only emulate bfloat16, slowly).
    """
    if torch.version.hip:
        return True
    major, _minor = torch.cuda.get_device_capability(torch.device(device))
    return major >= 8


def resolve_precision(precision: str, device: torch.device | str = "cpu") -> torch.dtype:
    """'float32' | 'bfloat16' | 'float16' | 'auto' -> the compute dtype on `device` ('auto' measured, see above)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    device = torch.device(device)
    if precision != "auto":
        return DTYPES[precision]
    if device.type == "cuda":
        return torch.bfloat16 if cuda_native_bfloat16(device) else torch.float16
    if device.type != "cpu":
        return torch.float32
    peak = cpu_bfloat16_speedup(torch.get_num_threads())
    choice = torch.bfloat16 if peak.speedup >= AUTO_MIN_SPEEDUP else torch.float32
    log.info("precision auto -> %s: bfloat16 matmul %.0f vs float32 %.0f GFLOP/s at %s (x%.2f; needs x%.1f)",
             str(choice).removeprefix("torch."), peak.low_gflops, peak.float32_gflops, peak.shape, peak.speedup,
             AUTO_MIN_SPEEDUP)
    return choice


def cast_for_precision(model: nn.Module, dtype: torch.dtype, keep_float32: tuple[str, ...] = ()) -> nn.Module:
    """Store the weights of every Linear / Conv in `dtype`, except `FLOAT32_MODULES` and the modules named by
    `keep_float32` (prefixes; training keeps its trained modules' master weights float32). LayerNorms, embeddings
    and token parameters stay float32 too. One-way: float32 weights rounded to bfloat16 are not restored."""
    if dtype == torch.float32:
        return model
    keep = {name for name, _ in model.named_modules() if name.startswith(FLOAT32_MODULES + tuple(keep_float32))}
    for name, module in model.named_modules():
        if name not in keep and isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            module.to(dtype)
    return model


@contextlib.contextmanager
def float32_island(device_type: str):
    """Autocast off inside (pass float32 inputs): for the parts that stay float32 in every precision."""
    with torch.autocast(device_type, enabled=False):
        yield


@contextlib.contextmanager
def compute_context(device_type: str, dtype: torch.dtype):
    """The forward's context: autocast at bfloat16 / float16 (none for float32) and, on CUDA, the fused attention
    kernels first (flash, then memory-efficient, cuDNN; the math kernel only as a last resort). TF32 is left as
    the process has it (off by default; the reference turns it on globally, see human3r_architecture P6)."""
    with contextlib.ExitStack() as stack:
        if dtype != torch.float32:
            stack.enter_context(torch.autocast(device_type, dtype=dtype))
        if device_type == "cuda":
            from torch.nn.attention import SDPBackend, sdpa_kernel

            order = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION,
                     SDPBackend.MATH]
            stack.enter_context(sdpa_kernel(order, set_priority=True))
        yield


def compile_blocks(model: nn.Module, mode: str | None = None) -> nn.Module:
    """`torch.compile` the repeated parts in place: every transformer block (encoder, DINOv2, both decoder streams,
    pose memory, world-view branch) and the DPT heads. The elementwise work around the matmuls (LayerNorm, GELU,
    RoPE, residual adds, dtype casts) is fused; the data-dependent glue (detections, tracking, resets) stays eager.

    Exact: float16 casts are emulated (`emulate_precision_casts`, so the encoder's float16 RoPE rounding survives
    fusion), and what feeds that rounding is computed as eagerly, bit for bit: the RoPE tables are made outside the
    compiled blocks (`Rope(head_dims=...)`), the encoder's norm1 stays ATen's LayerNorm (`layers.aten_layer_norm`),
    the qkv matmul is ATen's, and the rotation's multiplies and adds round exactly whatever the vector width
    (inductor builds with -ffp-contract=off). Inductor's own cos/sin and LayerNorm round differently (1 ulp), which
    on an AVX2 CPU flipped q/k elements at the float16 rounding (`f0.enc_block0` 7.2e-5 against its 5e-5
    tolerance). Compiled encoder block 0 matches eager to ~1e-6 (checked on AVX2 and asserted by the compiled
    parity test wherever it runs) and the parity pack passes compiled (`python -m human3r.parity DIR --compile`).
    Blocks of one kind share a compiled graph; a token count that changes (people come and go) recompiles once with
    that size dynamic.
    Costs ~30-40 s of compilation per process and working size on a 2-core CPU (plus ~10 s when the sizes first
    change; a C++ compiler is needed on CPUs), then measured per frame on a 2-core AMX Xeon (bench/model.py): 672S
    float32 x1.03, bfloat16 x1.08; 896L float32 x1.02, bfloat16 x1.06. `mode`: torch.compile's mode.
    """
    import shutil

    import torch._dynamo.config
    import torch._inductor.config

    from human3r.heads import DPTHead
    from human3r.layers import Block, DecoderBlock, ModulatedBlock

    device = next(model.parameters()).device
    if device.type == "cpu" and not any(shutil.which(cc) for cc in ("g++", "c++", "clang++")):
        raise ConfigError("compiling the network on a CPU needs a C++ compiler (g++ or clang++): install one "
                          "(Debian: apt install g++) or run without --compile")
    torch._inductor.config.emulate_precision_casts = True
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 32)
    kinds = (Block, DecoderBlock, ModulatedBlock, DPTHead)
    for module in model.modules():
        if isinstance(module, kinds) or type(module).__name__ == "DinoBlock":
            module.compile(mode=mode)
    return model
