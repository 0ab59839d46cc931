"""Human3R: the composition of encoder, human encoder, recurrent decoder and heads, one frame of B videos per call.

`Human3R.forward(frame, state) -> (FrameOutput, State)` is the only forward path; given a list of states (one per
video) and a frame batch (B, ...), it steps B independent videos at once and returns lists. The state update rule
is part of the step: plain overwrite (CUT3R) or, with `ttt3r=True`, a per-token sigmoid gate from the state
stream's attention logits (skipped on the first frame of a segment, per video). Resets and pose chaining live in
`human3r.stream`.

Batched videos may hold different numbers of people: their prompt tokens are padded to the largest count and the
padding is masked out of every attention and of the TTT3R gate, so each video's results are its own.

Training runs the same step with `prompts=TeacherPrompts(...)` (ground-truth head cells choose the people, every
slot of every stream becomes a prompt, empty ones from the learned padding tokens, no tracking) and, when a batch
has ray maps, `frame.ray_mask` (`human3r.training.forward` loops this over the views of a training sample).
Frozen parts (encoders whose parameters do not require gradients) run without building a graph.

`state_dict()` uses the module's own names (`encoder.enc_blocks.0...`, `decoder.dec_blocks_state.3...`).
Checkpoint files use the reference names (no `encoder.` / `decoder.` prefix); `human3r.weights` maps between
the two when it loads or saves weights (`human3r.weights.keys`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Sequence

import torch
from torch import nn

from human3r.config import Human3RConfig
from human3r.decoder import RecurrentDecoder, State
from human3r.dinov2 import DinoBackbone
from human3r.encoder import ImageEncoder
from human3r.errors import ConfigError, InputShapeError
from human3r.geometry import camera_pose_to_c2w
from human3r.heads import Human3RHead, host_patches
from human3r.outputs import OPTIONAL_OUTPUTS, FrameOutput, Humans, check_outputs
from human3r.precision import (
    cast_for_precision,
    compile_blocks,
    compute_context,
    float32_island,
    resolve_precision,
)
from human3r.preprocess import Frame, TeacherPrompts
from human3r.tracking import TrackState, assign_track_ids


def _per_stream(flat: torch.Tensor, batch: torch.Tensor, counts: list[int], slot: torch.Tensor) -> torch.Tensor:
    """(n, ...) items ordered by stream -> (B, max count, ...) zero-padded."""
    b, width = len(counts), max(counts, default=0)
    if all(c == width for c in counts):
        return flat.reshape(b, width, *flat.shape[1:])
    out = flat.new_zeros(b, width, *flat.shape[1:])
    out[batch, slot] = flat
    return out


def _graph_if_trained(*modules: nn.Module):
    """No autograd graph inside when none of `modules`' parameters is trained (frozen encoders)."""
    trained = any(p.requires_grad for m in modules for p in m.parameters())
    return contextlib.nullcontext() if trained else torch.no_grad()


