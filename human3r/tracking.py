"""Track people across frames by optimal-transport matching of their decoder tokens (SuperGlue-style Sinkhorn).

The tracker memory holds the tokens and ids of the latest frame plus every earlier track that went unmatched;
the reference never prunes those (`TrackerConfig.max_tracks` can cap them). Frames without people leave the
memory untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from human3r.config import TrackerConfig


@dataclass(frozen=True)
class TrackState:
    tokens: torch.Tensor | None = None  # (1, M, D) remembered human tokens
    ids: torch.Tensor | None = None  # (1, M) int64 their track ids
    max_id: int = -1  # largest id handed out so far


def log_optimal_transport(scores: torch.Tensor, alpha: float, iters: int) -> torch.Tensor:
    """Entropic OT with a dustbin row and column, in log space.

    scores: (B, m, n) similarity logits -> (B, m+1, n+1) log assignment (scaled by m+n, as SuperGlue).
    """
    b, m, n = scores.shape
    a = scores.new_tensor(alpha)
    couplings = torch.cat(
        [torch.cat([scores, a.expand(b, m, 1)], -1), torch.cat([a.expand(b, 1, n), a.expand(b, 1, 1)], -1)], 1
    )
    ms, ns = scores.new_tensor(float(m)), scores.new_tensor(float(n))
    norm = -(ms + ns).log()
    log_mu = torch.cat([norm.expand(m), ns.log()[None] + norm])[None].expand(b, -1)
    log_nu = torch.cat([norm.expand(n), ms.log()[None] + norm])[None].expand(b, -1)
    u, v = torch.zeros_like(log_mu), torch.zeros_like(log_nu)
    for _ in range(iters):
        u = log_mu - torch.logsumexp(couplings + v.unsqueeze(1), dim=2)
        v = log_nu - torch.logsumexp(couplings + u.unsqueeze(2), dim=1)
    return couplings + u.unsqueeze(2) + v.unsqueeze(1) - norm


def assign_track_ids(tokens: torch.Tensor, state: TrackState, cfg: TrackerConfig
                     ) -> tuple[torch.Tensor, TrackState]:
    """tokens: (1, n, D) this frame's human tokens -> ((1, n) int64 ids, updated memory)."""
    n = tokens.shape[1]
    device = tokens.device
    if n == 0:
        return torch.zeros(1, 0, dtype=torch.long, device=device), state
    if state.tokens is None:
        ids = torch.arange(n, device=device)[None]
        return ids, _capped(tokens.clone(), ids.clone(), n - 1, cfg)

    last_tk, last_id = state.tokens, state.ids
    log_p = log_optimal_transport(-torch.cdist(last_tk, tokens, p=2), cfg.dustbin_score, cfg.sinkhorn_iters)
    inner = log_p[:, :-1, :-1]  # (1, m, n)
    max0, max1 = inner.max(2), inner.max(1)
    idx0, idx1 = max0.indices, max1.indices
    mutual0 = torch.arange(idx0.shape[1], device=device)[None] == idx1.gather(1, idx0)
    mutual1 = torch.arange(idx1.shape[1], device=device)[None] == idx0.gather(1, idx1)
    score0 = torch.where(mutual0, max0.values.exp(), inner.new_tensor(0.0))
    valid0 = mutual0 & (score0 > cfg.match_threshold)  # (1, m) remembered track found again
    valid1 = mutual1 & valid0.gather(1, idx1)  # (1, n) current person matched

    ids = torch.full_like(idx1, -1)
    if bool(valid1.any()):
        ids[valid1] = last_id.gather(1, idx1[valid1][None]).flatten()
    max_id = state.max_id
    n_new = int((~valid1).sum())
    if n_new > 0:
        ids[~valid1] = torch.arange(max_id + 1, max_id + 1 + n_new, device=device)
        max_id += n_new

    if bool((~valid0).any()):
        mem_tk = torch.cat([tokens, last_tk[~valid0][None]], dim=1)
        mem_id = torch.cat([ids, last_id[~valid0][None]], dim=1)
    else:
        mem_tk, mem_id = tokens.clone(), ids.clone()
    return ids, _capped(mem_tk, mem_id, max_id, cfg)


def _capped(tokens: torch.Tensor, ids: torch.Tensor, max_id: int, cfg: TrackerConfig) -> TrackState:
    """The memory, keeping its first `cfg.max_tracks` entries (this frame's people come first)."""
    if cfg.max_tracks is not None:
        tokens, ids = tokens[:, : cfg.max_tracks], ids[:, : cfg.max_tracks]
    return TrackState(tokens, ids, max_id)
