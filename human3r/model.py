"""Human3R: the composition of encoder, human encoder, recurrent decoder and heads, one frame per call.

`Human3R.forward(frame, state) -> (FrameOutput, State)` is the only forward path. The state update rule is part
of the step: plain overwrite (CUT3R) or, with `ttt3r=True`, a per-token sigmoid gate from the state stream's
attention logits (skipped on the first frame of a segment). Resets and pose chaining live in `human3r.stream`.

State-dict keys are exactly the reference checkpoint keys: the encoder and decoder parts are registered as
`encoder.*` / `decoder.*` submodules, and a state-dict hook pair strips/restores those two prefixes, so
`state_dict()` and `load_state_dict()` speak the reference names (`enc_blocks.0...`, `dec_blocks_state.3...`).
`named_parameters()` keeps the internal `encoder.` / `decoder.` prefixes.
"""

from __future__ import annotations

import torch
from torch import nn

from human3r.config import Human3RConfig
from human3r.decoder import RecurrentDecoder, State
from human3r.dinov2 import DinoBackbone
from human3r.encoder import ImageEncoder
from human3r.heads import Human3RHead, camera_pose_to_c2w, host_patches
from human3r.outputs import FrameOutput, Humans
from human3r.preprocess import Frame
from human3r.tracking import TrackState, assign_track_ids

_FLAT_PARTS = ("encoder", "decoder")  # submodules whose prefix is absent from the reference keys


def _strip_part_prefixes(module: nn.Module, state_dict: dict, prefix: str, local_metadata: dict) -> None:
    for part in _FLAT_PARTS:
        p = f"{prefix}{part}."
        for key in [k for k in state_dict if k.startswith(p)]:
            state_dict[prefix + key[len(p):]] = state_dict.pop(key)


def _restore_part_prefixes(module: Human3R, state_dict: dict, prefix: str, *args) -> None:
    owners = module._part_of_child
    for key in [k for k in state_dict if k.startswith(prefix)]:
        head = key[len(prefix):].split(".", 1)[0]
        if head in owners:
            state_dict[f"{prefix}{owners[head]}.{key[len(prefix):]}"] = state_dict.pop(key)


class Human3R(nn.Module):
    """Human3R network (batch 1, float32 path of the reference `forward_recurrent_lighter`)."""

    # State-dict keys (prefixes) the reference checkpoint holds but inference never reads.
    UNUSED_KEY_PREFIXES: tuple[str, ...] = (
        "patch_embed_ray_map.",
        "enc_blocks_ray_map.",
        "enc_norm_ray_map.",
        "masked_img_token",
        "masked_ray_map_token",
        "masked_smpl_token",
        "mhmr_masked_smpl_token",
        "mhmr_masked_img_token",
        "backbone.encoder.mask_token",
        "downstream_head.init_betas_kid",
        "downstream_head.init_cam",
        "downstream_head.dpt_self.scratch.refinenet4.resConfUnit1.",
        "downstream_head.dpt_cross.scratch.refinenet4.resConfUnit1.",
        "downstream_head.dpt_rgb.scratch.refinenet4.resConfUnit1.",
    )

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
        self._part_of_child = {name: part for part in _FLAT_PARTS for name, _ in getattr(self, part).named_children()}
        self._part_of_child.update({name: part for part in _FLAT_PARTS
                                    for name, _ in getattr(self, part).named_parameters(recurse=False)})
        self.register_state_dict_post_hook(_strip_part_prefixes)
        self.register_load_state_dict_pre_hook(_restore_part_prefixes)

    # ------------------------------------------------------------------------------------------------------------
    def initial_state(self) -> State:
        """Learned start state, fresh segment, empty tracker."""
        state, mem = self.decoder.initial_state()
        return State(state=state, mem=mem, fresh=True, tracks=TrackState())

    def reset_state(self, state: State) -> State:
        """Start a new segment: learned state and memory again; the tracker memory is kept (as the reference)."""
        fresh = self.initial_state()
        return State(state=fresh.state, mem=fresh.mem, fresh=True, tracks=state.tracks)

    def forward(self, frame: Frame, state: State, *, ttt3r: bool = False, trace: dict | None = None
                ) -> tuple[FrameOutput, State]:
        """One streaming step.

        frame.img (1, 3, H, W), frame.img_mhmr (1, 3, R, R); `trace`, when a dict, receives intermediates
        (encoder blocks, DINOv2 tokens, detection logits, decoder layers, state in/out, prompts, gate).
        """
        cfg, head = self.cfg, self.downstream_head
        img = frame.img
        height, width = int(img.shape[-2]), int(img.shape[-1])
        p = cfg.encoder.patch_size

        # 1. encoders
        enc_tokens, enc_pos = self.encoder(img, trace)
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
        dec = self.decoder(state.state, enc_tokens, enc_pos, pose_query, prompts, prompt_pos, gate=ttt3r,
                           trace=trace)
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
            g = torch.sigmoid(dec.gate_logits)[..., None]
            new_state = dec.new_state * g + state.state * (1 - g)
        else:
            new_state = dec.new_state

        if trace is not None:
            trace.update(dino_tokens=dino_tokens, det_logits=det.logits, state_in=state.state, pose_query=pose_query,
                         smpl_prompt=prompts, smpl_prompt_pos=prompt_pos, state_new=dec.new_state)
            if gated:
                trace["ttt3r_gate"] = torch.sigmoid(dec.gate_logits)

        out = FrameOutput(
            pts3d_self=scene["pts3d_self"], conf_self=scene["conf_self"], pts3d_world=scene["pts3d_world"],
            conf_world=scene["conf_world"], rgb=scene["rgb"], camera_pose=scene["camera_pose"],
            c2w=camera_pose_to_c2w(scene["camera_pose"]), human_mask=mask, det_scores=det.scores, humans=humans,
        )
        return out, State(state=new_state, mem=new_mem, fresh=False, tracks=tracks)
