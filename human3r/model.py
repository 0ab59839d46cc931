"""Human3R: the composition of encoder, human encoder, recurrent decoder and heads, one frame per call.

`Human3R.forward(frame, state) -> (FrameOutput, State)` is the only forward path. The state update rule is part
of the step: plain overwrite (CUT3R) or, with `ttt3r=True`, a per-token sigmoid gate from the state stream's
attention logits (skipped on the first frame of a segment). Resets and pose chaining live in `human3r.stream`.

`state_dict()` uses the module's own names (`encoder.enc_blocks.0...`, `decoder.dec_blocks_state.3...`).
Checkpoint files use the reference names (no `encoder.` / `decoder.` prefix); `human3r.weights` maps between
the two when it loads or saves weights (`human3r.weights.keys`).
"""

from __future__ import annotations

import torch
from torch import nn

from human3r.config import Human3RConfig
from human3r.decoder import RecurrentDecoder, State
from human3r.dinov2 import DinoBackbone
from human3r.encoder import ImageEncoder
from human3r.geometry import camera_pose_to_c2w
from human3r.heads import Human3RHead, host_patches
from human3r.outputs import FrameOutput, Humans
from human3r.preprocess import Frame
from human3r.tracking import TrackState, assign_track_ids


class Human3R(nn.Module):
    """Human3R network (batch 1, float32 path of the reference `forward_recurrent_lighter`).

    Models made by `human3r.load_model` carry `identity` (a `human3r.weights.ModelIdentity`).
    """

    def __init__(self, cfg: Human3RConfig | None = None):
        super().__init__()
        cfg = cfg or Human3RConfig()
        self.cfg = cfg
        e, bd = cfg.encoder.embed_dim, cfg.dino.embed_dim
        self.encoder = ImageEncoder(cfg.encoder)
        self.decoder = RecurrentDecoder(cfg.encoder, cfg.decoder)
        self.backbone = DinoBackbone(cfg.dino)
        self.downstream_head = Human3RHead(cfg.encoder, cfg.decoder, cfg.dino, cfg.heads)
        # Training-time padding tokens of the reference; never read at inference.
        self.masked_img_token = nn.Parameter(torch.zeros(1, e))
        self.masked_ray_map_token = nn.Parameter(torch.zeros(1, e))
        self.masked_smpl_token = nn.Parameter(torch.zeros(1, e))
        self.mhmr_masked_smpl_token = nn.Parameter(torch.zeros(1, bd))
        self.mhmr_masked_img_token = nn.Parameter(torch.zeros(1, bd))

    # ------------------------------------------------------------------------------------------------------------
    def initial_state(self) -> State:
        """Learned start state, fresh segment, empty tracker."""
        state, mem = self.decoder.initial_state()
        return State(state=state, mem=mem, fresh=True, tracks=TrackState())

    def reset_state(self, state: State) -> State:
        """Start a new segment: learned state and memory again; the tracker memory is kept (as the reference)."""
        fresh = self.initial_state()
        return State(state=fresh.state, mem=fresh.mem, fresh=True, tracks=state.tracks)

    def forward(self, frame: Frame, state: State, *, ttt3r: bool = False) -> tuple[FrameOutput, State]:
        """One streaming step. frame.img (1, 3, H, W), frame.img_mhmr (1, 3, R, R).

        Intermediates (encoder blocks, DINOv2 tokens, decoder layers, gate) are observable with forward hooks on the
        submodules; `human3r.parity.Recorder` collects the ones the parity pack compares.
        """
        cfg, head = self.cfg, self.downstream_head
        img = frame.img
        height, width = int(img.shape[-2]), int(img.shape[-1])
        p = cfg.encoder.patch_size

        # 1. encoders
        enc_tokens, enc_pos = self.encoder(img)
        dino_tokens = self.backbone(frame.img_mhmr)

        # 2. humans: detection, mask, prompt tokens at the host CUT3R patches
        det = head.detect(dino_tokens)
        mask = head.segment(dino_tokens) if cfg.heads.msk_head else None
        rows, cols = host_patches(det.loc[0], cfg.dino.image_res, height, width, p)
        grid_tok = enc_tokens.reshape(1, height // p, width // p, -1)
        grid_pos = enc_pos.reshape(1, height // p, width // p, 2)
        prompt_pos = grid_pos[0, rows, cols][None]
        prompts = head.fuse(det.tokens, grid_tok[0, rows, cols][None])

        # 3. decoder
        pose_query = self.decoder.pose_query(enc_tokens, state.mem, state.fresh)
        gated = ttt3r and not state.fresh
        dec = self.decoder(state.state, enc_tokens, enc_pos, pose_query, prompts, prompt_pos, gate=gated)
        n_img = enc_tokens.shape[1]
        last = dec.layers[-1]
        _, a, b, _ = cfg.decoder.hooks
        hooks = [dec.layers[0], dec.layers[a][:, 1:n_img + 1], dec.layers[b][:, 1:n_img + 1], last[:, : n_img + 1]]
        human_tokens = last[:, n_img + 1:]
        new_mem = self.decoder.pose_retriever.write(state.mem, enc_tokens.mean(dim=1, keepdim=True), last[:, :1])

        # 4. heads
        scene = head(hooks, enc_pos, height, width)
        if human_tokens.shape[1] > 0:
            smpl = head.smpl(human_tokens, det.tokens)
            ids, tracks = assign_track_ids(human_tokens, state.tracks, cfg.tracker)
            score = det.scores[0, det.rows, det.cols, 0][None]
            humans = Humans(det.loc, score, smpl.rotmat, smpl.betas, smpl.expression, smpl.transl, ids, human_tokens,
                            prompts, prompt_pos)
        else:
            tracks = state.tracks
            humans = Humans.empty(cfg.decoder.embed_dim, cfg.heads.num_rotations, cfg.heads.num_betas,
                                  cfg.heads.num_expression, device=img.device)

        # 5. state update rule
        if gated:
            g = dec.gate[..., None]
            new_state = dec.new_state * g + state.state * (1 - g)
        else:
            new_state = dec.new_state

        out = FrameOutput(**vars(scene), c2w=camera_pose_to_c2w(scene.camera_pose), human_mask=mask,
                          det_scores=det.scores, humans=humans)
        return out, State(state=new_state, mem=new_mem, fresh=False, tracks=tracks)
