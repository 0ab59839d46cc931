"""DINOv2 ViT/14 human encoder (the Multi-HMR backbone), written to load `backbone.encoder.*` weights.

Pre-norm blocks with LayerScale, CLS token, no register tokens, LayerNorm eps 1e-6. The learned 37x37 position
embedding is resampled on every call with bicubic interpolation driven by `scale_factor=(g + 0.1) / 37`
(not by an explicit size: the two give different numbers), in float32 without antialiasing.
Output: final-norm patch tokens without CLS, (B, g*g, C).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from human3r.config import DinoConfig
from human3r.layers import LN_EPS, Attention, Mlp, PatchEmbed

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class LayerScale(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class DinoBlock(nn.Module):
    """x + ls1(Attn(LN x)); x + ls2(MLP(LN x)). No RoPE."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, num_heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


def interpolate_pos_embed(pos_embed: torch.Tensor, grid_h: int, grid_w: int, offset: float) -> torch.Tensor:
    """(1, 1 + M*M, C) learned table -> (1, 1 + grid_h*grid_w, C), bicubic with scale_factor (g + offset) / M."""
    n = pos_embed.shape[1] - 1
    m = int(math.sqrt(n))
    if n == grid_h * grid_w and grid_h == grid_w:
        return pos_embed
    table = pos_embed.float()
    cls_pe, patch_pe = table[:, :1], table[:, 1:]
    dim = table.shape[-1]
    patch_pe = F.interpolate(
        patch_pe.reshape(1, m, m, dim).permute(0, 3, 1, 2),
        scale_factor=(float(grid_h + offset) / m, float(grid_w + offset) / m),
        mode="bicubic",
        antialias=False,
    )
    assert patch_pe.shape[-2:] == (grid_h, grid_w), patch_pe.shape
    patch_pe = patch_pe.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, dim)
    return torch.cat([cls_pe, patch_pe], dim=1).to(pos_embed.dtype)


class DinoVisionTransformer(nn.Module):
    def __init__(self, cfg: DinoConfig):
        super().__init__()
        self.cfg = cfg
        grid = cfg.pos_embed_size // cfg.patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, cfg.embed_dim))
        self.mask_token = nn.Parameter(torch.zeros(1, cfg.embed_dim))  # unused at inference
        self.patch_embed = PatchEmbed(3, cfg.embed_dim, cfg.patch_size)
        self.blocks = nn.ModuleList([DinoBlock(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=LN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, H, W) ImageNet-normalised -> (B, (H/14)*(W/14), C) normed patch tokens."""
        b, _, h, w = x.shape
        tokens, _ = self.patch_embed(x)
        tokens = torch.cat([self.cls_token.expand(b, -1, -1), tokens], dim=1)
        p = self.cfg.patch_size
        tokens = tokens + interpolate_pos_embed(self.pos_embed, h // p, w // p, self.cfg.interpolate_offset)
        for blk in self.blocks:
            tokens = blk(tokens)
        return self.norm(tokens)[:, 1:]


class DinoBackbone(nn.Module):
    """Wrapper matching the reference key prefix `backbone.encoder.*`; takes the [-1, 1] padded image."""

    def __init__(self, cfg: DinoConfig):
        super().__init__()
        self.encoder = DinoVisionTransformer(cfg)

    def forward(self, img_mhmr: torch.Tensor) -> torch.Tensor:
        """img_mhmr: (B, 3, R, R) in [-1, 1] (pad value -1) -> (B, (R/14)^2, C)."""
        mean = torch.tensor(IMAGENET_MEAN, device=img_mhmr.device, dtype=img_mhmr.dtype).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=img_mhmr.device, dtype=img_mhmr.dtype).view(1, 3, 1, 1)
        return self.encoder((img_mhmr * 0.5 + 0.5 - mean) / std)
