"""Recurrent state, pose memory and the two-stream CUT3R decoder.

Per frame, the image stream `[pose query | projected image tokens | human prompt tokens]` and the state stream
(768 learned tokens on a 28-wide 2D grid in the released model) are updated in parallel (Jacobi): at layer l both
`dec_blocks[l]` and `dec_blocks_state[l]` read the layer l-1 outputs of the other stream. The two streams use
different head counts (12 vs 16 in the released model). The final LayerNorm-ed state is the candidate next state;
the final LayerNorm-ed pose token is written into the pose memory.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from human3r.config import DecoderConfig, EncoderConfig
from human3r.layers import LN_EPS, DecoderBlock, Rope, maybe_checkpoint
from human3r.tracking import TrackState


@dataclass
class State:
    """Everything one video carries from one frame to the next (batch 1: a batch of videos is a list of these)."""

    state: torch.Tensor  # (1, S, D) float32 recurrent state tokens
    mem: torch.Tensor  # (1, M, 2D) float32 pose memory
    fresh: bool = True  # the next frame starts a segment: pose_token query, plain state overwrite
    tracks: TrackState = field(default_factory=TrackState)  # tracker memory (survives resets)


@dataclass
class DecoderOutput:
    layers: list[torch.Tensor]  # [enc (B,N,Ce), img_1 .. img_L (B, 1+N+n, D)], the last LayerNorm-ed
    new_state: torch.Tensor  # (B, S, D) LayerNorm-ed final state stream (the candidate next state)
    gate: torch.Tensor | None  # (B, S) TTT3R gate in (0, 1), sigmoid of the mean state logit; None unless asked


def state_positions(cfg: DecoderConfig, device: torch.device | str | None = None) -> torch.Tensor:
    """(1, S, 2) int64: 2D grid of width int(sqrt(S)) rounded up to even, or (i, i) for "1d"."""
    i = torch.arange(cfg.state_size, device=device)
    if cfg.state_pe == "1d":
        return torch.stack([i, i], -1)[None]
    width = int(math.sqrt(cfg.state_size))
    width += width % 2
    return torch.stack([i // width, i % width], -1)[None]


class PoseMemory(nn.Module):
    """CUT3R `LocalMemory`: learned memory read by a global image feature to produce the pose query."""

    def __init__(self, enc_dim: int, cfg: DecoderConfig):
        super().__init__()
        d = cfg.embed_dim
        self.dim = d
        self.proj_q = nn.Linear(enc_dim, d)
        self.masked_token = nn.Parameter(torch.zeros(1, 1, d))
        self.mem = nn.Parameter(torch.zeros(1, cfg.mem_size, 2 * d))
        self.write_blocks = nn.ModuleList(
            [DecoderBlock(2 * d, cfg.num_heads, cfg.mlp_ratio, rope=None) for _ in range(cfg.mem_depth)]
        )
        self.read_blocks = nn.ModuleList(
            [DecoderBlock(2 * d, cfg.num_heads, cfg.mlp_ratio, rope=None) for _ in range(cfg.mem_depth)]
        )

    def read(self, feat: torch.Tensor, mem: torch.Tensor) -> torch.Tensor:
        """feat: (B, 1, Ce) mean image token, mem: (B, M, 2D) -> pose query (B, 1, D)."""
        x = torch.cat([self.proj_q(feat), self.masked_token.expand(feat.shape[0], -1, -1)], dim=-1)
        for blk in self.read_blocks:
            x, _ = blk(x, mem)
        return x[..., -self.dim:]

    def write(self, mem: torch.Tensor, feat: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
        """mem: (B, M, 2D), feat: (B, 1, Ce), pose: (B, 1, D) final pose token -> new memory (B, M, 2D)."""
        y = torch.cat([self.proj_q(feat), pose], dim=-1)
        for blk in self.write_blocks:
            mem, _ = blk(mem, y)
        return mem


class RecurrentDecoder(nn.Module):
    """State initialisation, pose query and the two-stream decoder (reference names; prefix flattened)."""

    def __init__(self, enc: EncoderConfig, cfg: DecoderConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.embed_dim
        self.rope_base = enc.rope_base
        self.decoder_embed = nn.Linear(enc.embed_dim, d)
        self.dec_blocks = nn.ModuleList(
            [DecoderBlock(d, cfg.num_heads, cfg.mlp_ratio, "fp32") for _ in range(cfg.depth)]
        )
        self.dec_norm = nn.LayerNorm(d, eps=LN_EPS)
        self.pose_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pose_retriever = PoseMemory(enc.embed_dim, cfg)
        self.register_tokens = nn.Embedding(cfg.state_size, enc.embed_dim)
        self.decoder_embed_state = nn.Linear(enc.embed_dim, d)
        self.dec_blocks_state = nn.ModuleList(
            [DecoderBlock(d, cfg.state_num_heads, cfg.mlp_ratio, "fp32") for _ in range(cfg.depth)]
        )
        self.dec_norm_state = nn.LayerNorm(d, eps=LN_EPS)
        self.checkpointing = False  # recompute each block in the backward pass (training memory; same numbers)

    def initial_state(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Learned, image-independent start values: (state (1, S, D), pose memory (1, M, 2D))."""
        state = self.decoder_embed_state(self.register_tokens.weight[None])
        return state, self.pose_retriever.mem.clone()

    def pose_query(self, enc_tokens: torch.Tensor, mem: torch.Tensor, fresh: Sequence[bool]) -> torch.Tensor:
        """(B, 1, D): the learned pose token for streams on a segment's first frame, else the memory read-out."""
        b = enc_tokens.shape[0]
        stale = [i for i, f in enumerate(fresh) if not f]
        if not stale:
            return self.pose_token.expand(b, -1, -1)
        if len(stale) == b:
            return self.pose_retriever.read(enc_tokens.mean(dim=1, keepdim=True), mem)
        idx = torch.tensor(stale, device=enc_tokens.device)
        read = self.pose_retriever.read(enc_tokens[idx].mean(dim=1, keepdim=True), mem[idx])
        query = self.pose_token.expand(b, -1, -1).to(read.dtype).clone()
        query[idx] = read
        return query

    def forward(self, state: torch.Tensor, enc_tokens: torch.Tensor, enc_pos: torch.Tensor, pose: torch.Tensor,
                prompts: torch.Tensor, prompt_pos: torch.Tensor, gate: bool = False,
                prompt_mask: torch.Tensor | None = None) -> DecoderOutput:
        """state (B,S,D); enc_tokens (B,N,Ce); enc_pos (B,N,2); pose (B,1,D); prompts (B,n,D); prompt_pos (B,n,2).

        `gate`: also compute the TTT3R state-update gate, the sigmoid of the mean state->image attention logit over
        layers, heads and keys (it does not change the other outputs).
        `prompt_mask`: (B, n) bool, False where a stream has fewer people than n (padding prompts: no token attends
        to them and the gate ignores them); None when every prompt is real.
        """
        b, n_img = enc_tokens.shape[:2]
        d = self.cfg.embed_dim
        head_dims = (d // self.cfg.num_heads, d // self.cfg.state_num_heads)  # each stream reads both sequences
        state_pos = Rope(state_positions(self.cfg, enc_tokens.device).expand(b, -1, -1), self.rope_base, head_dims)
        pose_pos = torch.full((b, 1, 2), -1, dtype=enc_pos.dtype, device=enc_pos.device)
        img = torch.cat([pose, self.decoder_embed(enc_tokens), prompts.to(pose.dtype)], dim=1)
        pos = Rope(torch.cat([pose_pos, enc_pos, prompt_pos.to(enc_pos.dtype)], dim=1), self.rope_base, head_dims)
        img_mask = None
        if prompt_mask is not None:
            img_mask = torch.cat([prompt_mask.new_ones(b, 1 + n_img), prompt_mask], dim=1)
        layers = [enc_tokens]
        logit_sum = None
        ckpt = self.checkpointing
        for blk_img, blk_state in zip(self.dec_blocks, self.dec_blocks_state, strict=True):
            new_state, logits = maybe_checkpoint(ckpt, blk_state, state, img, state_pos, pos, gate_logits=gate,
                                                 y_mask=img_mask)
            img, _ = maybe_checkpoint(ckpt, blk_img, img, state, pos, state_pos, x_mask=img_mask)
            state = new_state
            layers.append(img)
            if logits is not None:
                logit_sum = logits.mean(dim=1) if logit_sum is None else logit_sum + logits.mean(dim=1)
        layers[-1] = self.dec_norm(img)
        ttt3r_gate = None if logit_sum is None else torch.sigmoid(logit_sum / len(self.dec_blocks))
        return DecoderOutput(layers, self.dec_norm_state(state), ttt3r_gate)
