"""Transformer building blocks shared by the encoders, the decoder and the heads.

Written from the CroCo / DUSt3R / CUT3R / DINOv2 papers and the Human3R architecture notes (no code copied).
Parameter names follow the reference checkpoints so state dicts load without renaming:
`attn.qkv`, `attn.proj`, `cross_attn.proj{q,k,v}`, `mlp.fc1/fc2`, `norm1..3`, `norm_y`, `ls1.gamma`, ...

RoPE2D ("rotate-half" per axis): the first half of each head's channels is rotated by the row position and the
second half by the column position; within a half, channel pairs (k, k + Q) with Q = head_dim / 4 turn by
`pos * base^(-k/Q)`. Negative positions (the camera-pose token sits at (-1, -1)) are ordinary negative angles.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LN_EPS = 1e-6  # every LayerNorm in the network


# ------------------------------------------------------------------------------------------------------------------
# RoPE2D


def rope2d(tokens: torch.Tensor, pos: torch.Tensor, base: float = 100.0, fp16: bool = False) -> torch.Tensor:
    """Apply RoPE2D.

    tokens: (B, heads, N, D) with D % 4 == 0; pos: (B, N, 2) integer (row, col), negatives allowed.
    fp16=True reproduces the reference encoder quirk: q/k are rounded to float16, rotated in float32 with float32
    cos/sin, rounded to float16 again and returned as float32.
    Returns a float32 tensor of the same shape.
    """
    x = tokens.to(torch.float16).float() if fp16 else tokens.float()
    d = x.shape[-1]
    q = d // 4
    inv_freq = 1.0 / (base ** (torch.arange(0, q, device=x.device, dtype=torch.float32) / q))  # (Q,)
    out = []
    for axis in range(2):
        half = x[..., axis * 2 * q:(axis + 1) * 2 * q]
        u, v = half[..., :q], half[..., q:]
        angle = pos[..., axis].to(torch.float32)[:, None, :, None] * inv_freq  # (B, 1, N, Q)
        cos, sin = angle.cos(), angle.sin()
        out += [u * cos - v * sin, v * cos + u * sin]
    y = torch.cat(out, dim=-1)
    return y.to(torch.float16).float() if fp16 else y


# ------------------------------------------------------------------------------------------------------------------
# attention


class Attention(nn.Module):
    """Multi-head self-attention with optional RoPE2D on q and k. `rope` is None, "fp32" or "fp16"."""

    def __init__(self, dim: int, num_heads: int, rope: str | None = None, rope_base: float = 100.0):
        super().__init__()
        self.num_heads = num_heads
        self.rope = rope
        self.rope_base = rope_base
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, N, C), pos: (B, N, 2) -> (B, N, C)."""
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        if self.rope is not None and pos is not None:
            q = rope2d(q, pos, self.rope_base, fp16=self.rope == "fp16")
            k = rope2d(k, pos, self.rope_base, fp16=self.rope == "fp16")
        y = F.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(b, n, c))


