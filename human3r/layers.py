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

from human3r.precision import float32_island

LN_EPS = 1e-6  # every LayerNorm in the network


# ------------------------------------------------------------------------------------------------------------------
# RoPE2D


def rope_tables(pos: torch.Tensor, head_dim: int, base: float = 100.0) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 (cos, sin) tables of RoPE2D for `pos` (B, N, 2) and a head dim D: each (B, N, D).

    Laid out to match the channels they multiply: cos = [cos_row, cos_row, cos_col, cos_col] and
    sin = [-sin_row, sin_row, -sin_col, sin_col], each piece D/4 wide, so that RoPE is
    `x * cos + swap(x) * sin` with `swap` exchanging the two quarters of each half (see `apply_rope`).
    """
    q = head_dim // 4
    inv_freq = 1.0 / (base ** (torch.arange(0, q, device=pos.device, dtype=torch.float32) / q))  # (Q,)
    cos, sin = [], []
    for axis in range(2):
        angle = pos[..., axis].to(torch.float32)[..., None] * inv_freq  # (B, N, Q)
        c, s = angle.cos(), angle.sin()
        cos += [c, c]
        sin += [-s, s]
    return torch.cat(cos, dim=-1), torch.cat(sin, dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, fp16: bool = False) -> torch.Tensor:
    """RoPE2D of x (B, N, ..., D) (token-major: any head dims between N and D) with (B, N, D) tables from
    `rope_tables`, computed in float32; returns a contiguous tensor of x's dtype.

    Per half, (u, v) -> (u cos - v sin, v cos + u sin): bit-identical to the four-piece formula (u cos + v (-sin)
    rounds exactly like u cos - v sin; the products are added in place, never fused into an FMA). fp16=True
    reproduces the reference encoder quirk: float32 q/k rounded to float16 before and after the rotation (a no-op
    for bfloat16 q/k, which are coarser than float16 already).
    """
    dtype = x.dtype
    fp16 = fp16 and dtype == torch.float32
    shape = (*cos.shape[:2], *([1] * (x.dim() - 3)), cos.shape[-1])
    cos, sin = cos.view(shape), sin.view(shape)
    y = x.to(torch.float16).float() if fp16 else x.float()
    out = y * cos
    quarters = y.unflatten(-1, (2, 2, -1))  # [half][u | v]: the swap is read in place, not copied (no flip)
    out_q, sin_q = out.unflatten(-1, (2, 2, -1)), sin.unflatten(-1, (2, 2, -1))
    out_q[..., 0, :] += quarters[..., 1, :] * sin_q[..., 0, :]  # u cos + v (-sin)
    out_q[..., 1, :] += quarters[..., 0, :] * sin_q[..., 1, :]  # v cos + u sin
    return (out.to(torch.float16) if fp16 else out).to(dtype)


class Rope:
    """The RoPE2D positions of one token sequence, with their cos/sin tables computed once per head dim.

    One is made per forward for each sequence (image tokens, state tokens) and handed to every attention layer
    that reads it, so the tables are not recomputed in each of the 24 encoder or decoder blocks. Layers rotate
    q and k in token-major layout (B, N, ..., D), where the broadcast over heads is cheapest, before they
    transpose them for attention.

    `head_dims`: the head dims of the layers that will read it; their tables are computed here, in the caller's
    (eager) code. A table first asked for inside a `torch.compile`d block would be computed by inductor's
    vectorised cos/sin, which round differently from ATen's (1 float32 ulp in ~30% of entries on an AVX2 CPU).
    """

    def __init__(self, pos: torch.Tensor, base: float = 100.0, head_dims: tuple[int, ...] = ()):
        self.pos = pos  # (B, N, 2) int64 (row, col)
        self.base = base
        self._tables: dict[int, tuple[torch.Tensor, torch.Tensor]] = {d: rope_tables(pos, d, base) for d in head_dims}

    def __call__(self, x: torch.Tensor, fp16: bool = False) -> torch.Tensor:
        """x (B, N, ..., D) -> rotated, x's dtype."""
        d = x.shape[-1]
        if d not in self._tables:
            self._tables[d] = rope_tables(self.pos, d, self.base)
        return apply_rope(x, *self._tables[d], fp16=fp16)


