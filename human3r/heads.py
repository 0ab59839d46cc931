"""Prediction heads: DPT pointmap/colour heads, camera pose, world-view adaLN branch, human detection and mask
(frozen Multi-HMR heads), prompt fusion and SMPL-X regression; plus the pure output activations.

The heads return the typed outputs of `human3r.outputs` (`SceneOutput`, `Detections`, `SmplParams`); rotation and
pose conversions live in `human3r.geometry`.

Module and parameter names are the reference `downstream_head.*` names. The DPT scratch convs are registered twice
(`scratch.layer{i+1}_rn` and `scratch.layer_rn.{i}`): the same module under two names, as in the reference, so
both keys appear in the state dict and hold one tensor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from human3r.config import DecoderConfig, DinoConfig, EncoderConfig, HeadsConfig
from human3r.geometry import rot6d_to_rotmat
from human3r.layers import LayeredMlp, Mlp, ModulatedBlock, Rope, maybe_checkpoint
from human3r.outputs import Detections, SceneOutput, SmplParams
from human3r.precision import float32_island

SCORE_EPS = 1e-6


# ------------------------------------------------------------------------------------------------------------------
# pure activations


def squash_score(x: torch.Tensor) -> torch.Tensor:
    """sigmoid(x) * (1 - 2e-6) + 1e-6."""
    return torch.sigmoid(x) * (1 - 2 * SCORE_EPS) + SCORE_EPS


def exp_points(xyz: torch.Tensor) -> torch.Tensor:
    """(..., 3) raw -> direction * expm1(|xyz|) (the reference 'exp' depth mode)."""
    d = xyz.norm(dim=-1, keepdim=True)
    return xyz / d.clip(min=1e-8) * torch.expm1(d)


def exp_conf(x: torch.Tensor) -> torch.Tensor:
    """1 + exp(x) (the reference ('exp', 1, inf) confidence mode)."""
    return 1 + x.exp()


def camera_pose_from_raw(raw: torch.Tensor) -> torch.Tensor:
    """(..., 7) raw [t, q] -> [t * expm1(|t|)/|t|, unit q (w, x, y, z) with w >= 0]."""
    t, q = raw[..., :3], raw[..., 3:7]
    d = t.norm(dim=-1, keepdim=True)
    t = t * (torch.expm1(d) / d.clip(min=1e-8))
    q = F.normalize(q, p=2, dim=-1)
    q = torch.where(q[..., :1] < 0, -q, q)
    return torch.cat([t, q], dim=-1)


def nms(heat: torch.Tensor, kernel: int = 3) -> torch.Tensor:
    """(B, 1, H, W) scores -> scores with every non-local-maximum set to 0 (ties survive)."""
    hmax = F.max_pool2d(heat, kernel, stride=1, padding=(kernel - 1) // 2)
    return heat * (hmax == heat).float()


def token_map(tokens: torch.Tensor, nh: int, nw: int) -> torch.Tensor:
    """(B, nh*nw, C) row-major tokens -> (B, C, nh, nw) view in channels-last layout (reshape, then permute), so
    every convolution of a DPT head runs channels-last, as the reference's do (transpose-then-reshape copies into
    NCHW: one head took 991 instead of 779 ms on a 2-core Zen 5)."""
    return tokens.reshape(tokens.shape[0], nh, nw, tokens.shape[2]).permute(0, 3, 1, 2)


def host_patches(loc: torch.Tensor, res: int, height: int, width: int, patch: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Map head keypoints from the padded R x R human-branch frame to the CUT3R patch grid.

    loc: (n, 2) (x, y) in R-px padded coordinates -> (rows (n,), cols (n,)) int64 patch indices. Scale by the
    float32 max(H, W)/R, subtract the centring pad, clamp into the image, floor-divide by the patch size.
    """
    m = max(height, width)
    scale = torch.tensor(float(m), dtype=loc.dtype, device=loc.device) / float(res)
    offset = torch.tensor([(m - width) // 2, (m - height) // 2], dtype=loc.dtype, device=loc.device)
    uv = loc * scale - offset
    u = uv[:, 0].clamp(0, width - 1)
    v = uv[:, 1].clamp(0, height - 1)
    return (v // patch).long(), (u // patch).long()


# ------------------------------------------------------------------------------------------------------------------
# DPT


class ResidualConvUnit(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(F.relu(x)), inplace=True)) + x


class FusionBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.resConfUnit1 = ResidualConvUnit(c)  # unused in refinenet4 (no skip input), kept for the keys
        self.resConfUnit2 = ResidualConvUnit(c)
        self.out_conv = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = F.interpolate(self.resConfUnit2(x), scale_factor=2, mode="bilinear", align_corners=True)
        return self.out_conv(x)


class DPTHead(nn.Module):
    """Dense head over 4 token maps at 1/16 resolution -> (B, C, H, W) at full resolution."""

    def __init__(self, dim_tokens: tuple[int, ...], cfg: HeadsConfig, out_channels: int, patch_size: int):
        super().__init__()
        self.patch_size = patch_size
        l0, l1, l2, l3 = cfg.dpt_layer_dims
        f, last = cfg.dpt_feature_dim, cfg.dpt_last_dim
        self.act_postprocess = nn.ModuleList([
            nn.Sequential(nn.Conv2d(dim_tokens[0], l0, 1), nn.ConvTranspose2d(l0, l0, 4, stride=4)),
            nn.Sequential(nn.Conv2d(dim_tokens[1], l1, 1), nn.ConvTranspose2d(l1, l1, 2, stride=2)),
            nn.Sequential(nn.Conv2d(dim_tokens[2], l2, 1)),
            nn.Sequential(nn.Conv2d(dim_tokens[3], l3, 1), nn.Conv2d(l3, l3, 3, stride=2, padding=1)),
        ])
        self.scratch = nn.Module()
        rns = [nn.Conv2d(c, f, 3, padding=1, bias=False) for c in (l0, l1, l2, l3)]
        for i, conv in enumerate(rns):
            setattr(self.scratch, f"layer{i + 1}_rn", conv)
        self.scratch.layer_rn = nn.ModuleList(rns)  # alias of layer{1..4}_rn (same modules, reference keys)
        for i in range(1, 5):
            setattr(self.scratch, f"refinenet{i}", FusionBlock(f))
        self.head = nn.Sequential(
            nn.Conv2d(f, f // 2, 3, padding=1),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
            nn.Conv2d(f // 2, last, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(last, out_channels, 1),
        )

    def forward(self, hooks: list[torch.Tensor], height: int, width: int) -> torch.Tensor:
        """hooks: 4 x (B, N, C_i) row-major tokens, N = (height/16)(width/16) -> (B, height, width, out) float32.

        The last 1x1 convolution runs in float32 in every precision (its input is cast up), as a matmul over the
        channels-last features, which also gives the channels-last output the activations want.
        """
        nh, nw = height // self.patch_size, width // self.patch_size
        maps = [token_map(t, nh, nw) for t in hooks]
        maps = [rn(act(x)) for act, rn, x in zip(self.act_postprocess, self.scratch.layer_rn, maps, strict=True)]
        s = self.scratch
        p4 = s.refinenet4(maps[3])[:, :, : maps[2].shape[2], : maps[2].shape[3]]
        p3 = s.refinenet3(p4, maps[2])
        p2 = s.refinenet2(p3, maps[1])
        p1 = s.refinenet1(p2, maps[0])
        x = self.head[:4](p1).permute(0, 2, 3, 1)  # (B, H, W, last), contiguous when the convs ran channels-last
        out = self.head[4]
        with float32_island(x.device.type):
            return F.linear(x.float(), out.weight.flatten(1), out.bias)


# ------------------------------------------------------------------------------------------------------------------
# the head module


class PoseHead(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.mlp = Mlp(dim, 4 * dim, 7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


class Human3RHead(nn.Module):
    """`downstream_head`: everything after the decoder, plus the frozen Multi-HMR detection/mask heads."""

    def __init__(self, enc: EncoderConfig, dec: DecoderConfig, dino: DinoConfig, cfg: HeadsConfig):
        super().__init__()
        self.cfg, self.dino_cfg = cfg, dino
        self.rope_base = enc.rope_base
        self.checkpointing = False  # recompute each DPT head in the backward pass (training memory; same numbers)
        ed, dd, bd, p = enc.embed_dim, dec.embed_dim, dino.embed_dim, enc.patch_size
        dims = (ed, dd, dd, dd)
        self.dpt_self = DPTHead(dims, cfg, 4, p)
        self.final_transform = nn.ModuleList(
            [ModulatedBlock(dd, dec.num_heads, 4.0) for _ in range(cfg.final_transform_depth)]
        )
        self.world_head_dim = dd // dec.num_heads  # head dim of the final_transform blocks
        self.dpt_cross = DPTHead(dims, cfg, 4, p)
        if cfg.rgb_head:
            self.dpt_rgb = DPTHead(dims, cfg, 3, p)
        self.pose_head = PoseHead(dd)
        self.mlp_classif = nn.Sequential(nn.Linear(bd, bd), nn.ReLU(), nn.Linear(bd, 1))
        self.mlp_offset = nn.Sequential(nn.Linear(bd, bd), nn.ReLU(), nn.Linear(bd, 2))
        if cfg.msk_head:
            self.mlp_msk = LayeredMlp(bd, bd, dino.patch_size ** 2)
        self.mlp_fuse = LayeredMlp(ed + bd, 4 * (ed + bd), dd)
        self.deccam = LayeredMlp(dd, 4 * dd, 3)
        z = dd + bd
        self.decpose = LayeredMlp(z, 4 * z, 6 * cfg.num_rotations)
        self.decshape = LayeredMlp(z, 4 * z, cfg.num_betas)
        self.decexpression = LayeredMlp(z, 4 * z, cfg.num_expression)
        # Persistent buffers (values come from the checkpoint; identity 6D / zeros until then).
        ident = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]).repeat(cfg.num_rotations)[None]
        self.register_buffer("init_body_pose", ident)
        self.register_buffer("init_betas", torch.zeros(1, cfg.num_betas))
        self.register_buffer("init_betas_kid", torch.zeros(1, cfg.num_betas + 1))  # unused at inference
        self.register_buffer("init_cam", torch.zeros(1, 3))  # unused at inference
        self.register_buffer("init_expression", torch.zeros(1, cfg.num_expression))

    # -- human branch ---------------------------------------------------------------------------------------------
    def detect(self, dino_tokens: torch.Tensor) -> Detections:
        """dino_tokens (B, G*G, C) -> detections of every stream: NMS over squashed scores, threshold >=
        det_threshold, in (stream, row, col) order. Float32 in every precision (a threshold decides)."""
        g, p = self.dino_cfg.grid, self.dino_cfg.patch_size
        with float32_island(dino_tokens.device.type):
            dino_tokens = dino_tokens.float()
            logits = self.mlp_classif(dino_tokens)
            scores = nms(squash_score(logits).transpose(1, 2).reshape(-1, 1, g, g), self.cfg.nms_kernel)
            scores = scores.permute(0, 2, 3, 1)  # (B, G, G, 1)
            batch, rows, cols, _ = torch.where(scores >= self.cfg.det_threshold)
            tokens = dino_tokens.reshape(-1, g, g, dino_tokens.shape[-1])[batch, rows, cols]  # (n, C)
            loc = (torch.stack([cols, rows], dim=1) + 0.5 + self.mlp_offset(tokens)) * p
        return Detections(logits, scores, batch, rows, cols, loc, tokens)

    def detect_at(self, dino_tokens: torch.Tensor, mask: torch.Tensor, uv: torch.Tensor,
                  empty_token: torch.Tensor) -> Detections:
        """Teacher forcing: the people are given, one per slot. dino_tokens (B, G*G, C); mask (B, N) bool; uv
        (B, N, 2) (row, col) grid cells; empty_token (1, C), the learned padding token of empty slots.

        Returns every slot in (stream, slot) order (n = B * N): the DINOv2 token of its cell (the padding token
        when empty) and the keypoint `loc` refined by the offset head (0 when empty); `scores` are the squashed
        classifier scores without NMS (the detection loss reads them).
        """
        g, p = self.dino_cfg.grid, self.dino_cfg.patch_size
        b, n = mask.shape
        with float32_island(dino_tokens.device.type):
            dino_tokens = dino_tokens.float()
            logits = self.mlp_classif(dino_tokens)
            scores = squash_score(logits).transpose(1, 2).reshape(-1, g, g, 1)  # (B, G, G, 1)
            kept = mask.reshape(-1)
            batch = torch.arange(b, device=mask.device).repeat_interleave(n)
            rows = torch.where(kept, uv[..., 0].reshape(-1).long(), 0)
            cols = torch.where(kept, uv[..., 1].reshape(-1).long(), 0)
            grid = dino_tokens.reshape(-1, g, g, dino_tokens.shape[-1])
            tokens = torch.where(kept[:, None], grid[batch, rows, cols], empty_token.to(dino_tokens.dtype))
            loc = dino_tokens.new_zeros(b * n, 2)
            at = torch.stack([cols[kept], rows[kept]], dim=1)
            loc[kept] = (at + 0.5 + self.mlp_offset(tokens[kept])) * p
        return Detections(logits, scores, batch, rows, cols, loc, tokens)

    def segment(self, dino_tokens: torch.Tensor) -> torch.Tensor:
        """(B, G*G, C) -> (B, R, R, 1) float32 human mask probability in padded human-branch pixels."""
        g, p = self.dino_cfg.grid, self.dino_cfg.patch_size
        m = squash_score(self.mlp_msk(dino_tokens).float())  # (B, G*G, p*p)
        m = F.pixel_shuffle(m.transpose(1, 2).reshape(-1, p * p, g, g), p)
        return m.permute(0, 2, 3, 1)

    def fuse(self, dino_tokens: torch.Tensor, enc_tokens: torch.Tensor) -> torch.Tensor:
        """(1, n, Cd), (1, n, Ce) -> (1, n, D) human prompt tokens. The inputs are detached: in training only
        `mlp_fuse` learns here (the padding tokens of empty slots are not trained through this path)."""
        return self.mlp_fuse(torch.cat([dino_tokens.detach(), enc_tokens.detach().to(dino_tokens.dtype)], dim=-1))

    def smpl(self, human_tokens: torch.Tensor, dino_tokens: torch.Tensor) -> SmplParams:
        """human_tokens (1, n, D) final decoder tokens, dino_tokens (1, n, Cd) -> SMPL-X parameters (float32)."""
        with float32_island(human_tokens.device.type):
            human_tokens = human_tokens.float()
            z = torch.cat([human_tokens, dino_tokens.float()], dim=-1)
            pose6d = self.decpose(z) + self.init_body_pose
            b, n = pose6d.shape[:2]
            return SmplParams(
                rotmat=rot6d_to_rotmat(pose6d.reshape(b, n, -1, 6)),
                betas=self.decshape(z) + self.init_betas,
                expression=self.decexpression(z) + self.init_expression,
                transl=exp_points(self.deccam(human_tokens)),
            )

    # -- scene branch ---------------------------------------------------------------------------------------------
    def forward(self, hooks: list[torch.Tensor], pos: torch.Tensor, height: int, width: int, *,
                world: bool = True, rgb: bool = True) -> SceneOutput:
        """hooks: [enc (B,N,Ce), dec_a (B,N,D), dec_b (B,N,D), dec_L (B,1+N,D) with the pose token first];
        pos (B, N, 2) -> pointmaps, confidences, colours and camera pose at height x width.

        `world=False` skips the world-view branch (final_transform + dpt_cross: pts3d_world/conf_world are None),
        `rgb=False` the colour head (rgb is None); the other outputs are unchanged.
        """
        pose_tok, tokens = hooks[3][:, 0], hooks[3][:, 1:]
        with float32_island(pose_tok.device.type):
            camera_pose = camera_pose_from_raw(self.pose_head(pose_tok.float()))
        ckpt = self.checkpointing
        self_out = maybe_checkpoint(ckpt, self.dpt_self, hooks[:3] + [tokens], height, width)
        pts3d_world = conf_world = colour = None
        if world:
            rope = Rope(pos, self.rope_base, (self.world_head_dim,))
            world_tokens = tokens
            for blk in self.final_transform:
                world_tokens = blk(world_tokens, pose_tok, rope)
            cross_out = maybe_checkpoint(ckpt, self.dpt_cross, hooks[:3] + [world_tokens], height, width)
            pts3d_world, conf_world = exp_points(cross_out[..., :3]), exp_conf(cross_out[..., 3])
        if rgb and self.cfg.rgb_head:
            raw = maybe_checkpoint(ckpt, self.dpt_rgb, hooks[:3] + [tokens], height, width)
            colour = (squash_score(raw) - 0.5) * 2
        return SceneOutput(
            pts3d_self=exp_points(self_out[..., :3]),
            conf_self=exp_conf(self_out[..., 3]),
            pts3d_world=pts3d_world,
            conf_world=conf_world,
            rgb=colour,
            camera_pose=camera_pose,
        )
