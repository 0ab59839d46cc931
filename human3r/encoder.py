"""CUT3R image encoder: conv patch embedding, ViT blocks with (float16-rounded) RoPE2D, final LayerNorm.

Also holds the ray-map encoder (`patch_embed_ray_map`, `enc_blocks_ray_map`, `enc_norm_ray_map`): training views may
carry ground-truth ray maps (origins and directions per pixel) whose tokens are added to the image tokens. Inference
never runs it. Its blocks rotate q and k with float32 RoPE (they are dust3r blocks in the reference), unlike the
image blocks' float16 rounding.
Attribute names are the reference state-dict names (the model flattens this module's prefix away).
"""

from __future__ import annotations

import torch
from torch import nn

from human3r.config import EncoderConfig
from human3r.layers import LN_EPS, Block, PatchEmbed, Rope


class ImageEncoder(nn.Module):
    """(B, 3, H, W) normalised image -> (B, N, C) tokens and (B, N, 2) int64 (row, col) patch positions."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        rope = "fp16" if cfg.rope_fp16 else "fp32"
        self.patch_embed = PatchEmbed(3, cfg.embed_dim, cfg.patch_size)
        self.enc_blocks = nn.ModuleList(
            [Block(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio, rope) for _ in range(cfg.depth)]
        )
        self.enc_norm = nn.LayerNorm(cfg.embed_dim, eps=LN_EPS)
        # The ray-map input branch (training only).
        self.patch_embed_ray_map = PatchEmbed(6, cfg.embed_dim, cfg.patch_size)
        self.enc_blocks_ray_map = nn.ModuleList(
            [Block(cfg.embed_dim, cfg.ray_num_heads, cfg.mlp_ratio, "fp32") for _ in range(cfg.ray_depth)]
        )
        self.enc_norm_ray_map = nn.LayerNorm(cfg.embed_dim, eps=LN_EPS)

    def forward(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, pos = self.patch_embed(img)
        x = x.float()  # the residual stream stays float32 in every precision (autocast runs the matmuls)
        rope = Rope(pos, self.cfg.rope_base, head_dims=(self.cfg.embed_dim // self.cfg.num_heads,))
        for blk in self.enc_blocks:
            x = blk(x, rope)
        return self.enc_norm(x), pos

    def encode_rays(self, ray_map: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 6) ray origins and unit directions -> (B, N, C) ray-map tokens (to add to the image tokens)."""
        x, pos = self.patch_embed_ray_map(ray_map.permute(0, 3, 1, 2))
        x = x.float()
        rope = Rope(pos, self.cfg.rope_base, head_dims=(self.cfg.embed_dim // self.cfg.ray_num_heads,))
        for blk in self.enc_blocks_ray_map:
            x = blk(x, rope)
        return self.enc_norm_ray_map(x)