class Human3R(nn.Module):
    """Human3R network (the reference `forward_recurrent_lighter`, for one or several videos at a time).

    Models made by `human3r.load_model` carry `identity` (a `human3r.weights.ModelIdentity`).
    `compute_dtype` is float32 unless `set_precision` chose bfloat16 / float16 (see `human3r.precision`).
    """

    def __init__(self, cfg: Human3RConfig | None = None):
        super().__init__()
        cfg = cfg or Human3RConfig()
        self.cfg = cfg
        self.compute_dtype = torch.float32
        e, bd = cfg.encoder.embed_dim, cfg.dino.embed_dim
        self.encoder = ImageEncoder(cfg.encoder)
        self.decoder = RecurrentDecoder(cfg.encoder, cfg.decoder)
        self.backbone = DinoBackbone(cfg.dino)
        self.downstream_head = Human3RHead(cfg.encoder, cfg.decoder, cfg.dino, cfg.heads)
        # Training-time padding tokens: masked_ray_map_token (views without a ray map in a batch that has some),
        # masked_smpl_token / mhmr_masked_smpl_token (empty teacher-forced slots); never read at inference.
        self.masked_img_token = nn.Parameter(torch.zeros(1, e))
        self.masked_ray_map_token = nn.Parameter(torch.zeros(1, e))
        self.masked_smpl_token = nn.Parameter(torch.zeros(1, e))
        self.mhmr_masked_smpl_token = nn.Parameter(torch.zeros(1, bd))
        self.mhmr_masked_img_token = nn.Parameter(torch.zeros(1, bd))

    # ------------------------------------------------------------------------------------------------------------
    def set_precision(self, precision: str) -> Human3R:
        """'float32' (parity), 'bfloat16', 'float16' or 'auto' (`human3r.precision.resolve_precision`) on the
        model's device. Low precisions store the transformer / DPT weights in that dtype (one-way: load the model
        again for float32). Returns the model."""
        dtype = resolve_precision(precision, next(self.parameters()).device)
        if dtype != self.compute_dtype:
            if self.compute_dtype != torch.float32:
                raise ConfigError(f"this model already runs in {self.compute_dtype}; load it again to use {dtype}")
            cast_for_precision(self, dtype)
            self.compute_dtype = dtype
        return self

    def compile_blocks(self, mode: str | None = None) -> Human3R:
        """`torch.compile` the transformer blocks and DPT heads in place (`human3r.precision.compile_blocks`):
        a minute or so of compilation, worth it for long videos. Returns the model."""
        return compile_blocks(self, mode)

    def initial_state(self) -> State:
        """Learned start state, fresh segment, empty tracker."""
        with float32_island(self.decoder.pose_token.device.type):
            state, mem = self.decoder.initial_state()
        return State(state=state.float(), mem=mem, fresh=True, tracks=TrackState())

    def reset_state(self, state: State) -> State:
        """Start a new segment: learned state and memory again; the tracker memory is kept (as the reference)."""
        fresh = self.initial_state()
        return State(state=fresh.state, mem=fresh.mem, fresh=True, tracks=state.tracks)

    def set_gradient_checkpointing(self, enabled: bool = True) -> Human3R:
        """Recompute the decoder blocks and the DPT heads in the backward pass instead of keeping their
        activations (training memory; the numbers are the same). Returns the model."""
        self.decoder.checkpointing = enabled
        self.downstream_head.checkpointing = enabled
        return self

    def forward(self, frame: Frame, state: State | Sequence[State], *, ttt3r: bool = False,
                outputs: Collection[str] = OPTIONAL_OUTPUTS, prompts: TeacherPrompts | None = None
                ) -> tuple[FrameOutput, State] | tuple[list[FrameOutput], list[State]]:
        """One streaming step. frame.img (B, 3, H, W), frame.img_mhmr (B, 3, R, R); state: a `State` (B = 1), or
        a list of B states, one per video (then the outputs and new states are lists too).

        outputs: the optional outputs to compute (`human3r.outputs.OPTIONAL_OUTPUTS`: 'pts3d_world', 'rgb',
        'human_mask'); the heads of the others do not run and their fields are None. The rest is identical.

        prompts: teacher forcing (training). The detector does not choose the people: each stream's N slots are its
        `humans` in slot order (empty slots included, their `loc` 0), `det_scores` are the classifier's scores
        without NMS, track ids are the slot numbers and the tracker is left as it was.

        Intermediates (encoder blocks, DINOv2 tokens, decoder layers, gate) are observable with forward hooks on the
        submodules; `human3r.parity.Recorder` collects the ones the parity pack compares.
        """
        batched = not isinstance(state, State)
        states = list(state) if batched else [state]
        if frame.img.shape[0] != len(states) or frame.img_mhmr.shape[0] != len(states):
            raise InputShapeError(f"a batch of {frame.img.shape[0]} frames needs as many states, got {len(states)}; "
                                  "pass one State per video")
        if prompts is not None and prompts.mask.shape[0] != len(states):
            raise InputShapeError(f"teacher prompts for {prompts.mask.shape[0]} streams, frames for {len(states)}")
        with compute_context(frame.img.device.type, self.compute_dtype):
            outs, new_states = self._step(frame, states, ttt3r, check_outputs(outputs), prompts)
        return (outs, new_states) if batched else (outs[0], new_states[0])

    def _encode(self, frame: Frame) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Image tokens (B, N, Ce) (plus ray-map or padding tokens when `frame.ray_mask` is set), their (B, N, 2)
        positions, and the DINOv2 tokens (B, G*G, Cd)."""
        with _graph_if_trained(self.encoder):
            enc_tokens, enc_pos = self.encoder(frame.img)
            if frame.ray_mask is not None:
                rays = self.masked_ray_map_token.to(enc_tokens.dtype).expand_as(enc_tokens).clone()
                if bool(frame.ray_mask.any()):
                    rays[frame.ray_mask] = self.encoder.encode_rays(frame.ray_map[frame.ray_mask]).to(rays.dtype)
                enc_tokens = enc_tokens + rays
        with _graph_if_trained(self.backbone):
            dino_tokens = self.backbone(frame.img_mhmr)
        return enc_tokens, enc_pos, dino_tokens

    def _step(self, frame: Frame, states: list[State], ttt3r: bool, outputs: frozenset[str],
              teacher: TeacherPrompts | None) -> tuple[list[FrameOutput], list[State]]:
        cfg, head = self.cfg, self.downstream_head
        img = frame.img
        b, height, width = img.shape[0], int(img.shape[-2]), int(img.shape[-1])
        p = cfg.encoder.patch_size

        # 1. encoders
        enc_tokens, enc_pos, dino_tokens = self._encode(frame)

        # 2. humans: detected (or teacher-forced) people, mask, prompt tokens at the host CUT3R patches (n people
        #    over all videos)
        if teacher is None:
            det = head.detect(dino_tokens)
        else:
            det = head.detect_at(dino_tokens, teacher.mask, teacher.uv, self.mhmr_masked_smpl_token)
        mask = head.segment(dino_tokens) if "human_mask" in outputs and cfg.heads.msk_head else None
        rows, cols = host_patches(det.loc, cfg.dino.image_res, height, width, p)
        grid_tok = enc_tokens.reshape(b, height // p, width // p, -1)
        grid_pos = enc_pos.reshape(b, height // p, width // p, 2)
        host_tok = grid_tok[det.batch, rows, cols]
        if teacher is not None:  # empty slots: the padding token at position (0, 0)
            kept = teacher.mask.reshape(-1)
            rows, cols = torch.where(kept, rows, 0), torch.where(kept, cols, 0)
            host_tok = torch.where(kept[:, None], host_tok, self.masked_smpl_token.to(host_tok.dtype))
        prompts = head.fuse(det.tokens[None], host_tok[None])[0]  # (n, D)
        counts = torch.bincount(det.batch, minlength=b).tolist()
        starts = [sum(counts[:i]) for i in range(b)]
        slot = torch.arange(det.batch.shape[0], device=img.device) - torch.tensor(starts, device=img.device)[det.batch]
        equal = all(c == counts[0] for c in counts)
        prompt_mask = None if equal else _per_stream(torch.ones_like(det.batch, dtype=torch.bool), det.batch,
                                                     counts, slot)

        # 3. decoder
        fresh = [s.fresh for s in states]
        state_in = torch.cat([s.state for s in states])
        mem_in = torch.cat([s.mem for s in states])
        pose_query = self.decoder.pose_query(enc_tokens, mem_in, fresh)
        gated = [ttt3r and not f for f in fresh]
        dec = self.decoder(state_in, enc_tokens, enc_pos, pose_query, _per_stream(prompts, det.batch, counts, slot),
                           _per_stream(grid_pos[det.batch, rows, cols], det.batch, counts, slot), gate=any(gated),
                           prompt_mask=prompt_mask)
        n_img = enc_tokens.shape[1]
        last = dec.layers[-1]
        _, a, c, _ = cfg.decoder.hooks
        hooks = [dec.layers[0], dec.layers[a][:, 1:n_img + 1], dec.layers[c][:, 1:n_img + 1], last[:, : n_img + 1]]
        human_tokens = last[:, n_img + 1:][det.batch, slot].float()  # (n, D)
        new_mem = self.decoder.pose_retriever.write(mem_in, enc_tokens.mean(dim=1, keepdim=True), last[:, :1])

        # 4. heads
        scene = head(hooks, enc_pos, height, width, world="pts3d_world" in outputs, rgb="rgb" in outputs)
        smpl = head.smpl(human_tokens[None], det.tokens[None]) if human_tokens.shape[0] else None
        c2w = camera_pose_to_c2w(scene.camera_pose)
        score = det.scores[det.batch, det.rows, det.cols, 0]
        prompt_pos = grid_pos[det.batch, rows, cols]

        # 5. per video: its outputs, tracks and state update rule
        outs, new_states = [], []
        with float32_island(img.device.type):
            for i in range(b):
                one = slice(i, i + 1)
                people = slice(starts[i], starts[i] + counts[i])
                if counts[i]:
                    tokens = human_tokens[people][None]
                    if teacher is None:
                        ids, tracks = assign_track_ids(tokens, states[i].tracks, cfg.tracker)
                    else:
                        ids, tracks = torch.arange(counts[i], device=img.device)[None], states[i].tracks
                    humans = Humans(det.loc[people][None], score[people][None], smpl.rotmat[:, people],
                                    smpl.betas[:, people], smpl.expression[:, people], smpl.transl[:, people], ids,
                                    tokens, prompts[people][None].float(), prompt_pos[people][None])
                else:
                    tracks = states[i].tracks
                    humans = Humans.empty(cfg.decoder.embed_dim, cfg.heads.num_rotations, cfg.heads.num_betas,
                                          cfg.heads.num_expression, device=img.device)
                new_state = dec.new_state[one].float()
                if gated[i]:
                    g = dec.gate[one, :, None]
                    new_state = new_state * g + states[i].state * (1 - g)
                outs.append(FrameOutput(
                    pts3d_self=scene.pts3d_self[one], conf_self=scene.conf_self[one],
                    pts3d_world=None if scene.pts3d_world is None else scene.pts3d_world[one],
                    conf_world=None if scene.conf_world is None else scene.conf_world[one],
                    rgb=None if scene.rgb is None else scene.rgb[one], camera_pose=scene.camera_pose[one],
                    c2w=c2w[one], human_mask=None if mask is None else mask[one], det_scores=det.scores[one],
                    humans=humans))
                new_states.append(State(state=new_state, mem=new_mem[one].float(), fresh=False, tracks=tracks))
        return outs, new_states