class CrossAttention(nn.Module):
    """Multi-head cross-attention (separate q/k/v projections) with optional fp32 RoPE2D.

    With `gate_logits=True` it also returns the mean attention logit of every query over all keys,
    (B, heads, Nq): the TTT3R state-update gate input. Mean over keys of q.k is q.mean(k), so the full
    logit matrix is never materialised.
    """

    def __init__(self, dim: int, num_heads: int, rope: str | None = None, rope_base: float = 100.0):
        super().__init__()
        self.num_heads = num_heads
        self.rope = rope
        self.rope_base = rope_base
        self.projq = nn.Linear(dim, dim)
        self.projk = nn.Linear(dim, dim)
        self.projv = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, y: torch.Tensor, xpos: torch.Tensor | None, ypos: torch.Tensor | None,
                gate_logits: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (B, Nq, C) queries, y: (B, Nk, C) keys/values -> ((B, Nq, C), (B, heads, Nq) or None)."""
        b, nq, c = x.shape
        nk = y.shape[1]
        h = self.num_heads
        q = self.projq(x).reshape(b, nq, h, c // h).transpose(1, 2)
        k = self.projk(y).reshape(b, nk, h, c // h).transpose(1, 2)
        v = self.projv(y).reshape(b, nk, h, c // h).transpose(1, 2)
        if self.rope is not None:
            if xpos is not None:
                q = rope2d(q, xpos, self.rope_base, fp16=self.rope == "fp16")
            if ypos is not None:
                k = rope2d(k, ypos, self.rope_base, fp16=self.rope == "fp16")
        out = F.scaled_dot_product_attention(q, k, v)
        logits = None
        if gate_logits:
            logits = (q @ k.mean(dim=2, keepdim=True).transpose(-2, -1)).squeeze(-1) * (c // h) ** -0.5
        return self.proj(out.transpose(1, 2).reshape(b, nq, c)), logits


class Mlp(nn.Module):
    """fc1 -> exact GELU -> fc2."""

    def __init__(self, dim: int, hidden: int, out: int | None = None):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, out or dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LayeredMlp(nn.Module):
    """Linear -> GELU -> Linear stored as `mlp.layers.{0,2}` (the reference `SMPLDecoder`/`Mlp_flex` layout)."""

    def __init__(self, dim: int, hidden: int, out: int):
        super().__init__()
        self.mlp = nn.Module()
        self.mlp.layers = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp.layers(x)


# ------------------------------------------------------------------------------------------------------------------
# blocks


class Block(nn.Module):
    """Pre-norm ViT block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, rope: str | None = None,
                 rope_base: float = 100.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, num_heads, rope, rope_base)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), pos)
        return x + self.mlp(self.norm2(x))


class DecoderBlock(nn.Module):
    """x + SelfAttn(LN1 x); x + CrossAttn(LN2 x, LN_y y); x + MLP(LN3 x). Float32 RoPE when `rope` is set."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, rope: str | None = "fp32",
                 rope_base: float = 100.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, num_heads, rope, rope_base)
        self.cross_attn = CrossAttention(dim, num_heads, rope, rope_base)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.norm3 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.norm_y = nn.LayerNorm(dim, eps=LN_EPS)

    def forward(self, x: torch.Tensor, y: torch.Tensor, xpos: torch.Tensor | None = None,
                ypos: torch.Tensor | None = None, gate_logits: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (B, Nx, C), y: (B, Ny, C) -> (new x, gate logits (B, heads, Nx) or None)."""
        x = x + self.attn(self.norm1(x), xpos)
        attended, logits = self.cross_attn(self.norm2(x), self.norm_y(y), xpos, ypos, gate_logits)
        x = x + attended
        return x + self.mlp(self.norm3(x)), logits


class ModLN(nn.Module):
    """adaLN: LayerNorm(x) * (1 + scale) + shift with (shift, scale) = Linear(SiLU(m)) (that chunk order)."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """x: (B, N, C), m: (B, C)."""
        shift, scale = self.mlp(m).chunk(2, dim=-1)
        return self.norm(x) * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class ModulatedBlock(nn.Module):
    """ViT block with adaLN conditioning (the world-view `final_transform` blocks)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, rope_base: float = 100.0):
        super().__init__()
        self.norm1 = ModLN(dim)
        self.attn = Attention(dim, num_heads, "fp32", rope_base)
        self.norm2 = ModLN(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, m: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x, m), pos)
        return x + self.mlp(self.norm2(x, m))


class PatchEmbed(nn.Module):
    """Conv patchify; returns row-major tokens (B, N, C) and integer (row, col) positions (B, N, 2)."""

    def __init__(self, in_chans: int, dim: int, patch_size: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.proj(img)
        b, _, h, w = x.shape
        return x.flatten(2).transpose(1, 2), grid_positions(b, h, w, img.device)


def grid_positions(batch: int, h: int, w: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(batch, h*w, 2) int64 (row, col) positions in row-major order."""
    rows = torch.arange(h, device=device).repeat_interleave(w)
    cols = torch.arange(w, device=device).repeat(h)
    return torch.stack([rows, cols], dim=-1)[None].expand(batch, -1, -1)
