"""RoPE2D against the reference vectors: float32 decoder semantics and float16-rounded encoder semantics."""

from pathlib import Path

import numpy as np
import pytest
import torch

from human3r.layers import Rope

VECTORS = Path(__file__).parents[1] / "fixtures" / "parity" / "rope_vectors.npz"
CASES = ["D16_H4", "D12_H4", "D16_H3", "D32_H3"]


def rope2d(tokens: torch.Tensor, pos: torch.Tensor, base: float = 100.0, fp16: bool = False) -> torch.Tensor:
    """The reference's RoPE2D call shape over the layers' `Rope`: tokens (B, heads, N, D), pos (B, N, 2) (row, col).

    fp16=True is the reference encoder's quirk (q/k rounded to float16 before and after a float32 rotation)."""
    return Rope(pos, base)(tokens.transpose(1, 2), fp16=fp16).transpose(1, 2)


@pytest.fixture(scope="module")
def vectors():
    return np.load(VECTORS)


@pytest.mark.parametrize("case", CASES)
def test_rope_fp32_matches_reference(vectors, case):
    out = rope2d(torch.from_numpy(vectors[f"{case}.tokens"]), torch.from_numpy(vectors[f"{case}.pos"]), 100.0)
    np.testing.assert_allclose(out.numpy(), vectors[f"{case}.fp32"], atol=1e-6, rtol=0)


@pytest.mark.parametrize("case", CASES)
def test_rope_fp16_encoder_semantics_exact(vectors, case):
    out = rope2d(torch.from_numpy(vectors[f"{case}.tokens"]), torch.from_numpy(vectors[f"{case}.pos"]), 100.0,
                 fp16=True)
    np.testing.assert_array_equal(out.numpy(), vectors[f"{case}.curope_fp16"])


def test_rope_negative_position_is_a_negative_rotation():
    x = torch.randn(1, 1, 1, 8)
    plus = rope2d(x, torch.tensor([[[1, 1]]]))
    minus = rope2d(plus, torch.tensor([[[-1, -1]]]))
    torch.testing.assert_close(minus, x, atol=1e-6, rtol=0)


def test_rope_layout_rows_then_columns():
    x = torch.randn(1, 2, 3, 16)
    only_row = rope2d(x, torch.tensor([[[2, 0]] * 3]))
    torch.testing.assert_close(only_row[..., 8:], x[..., 8:])  # column half untouched at col 0
    assert not torch.allclose(only_row[..., :8], x[..., :8])


def test_rope_preserves_norm_per_pair():
    x = torch.randn(2, 3, 5, 12)
    pos = torch.randint(-3, 9, (2, 5, 2))
    y = rope2d(x, pos)
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1), atol=1e-5, rtol=1e-5)