def maybe_checkpoint(enabled: bool, fn, *args, **kwargs):
    """`fn(*args, **kwargs)`, recomputed in the backward pass instead of keeping its activations when `enabled`
    and autograd is recording (gradient checkpointing, non-reentrant: the same numbers, less memory)."""
    if enabled and torch.is_grad_enabled():
        from torch.utils.checkpoint import checkpoint

        return checkpoint(fn, *args, use_reentrant=False, **kwargs)
    return fn(*args, **kwargs)


def _attn_mask(key_mask: torch.Tensor | None) -> torch.Tensor | None:
    """(B, Nk) bool, True = a real key -> SDPA mask (B, 1, 1, Nk), or None when every key is real."""
    return None if key_mask is None else key_mask[:, None, None, :]


# ------------------------------------------------------------------------------------------------------------------
# LayerNorm that torch.compile keeps as ATen's kernel


@torch.library.custom_op("human3r::aten_layer_norm", mutates_args=())
def aten_layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """`F.layer_norm` of x (..., C) over C, as an operator inductor cannot see into: a compiled graph calls ATen's
    kernel instead of fusing its own LayerNorm, whose reduction and normalisation round differently (1 float32
    ulp in most elements on an AVX2 CPU). Used where the next rounding is to float16 (see `Block`)."""
    return F.layer_norm(x, weight.shape, weight, bias, eps)


@aten_layer_norm.register_fake
def _(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    return x.new_empty(x.shape)  # ATen's LayerNorm returns a contiguous tensor whatever x's strides


def _aten_layer_norm_backward(ctx, grad: torch.Tensor):
    x, weight, bias = ctx.saved_tensors
    shape = weight.shape
    _, mean, rstd = torch.ops.aten.native_layer_norm(x, shape, weight, bias, ctx.eps)
    grads = torch.ops.aten.native_layer_norm_backward(grad, x, shape, mean, rstd, weight, bias,
                                                      [*ctx.needs_input_grad[:3]])
    return *grads, None


def _aten_layer_norm_setup(ctx, inputs, output) -> None:
    x, weight, bias, eps = inputs
    ctx.save_for_backward(x, weight, bias)
    ctx.eps = eps


aten_layer_norm.register_autograd(_aten_layer_norm_backward, setup_context=_aten_layer_norm_setup)


# ------------------------------------------------------------------------------------------------------------------
# attention


class Attention(nn.Module):
    """Multi-head self-attention with optional RoPE2D on q and k. `rope` is None, "fp32" or "fp16"."""

    def __init__(self, dim: int, num_heads: int, rope: str | None = None):
        super().__init__()
        self.num_heads = num_heads
        self.rope = rope
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, pos: Rope | None = None, key_mask: torch.Tensor | None = None
                ) -> torch.Tensor:
        """x: (B, N, C), pos: positions of x, key_mask: (B, N) bool (False = padding, never attended) -> (B, N, C)."""
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads)
        qk, v = qkv[:, :, :2], qkv[:, :, 2].transpose(1, 2)
        if self.rope is not None and pos is not None:
            qk = pos(qk, self.rope == "fp16")  # q and k together: one set of elementwise ops
        q, k = qk[:, :, 0].transpose(1, 2), qk[:, :, 1].transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=_attn_mask(key_mask))
        return self.proj(y.transpose(1, 2).reshape(b, n, c))


