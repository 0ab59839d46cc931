"""GPU paths (skipped without CUDA): float32 on CUDA gives the CPU's numbers within the parity tolerance; low
precision, batched videos, prefetching and compiled blocks stay close to them."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import torch

from human3r.stream import run_stream
from human3r.weights import load_model

PARITY = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "parity"


@pytest.mark.gpu
def test_cuda_matches_cpu():
    frames = list(np.load(PARITY / "inputs.npz")["frames"])
    cpu = list(run_stream(load_model("untrained:tiny"), frames))
    gpu = list(run_stream(load_model("untrained:tiny", device="cuda"), frames))
    for a, b in zip(cpu, gpu, strict=True):
        # the CUDA encoder RoPE may flip a float16 rounding (README: fast-math kernel), hence 1e-3
        torch.testing.assert_close(b.output.pts3d_world.cpu(), a.output.pts3d_world, atol=1e-3, rtol=1e-3)
        assert torch.equal(b.output.humans.track_id.cpu(), a.output.humans.track_id)


@pytest.mark.gpu
def test_cuda_low_precision_batched_and_prefetched():
    """bfloat16 (or float16) autocast with fused attention kernels, two videos per forward, pinned frames copied
    without blocking from a prefetch thread: close to the CPU's float32 numbers, and batched equals single."""
    from human3r.stream import run_streams

    frames = list(np.load(PARITY / "inputs.npz")["frames"])
    cpu = list(run_stream(load_model("untrained:tiny"), frames))
    gpu = load_model("untrained:tiny", device="cuda", precision="auto")
    assert gpu.compute_dtype in (torch.bfloat16, torch.float16)
    single = list(run_stream(gpu, frames, prefetch=2, outputs={"pts3d_world"}))
    both = [[], []]
    for k, view in run_streams(gpu, [frames, frames[:3]], prefetch=2, outputs={"pts3d_world"}):
        both[k].append(view)
    assert [len(v) for v in both] == [len(frames), 3]
    for a, b, c in zip(cpu, single, both[0], strict=True):
        assert b.output.pts3d_world.device.type == "cuda" and b.output.rgb is None
        ref = a.output.pts3d_world
        assert float((b.output.pts3d_world.cpu() - ref).abs().max() / ref.abs().max()) < 0.1  # bfloat16 bound x~1.5
        torch.testing.assert_close(c.output.pts3d_world, b.output.pts3d_world, atol=2e-2, rtol=2e-2)
        assert torch.equal(c.output.humans.track_id, b.output.humans.track_id)


@pytest.mark.gpu
def test_cuda_compiled_blocks_match_eager():
    frames = list(np.load(PARITY / "inputs.npz")["frames"])[:2]
    eager = list(run_stream(load_model("untrained:tiny", device="cuda"), frames))
    compiled = list(run_stream(load_model("untrained:tiny", device="cuda").compile_blocks(), frames))
    for a, b in zip(eager, compiled, strict=True):
        torch.testing.assert_close(b.output.pts3d_world, a.output.pts3d_world, atol=1e-3, rtol=1e-3)