class CrossAttention(nn.Module):
    """Multi-head cross-attention (separate q/k/v projections) with optional fp32 RoPE2D.

    With `gate_logits=True` it also returns the mean attention logit of every query over all (real) keys,
    (B, heads, Nq): the TTT3R state-update gate input. Mean over keys of q.k is q.mean(k), so the full
    logit matrix is never materialised.
    """

    def __init__(self, dim: int, num_heads: int, rope: str | None = None):
        super().__init__()
        self.num_heads = num_heads
        self.rope = rope
        self.projq = nn.Linear(dim, dim)
        self.projk = nn.Linear(dim, dim)
        self.projv = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, y: torch.Tensor, xpos: Rope | None, ypos: Rope | None,
                gate_logits: bool = False, key_mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (B, Nq, C) queries, y: (B, Nk, C) keys/values, key_mask: (B, Nk) bool (False = padding)
        -> ((B, Nq, C), (B, heads, Nq) float32 or None)."""
        b, nq, c = x.shape
        nk = y.shape[1]
        h = self.num_heads
        q = self.projq(x).reshape(b, nq, h, c // h)
        k = self.projk(y).reshape(b, nk, h, c // h)
        v = self.projv(y).reshape(b, nk, h, c // h).transpose(1, 2)
        if self.rope is not None:
            if xpos is not None:
                q = xpos(q, self.rope == "fp16")
            if ypos is not None:
                k = ypos(k, self.rope == "fp16")
        q, k = q.transpose(1, 2), k.transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=_attn_mask(key_mask))
        logits = None
        if gate_logits:
            with float32_island(q.device.type):
                kf = k.float()
                if key_mask is None:
                    k_mean = kf.mean(dim=2, keepdim=True)
                else:
                    w = key_mask[:, None, :, None].to(kf.dtype)
                    k_mean = (kf * w).sum(dim=2, keepdim=True) / w.sum(dim=2, keepdim=True)
                logits = (q.float() @ k_mean.transpose(-2, -1)).squeeze(-1) * (c // h) ** -0.5
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

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, rope: str | None = None):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, num_heads, rope)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, pos: Rope | None = None) -> torch.Tensor:
        x = x + self.attn(self._norm1(x), pos)
        return x + self.mlp(self.norm2(x))

    def _norm1(self, x: torch.Tensor) -> torch.Tensor:
        """norm1(x). Compiled, when q/k are float32 and get rounded to float16 (the encoder's RoPE), it stays
        ATen's LayerNorm: q/k must be bit-identical to eager up to that rounding, where a 1-ulp difference flips
        an element by a float16 step (1e-3 relative) and `f0.enc_block0` leaves its 5e-5 tolerance (AVX2 CPUs)."""
        if self.attn.rope == "fp16" and torch.compiler.is_compiling() and not torch.is_autocast_enabled(x.device.type):
            return aten_layer_norm(x, self.norm1.weight, self.norm1.bias, self.norm1.eps)
        return self.norm1(x)


class DecoderBlock(nn.Module):
    """x + SelfAttn(LN1 x); x + CrossAttn(LN2 x, LN_y y); x + MLP(LN3 x). Float32 RoPE when `rope` is set."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, rope: str | None = "fp32"):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, num_heads, rope)
        self.cross_attn = CrossAttention(dim, num_heads, rope)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.norm3 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.norm_y = nn.LayerNorm(dim, eps=LN_EPS)

    def forward(self, x: torch.Tensor, y: torch.Tensor, xpos: Rope | None = None, ypos: Rope | None = None,
                gate_logits: bool = False, x_mask: torch.Tensor | None = None, y_mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (B, Nx, C), y: (B, Ny, C); masks (B, Nx) / (B, Ny) bool, False = padding token (batched streams
        with different people counts) -> (new x, gate logits (B, heads, Nx) or None)."""
        x = x + self.attn(self.norm1(x), xpos, x_mask)
        attended, logits = self.cross_attn(self.norm2(x), self.norm_y(y), xpos, ypos, gate_logits, y_mask)
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

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = ModLN(dim)
        self.attn = Attention(dim, num_heads, "fp32")
        self.norm2 = ModLN(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, m: torch.Tensor, pos: Rope) -> torch.Tensor:
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
